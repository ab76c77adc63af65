"""A small emulated tenant, and a directory whose local copy came from a real sync of it."""

from __future__ import annotations

import pytest

from directories.models import Directory, SyncMode, SyncRun
from directories.sync import directory_sync
from entra_emulator import Emulator, EmuTenant, EmuUser, generate_tenant
from tests.conftest import AUTH_CLIENT_ID
from tests.e2e.conftest import clock, emulator, graph_http  # noqa: F401  (shared fixtures)
from tests.factories import DirectoryFactory


@pytest.fixture
def tenant(emulator: Emulator, graph_http: object) -> EmuTenant:  # noqa: F811
    """60 users in 10 groups, nested, with guests, disabled users and direct assignments."""
    return emulator.add_tenant(
        generate_tenant(users=60, groups=10, seed=5, auth_app_id=AUTH_CLIENT_ID)
    )


def make_directory(tenant: EmuTenant, mode: str = SyncMode.ASSIGNED) -> Directory:
    directory: Directory = DirectoryFactory(
        name=f"Contoso {mode}",
        sync_mode=mode,
        tenant_id=tenant.tenant_id,
        tenant_name=tenant.display_name,
    )
    return directory


def synced(tenant: EmuTenant, mode: str = SyncMode.ASSIGNED) -> Directory:
    """A directory synced from the tenant through the real engine, Graph client and MSAL."""
    directory = make_directory(tenant, mode)
    outcome = directory_sync(directory=directory, trigger=SyncRun.Trigger.COMMAND)
    assert outcome.run is not None and outcome.run.status == SyncRun.Status.SUCCEEDED
    return directory


def new_user(tenant: EmuTenant, n: int, **fields: object) -> EmuUser:
    values: dict[str, object] = {
        "id": f"7e57bbbb-0000-4000-8000-{n:012d}",
        "user_principal_name": f"lonely{n}@{tenant.default_domain}",
        "mail": None,
        "display_name": f"Lonely {n}",
        "given_name": None,
        "surname": None,
        "account_enabled": True,
        "user_type": "Member",
        **fields,
    }
    return tenant.add_user(EmuUser(**values))  # type: ignore[arg-type]
