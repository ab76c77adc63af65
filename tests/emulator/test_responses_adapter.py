"""MSAL and `requests` talking to the emulator through `responses`, as the sync tests will."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import msal
import pytest
import requests
import responses

from entra_emulator import Emulator, EmuTenant

from .conftest import CLIENT_ID, GRAPH_URL, LOGIN_URL, SECRET, guid


def msal_app(tenant: str, secret: str = SECRET) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=secret,
        authority=f"{LOGIN_URL}/{tenant}",
        instance_discovery=False,
    )


def follow(session: requests.Session, url: str | None) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    pages = 0
    while url:
        response = session.get(url, timeout=5)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["value"])
        pages += 1
        url = body.get("@odata.nextLink")
    return items, pages


def test_msal_gets_a_token_and_requests_pages_the_users(
    emulator: Emulator, tenant: EmuTenant, rsps: responses.RequestsMock
) -> None:
    result = msal_app(tenant.tenant_id).acquire_token_for_client(scopes=[f"{GRAPH_URL}/.default"])

    assert result["token_type"] == "Bearer", result
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {result['access_token']}"
    users, pages = follow(session, f"{GRAPH_URL}/v1.0/users?$select=id,userPrincipalName&$top=10")
    assert len(users) == 25 and pages == 3
    assert emulator.login.counters["tokens_issued"] == 1


def test_msal_accepts_a_domain_authority_and_learns_the_tenant_guid(
    tenant: EmuTenant, rsps: responses.RequestsMock
) -> None:
    app = msal_app("contoso.onmicrosoft.com")

    assert app.authority.tenant == tenant.tenant_id
    assert "access_token" in app.acquire_token_for_client(scopes=[f"{GRAPH_URL}/.default"])


def test_msal_refuses_an_unknown_tenant_when_it_is_constructed(
    tenant: EmuTenant, rsps: responses.RequestsMock
) -> None:
    # MSAL's tenant discovery turns the 400 into ValueError("OIDC Discovery failed ...
    # AADSTS90002 ..."), which Authority re-raises as "Unable to get authority configuration".
    with pytest.raises(ValueError, match="Unable to get authority configuration") as caught:
        msal_app(guid(31337))

    assert "AADSTS90002" in str(caught.value.__context__)


def test_msal_returns_aadsts_errors_for_a_wrong_secret(
    tenant: EmuTenant, rsps: responses.RequestsMock
) -> None:
    result = msal_app(tenant.tenant_id, secret="nope").acquire_token_for_client(
        scopes=[f"{GRAPH_URL}/.default"]
    )

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]


def test_msal_keeps_serving_a_cached_token_that_graph_rejects(
    emulator: Emulator, tenant: EmuTenant, rsps: responses.RequestsMock
) -> None:
    app = msal_app(tenant.tenant_id)
    first = app.acquire_token_for_client(scopes=[f"{GRAPH_URL}/.default"])
    emulator.expire_tokens()

    again = app.acquire_token_for_client(scopes=[f"{GRAPH_URL}/.default"])
    response = requests.get(
        f"{GRAPH_URL}/v1.0/users",
        headers={"Authorization": f"Bearer {again['access_token']}"},
        timeout=5,
    )

    assert again["access_token"] == first["access_token"]
    assert again["token_source"] == "cache"
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_the_sync_clients_urls_all_work(
    emulator: Emulator, tenant: EmuTenant, session: requests.Session
) -> None:
    session.headers["ConsistencyLevel"] = "eventual"  # as the client sends with its casts
    app_id = tenant.auth_app_id
    group = guid(101)
    guest_upn = quote("zoe_example.com#EXT#@contoso.onmicrosoft.com", safe="@")
    urls = [
        f"{GRAPH_URL}/v1.0/organization?$select=id,displayName,verifiedDomains",
        f"{GRAPH_URL}/v1.0/servicePrincipals(appId='{app_id}')"
        "?$select=id,appId,displayName,appRoleAssignmentRequired",
        f"{GRAPH_URL}/v1.0/servicePrincipals(appId='{app_id}')/appRoleAssignedTo"
        "?$select=id,principalId,principalType,principalDisplayName&$top=999",
        f"{GRAPH_URL}/v1.0/groups"
        "?$select=id,displayName,description,mail,mailEnabled,securityEnabled,groupTypes&$top=999",
        f"{GRAPH_URL}/v1.0/groups/{group}"
        "?$select=id,displayName,description,mail,mailEnabled,securityEnabled,groupTypes",
        f"{GRAPH_URL}/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user"
        "?$select=id,userPrincipalName,mail,displayName,givenName,surname,accountEnabled,userType"
        "&$count=true&$top=999",
        f"{GRAPH_URL}/v1.0/users/{guid(1)}"
        "?$select=id,userPrincipalName,mail,displayName,givenName,surname,accountEnabled,userType",
        f"{GRAPH_URL}/v1.0/users/{guest_upn}"
        "?$select=id,userPrincipalName,mail,displayName,givenName,surname,accountEnabled,userType",
        # The way the sync client quotes query values: spaces and quotes percent-encoded.
        f"{GRAPH_URL}/v1.0/servicePrincipals?$filter=appId%20eq%20%27{app_id}%27",
        f"{GRAPH_URL}/v1.0/servicePrincipals(appId=%27{app_id}%27)?$select=id",
    ]

    for url in urls:
        response = session.get(url, timeout=5)
        assert response.status_code == 200, (url, response.text)
    assert len(emulator.requests_seen) == len(urls)


def test_dropped_connections_and_timeouts_reach_requests_as_exceptions(
    emulator: Emulator, session: requests.Session
) -> None:
    emulator.graph.disconnect_next()
    emulator.graph.disconnect_next(kind="timeout")

    with pytest.raises(requests.ConnectionError):
        session.get(f"{GRAPH_URL}/v1.0/users", timeout=5)
    with pytest.raises(requests.Timeout):
        session.get(f"{GRAPH_URL}/v1.0/users", timeout=5)
    assert session.get(f"{GRAPH_URL}/v1.0/users", timeout=5).status_code == 200


def test_a_429_reaches_requests_with_its_retry_after(
    emulator: Emulator, session: requests.Session
) -> None:
    emulator.graph.fail_next(429, retry_after=4)

    response = session.get(f"{GRAPH_URL}/v1.0/users", timeout=5)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "4"
    assert response.json()["error"]["code"] == "TooManyRequests"


@pytest.mark.slow
def test_a_10000_user_tenant_is_fully_synced_quickly(
    emulator: Emulator, rsps: responses.RequestsMock
) -> None:
    from entra_emulator import generate_tenant

    started = time.perf_counter()
    tenant = emulator.add_tenant(generate_tenant(users=10_000, groups=500, seed=11))
    generated = time.perf_counter() - started

    started = time.perf_counter()
    token = msal_app(tenant.tenant_id).acquire_token_for_client(scopes=[f"{GRAPH_URL}/.default"])
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token['access_token']}"
    session.headers["ConsistencyLevel"] = "eventual"  # the member casts are advanced queries
    assigned, _ = follow(
        session,
        f"{GRAPH_URL}/v1.0/servicePrincipals(appId='{tenant.auth_app_id}')/appRoleAssignedTo"
        "?$select=id,principalId,principalType,principalDisplayName&$top=999",
    )
    groups, _ = follow(
        session,
        f"{GRAPH_URL}/v1.0/groups?$select=id,displayName,description,mail,mailEnabled,"
        "securityEnabled,groupTypes&$top=999",
    )
    users: set[str] = set()
    for group in groups:
        members, _ = follow(
            session,
            f"{GRAPH_URL}/v1.0/groups/{group['id']}/transitiveMembers/microsoft.graph.user"
            "?$select=id,userPrincipalName,mail,displayName,givenName,surname,accountEnabled,"
            "userType&$count=true&$top=999",
        )
        users.update(m["id"] for m in members)
    paged = time.perf_counter() - started

    assert len(groups) == 500
    assert users == {u.id for u in tenant.users.values() if not u.is_admin}
    assert len([a for a in assigned if a["principalType"] == "Group"]) == 166
    assert len(emulator.requests_seen) > 500
    assert generated < 2.0
    assert paged < 15.0, f"full sync took {paged:.2f}s"
