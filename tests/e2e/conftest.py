"""The real commands, MSAL and the Graph client against the emulator, served through `responses`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from entra_emulator import Emulator, EmuTenant, generate_tenant
from entra_emulator.responses_adapter import install
from tests.conftest import AUTH_CLIENT_ID, CLIENT_ID, CLIENT_SECRET, GRAPH_URL, LOGIN_URL


class EmulatorClock:
    """The emulator's time: moves forward when the Graph client sleeps between retries."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> EmulatorClock:
    return EmulatorClock()


@pytest.fixture
def emulator(
    clock: EmulatorClock, no_real_sleep: list[float], monkeypatch: pytest.MonkeyPatch
) -> Emulator:
    emu = Emulator(clock=clock, sleep=clock.sleep, graph_url=GRAPH_URL)
    emu.add_app(CLIENT_ID, CLIENT_SECRET)

    def client_sleep(seconds: float) -> None:
        no_real_sleep.append(seconds)
        clock.sleep(seconds)

    monkeypatch.setattr("directories.graph.client.time.sleep", client_sleep)
    return emu


@pytest.fixture
def graph_http(emulator: Emulator) -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        install(rsps, emulator, login_url=LOGIN_URL, graph_url=GRAPH_URL)
        yield rsps


@pytest.fixture
def tenant(emulator: Emulator, graph_http: responses.RequestsMock) -> EmuTenant:
    """150 users in 15 groups, nested two deep, with guests, disabled users, devices."""
    return emulator.add_tenant(
        generate_tenant(users=150, groups=15, seed=11, auth_app_id=AUTH_CLIENT_ID)
    )
