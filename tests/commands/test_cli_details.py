"""The command-line details a person meets: what a dry run says of the guard and of changed
fields, a refused --limit, and a pipe into `head` that ends quietly."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from directories.graph import GraphUser
from directories.management.base import EXIT_READER_GONE
from directories.models import SyncRun
from directories.selectors import synced_field_changes
from identities.models import SyncedUser
from tests.factories import DirectoryFactory, SyncRunFactory

from ..sync.fakes import FakeGraph, make_group, make_user

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> FakeGraph:
    fake = FakeGraph()
    monkeypatch.setattr("directories.sync.engine.graph_client_for", lambda **kwargs: fake)
    return fake


def sync_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("sync_directory", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def held_sync_command(*args: str) -> tuple[CommandError, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command("sync_directory", *args, stdout=out, stderr=err)
    return error.value, out.getvalue(), err.getvalue()


def synced_then_shrunk(graph: FakeGraph, *, keep: int) -> list[GraphUser]:
    """50 users synced, then all but `keep` of them leave the only group."""
    DirectoryFactory(name="Contoso")
    users = [make_user(f"User{i:02}") for i in range(50)]
    group = graph.add_group(make_group("Everyone"), users)
    sync_command("Contoso")
    graph.set_members(group.id, users[:keep])
    return users


# --- a dry run says what the guard would do ---------------------------------------------------


@pytest.mark.django_db
def test_a_dry_run_the_guard_would_hold_says_so_and_exits_3(graph: FakeGraph) -> None:
    synced_then_shrunk(graph, keep=10)

    error, out, _ = held_sync_command("Contoso", "--dry-run")

    assert error.returncode == 3  # as the real run would
    assert str(error).startswith("Contoso: a real run would wait for approval: This run would")
    assert "would remove 40 of 50 users" in str(error)
    assert "A real run would wait for approval." in out and "--allow-mass-delete" in out
    assert SyncRun.objects.count() == 1  # the first sync only: a dry run records nothing
    assert SyncedUser.objects.present().count() == 50


@pytest.mark.django_db
def test_a_held_dry_run_json_has_would_hold_and_the_reason(graph: FakeGraph) -> None:
    synced_then_shrunk(graph, keep=10)

    error, out, _ = held_sync_command("Contoso", "--dry-run", "--json")

    summary = json.loads(out)
    assert error.returncode == 3
    assert summary["status"] == "dry_run"
    assert summary["would_hold"] is True
    assert "would remove 40 of 50 users" in summary["hold_reason"]


@pytest.mark.django_db
def test_a_dry_run_the_guard_lets_through_exits_0(graph: FakeGraph) -> None:
    synced_then_shrunk(graph, keep=45)

    out, err = sync_command("Contoso", "--dry-run", "--json")

    summary = json.loads(out)
    assert (summary["would_hold"], summary["hold_reason"]) == (False, None)
    assert summary["users"]["removed"] == 5
    assert err == ""


@pytest.mark.django_db
def test_a_dry_run_with_allow_mass_delete_would_apply(graph: FakeGraph) -> None:
    """The flag lifts the guard for the real run, so the dry run of the same line says so."""
    synced_then_shrunk(graph, keep=10)

    out, _ = sync_command("Contoso", "--dry-run", "--allow-mass-delete", "--json")

    assert json.loads(out)["would_hold"] is False


@pytest.mark.django_db
def test_a_dry_run_of_all_exits_3_when_one_would_be_held(graph: FakeGraph) -> None:
    synced_then_shrunk(graph, keep=10)
    DirectoryFactory(name="Fabrikam")

    error, out, _ = held_sync_command("--all", "--dry-run", "--json")

    assert error.returncode == 3
    assert [s["would_hold"] for s in json.loads(out)] == [True, False]


# --- a dry run shows what changes in each changed object ----------------------------------------


@pytest.mark.django_db
def test_a_dry_run_shows_each_changed_field_old_and_new(graph: FakeGraph) -> None:
    DirectoryFactory(name="Contoso")
    ada = make_user("Ada")
    group = graph.add_group(make_group("Engineering"), [ada])
    sync_command("Contoso")
    graph.replace_user(ada, display_name="Ada Lovelace", account_enabled=False)
    graph.groups_by_id[group.id] = make_group("Research", id=group.id, description="Labs")

    out, _ = sync_command("Contoso", "--dry-run")

    assert (
        "  ~ user ada@contoso.onmicrosoft.com: display_name 'Ada' → 'Ada Lovelace', "
        "account_enabled True → False"
    ) in out.splitlines()
    assert (
        "  ~ group Research: display_name 'Engineering' → 'Research', description '' → 'Labs'"
        in (out.splitlines())
    )


@pytest.mark.django_db
def test_a_dry_run_lists_twenty_changes_per_kind_then_counts_the_rest(graph: FakeGraph) -> None:
    DirectoryFactory(name="Contoso")
    users = [make_user(f"User{i:02}") for i in range(25)]
    graph.add_group(make_group("Everyone"), users)
    sync_command("Contoso")
    for user in users:
        graph.replace_user(user, surname="Renamed")

    out, _ = sync_command("Contoso", "--dry-run")

    changed = [line for line in out.splitlines() if line.startswith("  ~ user ")]
    assert len(changed) == 20
    assert all(line.endswith("surname '' → 'Renamed'") for line in changed)
    assert "  … and 5 more user changes" in out.splitlines()


@pytest.mark.django_db
def test_old_values_are_read_in_one_query(
    graph: FakeGraph, django_assert_num_queries: Callable[[int], AbstractContextManager[None]]
) -> None:
    DirectoryFactory(name="Contoso")
    graph.add_group(make_group("Everyone"), [make_user(f"User{i:02}") for i in range(30)])
    sync_command("Contoso")
    pks = list(SyncedUser.objects.values_list("pk", flat=True))
    updates = {pk: {"surname": "Renamed", "account_enabled": True} for pk in pks}

    with django_assert_num_queries(1):
        changes = synced_field_changes(model=SyncedUser, updates=updates)

    # Only what differs: every account was already enabled.
    assert changes == {pk: {"surname": ("", "Renamed")} for pk in pks}


# --- sync_history --limit -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["0", "-3"])
def test_sync_history_refuses_a_limit_below_one(limit: str) -> None:
    SyncRunFactory(directory=DirectoryFactory(name="Contoso"))

    with pytest.raises(CommandError, match=f"--limit: must be at least 1, not {limit}"):
        call_command("sync_history", "--limit", limit, stdout=io.StringIO())


@pytest.mark.django_db
def test_sync_history_refuses_a_limit_below_one_from_code_with_exit_2() -> None:
    with pytest.raises(CommandError, match="--limit must be at least 1, not 0") as error:
        call_command("sync_history", limit=0, stdout=io.StringIO())

    assert error.value.returncode == 2


# --- as real processes: the command line, and a pipe into head ------------------------------


SETUP = """
from django.utils import timezone
from directories.models import Directory, SyncRun
from identities.models import SyncedUser
directory = Directory.objects.create(
    name="Contoso", sync_mode="all", tenant_id="6ec9d5f0-5a2b-4a6e-8b6a-0123456789ab",
    verified_at=timezone.now(),
)
SyncRun.objects.bulk_create(
    SyncRun(directory=directory, trigger="command", status="succeeded") for _ in range({count})
)
SyncedUser.objects.bulk_create(
    SyncedUser(
        directory=directory, entra_id=f"00000000-0000-0000-0000-{{i:012}}",
        user_principal_name=f"user{{i}}@contoso.onmicrosoft.com", display_name=f"User {{i}}",
        first_synced_at=timezone.now(), changed_at=timezone.now(),
    )
    for i in range({count})
)
"""
ROWS = 3000  # several pipe buffers (64 KiB) of output, so the writer meets the closed pipe


def manage_env(database: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "ENTRA_CLIENT_ID": "",
        "ENTRA_CLIENT_SECRET": "",
    }


@pytest.fixture(scope="module")
def filled_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file with many runs and users; each test works on a copy."""
    path = tmp_path_factory.mktemp("cli") / "template.sqlite3"
    for args in (["migrate", "-v0"], ["shell", "-v0", "-c", SETUP.format(count=ROWS)]):
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=manage_env(path),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def database(filled_database: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "db.sqlite3"
    shutil.copy(filled_database, copy)
    yield copy


def test_a_negative_limit_is_one_line_and_exit_2(database: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "sync_history", "--limit", "-3"],
        cwd=ROOT,
        env=manage_env(database),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2
    assert result.stderr == (
        "manage.py sync_history: error: argument --limit: must be at least 1, not -3 (see --help)\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["sync_history", "--limit", str(ROWS)],
        ["sync_history", "--json", "--limit", str(ROWS)],
        ["export_directory", "Contoso"],
        ["export_directory", "Contoso", "--format", "csv"],
    ],
)
def test_a_reader_that_stops_ends_the_command_quietly(database: Path, args: list[str]) -> None:
    """`manage.py … | head -1`: the reader closes the pipe after one line."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=manage_env(database),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=120)

    assert "Traceback" not in stderr
    assert "internal error" not in stderr
    assert "BrokenPipeError" not in stderr
    assert stderr == ""
    # 141 when a write met the closed pipe. A single large write (the JSON) can end short
    # without an error instead: Python's buffered writer drops what the pipe refused, so
    # the command never learns, and exits 0, as `seq 100000 | head -1` does for seq.
    assert process.returncode in (0, EXIT_READER_GONE)


def test_a_reader_that_reads_everything_sees_exit_0(database: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "sync_history", "--limit", "5"],
        cwd=ROOT,
        env=manage_env(database),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 5
