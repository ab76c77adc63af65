"""sync_directory and verify_directory: exit status, one-line errors, output and JSON shape.

Graph is FakeGraph here; tests/e2e drive the same commands through the emulator over HTTP.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from directories.graph import GraphUnauthorized, Organization, ServicePrincipal
from directories.models import Directory, SyncMode, SyncRun
from directories.sync.lock import DirectoryLock
from identities.models import SyncedUser
from tests.factories import DirectoryFactory

from ..sync.fakes import FakeGraph, make_group, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> FakeGraph:
    fake = FakeGraph()
    monkeypatch.setattr("directories.sync.engine.graph_client_for", lambda **kwargs: fake)
    return fake


def sync_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("sync_directory", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_sync_prints_a_one_line_summary(graph: FakeGraph) -> None:
    DirectoryFactory(name="Contoso")
    graph.add_group(make_group("Engineering"), [make_user("Ada"), make_user("Bob")])

    out, _ = sync_command("Contoso")

    assert out.startswith("Contoso: succeeded in ")
    assert "+2 users, +1 groups, +2 memberships" in out
    assert "(2 users, 1 groups, 2 memberships in scope;" in out


def test_sync_json_prints_the_run_summary(graph: FakeGraph) -> None:
    DirectoryFactory(name="Contoso")
    graph.add_group(make_group("Engineering"), [make_user("Ada")])

    summary = json.loads(sync_command("Contoso", "--json")[0])

    assert summary["status"] == "succeeded"
    assert summary["users"] == {"seen": 1, "created": 1, "updated": 0, "removed": 0}
    assert summary["groups"]["created"] == 1
    assert summary["memberships"] == {"seen": 1, "created": 1, "removed": 0}
    assert summary["requests"] == graph.stats.requests
    assert isinstance(summary["seconds"], float)
    assert summary["error"] is None


def test_a_failed_sync_exits_non_zero_with_one_line_and_json(graph: FakeGraph) -> None:
    DirectoryFactory(name="Contoso")
    graph.fail_with = GraphUnauthorized("Microsoft rejected the client secret.")

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command("sync_directory", "Contoso", "--json", stdout=out, stderr=err)

    assert error.value.returncode == 1
    assert str(error.value) == "Contoso: Microsoft rejected the client secret."
    assert json.loads(out.getvalue())["error"]["class"] == "unauthorized"


def test_dry_run_prints_the_plan_and_writes_nothing(graph: FakeGraph) -> None:
    DirectoryFactory(name="Contoso")
    graph.add_group(make_group("Engineering"), [make_user("Ada")])

    out, _ = sync_command("Contoso", "--dry-run")

    assert "Contoso (dry run, nothing written): users +1 ~0 -0, groups +1" in out
    assert "+ user ada@contoso.onmicrosoft.com" in out
    assert "+ group Engineering" in out
    assert not SyncedUser.objects.exists()
    assert not SyncRun.objects.exists()


def test_dry_run_json_has_the_same_shape(graph: FakeGraph) -> None:
    DirectoryFactory(name="Contoso")
    graph.add_group(make_group("Engineering"), [make_user("Ada")])

    dry = json.loads(sync_command("Contoso", "--dry-run", "--json")[0])
    real = json.loads(sync_command("Contoso", "--json")[0])

    assert dry["status"] == "dry_run" and real["status"] == "succeeded"
    assert dry.keys() - {"would_hold", "hold_reason"} == real.keys()
    for kind in ("users", "groups", "memberships"):
        assert dry[kind] == real[kind], kind  # what the plan said is what the run did
    assert dry["run_id"] is None and real["run_id"] is not None


def test_a_held_mass_deletion_exits_3_and_allow_mass_delete_applies_it(graph: FakeGraph) -> None:
    DirectoryFactory(name="Contoso")
    users = [make_user(f"User{i}") for i in range(50)]
    group = graph.add_group(make_group("Everyone"), users)
    sync_command("Contoso")
    graph.set_members(group.id, users[:10])

    out = io.StringIO()
    with pytest.raises(CommandError, match="would remove 40 of 50 users") as error:
        call_command("sync_directory", "Contoso", stdout=out, stderr=io.StringIO())
    assert error.value.returncode == 3
    assert "would remove user user10@contoso.onmicrosoft.com" in out.getvalue()
    assert "--allow-mass-delete" in out.getvalue()

    out_text, _ = sync_command("Contoso", "--allow-mass-delete")
    assert "-40 users" in out_text
    assert SyncedUser.objects.present().count() == 10


def test_sync_all_syncs_every_verified_enabled_directory(graph: FakeGraph) -> None:
    DirectoryFactory(name="A")
    DirectoryFactory(name="B")
    DirectoryFactory(name="Unverified", verified_at=None)
    DirectoryFactory(name="Off", is_enabled=False)
    graph.add_group(make_group("Engineering"), [make_user("Ada")])

    summaries = json.loads(sync_command("--all", "--json")[0])

    assert [s["directory"] for s in summaries] == ["A", "B"]


def test_syncing_an_unverified_directory_says_how_to_verify(graph: FakeGraph) -> None:
    DirectoryFactory(name="Contoso", verified_at=None)

    with pytest.raises(CommandError, match="not verified yet: use Verify Now"):
        sync_command("Contoso")


def test_a_running_sync_refuses_a_second_one(graph: FakeGraph) -> None:
    directory = DirectoryFactory(name="Contoso")
    assert DirectoryLock(directory.pk, ttl_seconds=60).acquire()

    with pytest.raises(CommandError, match="already running"):
        sync_command("Contoso")


def test_sync_needs_a_name_or_all() -> None:
    with pytest.raises(CommandError):
        call_command("sync_directory")


class FakeVerifyGraph(FakeGraph):
    def __init__(self, tenant_id: str) -> None:
        super().__init__()

        self.org = Organization(tenant_id, "Contoso", ("contoso.com",), "contoso.com")
        self.sp = ServicePrincipal("sp-id", "app", "Contoso SSO", True)

    def organization(self) -> Organization:
        return self.org

    def service_principal(self, app_id: str) -> ServicePrincipal:
        return self.sp


TENANT = "6ec9d5f0-5a2b-4a6e-8b6a-0123456789ab"


@pytest.fixture
def verify_graph(monkeypatch: pytest.MonkeyPatch) -> FakeVerifyGraph:
    fake = FakeVerifyGraph(TENANT)
    monkeypatch.setattr("directories.services.verify.graph_client_for", lambda **kwargs: fake)
    return fake


def test_verify_prints_the_tenant_and_marks_the_directory_verified(
    verify_graph: FakeVerifyGraph,
) -> None:
    Directory.objects.create(name="Contoso", sync_mode=SyncMode.ASSIGNED)
    verify_graph.add_group(make_group("Engineering"), [])
    out = io.StringIO()

    call_command("verify_directory", "Contoso", "--tenant-id", TENANT, stdout=out)

    assert out.getvalue().splitlines()[0] == (
        f"Connected to Contoso (tenant id {TENANT}, contoso.com)."
    )
    assert "1 group(s) are assigned" in out.getvalue()
    directory = Directory.objects.get()
    assert directory.is_verified
    assert (directory.tenant_id, directory.tenant_name) == (TENANT, "Contoso")


def test_verify_warns_when_no_group_is_assigned_yet(verify_graph: FakeVerifyGraph) -> None:
    Directory.objects.create(name="Contoso", sync_mode=SyncMode.ASSIGNED)
    err = io.StringIO()

    call_command(
        "verify_directory", "Contoso", "--tenant-id", TENANT, stdout=io.StringIO(), stderr=err
    )

    assert "no groups are assigned to the Authentication app yet" in err.getvalue()


def test_verify_refuses_a_tenant_that_answers_as_another(
    verify_graph: FakeVerifyGraph,
) -> None:
    Directory.objects.create(name="Contoso", sync_mode=SyncMode.ALL)
    other = "0aaaaaaa-5a2b-4a6e-8b6a-0123456789ab"

    with pytest.raises(CommandError, match="a different tenant"):
        call_command("verify_directory", "Contoso", "--tenant-id", other)
    assert not Directory.objects.get().is_verified


def test_verify_refuses_to_switch_a_connected_directory_to_another_tenant(
    verify_graph: FakeVerifyGraph,
) -> None:
    DirectoryFactory(name="Contoso", tenant_id=TENANT)
    other = "0aaaaaaa-5a2b-4a6e-8b6a-0123456789ab"

    with pytest.raises(CommandError, match=f"connected to tenant {TENANT}, not {other}"):
        call_command("verify_directory", "Contoso", "--tenant-id", other)
    assert Directory.objects.get().tenant_id == TENANT


def test_verify_without_any_tenant_id_says_what_to_pass() -> None:
    Directory.objects.create(name="Contoso", sync_mode=SyncMode.ALL)

    with pytest.raises(CommandError, match="pass --tenant-id"):
        call_command("verify_directory", "Contoso")


def test_verify_without_credentials_says_which_variables_to_set(settings: object) -> None:
    settings.ENTRA_CLIENT_SECRET = ""  # type: ignore[attr-defined]
    Directory.objects.create(name="Contoso", sync_mode=SyncMode.ALL)

    with pytest.raises(CommandError, match="ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET are not set"):
        call_command("verify_directory", "Contoso", "--tenant-id", TENANT)


def test_verifying_a_directory_puts_it_on_the_sync_schedule(
    verify_graph: FakeVerifyGraph,
) -> None:
    from django_q.models import Schedule

    directory = Directory.objects.create(name="Contoso", sync_mode=SyncMode.ALL)
    assert not Schedule.objects.filter(name=f"sync-directory-{directory.pk}").exists()

    call_command("verify_directory", "Contoso", "--tenant-id", TENANT, stdout=io.StringIO())

    schedule = Schedule.objects.get(name=f"sync-directory-{directory.pk}")
    assert schedule.func == "directories.tasks.run_directory_sync"


def test_sync_all_says_when_there_is_nothing_to_sync(graph: FakeGraph) -> None:
    DirectoryFactory(name="New", verified_at=None)

    out, err = sync_command("--all")
    json_out, json_err = sync_command("--all", "--json")

    assert out == "" and "nothing to sync" in err
    assert json.loads(json_out) == [] and json_err == ""
    assert graph.stats.requests == 0
