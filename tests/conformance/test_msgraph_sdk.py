"""Microsoft's own Graph SDK for Python (msgraph-sdk, with azure-identity for the token) against
the emulator over real HTTPS: if the SDK can page through everything and read back exactly what
the tenant holds, the emulator speaks Graph the way Graph's own clients expect.

How the SDK is pointed at the emulator (nothing is patched inside the SDK):
- token: `azure.identity.ClientSecretCredential(authority="https://localhost:PORT",
  disable_instance_discovery=True, connection_verify=<emulator CA>)`; `connection_verify` is
  sent with every request, so REQUESTS_CA_BUNDLE cannot override it;
- scope: `https://localhost:PORT/.default` (AzureIdentityAuthenticationProvider(scopes=...));
- Graph: an `httpx.AsyncClient(verify=<SSLContext trusting the emulator CA>)` given the SDK's
  default middleware by `GraphClientFactory.create_with_default_middleware(client=...)`, a
  `GraphRequestAdapter(auth_provider, client=...)` whose `base_url` is
  `https://localhost:PORT/v1.0`, and `GraphServiceClient(request_adapter=...)`.

The SDK is async; one `asyncio.Runner` per module keeps one event loop, so httpx's pooled
keep-alive connections stay usable from test to test.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import uuid
import warnings
from collections.abc import Awaitable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import certifi
import pytest

from entra_emulator import (
    ODATA_DEVICE,
    ODATA_ORG_CONTACT,
    ODATA_SERVICE_PRINCIPAL,
    Emulator,
    EmuTenant,
)

from .conftest import CLIENT_ID, CLIENT_SECRET

# msgraph-sdk's generated builders (and kiota) warn about their own deprecated classes as
# they are defined; that is the SDK's business, not the emulator's.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import httpx
        from azure.core.exceptions import ClientAuthenticationError
        from azure.identity import ClientSecretCredential
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
        from msgraph.generated.groups.item.transitive_members.graph_user.graph_user_request_builder import (  # noqa: E501
            GraphUserRequestBuilder,
        )
        from msgraph.generated.groups.item.transitive_members.transitive_members_request_builder import (  # noqa: E501
            TransitiveMembersRequestBuilder,
        )
        from msgraph.generated.models.device import Device
        from msgraph.generated.models.group import Group
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError
        from msgraph.generated.models.org_contact import OrgContact
        from msgraph.generated.models.service_principal import ServicePrincipal
        from msgraph.generated.models.user import User
        from msgraph.generated.service_principals.item.app_role_assigned_to.app_role_assigned_to_request_builder import (  # noqa: E501
            AppRoleAssignedToRequestBuilder,
        )
        from msgraph.generated.service_principals.service_principals_request_builder import (
            ServicePrincipalsRequestBuilder,
        )
        from msgraph.generated.users.users_request_builder import UsersRequestBuilder
        from msgraph.graph_request_adapter import GraphRequestAdapter
        from msgraph.graph_request_adapter import options as sdk_middleware_options
        from msgraph.graph_service_client import GraphServiceClient
        from msgraph_core import GraphClientFactory, PageIterator
    except ImportError as missing:  # pragma: no cover - the SDK is in requirements.txt
        pytest.skip(
            f"msgraph-sdk / azure-identity are not importable ({missing}); "
            "pip install -r requirements.txt",
            allow_module_level=True,
        )

pytestmark = pytest.mark.filterwarnings(
    # msgraph-sdk's generated request builders warn about their own deprecated classes.
    "ignore:This class is deprecated:DeprecationWarning"
)

T = TypeVar("T")
PAGE = 7  # small pages: every collection here needs several nextLinks
USER_FIELDS = ["id", "userPrincipalName", "displayName", "mail", "accountEnabled", "userType"]


@dataclass
class Sdk:
    """The SDK client, its adapter, the event loop it runs on, and every URL it sent."""

    client: GraphServiceClient
    adapter: GraphRequestAdapter
    runner: asyncio.Runner
    sent: list[str] = field(default_factory=list)

    def run(self, awaitable: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(awaitable)

    def all_pages(self, first: Awaitable[Any], headers: dict[str, str] | None = None) -> list[Any]:
        """Every item of a collection, through the SDK's own PageIterator (nextLinks).

        `headers` go on every next page too (an advanced query's ConsistencyLevel).
        """

        async def collect() -> list[Any]:
            page = await first
            assert page is not None
            items: list[Any] = []

            def keep(item: Any) -> bool:
                items.append(item)
                return True  # go on to the next item, and page

            iterator = PageIterator(page, self.adapter)
            if headers:
                # Not set_headers(): msgraph-core 1.5 passes the dict as keyword arguments
                # to HeadersCollection.add_all, which takes one mapping.
                iterator.headers.add_all(headers)
            await iterator.iterate(keep)
            return items

        return self.run(collect())

    def sent_since(self, mark: int) -> list[str]:
        return self.sent[mark:]


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop:
        yield loop


@pytest.fixture(scope="module")
def credential(url: str, ca: str, tenant: EmuTenant) -> Iterator[ClientSecretCredential]:
    cred = ClientSecretCredential(
        tenant.tenant_id,
        CLIENT_ID,
        CLIENT_SECRET,
        authority=url,
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    with cred:
        yield cred


def make_http_client(ca: str, sent: list[str], **kwargs: Any) -> httpx.AsyncClient:
    async def record(request: httpx.Request) -> None:
        sent.append(str(request.url))

    plain = httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=ca),
        event_hooks={"request": [record]},
        timeout=10,
        **kwargs,
    )
    with_middleware: httpx.AsyncClient = GraphClientFactory.create_with_default_middleware(
        client=plain, options=sdk_middleware_options
    )
    return with_middleware


@pytest.fixture(scope="module")
def sdk(
    runner: asyncio.Runner, credential: ClientSecretCredential, url: str, ca: str
) -> Iterator[Sdk]:
    sent: list[str] = []
    http = make_http_client(ca, sent)
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[f"{url}/.default"])
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{url}/v1.0"
    yield Sdk(GraphServiceClient(request_adapter=adapter), adapter, runner, sent)
    runner.run(http.aclose())


def pages_for(count: int, size: int = PAGE) -> int:
    return max(1, math.ceil(count / size))


def expected_class(tenant: EmuTenant, object_id: str) -> type:
    if object_id in tenant.users:
        return User
    if object_id in tenant.groups:
        return Group
    by_odata = {
        ODATA_DEVICE: Device,
        ODATA_SERVICE_PRINCIPAL: ServicePrincipal,
        ODATA_ORG_CONTACT: OrgContact,
    }
    return by_odata[tenant.others[object_id].odata_type]


# --- users ------------------------------------------------------------------------------------


def test_the_sdk_pages_through_every_user_with_the_selected_properties(
    sdk: Sdk, tenant: EmuTenant
) -> None:
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(top=PAGE, select=USER_FIELDS)
    mark = len(sdk.sent)

    users = sdk.all_pages(sdk.client.users.get(RequestConfiguration(query_parameters=query)))

    assert all(isinstance(u, User) for u in users)
    got = {
        u.id: (u.user_principal_name, u.display_name, u.mail, u.account_enabled, u.user_type)
        for u in users
    }
    want = {
        u.id: (u.user_principal_name, u.display_name, u.mail, u.account_enabled, u.user_type)
        for u in tenant.users.values()
    }
    assert len(got) == len(users)  # no user twice across pages
    assert got == want
    # The tenant has what makes this comparison worth doing.
    assert None in {m for _, _, m, _, _ in want.values()}
    assert False in {e for _, _, _, e, _ in want.values()}
    assert "Guest" in {t for *_, t in want.values()}
    assert any(not name.isascii() for _, name, *_ in want.values())
    sent = sdk.sent_since(mark)
    assert len(sent) == pages_for(len(tenant.users)) >= 15
    assert sent[0].startswith(f"{sdk.adapter.base_url}/users?")
    assert all("$skiptoken=" in link for link in sent[1:])


def test_without_select_the_sdk_gets_graphs_default_user_properties(
    sdk: Sdk, tenant: EmuTenant
) -> None:
    guest = next(u for u in tenant.users.values() if "#EXT#" in u.user_principal_name)

    # By userPrincipalName: the SDK percent-encodes the '#'s of a guest's UPN in the path.
    user = sdk.run(sdk.client.users.by_user_id(guest.user_principal_name).get())

    assert user is not None
    assert (user.id, user.user_principal_name, user.display_name, user.mail) == (
        guest.id,
        guest.user_principal_name,
        guest.display_name,
        guest.mail,
    )
    assert (user.given_name, user.surname, user.job_title) == (
        guest.given_name,
        guest.surname,
        guest.job_title,
    )
    # Not in Graph's default set: only $select brings these.
    assert user.account_enabled is None and user.user_type is None


def test_a_missing_user_is_an_odata_error_the_sdk_parses(sdk: Sdk, tenant: EmuTenant) -> None:
    missing = f"nobody@{tenant.default_domain}"

    with pytest.raises(ODataError) as raised:
        sdk.run(sdk.client.users.by_user_id(missing).get())

    error = raised.value
    assert error.response_status_code == 404
    assert error.error is not None
    assert error.error.code == "Request_ResourceNotFound"
    assert error.error.message is not None and missing in error.error.message
    assert error.error.inner_error is not None
    assert error.error.inner_error.request_id


# --- groups and memberships -------------------------------------------------------------------


def test_the_sdk_pages_through_every_group(sdk: Sdk, tenant: EmuTenant) -> None:
    query = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
        top=PAGE,
        select=["id", "displayName", "groupTypes", "mail", "mailEnabled", "securityEnabled"],
    )
    mark = len(sdk.sent)

    groups = sdk.all_pages(sdk.client.groups.get(RequestConfiguration(query_parameters=query)))

    got = {
        g.id: (g.display_name, g.group_types, g.mail, g.mail_enabled, g.security_enabled)
        for g in groups
    }
    want = {
        g.id: (g.display_name, list(g.group_types), g.mail, g.mail_enabled, g.security_enabled)
        for g in tenant.groups.values()
    }
    assert len(got) == len(groups)
    assert got == want
    assert ["Unified"] in [types for _, types, *_ in want.values()]
    assert len(sdk.sent_since(mark)) == pages_for(len(tenant.groups)) >= 3


def test_the_sdk_reads_each_groups_transitive_members_as_typed_objects(
    sdk: Sdk, tenant: EmuTenant
) -> None:
    query = TransitiveMembersRequestBuilder.TransitiveMembersRequestBuilderGetQueryParameters(
        top=PAGE
    )
    mark = len(sdk.sent)
    wrong: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
    pages = 0
    kinds: set[str] = set()

    for group_id in tenant.groups:
        builder = sdk.client.groups.by_group_id(group_id).transitive_members
        members = sdk.all_pages(builder.get(RequestConfiguration(query_parameters=query)))
        got = sorted((m.id, type(m).__name__) for m in members)
        expected_ids = tenant.members_of(group_id, transitive=True)
        want = sorted((i, expected_class(tenant, i).__name__) for i in expected_ids)
        if got != want:
            wrong[group_id] = (got, want)
        pages += pages_for(len(expected_ids))
        kinds |= {name for _, name in want}

    assert wrong == {}
    assert kinds == {"User", "Group", "Device", "ServicePrincipal", "OrgContact"}
    assert len(sdk.sent_since(mark)) == pages


def test_the_sdk_reads_each_groups_transitive_users_through_the_graph_user_cast(
    sdk: Sdk, tenant: EmuTenant
) -> None:
    # An OData cast is an advanced query: the SDK's user must ask for the pair, as we do.
    query = GraphUserRequestBuilder.GraphUserRequestBuilderGetQueryParameters(
        top=PAGE, select=["id", "userPrincipalName", "displayName", "mail"], count=True
    )
    eventual = {"ConsistencyLevel": "eventual"}
    mark = len(sdk.sent)
    wrong: dict[str, tuple[set[str], set[str]]] = {}
    pages = 0

    for group_id in tenant.groups:
        builder = sdk.client.groups.by_group_id(group_id).transitive_members.graph_user
        config = RequestConfiguration(query_parameters=query)
        config.headers.add_all(eventual)
        users = sdk.all_pages(builder.get(config), headers=eventual)
        assert all(isinstance(u, User) for u in users)
        for user in users:
            emu = tenant.users[user.id]
            assert (user.user_principal_name, user.display_name, user.mail) == (
                emu.user_principal_name,
                emu.display_name,
                emu.mail,
            )
        got = {u.id for u in users}
        want = set(tenant.members_of(group_id, transitive=True, kind="user"))
        if got != want or len(users) != len(want):
            wrong[group_id] = (got, want)
        pages += pages_for(len(want))

    assert wrong == {}
    sent = sdk.sent_since(mark)
    assert len(sent) == pages
    assert all("/transitiveMembers/graph.user?" in link for link in sent)


def test_nested_groups_make_transitive_members_more_than_direct_ones(tenant: EmuTenant) -> None:
    """Guards the two membership tests above: the tenant really nests groups."""
    nested = [
        g
        for g in tenant.groups
        if set(tenant.members_of(g, transitive=True, kind="user"))
        > set(tenant.members_of(g, transitive=False, kind="user"))
    ]
    assert nested


# --- the Authentication app: service principal and assignments -------------------------------


def test_the_sdk_finds_the_service_principal_by_app_id_and_pages_its_assignments(
    sdk: Sdk, tenant: EmuTenant
) -> None:
    assert tenant.auth_app_id is not None

    principal = sdk.run(sdk.client.service_principals_with_app_id(tenant.auth_app_id).get())

    assert principal is not None
    assert (principal.id, principal.app_id, principal.display_name) == (
        tenant.auth_sp_id,
        tenant.auth_app_id,
        tenant.auth_app_display_name,
    )
    assert principal.app_role_assignment_required is tenant.auth_app_role_assignment_required
    assert principal.id is not None

    query = AppRoleAssignedToRequestBuilder.AppRoleAssignedToRequestBuilderGetQueryParameters(top=4)
    mark = len(sdk.sent)
    builder = sdk.client.service_principals.by_service_principal_id(principal.id)
    assignments = sdk.all_pages(
        builder.app_role_assigned_to.get(RequestConfiguration(query_parameters=query))
    )

    got = {
        a.id: (
            str(a.principal_id),
            a.principal_type,
            a.principal_display_name,
            str(a.app_role_id),
            str(a.resource_id),
        )
        for a in assignments
    }
    want = {
        a.id: (
            a.principal_id,
            a.principal_type,
            a.principal_display_name,
            a.app_role_id,
            tenant.auth_sp_id,
        )
        for a in tenant.assignments
    }
    assert len(got) == len(assignments)
    assert got == want
    assert {t for _, t, *_ in want.values()} == {"Group", "User", "ServicePrincipal"}
    assert all(isinstance(a.principal_id, uuid.UUID) for a in assignments)
    assert len(sdk.sent_since(mark)) == pages_for(len(tenant.assignments), 4) >= 3


def test_the_sdk_lists_every_service_principal(sdk: Sdk, tenant: EmuTenant) -> None:
    query = ServicePrincipalsRequestBuilder.ServicePrincipalsRequestBuilderGetQueryParameters(
        top=1, select=["id", "appId", "displayName"]
    )

    principals = sdk.all_pages(
        sdk.client.service_principals.get(RequestConfiguration(query_parameters=query))
    )

    others = {o.id for o in tenant.others.values() if o.odata_type == ODATA_SERVICE_PRINCIPAL}
    assert {p.id for p in principals} == {tenant.auth_sp_id, *others}
    assert len(principals) == 1 + len(others) >= 2


def test_the_sdk_reads_the_organization(sdk: Sdk, tenant: EmuTenant) -> None:
    response = sdk.run(sdk.client.organization.get())

    assert response is not None and response.value is not None
    (org,) = response.value
    assert (org.id, org.display_name) == (tenant.tenant_id, tenant.display_name)
    assert org.verified_domains is not None
    assert [d.name for d in org.verified_domains] == tenant.verified_domains()


def test_the_sdks_retry_handler_honours_the_emulators_429_and_retry_after(
    sdk: Sdk, emulator: Emulator, tenant: EmuTenant
) -> None:
    counters = emulator.graph.counters
    throttled, ok = counters["status.429"], counters["status.200"]
    emulator.fail_next(429, path_contains="/organization", retry_after=1)

    try:
        response = sdk.run(sdk.client.organization.get())
    finally:
        emulator.graph.clear_faults()  # the emulator is shared: leave no fault behind

    assert response is not None and response.value is not None
    assert response.value[0].id == tenant.tenant_id
    assert (counters["status.429"] - throttled, counters["status.200"] - ok) == (1, 1)


# --- the SDK's own default base URL -----------------------------------------------------------


def test_the_sdks_default_base_url_with_its_trailing_slash_works_too(
    runner: asyncio.Runner,
    credential: ClientSecretCredential,
    url: str,
    ca: str,
    tenant: EmuTenant,
) -> None:
    """Without `adapter.base_url`, the SDK takes httpx's `base_url`, which httpx always ends
    with '/': msgraph-sdk then sends `/v1.0//users`, as it does to graph.microsoft.com by
    default. The emulator, like Graph, must read that as `/v1.0/users`."""
    sent: list[str] = []
    http = make_http_client(ca, sent, base_url=f"{url}/v1.0")
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[f"{url}/.default"])
    adapter = GraphRequestAdapter(auth, client=http)
    sdk = Sdk(GraphServiceClient(request_adapter=adapter), adapter, runner, sent)
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(top=50, select=["id"])
    try:
        users = sdk.all_pages(sdk.client.users.get(RequestConfiguration(query_parameters=query)))
    finally:
        runner.run(http.aclose())

    assert sent[0].startswith(f"{url}/v1.0//users?")
    assert {u.id for u in users} == set(tenant.users)
    assert len(users) == len(tenant.users)
    assert len(sent) == pages_for(len(tenant.users), 50) >= 3


# --- azure-identity alone ---------------------------------------------------------------------


def test_azure_identity_gets_a_token_whatever_requests_ca_bundle_says(
    url: str, ca: str, tenant: EmuTenant, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bundle without the emulator's CA: connection_verify must win, per request.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    with ClientSecretCredential(
        tenant.tenant_id,
        CLIENT_ID,
        CLIENT_SECRET,
        authority=url,
        disable_instance_discovery=True,
        connection_verify=ca,
    ) as cred:
        token = cred.get_token(f"{url}/.default")

    info = emulator.tokens.lookup(token.token)
    assert info is not None and info.tenant_id == tenant.tenant_id
    assert token.expires_on > emulator.clock() + 3000


def test_azure_identity_reports_a_wrong_secret_as_aadsts7000215(
    url: str, ca: str, tenant: EmuTenant
) -> None:
    with (
        ClientSecretCredential(
            tenant.tenant_id,
            CLIENT_ID,
            "not-the-secret",
            authority=url,
            disable_instance_discovery=True,
            connection_verify=ca,
        ) as cred,
        pytest.raises(ClientAuthenticationError) as raised,
    ):
        cred.get_token(f"{url}/.default")

    assert "AADSTS7000215" in str(raised.value)
    assert "Invalid client secret provided" in str(raised.value)


def test_the_combined_ca_bundle_trusts_the_emulator(ca_bundle: Path, url: str) -> None:
    """What `trust_emulator_env` points REQUESTS_CA_BUNDLE at (used by the MSAL tests)."""
    context = ssl.create_default_context(cafile=str(ca_bundle))
    response = httpx.get(f"{url}/common/v2.0/.well-known/openid-configuration", verify=context)
    assert response.status_code == 200
