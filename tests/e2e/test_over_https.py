"""End to end over a real network: the emulator's HTTPS server with its own CA, and the real
commands (MSAL's token path, the Graph client, the engine) with nothing of the project mocked.

Tenants are created and changed through the emulator's control API, as a person would with
`graph_emulator` running.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django.fixtures import Settings

from directories.graph import forget_cached_tokens
from directories.models import Directory
from entra_emulator import EmulatorControl, EmuTenant
from entra_emulator.expected import expected_directory
from entra_emulator.server import EmulatorLaunch, emulator_launch
from identities.models import SyncedUser
from identities.selectors import directory_present_state

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
AUTH_CLIENT_ID = "22222222-2222-4222-8222-222222222222"
REAL_SLEEP = time.sleep  # taken before the autouse fixture replaces it


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorLaunch]:
    started = emulator_launch(
        tenants=[],
        state_dir=tmp_path_factory.mktemp("emulator"),
        port=0,
        auth_client_id=AUTH_CLIENT_ID,
    )
    yield started
    started.server.stop()


@pytest.fixture
def control(launch: EmulatorLaunch) -> Iterator[EmulatorControl]:
    client = EmulatorControl(launch.env["GRAPH_URL"], verify=str(launch.ca_bundle))
    yield client
    client.clear_faults()
    client.update_settings(throttle_limit=None, latency_ms=0)
    client.close()


@pytest.fixture(autouse=True)
def pointed_at_the_emulator(
    launch: EmulatorLaunch, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings `emulator.env` gives, as an operator would export them."""
    for name in ("ENTRA_LOGIN_URL", "GRAPH_URL", "ENTRA_CLIENT_ID", "ENTRA_CLIENT_SECRET"):
        setattr(settings, name, launch.env[name])
    settings.ENTRA_AUTH_CLIENT_ID = AUTH_CLIENT_ID
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", launch.env["REQUESTS_CA_BUNDLE"])
    settings.GRAPH_CA_BUNDLE = launch.env["REQUESTS_CA_BUNDLE"]  # what settings.py reads from it
    forget_cached_tokens()


def emulated(launch: EmulatorLaunch, tenant_id: str) -> EmuTenant:
    return launch.server.emulator.tenants[tenant_id]


def command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def connect(tenant_id: str, mode: str) -> Directory:
    command("add_directory", "--name", "Contoso", "--mode", mode)
    assert command("verify_directory", "Contoso", "--tenant-id", tenant_id).startswith(
        "Connected to "
    )
    return Directory.objects.get(name="Contoso")


def assert_matches(directory: Directory, tenant: EmuTenant, *, assigned_only: bool) -> None:
    expected = expected_directory(tenant, assigned_only=assigned_only)
    state = directory_present_state(directory=directory)
    assert (state.user_ids, state.group_ids, state.memberships) == (
        expected.user_ids,
        expected.group_ids,
        expected.memberships,
    )


@pytest.mark.parametrize("mode", ["assigned", "all"])
def test_both_modes_sync_the_tenant_over_https(
    launch: EmulatorLaunch, control: EmulatorControl, mode: str
) -> None:
    tenant_id = control.generate_tenant(
        users=300, groups=25, seed=21 if mode == "assigned" else 27, nesting_depth=3
    )
    directory = connect(tenant_id, mode)

    summary = json.loads(command("sync_directory", "Contoso", "--json"))

    assert summary["status"] == "succeeded"
    assert_matches(directory, emulated(launch, tenant_id), assigned_only=mode == "assigned")


def test_changes_made_between_syncs_arrive(
    launch: EmulatorLaunch, control: EmulatorControl
) -> None:
    tenant_id = control.generate_tenant(users=120, groups=10, seed=22)
    directory = connect(tenant_id, "all")
    command("sync_directory", "Contoso")
    tenant = emulated(launch, tenant_id)
    group_id = next(iter(tenant.groups))
    member = tenant.members_of(group_id, transitive=False, kind="user")[0]
    renamed = next(u for u in tenant.users.values() if not u.is_admin)
    control.update_user(tenant_id, renamed.id, displayName="Renamed Over HTTPS")
    control.remove_member(tenant_id, group_id, member)
    newcomer = control.add_user(
        tenant_id, userPrincipalName="newcomer@contoso.onmicrosoft.com", groups=[group_id]
    )

    summary = json.loads(command("sync_directory", "Contoso", "--json"))

    assert summary["users"]["created"] == 1 and summary["users"]["updated"] >= 1
    assert SyncedUser.objects.get(entra_id=renamed.id).display_name == "Renamed Over HTTPS"
    assert SyncedUser.objects.filter(entra_id=newcomer["id"]).exists()
    assert_matches(directory, tenant, assigned_only=False)


def test_throttling_is_survived_over_https(
    launch: EmulatorLaunch,
    control: EmulatorControl,
    monkeypatch: pytest.MonkeyPatch,
    settings: object,
) -> None:
    settings.GRAPH_MAX_RETRIES = 10  # type: ignore[attr-defined]
    monkeypatch.setattr("directories.graph.client.time.sleep", REAL_SLEEP)  # really wait
    tenant_id = control.generate_tenant(users=60, groups=8, seed=23)
    directory = connect(tenant_id, "all")
    control.update_settings(throttle_limit=4, throttle_window=1.0)

    summary = json.loads(command("sync_directory", "Contoso", "--json"))

    assert summary["status"] == "succeeded"
    assert summary["retries"] > 0
    assert_matches(directory, emulated(launch, tenant_id), assigned_only=False)


def test_a_dropped_connection_is_retried(launch: EmulatorLaunch, control: EmulatorControl) -> None:
    tenant_id = control.generate_tenant(users=40, groups=5, seed=24)
    connect(tenant_id, "all")
    control.add_fault(kind="reset", count=1, path_contains="$batch")

    summary = json.loads(command("sync_directory", "Contoso", "--json"))

    assert (summary["status"], summary["retries"]) == ("succeeded", 1)


def test_an_expired_secret_is_reported_clearly(
    launch: EmulatorLaunch, control: EmulatorControl
) -> None:
    tenant_id = control.generate_tenant(users=40, groups=5, seed=25)
    connect(tenant_id, "all")
    command("sync_directory", "Contoso")
    client_id, secret = launch.env["ENTRA_CLIENT_ID"], launch.env["ENTRA_CLIENT_SECRET"]
    control.add_app(client_id, secret, secret_expired=True)
    forget_cached_tokens()
    try:
        with pytest.raises(CommandError, match="client secret of the Directory Sync application"):
            call_command("sync_directory", "Contoso", stdout=io.StringIO())
    finally:
        control.add_app(client_id, secret)
    assert SyncedUser.objects.present().exists()  # nothing was lost


def test_the_commands_run_as_an_operator_runs_them(
    launch: EmulatorLaunch, control: EmulatorControl, tmp_path: Path
) -> None:
    """Separate processes, configured only by the environment that emulator.env holds."""
    tenant_id = control.generate_tenant(users=50, groups=6, seed=26)
    env = {
        **os.environ,
        **launch.env,
        "ENTRA_AUTH_CLIENT_ID": AUTH_CLIENT_ID,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'operator.sqlite3'}",
    }

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert manage("migrate", "-v0").returncode == 0
    assert manage("add_directory", "--name", "Contoso", "--mode", "assigned").returncode == 0
    verified = manage("verify_directory", "Contoso", "--tenant-id", tenant_id)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("Connected to Contoso (tenant id ")
    synced = manage("sync_directory", "Contoso", "--json")
    assert synced.returncode == 0, synced.stderr
    expected = expected_directory(emulated(launch, tenant_id), assigned_only=True)
    assert json.loads(synced.stdout)["users"]["created"] == len(expected.user_ids)
    history = manage("sync_history", "--json")
    assert json.loads(history.stdout)[0]["status"] == "succeeded"
