"""Microsoft's Graph SDK for Python (msgraph-sdk) reads the emulator's delta rounds: if the SDK's
own `DeltaGetResponse` parses every page, follows the nextLinks and finds the deltaLink,
`@removed` and `members@delta`, the shapes are the ones Graph's clients expect.

The SDK's HTTP client gets an `httpx.MockTransport` that calls `Emulator.handle` (no sockets;
tests/conformance does the same over real HTTPS) and a bearer token from the emulator.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest

from entra_emulator import Emulator, EmuTenant

from .conftest import GRAPH_URL, guid

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import httpx
        from kiota_abstractions.authentication import (
            AccessTokenProvider,
            AllowedHostsValidator,
            BaseBearerTokenAuthenticationProvider,
        )
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.groups.delta.delta_request_builder import (
            DeltaRequestBuilder as GroupsDelta,
        )
        from msgraph.generated.users.delta.delta_request_builder import (
            DeltaRequestBuilder as UsersDelta,
        )
        from msgraph.graph_request_adapter import GraphRequestAdapter
        from msgraph.graph_request_adapter import options as sdk_middleware_options
        from msgraph.graph_service_client import GraphServiceClient
        from msgraph_core import GraphClientFactory
    except ImportError as missing:  # pragma: no cover - the SDK is in requirements-dev.txt
        pytest.skip(f"msgraph-sdk is not importable ({missing})", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:This class is deprecated:DeprecationWarning")


class _Token(AccessTokenProvider):
    def __init__(self, token: str) -> None:
        self.token = token

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: Any = None
    ) -> str:
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator([])


def sdk_client(emulator: Emulator, token: str) -> GraphServiceClient:
    def answer(request: httpx.Request) -> httpx.Response:
        reply = emulator.handle(
            request.method, str(request.url), dict(request.headers), request.content
        )
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

    plain = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    http = GraphClientFactory.create_with_default_middleware(
        client=plain, options=sdk_middleware_options
    )
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(_Token(token)), client=http)
    adapter.base_url = f"{GRAPH_URL}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


def test_the_sdk_reads_a_users_delta_round_and_the_next_one(
    emulator: Emulator, tenant: EmuTenant, token: str
) -> None:
    emulator.graph.delta.settings.user_page_size = 7
    client = sdk_client(emulator, token)

    async def round_from(first: Any) -> tuple[list[Any], str]:
        page: Any = await first
        items = list(page.value)
        while page.odata_next_link:
            page = await client.users.delta.with_url(page.odata_next_link).get()
            items.extend(page.value)
        return items, page.odata_delta_link

    query = UsersDelta.DeltaRequestBuilderGetQueryParameters(select=["displayName"])
    users, delta_link = asyncio.run(
        round_from(client.users.delta.get(RequestConfiguration(query_parameters=query)))
    )
    tenant.soft_delete_user(guid(3))
    tenant.rename_user(guid(4), display_name="Renamed")
    changes, _ = asyncio.run(round_from(client.users.delta.with_url(delta_link).get()))

    assert {u.id for u in users} == set(tenant.users) | {guid(3)}
    assert {u.display_name for u in users if u.id == guid(2)} == {"User 01"}
    by_id = {u.id: u for u in changes}
    assert by_id[guid(3)].additional_data == {"@removed": {"reason": "changed"}}
    assert by_id[guid(4)].display_name == "Renamed"


def test_the_sdk_reads_members_delta_on_groups(
    emulator: Emulator, tenant: EmuTenant, token: str
) -> None:
    client = sdk_client(emulator, token)
    query = GroupsDelta.DeltaRequestBuilderGetQueryParameters(select=["displayName", "members"])

    page: Any = asyncio.run(client.groups.delta.get(RequestConfiguration(query_parameters=query)))

    sales = next(g for g in page.value if g.id == guid(101))
    members = sales.additional_data["members@delta"]
    # The SDK's JSON parser turns GUID-shaped strings into UUIDs in additional_data.
    assert {str(m["id"]) for m in members} == set(tenant.groups[guid(101)].member_ids)
    assert page.odata_delta_link
