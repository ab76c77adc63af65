"""GraphClient against `responses`: paging, retries, tokens, error classes, request hygiene.

Bodies come from tests/fixtures/graph/, shaped like the examples on Microsoft's Graph v1.0 and
identity platform pages (the page is named next to each test). No test sleeps or opens a socket.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from directories.graph import (
    AppRoleAssignment,
    ErrorClass,
    GraphBadResponse,
    GraphClient,
    GraphForbidden,
    GraphGroup,
    GraphNotAssigned,
    GraphThrottled,
    GraphTransient,
    GraphUnauthorized,
    GraphUser,
    GraphWrongTenant,
    Organization,
    ServicePrincipal,
    forget_cached_tokens,
)
from directories.graph import client as client_module
from tests.conftest import GRAPH_REQUEST_CHECKER

from .support import (
    ASSIGNMENTS_URL,
    AUTH_APP_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    FIXTURES,
    GROUP_ID,
    GROUP_URL,
    GROUPS_URL,
    INSTANCE_DISCOVERY_URL,
    LOGIN_URL,
    MEMBERS_URL,
    MICROSOFT_LOGIN_URL,
    ORGANIZATION_URL,
    SERVICE_PRINCIPAL_URL,
    TENANT_ID,
    TIMEOUT,
    USER_URL,
    FakeGraph,
    FakeLogin,
    access_token,
    load_fixture,
)

MakeClient = Callable[..., GraphClient]

CHECKER = GRAPH_REQUEST_CHECKER
needs_checker = pytest.mark.skipif(
    not CHECKER.is_file(), reason=f"{CHECKER} (the Graph OpenAPI checker) is not here"
)

# Graph success bodies and the request each one answers, for the OpenAPI check.
SKIPTOKEN_PAGE_2 = load_fixture("groups-page-1.json")["@odata.nextLink"]
SKIPTOKEN_PAGE_3 = load_fixture("groups-page-2.json")["@odata.nextLink"]
MEMBERS_UNCAST_URL = MEMBERS_URL.replace("/microsoft.graph.user?", "?")
GRAPH_BODIES = {
    "groups-page-1.json": GROUPS_URL,
    "groups-page-2.json": SKIPTOKEN_PAGE_2,
    "groups-page-3.json": SKIPTOKEN_PAGE_3,
    "organization.json": ORGANIZATION_URL,
    "service-principal.json": SERVICE_PRINCIPAL_URL,
    "app-role-assigned-to.json": ASSIGNMENTS_URL,
    "transitive-members-users.json": MEMBERS_URL,
    "transitive-members-limited-info.json": MEMBERS_URL,
    "transitive-members-mixed.json": MEMBERS_UNCAST_URL,
}
GRAPH_ERRORS = [
    "error-401-invalid-authentication-token.json",
    "error-403-authorization-request-denied.json",
    "error-404-request-resource-not-found.json",
    "error-429-too-many-requests.json",
    "error-503-service-not-available.json",
]
LOGIN_BODIES = [
    "openid-configuration.json",
    "openid-error-aadsts90002.json",
    "token-response.json",
    "token-error-aadsts7000215.json",
    "token-error-aadsts7000222.json",
    "token-error-aadsts700016.json",
    "instance-discovery.json",
]


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def serve_all_pages(graph: FakeGraph) -> None:
    # "List groups", paged as on "Paging Microsoft Graph data in your app".
    graph.reply(GROUPS_URL, "groups-page-1.json", request_id="page-1")
    graph.reply(SKIPTOKEN_PAGE_2, "groups-page-2.json", request_id="page-2")
    graph.reply(SKIPTOKEN_PAGE_3, "groups-page-3.json", request_id="page-3")


# --- paging --------------------------------------------------------------------------------------


def test_it_follows_next_links_across_pages(client: GraphClient, graph: FakeGraph) -> None:
    # "List groups" example 1, three pages linked by @odata.nextLink.
    serve_all_pages(graph)

    groups = list(client.groups())

    assert [g.display_name for g in groups] == [
        "Golf Assist",
        "Golf Discussion",
        "Contoso Group 1",
        "Contoso Group 2",
    ]
    assert groups[0] == GraphGroup(
        id="45b7d2e7-b882-4a80-ba97-10b7a63b8fa4",
        display_name="Golf Assist",
        description="Self help community for golf",
        mail="golfassist@contoso.com",
        mail_enabled=True,
        security_enabled=False,
        group_types=("Unified",),
    )
    sent = [r.url for r in graph.requests]
    # The next links are sent exactly as Graph wrote them, $skiptoken and %27 included.
    assert sent == [GROUPS_URL, SKIPTOKEN_PAGE_2, SKIPTOKEN_PAGE_3]
    assert "$skiptoken=X%2744537074" in sent[2]
    assert client.stats.requests == 3
    assert client.stats.retries == 0
    assert client.stats.last_request_id == "page-3"


def test_its_first_request_selects_only_what_it_keeps_and_asks_for_999(
    client: GraphClient, graph: FakeGraph
) -> None:
    serve_all_pages(graph)
    graph.reply(MEMBERS_URL, "transitive-members-users.json")

    list(client.groups())
    client.group_transitive_users(GROUP_ID)

    groups_query = query(graph.requests[0].url)
    assert groups_query["$top"] == ["999"]
    assert set(groups_query["$select"][0].split(",")) == {
        "id",
        "displayName",
        "description",
        "mail",
        "mailEnabled",
        "securityEnabled",
        "groupTypes",
    }
    members = graph.requests[-1]
    assert urlsplit(members.url).path == (
        f"/v1.0/groups/{GROUP_ID}/transitiveMembers/microsoft.graph.user"
    )
    assert query(members.url)["$top"] == ["999"]
    # "Advanced query capabilities on Microsoft Entra ID objects": an OData cast needs both.
    assert query(members.url)["$count"] == ["true"]
    assert members.headers["ConsistencyLevel"] == "eventual"
    assert "$count" not in groups_query and "ConsistencyLevel" not in graph.requests[0].headers
    assert set(query(members.url)["$select"][0].split(",")) == {
        "id",
        "userPrincipalName",
        "mail",
        "displayName",
        "givenName",
        "surname",
        "accountEnabled",
        "userType",
    }


def test_every_page_of_a_cast_member_listing_is_an_advanced_query(
    client: GraphClient, graph: FakeGraph
) -> None:
    # A nextLink carries the $count it was asked with, never the header: we send it each time.
    first = load_fixture("transitive-members-users.json")
    next_link = f"{MEMBERS_URL}&$skiptoken=page-2"
    graph.reply(MEMBERS_URL, json_body={**first, "@odata.nextLink": next_link})
    graph.reply(next_link, json_body={**first, "value": first["value"][:1]})

    users = client.group_transitive_users(GROUP_ID)

    assert len(users) == len(first["value"]) + 1
    assert [r.url for r in graph.requests] == [MEMBERS_URL, next_link]
    assert all(r.headers["ConsistencyLevel"] == "eventual" for r in graph.requests)
    assert all(query(r.url)["$count"] == ["true"] for r in graph.requests)


# --- throttling and transient failures -----------------------------------------------------------


def test_it_waits_for_retry_after_before_retrying_a_throttled_request(
    client: GraphClient, graph: FakeGraph, waits: list[float]
) -> None:
    # "Microsoft Graph throttling guidance", sample response (Retry-After: 2.128).
    graph.error(
        ORGANIZATION_URL, "error-429-too-many-requests.json", status=429, retry_after="2.128"
    )
    graph.reply(ORGANIZATION_URL, "organization.json", request_id="after-throttle")

    organization = client.organization()

    assert organization.display_name == "Contoso"
    assert waits == [2.128]
    assert client.stats.requests == 2
    assert client.stats.retries == 1
    assert client.stats.last_request_id == "after-throttle"


def test_it_caps_a_retry_after_longer_than_it_is_willing_to_wait(
    make_client: MakeClient, login: FakeLogin, graph: FakeGraph, waits: list[float]
) -> None:
    # "Microsoft Graph throttling guidance"
    graph.error(
        ORGANIZATION_URL, "error-429-too-many-requests.json", status=429, retry_after="3600"
    )
    graph.reply(ORGANIZATION_URL, "organization.json")

    make_client(max_retry_after=120.0).organization()

    assert waits == [120.0]


def test_it_raises_throttled_when_graph_keeps_answering_429(
    client: GraphClient, graph: FakeGraph, waits: list[float]
) -> None:
    # "Microsoft Graph throttling guidance": the last registered answer repeats forever.
    request_id = graph.error(
        GROUPS_URL, "error-429-too-many-requests.json", status=429, retry_after="2.128"
    )

    with pytest.raises(GraphThrottled) as caught:
        list(client.groups())

    assert caught.value.error_class == ErrorClass.THROTTLED
    assert caught.value.status == 429
    assert caught.value.code == "TooManyRequests"
    assert caught.value.request_id == request_id
    assert waits == [2.128, 2.128, 2.128]  # max_retries=3: four requests, three waits
    assert len(graph.requests) == 4
    assert client.stats.retries == 3


def test_it_backs_off_with_jitter_after_a_503_then_succeeds(
    client: GraphClient,
    graph: FakeGraph,
    waits: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "Microsoft Graph error responses and resource types" (serviceNotAvailable, no Retry-After)
    monkeypatch.setattr(client_module, "random", random.Random(20241001))
    graph.error(ORGANIZATION_URL, "error-503-service-not-available.json", status=503)
    graph.error(ORGANIZATION_URL, "error-503-service-not-available.json", status=503)
    graph.reply(ORGANIZATION_URL, "organization.json")

    assert client.organization().id == TENANT_ID

    # backoff_base 1 s doubles per attempt; jitter keeps each wait in [half, full].
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0
    assert client.stats.retries == 2


@pytest.mark.parametrize(
    ("jitter", "expected"),
    [
        ("lowest", [0.5, 1.0, 2.0, 2.0, 2.0]),
        ("highest", [1.0, 2.0, 4.0, 4.0, 4.0]),
    ],
)
def test_its_backoff_doubles_up_to_the_cap_whatever_the_jitter(
    make_client: MakeClient,
    login: FakeLogin,
    graph: FakeGraph,
    waits: list[float],
    monkeypatch: pytest.MonkeyPatch,
    jitter: str,
    expected: list[float],
) -> None:
    class ExtremeJitter:
        @staticmethod
        def uniform(low: float, high: float) -> float:
            return low if jitter == "lowest" else high

    monkeypatch.setattr(client_module, "random", ExtremeJitter)
    graph.error(ORGANIZATION_URL, "error-503-service-not-available.json", status=503)

    with pytest.raises(GraphTransient):
        make_client(max_retries=5, backoff_base=1.0, backoff_cap=4.0).organization()

    assert waits == expected


def test_it_gives_up_on_repeated_5xx_with_the_last_request_id(
    client: GraphClient, graph: FakeGraph, waits: list[float]
) -> None:
    # "Microsoft Graph error responses and resource types": 500, 502, 503, 504 are retried.
    for status in (500, 502, 503):
        graph.reply(
            GROUPS_URL,
            status=status,
            json_body=load_fixture("error-503-service-not-available.json"),
            request_id=f"failed-{status}",
        )
    graph.reply(
        GROUPS_URL,
        status=504,
        json_body=load_fixture("error-503-service-not-available.json"),
        request_id="failed-504-last",
    )

    with pytest.raises(GraphTransient) as caught:
        list(client.groups())

    assert caught.value.error_class == ErrorClass.TRANSIENT
    assert caught.value.status == 504
    assert caught.value.request_id == "failed-504-last"
    assert "504" in caught.value.message
    assert len(waits) == 3
    assert client.stats.requests == 4
    assert client.stats.retries == 3
    assert client.stats.last_request_id == "failed-504-last"


def test_it_retries_a_refused_connection_and_a_timeout(
    client: GraphClient, graph: FakeGraph, waits: list[float]
) -> None:
    graph.reply(ORGANIZATION_URL, body=requests.ConnectionError("connection refused"))
    graph.reply(ORGANIZATION_URL, body=requests.ReadTimeout("read timed out"))
    graph.reply(ORGANIZATION_URL, "organization.json")

    assert client.organization().display_name == "Contoso"
    assert len(waits) == 2
    assert len(graph.requests) == 3
    assert client.stats.retries == 2


@pytest.mark.parametrize(
    "failure",
    [requests.ConnectionError("connection refused"), requests.ConnectTimeout("timed out")],
    ids=["connection-error", "timeout"],
)
def test_it_raises_transient_when_the_network_keeps_failing(
    client: GraphClient, graph: FakeGraph, waits: list[float], failure: Exception
) -> None:
    graph.reply(ORGANIZATION_URL, body=failure)

    with pytest.raises(GraphTransient) as caught:
        client.organization()

    assert type(failure).__name__ in caught.value.message
    assert len(graph.requests) == 4
    assert len(waits) == 3


# --- tokens --------------------------------------------------------------------------------------


def test_it_reuses_one_token_for_many_requests(
    client: GraphClient, login: FakeLogin, graph: FakeGraph
) -> None:
    serve_all_pages(graph)
    graph.reply(ORGANIZATION_URL, "organization.json")

    list(client.groups())
    client.organization()

    assert len(login.token_requests) == 1
    assert {r.headers["Authorization"] for r in graph.requests} == {f"Bearer {access_token()}"}


def test_it_drops_a_token_graph_rejects_and_fetches_a_new_one_once(
    client: GraphClient, login: FakeLogin, graph: FakeGraph, waits: list[float]
) -> None:
    # "Microsoft Graph error responses and resource types": 401 InvalidAuthenticationToken.
    login.issue_tokens(access_token("stale"), access_token("fresh"))
    graph.error(ORGANIZATION_URL, "error-401-invalid-authentication-token.json", status=401)
    graph.reply(ORGANIZATION_URL, "organization.json")

    assert client.organization().display_name == "Contoso"

    assert len(login.token_requests) == 2
    assert [r.headers["Authorization"] for r in graph.requests] == [
        f"Bearer {access_token('stale')}",
        f"Bearer {access_token('fresh')}",
    ]
    assert waits == []  # a new token needs no waiting
    assert client.stats.retries == 1


def test_a_second_401_is_unauthorized(
    client: GraphClient, login: FakeLogin, graph: FakeGraph
) -> None:
    # "Microsoft Graph error responses and resource types": 401 InvalidAuthenticationToken.
    login.issue_tokens(access_token("stale"), access_token("fresh"), access_token("never"))
    request_id = graph.error(GROUPS_URL, "error-401-invalid-authentication-token.json", status=401)

    with pytest.raises(GraphUnauthorized) as caught:
        list(client.groups())

    assert caught.value.error_class == ErrorClass.UNAUTHORIZED
    assert caught.value.code == "InvalidAuthenticationToken"
    assert caught.value.request_id == request_id
    assert len(login.token_requests) == 2  # one new token, exactly once
    assert len(graph.requests) == 2


@pytest.mark.parametrize(
    ("fixture", "status", "code", "says", "advises"),
    [
        (
            "token-error-aadsts7000215.json",
            401,
            "AADSTS7000215",
            "rejected the client secret (AADSTS7000215: Invalid client secret provided.",
            "Value (not its Secret ID)",
        ),
        (
            "token-error-aadsts7000222.json",
            401,
            "AADSTS7000222",
            "client secret of the Directory Sync application has expired",
            "Create a new client secret",
        ),
        (
            "token-error-aadsts700016.json",
            400,
            "AADSTS700016",
            f"({CLIENT_ID}) is not present in tenant {TENANT_ID}",
            "grant admin consent",
        ),
    ],
    ids=["invalid-secret", "expired-secret", "app-not-in-tenant"],
)
def test_a_refused_token_request_is_unauthorized_with_what_to_do(
    client: GraphClient,
    login: FakeLogin,
    graph: FakeGraph,
    waits: list[float],
    fixture: str,
    status: int,
    code: str,
    says: str,
    advises: str,
) -> None:
    # "Microsoft Entra authentication and authorization error codes"
    login.refuse_tokens(fixture, status=status)

    with pytest.raises(GraphUnauthorized) as caught:
        client.organization()

    assert caught.value.error_class == ErrorClass.UNAUTHORIZED
    assert caught.value.code == code
    assert says in caught.value.message
    assert "Trace ID" not in caught.value.message  # only the first line of the description
    assert advises in caught.value.remediation
    assert graph.requests == []
    assert waits == []


def test_an_unknown_tenant_is_a_wrong_tenant(
    client: GraphClient, login: FakeLogin, graph: FakeGraph, waits: list[float]
) -> None:
    # "Microsoft Entra authentication and authorization error codes": AADSTS90002, answered
    # by the tenant's .well-known/openid-configuration.
    login.refuse_tenant("openid-error-aadsts90002.json")

    with pytest.raises(GraphWrongTenant) as caught:
        client.organization()

    assert caught.value.error_class == ErrorClass.WRONG_TENANT
    assert TENANT_ID in caught.value.message
    assert login.token_requests == []
    assert graph.requests == []
    assert waits == []


def test_a_login_service_outage_is_transient(
    client: GraphClient, login: FakeLogin, graph: FakeGraph, waits: list[float]
) -> None:
    # MSAL raises its own MsalServiceError for a 5xx from the login service, not a requests
    # error; it must still end as a GraphError that the run records and retries later.
    login.rsps.replace(responses.POST, login.token_url, status=503, body="")

    with pytest.raises(GraphTransient) as caught:
        client.organization()

    assert caught.value.error_class == ErrorClass.TRANSIENT
    assert graph.requests == []
    assert len(waits) == 3


def test_it_retries_when_the_login_service_fails_before_issuing_a_token(
    client: GraphClient, login: FakeLogin, graph: FakeGraph, waits: list[float]
) -> None:
    # "OpenID Connect on the Microsoft identity platform": the configuration fails once.
    config = load_fixture("openid-configuration.json")
    login.rsps.remove(responses.GET, login.openid_configuration_url)
    login.rsps.get(login.openid_configuration_url, status=503, body="")
    login.rsps.get(login.openid_configuration_url, json=config)
    graph.reply(ORGANIZATION_URL, "organization.json")

    assert client.organization().display_name == "Contoso"
    assert len(waits) == 1


# --- instance discovery --------------------------------------------------------------------------


def test_it_skips_instance_discovery_for_a_login_host_that_is_not_microsofts(
    client: GraphClient, login: FakeLogin, graph: FakeGraph, mocked: responses.RequestsMock
) -> None:
    # MSAL would ask login.microsoftonline.com about any other host; `responses` refuses every
    # URL not registered here, so such a call would fail these reads.
    graph.reply(ORGANIZATION_URL, "organization.json")
    client.organization()  # a token issued
    forget_cached_tokens()
    login.refuse_tokens("token-error-aadsts7000215.json", status=401)
    with pytest.raises(GraphUnauthorized):
        client.organization()  # a token refused: when MSAL looks up a host's aliases

    hosts = {urlsplit(call.request.url).netloc for call in mocked.calls}
    assert hosts == {"login.example.test", "graph.example.test"}
    assert len(login.token_requests) == 2


def test_it_keeps_instance_discovery_on_for_microsofts_login_host(
    make_client: MakeClient, graph: FakeGraph, mocked: responses.RequestsMock
) -> None:
    # MSAL 1.39 trusts its well-known hosts when it builds the authority, so an issued token
    # needs no discovery; a refused one makes it ask Microsoft for the host's aliases.
    microsoft = FakeLogin(mocked, MICROSOFT_LOGIN_URL).start()
    mocked.get(INSTANCE_DISCOVERY_URL, json=load_fixture("instance-discovery.json"))
    graph.reply(ORGANIZATION_URL, "organization.json")

    def discovery_requests() -> list[Any]:
        return [
            c.request for c in mocked.calls if str(c.request.url).startswith(INSTANCE_DISCOVERY_URL)
        ]

    make_client(login_url=MICROSOFT_LOGIN_URL).organization()
    assert discovery_requests() == []

    forget_cached_tokens()
    microsoft.refuse_tokens("token-error-aadsts7000215.json", status=401)
    with pytest.raises(GraphUnauthorized):
        make_client(login_url=MICROSOFT_LOGIN_URL).organization()

    (discovery,) = discovery_requests()
    assert query(discovery.url)["authorization_endpoint"] == [
        f"{MICROSOFT_LOGIN_URL}/common/oauth2/authorize"
    ]
    assert len(microsoft.token_requests) == 2


# --- permissions and assignments -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("read", "url", "permission"),
    [
        (lambda c: list(c.groups()), GROUPS_URL, "GroupMember.Read.All"),
        (lambda c: c.group_transitive_users(GROUP_ID), MEMBERS_URL, "GroupMember.Read.All"),
        (lambda c: c.app_role_assignments(AUTH_APP_ID), ASSIGNMENTS_URL, "Application.Read.All"),
        (lambda c: c.service_principal(AUTH_APP_ID), SERVICE_PRINCIPAL_URL, "Application.Read.All"),
        (lambda c: c.user("admin@contoso.com"), USER_URL, "User.Read.All"),
    ],
    ids=["groups", "members", "assignments", "service-principal", "user"],
)
def test_a_403_names_the_permission_the_app_lacks(
    client: GraphClient,
    graph: FakeGraph,
    waits: list[float],
    read: Callable[[GraphClient], Any],
    url: str,
    permission: str,
) -> None:
    # "Microsoft Graph error responses and resource types": 403 Authorization_RequestDenied.
    request_id = graph.error(url, "error-403-authorization-request-denied.json", status=403)

    with pytest.raises(GraphForbidden) as caught:
        read(client)

    assert caught.value.error_class == ErrorClass.FORBIDDEN
    assert caught.value.code == "Authorization_RequestDenied"
    assert f"needs the {permission} application permission" in caught.value.message
    assert caught.value.request_id == request_id
    assert waits == []  # a permission does not appear by waiting


def test_members_without_their_properties_mean_user_read_all_is_missing(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "List group transitive members": limited information for inaccessible member objects.
    graph.reply(MEMBERS_URL, "transitive-members-limited-info.json", request_id="limited")

    with pytest.raises(GraphForbidden) as caught:
        client.group_transitive_users(GROUP_ID)

    assert "User.Read.All" in caught.value.message
    assert caught.value.request_id == "limited"


@pytest.mark.parametrize(
    ("read", "url"),
    [
        (lambda c: c.service_principal(AUTH_APP_ID), SERVICE_PRINCIPAL_URL),
        (lambda c: c.app_role_assignments(AUTH_APP_ID), ASSIGNMENTS_URL),
    ],
    ids=["service-principal", "assignments"],
)
def test_an_authentication_app_missing_from_the_tenant_is_not_assigned(
    client: GraphClient, graph: FakeGraph, read: Callable[[GraphClient], Any], url: str
) -> None:
    # "Get servicePrincipal" by appId, answered with 404 Request_ResourceNotFound.
    request_id = graph.error(url, "error-404-request-resource-not-found.json", status=404)

    with pytest.raises(GraphNotAssigned) as caught:
        read(client)

    assert caught.value.error_class == ErrorClass.NOT_ASSIGNED
    assert AUTH_APP_ID in caught.value.message
    assert caught.value.request_id == request_id


def test_it_reads_the_authentication_app_and_who_is_assigned_to_it(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "Get servicePrincipal" example 2 and "List appRoleAssignedTo".
    graph.reply(SERVICE_PRINCIPAL_URL, "service-principal.json")
    graph.reply(ASSIGNMENTS_URL, "app-role-assigned-to.json")

    assert client.service_principal(AUTH_APP_ID) == ServicePrincipal(
        id="8e881353-1735-45af-af21-ee1344582a4d",
        app_id=AUTH_APP_ID,
        display_name="Contoso Sign-in",
        app_role_assignment_required=True,
    )
    assignments = client.app_role_assignments(AUTH_APP_ID)
    assert [(a.principal_type, a.principal_display_name) for a in assignments] == [
        ("User", "MOD Administrator"),
        ("Group", "Golf Assist"),
        ("Group", "Golf Discussion"),
    ]
    assert assignments[1] == AppRoleAssignment(
        id="59K3RQiyuUqiwOBZomK7cXHFE8pMZhxDun-ThPczmJE",
        principal_id="45b7d2e7-b882-4a80-ba97-10b7a63b8fa4",
        principal_type="Group",
        principal_display_name="Golf Assist",
    )


def test_it_reads_the_organization_and_its_default_domain(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "List organization" (GET /organization; "Get organization" documents /organization/{id}).
    graph.reply(ORGANIZATION_URL, "organization.json")

    assert client.organization() == Organization(
        id=TENANT_ID,
        display_name="Contoso",
        verified_domains=("Contoso.onmicrosoft.com", "contoso.com"),
        default_domain="contoso.com",
    )


# --- members -------------------------------------------------------------------------------------


def test_it_skips_members_that_are_not_users(client: GraphClient, graph: FakeGraph) -> None:
    # "List group transitive members" example 1: groups, devices, contacts and apps are members
    # too. The client asks for the user cast; this is what a proxy that ignores it would send.
    graph.reply(MEMBERS_URL, "transitive-members-mixed.json")

    users = client.group_transitive_users(GROUP_ID)

    assert [u.user_principal_name for u in users] == ["Adams@contoso.com", "admin@contoso.com"]


def test_it_keeps_disabled_and_guest_users_and_users_without_mail(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "List group transitive members" example 4 (user cast, $select) with "List users" users.
    graph.reply(MEMBERS_URL, "transitive-members-users.json")

    users = {u.display_name: u for u in client.group_transitive_users(GROUP_ID)}

    assert users["MOD Administrator"] == GraphUser(
        id="4562bcc8-c436-4f95-b7c0-4f8ce89dca5e",
        user_principal_name="admin@contoso.com",
        mail=None,
        display_name="MOD Administrator",
        given_name="MOD",
        surname="Administrator",
        account_enabled=True,
        user_type="Member",
    )
    assert users["Conf Room Adams"].given_name is None
    guest = users["John Smith"]
    assert guest.is_guest
    assert guest.user_principal_name == "j.smith_yahoo.com#EXT#@contoso.onmicrosoft.com"
    assert guest.mail == "j.smith@yahoo.com"
    disabled = users["Joseph Price"]
    assert disabled.account_enabled is False
    assert disabled.mail is None
    assert not disabled.is_guest


# --- malformed answers ---------------------------------------------------------------------------


def test_a_body_that_is_not_json_is_a_bad_response(client: GraphClient, graph: FakeGraph) -> None:
    graph.reply(GROUPS_URL, body='{"@odata.context": "https://graph', request_id="truncated")

    with pytest.raises(GraphBadResponse) as caught:
        list(client.groups())

    assert caught.value.error_class == ErrorClass.BAD_RESPONSE
    assert caught.value.request_id == "truncated"


def test_a_page_without_value_is_a_bad_response(client: GraphClient, graph: FakeGraph) -> None:
    page = load_fixture("groups-page-3.json")
    del page["value"]
    graph.reply(GROUPS_URL, json_body=page, request_id="no-value")

    with pytest.raises(GraphBadResponse) as caught:
        list(client.groups())

    assert "'value'" in caught.value.message
    assert caught.value.request_id == "no-value"


def test_a_next_link_that_repeats_is_a_bad_response(client: GraphClient, graph: FakeGraph) -> None:
    # "List groups": page 2 points to itself, so the listing would never end.
    graph.reply(GROUPS_URL, "groups-page-1.json")
    looping = {**load_fixture("groups-page-2.json"), "@odata.nextLink": SKIPTOKEN_PAGE_2}
    graph.reply(SKIPTOKEN_PAGE_2, json_body=looping, request_id="loop")
    # A client that missed the loop would end here instead of asking forever.
    graph.reply(SKIPTOKEN_PAGE_2, "groups-page-3.json")

    with pytest.raises(GraphBadResponse) as caught:
        list(client.groups())

    assert "same next-page link twice" in caught.value.message
    assert caught.value.request_id == "loop"
    assert len(graph.requests) == 2


@pytest.mark.parametrize(
    "next_link",
    [
        "https://attacker.example.test/v1.0/groups?$skiptoken=RFNwdAIAAQAAACpHcm91cF8",
        "https://graph.example.test.attacker.example.test/v1.0/groups?$skiptoken=RFNwdA",
        "http://graph.example.test/v1.0/groups?$skiptoken=RFNwdAIAAQAAACpHcm91cF8",
    ],
    ids=["another-host", "a-lookalike-host", "plain-http"],
)
def test_a_next_link_elsewhere_is_refused_before_the_token_is_sent_there(
    client: GraphClient, graph: FakeGraph, mocked: responses.RequestsMock, next_link: str
) -> None:
    # "List groups" page 1 with a nextLink off Graph's origin: the bearer token must stay home.
    page = {**load_fixture("groups-page-1.json"), "@odata.nextLink": next_link}
    graph.reply(GROUPS_URL, json_body=page)
    mocked.get(next_link, json=load_fixture("groups-page-3.json"))

    with pytest.raises(GraphBadResponse) as caught:
        list(client.groups())

    assert "another host" in caught.value.message
    assert [c.request.url for c in mocked.calls if c.request.url == next_link] == []
    assert len(graph.requests) == 1


# --- what every request carries ------------------------------------------------------------------


def test_every_request_has_a_timeout_and_its_own_ca_bundle_despite_requests_ca_bundle(
    make_client: MakeClient,
    login: FakeLogin,
    graph: FakeGraph,
    mocked: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # requests lets REQUESTS_CA_BUNDLE override Session.verify; only verify= per request wins.
    emulator_ca = tmp_path / "emulator-ca.pem"
    emulator_ca.write_text("-----BEGIN CERTIFICATE-----\n")
    mirror_ca = tmp_path / "package-mirror-ca.pem"
    mirror_ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(mirror_ca))
    graph.error(ORGANIZATION_URL, "error-503-service-not-available.json", status=503)
    graph.reply(ORGANIZATION_URL, "organization.json")

    make_client(verify=str(emulator_ca)).organization()

    sent = [(c.request.method, urlsplit(c.request.url).netloc) for c in mocked.calls]
    assert sent == [
        ("GET", "login.example.test"),  # OpenID configuration
        ("POST", "login.example.test"),  # token
        ("GET", "graph.example.test"),
        ("GET", "graph.example.test"),
    ]
    for call in mocked.calls:
        sent_with: dict[str, Any] = call.request.req_kwargs  # type: ignore[attr-defined]
        assert sent_with["timeout"] == TIMEOUT
        assert sent_with["verify"] == str(emulator_ca)


def test_it_never_logs_the_access_token_or_the_client_secret(
    client: GraphClient,
    login: FakeLogin,
    graph: FakeGraph,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Deployments quieten msal in Django's LOGGING; the client must be safe even at DEBUG.
    for name in (None, "msal", "directories"):
        caplog.set_level(logging.DEBUG, logger=name)
    login.issue_tokens(access_token("stale"), access_token("fresh"))
    graph.error(ORGANIZATION_URL, "error-401-invalid-authentication-token.json", status=401)
    graph.error(ORGANIZATION_URL, "error-429-too-many-requests.json", status=429, retry_after="1")
    graph.reply(ORGANIZATION_URL, "organization.json")

    client.organization()

    assert any(r.name.startswith("directories.graph") for r in caplog.records)  # it did log
    assert any(r.name.startswith("msal") for r in caplog.records)
    for secret in (access_token("stale"), access_token("fresh"), CLIENT_SECRET, "Bearer "):
        assert secret not in caplog.text


@pytest.mark.parametrize(("low_priority", "header"), [(True, "low"), (False, None)])
def test_it_asks_for_low_throttle_priority_only_for_scheduled_work(
    make_client: MakeClient,
    login: FakeLogin,
    graph: FakeGraph,
    low_priority: bool,
    header: str | None,
) -> None:
    serve_all_pages(graph)

    list(make_client(low_priority=low_priority).groups())

    assert [r.headers.get("x-ms-throttle-priority") for r in graph.requests] == [header] * 3


def test_every_request_carries_its_own_client_request_id(
    client: GraphClient, graph: FakeGraph
) -> None:
    graph.error(ORGANIZATION_URL, "error-503-service-not-available.json", status=503)
    graph.reply(ORGANIZATION_URL, "organization.json")
    serve_all_pages(graph)

    client.organization()
    list(client.groups())

    ids = [r.headers["client-request-id"] for r in graph.requests]
    assert len(ids) == 5
    assert len(set(ids)) == 5
    assert all(str(uuid.UUID(i)) == i for i in ids)
    assert all(r.headers["Accept"] == "application/json" for r in graph.requests)


def test_graphs_request_id_is_kept_for_support(client: GraphClient, graph: FakeGraph) -> None:
    serve_all_pages(graph)

    list(client.groups())

    assert client.stats.last_request_id == "page-3"


# --- Microsoft's OpenAPI description (last: it also checks the URLs the tests above sent) --------


def run_checker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_fixture_is_accounted_for() -> None:
    from .test_batch import BATCH_BODIES, BATCH_EXAMPLES
    from .test_delta import DELTA_BODIES, DELTA_ERRORS

    on_disk = {p.name for p in FIXTURES.glob("*.json")}
    assert on_disk == (
        set(GRAPH_BODIES)
        | set(GRAPH_ERRORS)
        | set(LOGIN_BODIES)
        | set(DELTA_BODIES)
        | set(DELTA_ERRORS)
        | set(BATCH_BODIES)
        | set(BATCH_EXAMPLES)
    )


@pytest.mark.parametrize("name", GRAPH_ERRORS)
def test_error_fixtures_are_shaped_like_graph_error_responses(name: str) -> None:
    # "Microsoft Graph error responses and resource types": one "error" with code and message,
    # and innerError carrying the request-id Microsoft support asks for.
    body = json.loads((FIXTURES / name).read_text())
    assert list(body) == ["error"]
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)
    uuid.UUID(body["error"]["innerError"]["request-id"])


def test_login_fixtures_have_what_msal_reads() -> None:
    config = load_fixture("openid-configuration.json")
    assert config["token_endpoint"] == f"{LOGIN_URL}/{TENANT_ID}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == f"{LOGIN_URL}/{TENANT_ID}/oauth2/v2.0/authorize"
    for name in LOGIN_BODIES:
        body = load_fixture(name)
        if name.startswith(("token-error", "openid-error")):
            code = int(name.removesuffix(".json").rsplit("aadsts", 1)[1])
            assert body["error_codes"] == [code]
            assert body["error_description"].startswith(f"AADSTS{code}: ")


@needs_checker
@pytest.mark.parametrize("name", sorted(GRAPH_BODIES))
def test_graph_fixtures_match_microsofts_openapi_description(name: str) -> None:
    result = run_checker(
        "--response", str(FIXTURES / name), "--request", f"GET {GRAPH_BODIES[name]}"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("1 response checked, 0 problems")


@needs_checker
def test_the_requests_it_sends_match_microsofts_openapi_description(
    client: GraphClient, graph: FakeGraph, sent_graph_urls: list[str], tmp_path: Path
) -> None:
    # Every read the client has, so the check does not depend on which tests ran before.
    serve_all_pages(graph)
    graph.reply(ORGANIZATION_URL, "organization.json")
    graph.reply(SERVICE_PRINCIPAL_URL, "service-principal.json")
    graph.reply(ASSIGNMENTS_URL, "app-role-assigned-to.json")
    graph.reply(MEMBERS_URL, "transitive-members-users.json")
    graph.reply(GROUP_URL, json_body=load_fixture("groups-page-3.json")["value"][0])
    graph.reply(USER_URL, json_body=load_fixture("transitive-members-users.json")["value"][1])
    list(client.groups())
    client.organization()
    client.service_principal(AUTH_APP_ID)
    client.app_role_assignments(AUTH_APP_ID)
    client.group_transitive_users(GROUP_ID)
    client.group(GROUP_ID)
    client.user("admin@contoso.com")

    urls = sorted({*sent_graph_urls, *(r.url for r in graph.requests)})
    requests_file = tmp_path / "sent-requests.txt"
    requests_file.write_text("".join(f"GET {url}\n" for url in urls))
    result = run_checker(str(requests_file))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith(f"{len(urls)} requests checked, 0 problems")
