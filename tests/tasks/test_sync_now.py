"""Sync Now: one queued task per click, refused politely while one is queued or running."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ, Task

from directories.graph import GraphUnauthorized
from directories.models import QUEUED_MARKER_TTL, Directory, SyncRun
from directories.services.sync_now import SyncAlreadyQueued, directory_sync_enqueue
from directories.sync import SyncAlreadyRunning, SyncRefused
from directories.sync.lock import DirectoryLock
from directories.tasks import run_directory_sync
from tests.factories import DirectoryFactory

from ..sync.fakes import FakeGraph, make_group, make_user
from .conftest import run_queued_tasks


@pytest.mark.django_db
@pytest.mark.usefixtures("sync_tasks")
def test_sync_now_runs_a_task_that_records_a_manual_run(graph: FakeGraph) -> None:
    directory = DirectoryFactory(name="Contoso")
    graph.add_group(make_group("Engineering"), [make_user("Ada"), make_user("Bob")])

    task_id = directory_sync_enqueue(directory=directory)

    run = SyncRun.objects.get(directory=directory)
    assert (run.trigger, run.status, run.users_created) == ("manual", "succeeded", 2)
    task = Task.objects.get(id=task_id)
    assert task.success
    assert task.func == "directories.tasks.run_directory_sync"
    assert task.result["run_id"] == run.pk
    assert task.result["status"] == "succeeded"
    directory.refresh_from_db()
    assert directory.sync_requested_at is None
    assert directory.sync_task_id == ""


@pytest.mark.django_db
def test_sync_now_queues_a_task_in_the_orm_broker_and_marks_the_directory(
    graph: FakeGraph,
) -> None:
    directory = DirectoryFactory(name="Contoso")

    task_id = directory_sync_enqueue(directory=directory)

    assert OrmQ.objects.count() == 1
    assert OrmQ.objects.get().task_id() == task_id
    assert directory.sync_requested_at is not None
    assert directory.sync_task_id == task_id
    assert not SyncRun.objects.exists()


@pytest.mark.django_db
def test_a_second_sync_now_while_one_is_queued_is_refused(graph: FakeGraph) -> None:
    directory = DirectoryFactory(name="Contoso")
    directory_sync_enqueue(directory=directory)

    with pytest.raises(SyncAlreadyQueued, match="A sync of Contoso is already queued"):
        directory_sync_enqueue(directory=directory)

    assert OrmQ.objects.count() == 1


@pytest.mark.django_db
def test_a_sync_now_while_a_sync_runs_is_refused(graph: FakeGraph) -> None:
    directory = DirectoryFactory(name="Contoso")
    lock = DirectoryLock(directory.pk, ttl_seconds=300)
    assert lock.acquire()

    with pytest.raises(SyncAlreadyRunning, match="A sync of Contoso is already running"):
        directory_sync_enqueue(directory=directory)

    assert not OrmQ.objects.exists()
    directory.refresh_from_db()
    assert directory.sync_requested_at is None


@pytest.mark.django_db
def test_an_expired_lock_or_stale_queue_marker_does_not_block_sync_now(graph: FakeGraph) -> None:
    long_ago = timezone.now() - QUEUED_MARKER_TTL - timedelta(minutes=1)
    directory = DirectoryFactory()
    Directory.objects.filter(pk=directory.pk).update(
        sync_lock_token="dead-worker",
        sync_lock_expires_at=long_ago,
        sync_requested_at=long_ago,
        sync_task_id="lost",
    )

    task_id = directory_sync_enqueue(directory=directory)

    assert directory.sync_task_id == task_id


@pytest.mark.django_db
def test_sync_now_of_an_unverified_directory_is_refused(graph: FakeGraph) -> None:
    directory = DirectoryFactory(name="Fabrikam", verified_at=None)

    with pytest.raises(SyncRefused, match="Fabrikam is not verified yet"):
        directory_sync_enqueue(directory=directory)

    assert not OrmQ.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_queued_task_and_sync_now_is_free_again(graph: FakeGraph) -> None:
    directory = DirectoryFactory(name="Contoso")
    graph.add_group(make_group("Engineering"), [make_user("Ada")])
    task_id = directory_sync_enqueue(directory=directory)

    assert run_queued_tasks(get_broker()) == 1

    assert SyncRun.objects.get(directory=directory).status == SyncRun.Status.SUCCEEDED
    assert Task.objects.get(id=task_id).success
    assert not OrmQ.objects.exists()  # acknowledged
    directory.refresh_from_db()
    assert directory.sync_requested_at is None
    assert directory_sync_enqueue(directory=directory)


@pytest.mark.django_db
def test_the_task_records_a_failed_run_without_raising(graph: FakeGraph) -> None:
    directory = DirectoryFactory()
    graph.fail_with = GraphUnauthorized("The client secret has expired.")

    summary = run_directory_sync(directory.pk, SyncRun.Trigger.MANUAL)

    assert summary["status"] == "failed"
    assert summary["error"]["class"] == "unauthorized"
    assert SyncRun.objects.get().status == SyncRun.Status.FAILED


@pytest.mark.django_db
def test_the_task_skips_a_directory_whose_sync_is_running(graph: FakeGraph) -> None:
    directory = DirectoryFactory(name="Contoso")
    assert DirectoryLock(directory.pk, ttl_seconds=300).acquire()

    summary = run_directory_sync(directory.pk, SyncRun.Trigger.SCHEDULE)

    assert summary["status"] == "already_running"
    assert "already running" in summary["message"]
    assert not SyncRun.objects.exists()


@pytest.mark.django_db
def test_the_task_of_a_deleted_directory_does_nothing(graph: FakeGraph) -> None:
    assert run_directory_sync(12345, SyncRun.Trigger.MANUAL) == {
        "status": "missing",
        "directory_id": 12345,
    }
