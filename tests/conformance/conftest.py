"""One emulator over real HTTPS for the conformance tests: clients we did not write (Microsoft's
Graph SDK, azure-identity, MSAL Python) talk to it exactly as they would to Microsoft.

Everything here is session-scoped: one generated tenant, one CA, one server on a free loopback
port. Tests that change emulator state use apps of their own, so the order does not matter.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from entra_emulator import (
    CertPaths,
    Emulator,
    EmulatorServer,
    EmuTenant,
    ensure_certificates,
    generate_tenant,
)
from entra_emulator.server import write_ca_bundle

# The app the SDK and azure-identity authenticate as (consented in every tenant).
CLIENT_ID = "c0ffee00-0000-4000-8000-00000000c0de"
CLIENT_SECRET = "conformance-secret"


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance-emulator")


@pytest.fixture(scope="session")
def certs(state_dir: Path) -> CertPaths:
    return ensure_certificates(state_dir)


@pytest.fixture(scope="session")
def emulator() -> Emulator:
    emu = Emulator()
    emu.add_app(CLIENT_ID, CLIENT_SECRET)
    return emu


@pytest.fixture(scope="session")
def tenant(emulator: Emulator) -> EmuTenant:
    """121 users (the last is `admin@contoso.onmicrosoft.com`): guests, disabled accounts, users
    without mail and non-ASCII names; 20 groups (Microsoft 365 ones, a nested chain, devices, a
    service principal and a contact as members); 9 assignments to the Authentication app.

    Small groups on purpose: msgraph-sdk spends ~7 ms deserialising each object, and the
    membership tests read every group's members twice (~430 objects each time).
    """
    return emulator.add_tenant(generate_tenant(users=120, groups=20, seed=5, members_per_group=6))


@pytest.fixture(scope="session")
def server(emulator: Emulator, certs: CertPaths, tenant: EmuTenant) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator, host="127.0.0.1", port=0, cert=certs, hold_seconds=5) as running:
        yield running


@pytest.fixture(scope="session")
def url(server: EmulatorServer) -> str:
    """https://localhost:PORT: login authority host and Graph base, as a developer would set."""
    return server.localhost_url


@pytest.fixture(scope="session")
def ca(server: EmulatorServer) -> str:
    """The emulator's CA alone (verify= for clients that take a CA file per request)."""
    return str(server.ca_pem)


@pytest.fixture(scope="session")
def ca_bundle(state_dir: Path, certs: CertPaths) -> Path:
    """What the shell already trusts plus the emulator's CA, as `graph_emulator` writes it."""
    return write_ca_bundle(state_dir, certs.ca_pem)


@pytest.fixture
def trust_emulator_env(monkeypatch: pytest.MonkeyPatch, ca_bundle: Path) -> Path:
    """Point REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE at the combined bundle.

    `requests` lets these variables override a Session's `verify` default (MSAL's `verify=`
    is only that default), and these machines set them to a bundle without our CA.
    """
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_bundle))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(ca_bundle))
    return ca_bundle
