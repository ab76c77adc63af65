"""What every command promises the shell that runs it (directories/management/base.py):
stdout holds its output only, stderr one line per problem and never a traceback, and the
exit status says how it went. Checked through call_command and as real processes.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django.fixtures import Settings

from directories.graph import GraphUnauthorized
from directories.models import Directory, SyncRun
from tests.factories import DirectoryFactory, SyncRunFactory

from ..sync.fakes import FakeGraph, make_group, make_user

ROOT = Path(__file__).resolve().parents[2]
DJANGO_CONSOLE_MAIL = "django.core.mail.backends.console.EmailBackend"
TENANT = "6ec9d5f0-5a2b-4a6e-8b6a-0123456789ab"


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> FakeGraph:
    fake = FakeGraph()
    monkeypatch.setattr("directories.sync.engine.graph_client_for", lambda **kwargs: fake)
    return fake


@pytest.fixture
def crashing_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug inside the sync: the engine records the run as failed (internal) and re-raises."""

    def crash(**kwargs: object) -> FakeGraph:
        raise RuntimeError("boom")

    monkeypatch.setattr("directories.sync.engine.graph_client_for", crash)


def command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def failing(*args: str) -> tuple[CommandError, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command(*args, stdout=out, stderr=err)
    return error.value, out.getvalue(), err.getvalue()


# --- 1. stdout carries the output only ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("backend", [DJANGO_CONSOLE_MAIL, "directories.mail.ConsoleEmailBackend"])
def test_an_alert_mail_never_lands_in_the_json_on_stdout(
    graph: FakeGraph, settings: Settings, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    settings.EMAIL_BACKEND = backend
    settings.SYNC_ALERT_AFTER_FAILURES = 1
    get_user_model().objects.create_superuser("boss", "boss@example.com", "x")
    DirectoryFactory(name="Contoso")
    graph.fail_with = GraphUnauthorized("Microsoft rejected the client secret.")

    error, out, err = failing("sync_directory", "Contoso", "--json")

    assert json.loads(out)["error"]["class"] == "unauthorized"  # the JSON and nothing else
    assert error.returncode == 1
    console = capsys.readouterr()
    assert console.out == ""  # not even on the process's own stdout
    assert "Subject: entra-sync: Contoso is failing to sync" in err + console.err


def test_our_console_mail_backend_writes_to_stderr(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from django.core.mail import send_mail

    settings.EMAIL_BACKEND = "directories.mail.ConsoleEmailBackend"

    send_mail("Hello", "Body", None, ["boss@example.com"])

    console = capsys.readouterr()
    assert console.out == ""
    assert "Subject: Hello" in console.err


@pytest.mark.django_db
def test_a_stray_print_inside_a_command_goes_to_its_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def noisy_recent(**kwargs: object) -> list[SyncRun]:
        print("debugging output")
        return []

    monkeypatch.setattr(
        "directories.management.commands.sync_history.sync_runs_recent", noisy_recent
    )

    out, err = command("sync_history", "--json")

    assert json.loads(out) == []
    assert err == "debugging output\n"
    assert capsys.readouterr().out == ""


# --- 3. bad input: one line, exit 1 ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add_directory", "--name", "x" * 300, "--mode", "all"], "at most 100 characters"),
        (["add_directory", "--name", "Two\nlines", "--mode", "all"], "line breaks"),
        (["add_directory", "--name", "New", "--mode", "all", "--tenant-id", "x" * 300], "GUID"),
        (["verify_directory", "Contoso", "--tenant-id", "contoso.com"], "not a tenant id"),
        (["sync_directory", "Nope"], "No directory named 'Nope'"),
        (["sync_directory", "²"], "No directory named '²'"),
        (["sync_directory", "9" * 40], "No directory named"),
        (["export_directory", "Nope"], "No directory named 'Nope'"),
        (["export_directory", "Contoso", "--output", "/nonexistent/x.json"], "Cannot write"),
        (["sync_history", "Nope"], "No directory named 'Nope'"),
        (["ensure_admin", "--username", "u" * 300], "Cannot use"),
        (["ensure_admin", "--username", "no spaces"], "Cannot use"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args: list[str], message: str) -> None:
    DirectoryFactory(name="Contoso", tenant_id=TENANT)

    error, out, _ = failing(*args)

    assert message in str(error)
    assert "\n" not in str(error) and len(str(error)) < 500
    assert error.returncode == 1
    assert out == ""


@pytest.mark.django_db
def test_a_too_long_name_records_nothing() -> None:
    failing("add_directory", "--name", "x" * 300, "--mode", "all")

    assert not Directory.objects.exists()


@pytest.mark.django_db
def test_ensure_admin_makes_no_account_when_it_cannot_keep_the_password(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")

    error, _, _ = failing("ensure_admin", "--password-file", str(blocked / "admin"))

    assert str(error).startswith(f"Cannot write {blocked / 'admin'}: ")
    assert not get_user_model().objects.exists()  # a second run can still make it


@pytest.mark.django_db
def test_sync_history_takes_any_limit() -> None:
    SyncRunFactory(directory=DirectoryFactory(name="Contoso"))

    out, _ = command("sync_history", "--limit", "9" * 30)

    assert "Contoso" in out


@pytest.mark.django_db
def test_a_multi_line_error_message_becomes_one_line(graph: FakeGraph) -> None:
    DirectoryFactory(name="Contoso")
    graph.fail_with = GraphUnauthorized(
        "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nCorrelation ID: 2"
    )

    error, _, _ = failing("sync_directory", "Contoso")

    assert str(error) == (
        "Contoso: AADSTS7000215: Invalid client secret provided. Trace ID: 1 Correlation ID: 2"
    )


# --- 3. an unexpected error: one line naming it, the traceback in the log ----------------------


@pytest.mark.django_db
def test_a_crashed_sync_keeps_the_contract(
    crashing_graph: None, caplog: pytest.LogCaptureFixture
) -> None:
    DirectoryFactory(name="Contoso")

    error, out, err = failing("sync_directory", "Contoso", "--json")

    assert str(error) == (
        "Contoso: internal error (RuntimeError: boom); the traceback is in the server log "
        "(-v 2 shows it here)."
    )
    assert error.returncode == 1
    assert err == ""
    summary = json.loads(out)
    assert summary["status"] == "failed"
    assert summary["error"]["class"] == "internal"
    assert summary["run_id"] == SyncRun.objects.get().pk  # the run the engine recorded
    crash = next(r for r in caplog.records if r.exc_info)
    assert crash.levelno == logging.ERROR and "Sync of Contoso crashed" in crash.getMessage()


@pytest.mark.django_db
def test_a_crashed_dry_run_still_prints_a_failed_summary(crashing_graph: None) -> None:
    DirectoryFactory(name="Contoso")

    error, out, _ = failing("sync_directory", "Contoso", "--json", "--dry-run")

    summary = json.loads(out)
    assert (summary["status"], summary["run_id"]) == ("failed", None)
    assert summary["error"]["class"] == "internal"
    assert "RuntimeError" in str(error)
    assert not SyncRun.objects.exists()


@pytest.mark.django_db
def test_a_crash_in_one_directory_does_not_stop_the_others(
    graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    DirectoryFactory(name="A", tenant_id=TENANT)
    DirectoryFactory(name="B")
    graph.add_group(make_group("Engineering"), [make_user("Ada")])

    def client_for(*, tenant_id: str, **kwargs: object) -> FakeGraph:
        if tenant_id == TENANT:
            raise RuntimeError("boom")
        return graph

    monkeypatch.setattr("directories.sync.engine.graph_client_for", client_for)

    error, out, _ = failing("sync_directory", "--all", "--json")

    assert [(s["directory"], s["status"]) for s in json.loads(out)] == [
        ("A", "failed"),
        ("B", "succeeded"),
    ]
    assert str(error).startswith("A: internal error (RuntimeError: boom)")


@pytest.mark.django_db
def test_traceback_shows_the_crash_itself(crashing_graph: None) -> None:
    DirectoryFactory(name="Contoso")

    with pytest.raises(RuntimeError, match="boom"):
        call_command("sync_directory", "Contoso", "--traceback", stdout=io.StringIO())


@pytest.mark.django_db
def test_any_command_turns_a_crash_into_one_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**kwargs: object) -> list[SyncRun]:
        raise ValueError("bad state\nsecond line")

    monkeypatch.setattr("directories.management.commands.sync_history.sync_runs_recent", broken)

    error, out, err = failing("sync_history")

    assert str(error) == (
        "sync_history: internal error (ValueError: bad state second line); the traceback is "
        "in the server log (-v 2 shows it here)."
    )
    assert (out, err) == ("", "")
    assert any(r.exc_info and r.name == "directories.commands" for r in caplog.records)


# --- the same, as an operator runs them: separate processes ------------------------------------

CRASHING_MANAGE_PY = """
import runpy, sys
import directories.graph.client as client

def crash(self, *args, **kwargs):
    raise RuntimeError("boom")

client.GraphClient.__init__ = crash  # a bug inside the sync
sys.argv = ["manage.py", *sys.argv[1:]]
runpy.run_path("manage.py", run_name="__main__")
"""

SETUP = """
from django.contrib.auth import get_user_model
from django.utils import timezone
from directories.models import Directory
Directory.objects.create(
    name="Contoso", sync_mode="all", tenant_id="{tenant}", verified_at=timezone.now()
)
get_user_model().objects.create_superuser("boss", "boss@example.com", "x")
"""


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file for the module; each test works on a copy."""
    path = tmp_path_factory.mktemp("contract") / "template.sqlite3"
    result = manage(path, "migrate", "-v0")
    assert result.returncode == 0, result.stderr
    result = manage(path, "shell", "-v0", "-c", SETUP.format(tenant=TENANT))
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def database(migrated_database: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "db.sqlite3"
    shutil.copy(migrated_database, copy)
    yield copy


def manage(
    database: Path, *args: str, env: dict[str, str] | None = None, crash: bool = False
) -> subprocess.CompletedProcess[str]:
    program = ["-c", CRASHING_MANAGE_PY] if crash else ["manage.py"]
    return subprocess.run(
        [sys.executable, *program, *args],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": f"sqlite:///{database}",
            "ENTRA_CLIENT_ID": "",
            "ENTRA_CLIENT_SECRET": "",
            "EMAIL_BACKEND": DJANGO_CONSOLE_MAIL,
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1, stderr


def test_a_300_character_name_is_one_line_on_stderr(database: Path) -> None:
    result = manage(database, "add_directory", "--name", "x" * 300, "--mode", "all")

    assert result.returncode == 1
    assert_one_line(result.stderr)
    assert result.stderr.startswith("CommandError: A directory name has at most 100 characters")
    assert result.stdout == ""


def test_a_malformed_command_line_is_one_line_and_exit_2(database: Path) -> None:
    result = manage(database, "sync_history", "--limit", "many")

    assert result.returncode == 2
    assert_one_line(result.stderr)
    assert "argument --limit: invalid int value: 'many'" in result.stderr


def test_a_crashed_sync_is_one_line_on_stderr_and_json_on_stdout(database: Path) -> None:
    result = manage(
        database,
        "sync_directory",
        "Contoso",
        "--json",
        env={"ENTRA_CLIENT_ID": "app", "ENTRA_CLIENT_SECRET": "secret"},
        crash=True,
    )

    assert result.returncode == 1
    assert_one_line(result.stderr)
    assert result.stderr == (
        "CommandError: Contoso: internal error (RuntimeError: boom); the traceback is in the "
        "server log (-v 2 shows it here).\n"
    )
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["error"]["class"]) == ("failed", "internal")


def test_a_crashed_sync_logs_its_traceback_with_v2(database: Path) -> None:
    result = manage(
        database,
        "sync_directory",
        "Contoso",
        "-v",
        "2",
        env={"ENTRA_CLIENT_ID": "app", "ENTRA_CLIENT_SECRET": "secret"},
        crash=True,
    )

    assert result.returncode == 1
    assert "ERROR directories.management.commands.sync_directory: Sync of Contoso crashed" in (
        result.stderr
    )
    assert "Traceback" in result.stderr and "RuntimeError: boom" in result.stderr


def test_an_alert_mail_goes_to_stderr_not_into_the_json(database: Path) -> None:
    # No credentials: every run fails, and the first failure already alerts.
    result = manage(
        database, "sync_directory", "Contoso", "--json", env={"SYNC_ALERT_AFTER_FAILURES": "1"}
    )

    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["class"] == "unauthorized"
    assert "Subject: entra-sync: Contoso is failing to sync" in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "CommandError: Contoso: ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET are not set."
    )
