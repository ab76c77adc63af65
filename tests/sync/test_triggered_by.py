"""Who started each run: the admin, "schedule" or "command (OS user)", kept past the user."""

from __future__ import annotations

import io
import pickle

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.management import call_command
from django_q.models import OrmQ

from directories.models import Directory, SyncRun
from directories.services.sync_now import directory_sync_enqueue
from directories.sync import directory_sync
from directories.tasks import run_directory_sync
from tests.factories import DirectoryFactory

from .fakes import FakeGraph, make_group, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> FakeGraph:
    """FakeGraph behind every sync, however it was started (task, command)."""
    fake = FakeGraph()
    fake.add_group(make_group("Engineering"), [make_user("Ada")])
    monkeypatch.setattr("directories.sync.engine.graph_client_for", lambda **kwargs: fake)
    return fake


@pytest.fixture
def directory(graph: FakeGraph) -> Directory:
    return DirectoryFactory(name="Contoso")


def test_a_scheduled_run_says_schedule(directory: Directory) -> None:
    run_directory_sync(directory.pk, SyncRun.Trigger.SCHEDULE)

    run = SyncRun.objects.get(directory=directory)
    assert (run.status, run.triggered_by, run.triggered_by_name) == (
        SyncRun.Status.SUCCEEDED,
        None,
        "schedule",
    )


def test_a_command_run_names_the_os_user_and_logs_nothing_in_the_admin(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "ops")

    call_command("sync_directory", "Contoso", stdout=io.StringIO(), stderr=io.StringIO())

    run = SyncRun.objects.get(directory=directory)
    assert (run.trigger, run.triggered_by, run.triggered_by_name) == (
        SyncRun.Trigger.COMMAND,
        None,
        "command (ops)",
    )
    assert not LogEntry.objects.exists()


def test_a_command_run_without_an_os_user_still_says_command(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_login_name() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr("getpass.getuser", no_login_name)

    call_command("sync_directory", "Contoso", stdout=io.StringIO(), stderr=io.StringIO())

    assert SyncRun.objects.get().triggered_by_name == "command (unknown user)"


def test_sync_now_sends_the_admin_to_the_task_as_an_id(directory: Directory) -> None:
    ada = User.objects.create_user("ada")

    directory_sync_enqueue(directory=directory, triggered_by=ada)

    task = OrmQ.objects.get().task
    assert task["kwargs"]["triggered_by_id"] == ada.pk
    assert pickle.loads(pickle.dumps(task["kwargs"])) == task["kwargs"]
    run_directory_sync(*task["args"], **task["kwargs"])
    run = SyncRun.objects.get(directory=directory)
    assert (run.trigger, run.triggered_by, run.triggered_by_name) == (
        SyncRun.Trigger.MANUAL,
        ada,
        "ada",
    )


def test_a_sync_now_whose_admin_was_deleted_before_it_ran_still_runs(
    directory: Directory,
) -> None:
    ada = User.objects.create_user("ada")
    directory_sync_enqueue(directory=directory, triggered_by=ada)
    task = OrmQ.objects.get().task
    ada.delete()

    run_directory_sync(*task["args"], **task["kwargs"])

    run = SyncRun.objects.get(directory=directory)
    assert (run.status, run.triggered_by) == (SyncRun.Status.SUCCEEDED, None)


def test_deleting_the_user_keeps_their_name_on_the_run(directory: Directory) -> None:
    ada = User.objects.create_user("ada")
    outcome = directory_sync(directory=directory, trigger=SyncRun.Trigger.MANUAL, triggered_by=ada)
    assert outcome.run is not None

    ada.delete()

    run = SyncRun.objects.get(pk=outcome.run.pk)
    assert (run.triggered_by, run.triggered_by_name) == (None, "ada")
