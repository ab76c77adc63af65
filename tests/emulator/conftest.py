"""Fixtures for the emulator's own tests: a fake clock, a small tenant, tokens, and `responses`."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses

from entra_emulator import (
    ODATA_DEVICE,
    EmuGroup,
    Emulator,
    EmulatorControl,
    EmuOther,
    EmuResponse,
    EmuTenant,
    EmuUser,
    generate_tenant,
)
from entra_emulator.responses_adapter import install

LOGIN_URL = "https://login.emulator.test"
GRAPH_URL = "https://graph.emulator.test"
CLIENT_ID = "11111111-1111-4111-8111-111111111111"
SECRET = "emulator-test-secret"
BASE = "https://control.emulator.test"  # where the control API client's requests go


class FakeClock:
    """Time that moves only when told to, or when someone sleeps."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def guid(n: int) -> str:
    return str(uuid.UUID(int=n, version=4))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Emulator:
    emu = Emulator(clock=clock, sleep=clock.sleep, graph_url=GRAPH_URL)
    emu.add_app(CLIENT_ID, SECRET)
    return emu


@pytest.fixture
def tenant(emulator: Emulator) -> EmuTenant:
    """25 users, 6 groups (one nested, one Microsoft 365), a device, and 2 assigned groups."""
    tenant = EmuTenant(
        tenant_id=guid(1000),
        display_name="Contoso",
        default_domain="contoso.onmicrosoft.com",
        auth_app_id=guid(2000),
        auth_sp_id=guid(2001),
    )
    for i in range(25):
        tenant.add_user(
            EmuUser(
                id=guid(i + 1),
                user_principal_name=f"user{i:02d}@contoso.onmicrosoft.com",
                mail=None if i % 5 == 0 else f"user{i:02d}@contoso.com",
                display_name=f"User {i:02d}",
                given_name="User",
                surname=f"{i:02d}",
                account_enabled=i != 3,
                user_type="Guest" if i == 4 else "Member",
            )
        )
    tenant.users[guid(5)].user_principal_name = "zoe_example.com#EXT#@contoso.onmicrosoft.com"
    tenant.users[guid(5)].display_name = "Zoë Ångström"
    tenant.add_other(EmuOther(guid(900), ODATA_DEVICE, "LAPTOP-0001"))
    groups = [
        EmuGroup(guid(101), "Sales", member_ids=[guid(i) for i in range(1, 11)]),
        EmuGroup(guid(102), "Sales EMEA", member_ids=[guid(i) for i in range(11, 16)]),
        EmuGroup(
            guid(103),
            "Marketing",
            group_types=["Unified"],
            mail="marketing@contoso.onmicrosoft.com",
            mail_enabled=True,
            security_enabled=False,
            member_ids=[guid(i) for i in range(16, 21)],
        ),
        EmuGroup(guid(104), "Empty"),
        EmuGroup(guid(105), "Everyone", member_ids=[guid(i) for i in range(1, 26)]),
        EmuGroup(guid(106), "Devices", member_ids=[guid(900), guid(1)]),
    ]
    for group in groups:
        tenant.add_group(group)
    tenant.add_member(guid(101), guid(102))  # Sales EMEA is nested in Sales
    tenant.add_member(guid(101), guid(900))  # and a device
    tenant.assign_group(guid(101))
    tenant.assign_group(guid(103))
    tenant.assign_user(guid(24))
    emulator.add_tenant(tenant)
    return tenant


def token_for(emulator: Emulator, tenant_id: str, *, client_id: str = CLIENT_ID) -> str:
    response = emulator.handle(
        "POST",
        f"{LOGIN_URL}/{tenant_id}/oauth2/v2.0/token",
        {"Content-Type": "application/x-www-form-urlencoded"},
        f"grant_type=client_credentials&client_id={client_id}&client_secret={SECRET}"
        f"&scope={GRAPH_URL}/.default",
    )
    assert response.status == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def token(emulator: Emulator, tenant: EmuTenant) -> str:
    return token_for(emulator, tenant.tenant_id)


@pytest.fixture
def get(emulator: Emulator, token: str) -> Callable[..., EmuResponse]:
    """GET a Graph path (or absolute URL) straight through the core, with the tenant's token."""

    def do(
        path_or_url: str, *, headers: dict[str, str] | None = None, advanced: bool = False
    ) -> EmuResponse:
        """`advanced`: an advanced query (an OData cast needs one): the header and `$count`."""
        url = path_or_url if "://" in path_or_url else f"{GRAPH_URL}/v1.0/{path_or_url}"
        sent = {"Authorization": f"Bearer {token}", **(headers or {})}
        if advanced:
            sent["ConsistencyLevel"] = "eventual"
            if "$count=" not in url:
                url += f"{'&' if '?' in url else '?'}$count=true"
        return emulator.handle("GET", url, sent)

    return do


def all_pages(
    get: Callable[..., EmuResponse], path: str, *, advanced: bool = False
) -> tuple[list[dict[str, Any]], int]:
    """Every object of a collection by following nextLinks, and the number of pages."""
    items: list[dict[str, Any]] = []
    url: str | None = path
    pages = 0
    while url:
        response = get(url, advanced=advanced)
        assert response.status == 200, response.text
        body = response.json()
        items.extend(body["value"])
        pages += 1
        url = body.get("@odata.nextLink")
    return items, pages


@pytest.fixture
def rsps(emulator: Emulator) -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, emulator, login_url=LOGIN_URL, graph_url=GRAPH_URL)
        yield mock


@pytest.fixture
def session(rsps: responses.RequestsMock, token: str) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    return http


@pytest.fixture
def big_tenant(emulator: Emulator) -> EmuTenant:
    return emulator.add_tenant(generate_tenant(users=10_000, groups=500, seed=7))


@pytest.fixture
def control(emulator: Emulator) -> Iterator[EmulatorControl]:
    """The client, its requests answered by `Emulator.handle` (no sockets)."""

    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        body = request.body
        if isinstance(body, str):
            body = body.encode()
        answer = emulator.handle(
            str(request.method), str(request.url), dict(request.headers), body or b""
        )
        return answer.status, answer.headers, answer.body

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        pattern = re.compile(re.escape(BASE) + r"/.*")
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            rsps.add_callback(method, pattern, callback=callback, content_type=None)
        yield EmulatorControl(BASE)
