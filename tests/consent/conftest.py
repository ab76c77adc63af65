"""Verify Now against the emulator: Microsoft's pages through `requests`, ours through Django."""

from __future__ import annotations

import pytest
import responses

from directories.models import Directory, SyncMode
from entra_emulator import Emulator, EmuTenant, generate_tenant
from tests.conftest import AUTH_CLIENT_ID, CLIENT_ID, CLIENT_SECRET, GRAPH_URL
from tests.e2e.conftest import graph_http  # noqa: F401  (served by this module's `emulator`)

# Django's test client serves http://testserver; Entra ID only redirects to registered URIs.
CALLBACK_URL = "http://testserver/admin/directories/directory/verify/callback/"
FABRIKAM_ID = "33333333-3333-4333-8333-333333333333"


@pytest.fixture
def emulator() -> Emulator:
    """The Directory Sync app is registered but consented nowhere, so consent is really needed."""
    emu = Emulator(graph_url=GRAPH_URL)
    emu.add_app(CLIENT_ID, CLIENT_SECRET, tenant_ids=set(), redirect_uris=[CALLBACK_URL])
    return emu


@pytest.fixture
def contoso(emulator: Emulator, graph_http: responses.RequestsMock) -> EmuTenant:  # noqa: F811
    """A tenant with groups assigned to the Authentication app and admin@contoso.onmicrosoft.com."""
    return emulator.add_tenant(
        generate_tenant(users=20, groups=4, seed=5, auth_app_id=AUTH_CLIENT_ID)
    )


@pytest.fixture
def fabrikam(emulator: Emulator, graph_http: responses.RequestsMock) -> EmuTenant:  # noqa: F811
    return emulator.add_tenant(
        generate_tenant(
            users=3,
            groups=2,
            seed=7,
            tenant_id=FABRIKAM_ID,
            display_name="Fabrikam",
            domain="fabrikam.onmicrosoft.com",
            auth_app_id=AUTH_CLIENT_ID,
        )
    )


@pytest.fixture
def directory(db: None) -> Directory:
    return Directory.objects.create(name="Contoso HQ", sync_mode=SyncMode.ASSIGNED)
