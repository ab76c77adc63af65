"""Approval bound to what was reviewed, a fenced apply, and runs whose worker died."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule

from directories.models import Directory, SyncMode, SyncRun
from directories.services.housekeeping import RECLAIM_SCHEDULE_NAME, reclaim_schedule_sync
from directories.sync.apply import apply_plan
from directories.sync.engine import Approval
from directories.sync.guard import mass_deletion_reason
from directories.sync.lock import DirectoryLock
from directories.sync.reclaim import reclaim_interrupted_runs
from directories.tasks import run_reclaim_interrupted
from identities.models import Membership, SyncedUser
from tests.factories import DirectoryFactory

from .fakes import FakeGraph, make_group, make_user
from .fakes import sync_with as sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def directory() -> Directory:
    return DirectoryFactory(sync_mode=SyncMode.ALL)


@pytest.fixture
def approver() -> Any:
    return get_user_model().objects.create_user("approver", password="x", is_staff=True)


def held_after_removing(
    directory: Directory, graph: FakeGraph, keep: int, total: int = 100
) -> tuple[SyncRun, list[Any], str]:
    users = [make_user(f"User{i:03}") for i in range(total)]
    group = graph.add_group(make_group("Everyone"), users)
    sync(directory, graph)
    graph.set_members(group.id, users[:keep])
    held = sync(directory, graph)
    assert held.status == SyncRun.Status.NEEDS_APPROVAL
    return held, users, group.id


# --- approval ------------------------------------------------------------------------------


def test_an_approval_applies_the_removals_that_were_reviewed_and_records_the_approver(
    directory: Directory, graph: FakeGraph, approver: Any
) -> None:
    held, _, _ = held_after_removing(directory, graph, keep=70)

    run = sync(directory, graph, approval=Approval(run_id=held.pk, user_id=approver.pk))

    assert (run.status, run.users_removed) == (SyncRun.Status.SUCCEEDED, 30)
    assert (run.approved_run_id, run.approved_by_id) == (held.pk, approver.pk)
    held.refresh_from_db()
    assert held.approved_by_id == approver.pk and held.approved_at is not None


def test_an_approval_after_the_tenant_emptied_further_is_held_again_with_the_difference(
    directory: Directory, graph: FakeGraph, approver: Any
) -> None:
    held, users, group_id = held_after_removing(directory, graph, keep=70)
    graph.set_members(group_id, [])  # reviewed: 30 of 100; now all 100 would go

    run = sync(directory, graph, approval=Approval(run_id=held.pk, user_id=approver.pk))

    assert run.status == SyncRun.Status.NEEDS_APPROVAL
    assert "more than the approved run allowed" in run.error_message
    beyond = run.planned_removals["beyond_approval"]
    assert beyond["users_count"] == 70
    assert {u["id"] for u in beyond["users"]} == {u.id for u in users[:70]}
    assert SyncedUser.objects.present().filter(directory=directory).count() == 100
    assert run.approved_run_id == held.pk


def test_a_few_more_removals_than_reviewed_pass_the_ordinary_guard(
    directory: Directory, graph: FakeGraph
) -> None:
    held, users, group_id = held_after_removing(directory, graph, keep=70)
    graph.set_members(group_id, users[:65])  # 5 more: below the floor of 10

    run = sync(directory, graph, approval=Approval(run_id=held.pk))

    assert (run.status, run.users_removed) == (SyncRun.Status.SUCCEEDED, 35)


def test_every_removed_id_is_kept_for_the_approval_not_only_the_listed_ones(
    directory: Directory, graph: FakeGraph
) -> None:
    held, _, _ = held_after_removing(directory, graph, keep=100, total=700)

    assert len(held.planned_removals["users"]) == 500  # the list an admin reviews
    assert len(held.held_removals["users"]) == 600  # what the approval allows
    run = sync(directory, graph, approval=Approval(run_id=held.pk))
    assert (run.status, run.users_removed) == (SyncRun.Status.SUCCEEDED, 600)


def test_an_approval_of_a_run_that_was_not_held_allows_nothing(
    directory: Directory, graph: FakeGraph
) -> None:
    users = [make_user(f"User{i:03}") for i in range(100)]
    group = graph.add_group(make_group("Everyone"), users)
    succeeded = sync(directory, graph)
    graph.set_members(group.id, users[:50])

    run = sync(directory, graph, approval=Approval(run_id=succeeded.pk))

    assert run.status == SyncRun.Status.NEEDS_APPROVAL
    assert run.approved_run_id is None


# --- fencing -------------------------------------------------------------------------------


def test_a_run_whose_lock_was_taken_before_apply_writes_nothing(
    directory: Directory, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph.add_group(make_group("Engineering"), [make_user("Ada")])

    def taken_meanwhile(*args: Any, **kwargs: Any) -> str | None:
        # After the last renewal, before the apply transaction: another run takes over.
        Directory.objects.filter(pk=directory.pk).update(
            sync_lock_token="another-run", sync_lock_expires_at=timezone.now() + timedelta(hours=1)
        )
        return mass_deletion_reason(*args, **kwargs)

    monkeypatch.setattr("directories.sync.engine.mass_deletion_reason", taken_meanwhile)

    run = sync(directory, graph)

    assert (run.status, run.error_class) == (SyncRun.Status.FAILED, "internal")
    assert "Another sync took over" in run.error_message
    assert not SyncedUser.objects.exists()
    directory.refresh_from_db()
    assert directory.sync_lock_token == "another-run"  # not released by the loser


@pytest.mark.django_db(transaction=True)
def test_a_stalled_apply_past_its_lock_never_interleaves_with_the_next_run(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock expires during a slow apply; the next run waits for it, then finds no work."""
    if connection.vendor == "sqlite":
        pytest.skip(
            "SQLite has one writer: nothing else writes while an apply transaction is open "
            "(the shared-cache test database refuses at once rather than waiting)"
        )
    settings.SYNC_LOCK_TTL_SECONDS = 1
    directory = DirectoryFactory(sync_mode=SyncMode.ALL)
    graph = FakeGraph()
    graph.add_group(make_group("Engineering"), [make_user(f"U{i}") for i in range(20)])
    applying, intervals = threading.Event(), []

    def slow_apply(**kwargs: Any) -> None:
        started = time.monotonic()
        if threading.current_thread().name == "first":
            applying.set()
            pause(2.0)  # past the 1 s lock TTL, inside the transaction
        apply_plan(**kwargs)
        intervals.append((started, time.monotonic()))

    monkeypatch.setattr("directories.sync.engine.apply_plan", slow_apply)
    results: list[str] = []

    def first() -> None:
        try:
            results.append(sync(directory, graph).status)
        finally:
            connection.close()

    thread = threading.Thread(target=first, name="first")
    thread.start()
    assert applying.wait(10)
    pause(1.2)  # the first run's lock has expired by now
    second = sync(Directory.objects.get(pk=directory.pk), graph)
    thread.join(10)

    assert results == [SyncRun.Status.SUCCEEDED]
    assert second.status == SyncRun.Status.SUCCEEDED
    assert (second.users_created, second.memberships_created) == (0, 0)
    (_, a_end), (b_start, _) = sorted(intervals)
    assert b_start >= a_end  # never two applies at once
    assert SyncedUser.objects.count() == 20 and Membership.objects.count() == 20


def pause(seconds: float) -> None:
    """A real wait (the test suite replaces time.sleep)."""
    threading.Event().wait(seconds)


# --- reclaiming runs whose worker died -------------------------------------------------------


def abandoned_run(
    directory: Directory, *, lock_expired: bool = True, token: str = "dead"
) -> SyncRun:
    """What a killed worker leaves: a running run, and its lock until it expires."""
    expires = timezone.now() + (timedelta(seconds=-1) if lock_expired else timedelta(minutes=5))
    Directory.objects.filter(pk=directory.pk).update(
        sync_lock_token=token, sync_lock_expires_at=expires
    )
    return SyncRun.objects.create(directory=directory, trigger="schedule", lock_token=token)


def test_a_run_whose_lock_expired_is_reclaimed_as_interrupted_and_counted(
    directory: Directory,
) -> None:
    run = abandoned_run(directory)

    assert reclaim_interrupted_runs() == [run]

    run.refresh_from_db()
    assert (run.status, run.error_class) == (SyncRun.Status.FAILED, "interrupted")
    assert "worker running this sync stopped" in run.error_message
    assert run.finished_at is not None
    directory.refresh_from_db()
    assert directory.consecutive_failures == 1
    assert directory.last_sync_status == SyncRun.Status.FAILED
    assert directory.error_class == "interrupted"


def test_a_live_run_is_left_alone(directory: Directory) -> None:
    run = abandoned_run(directory, lock_expired=False)

    assert reclaim_interrupted_runs() == []
    run.refresh_from_db()
    assert run.status == SyncRun.Status.RUNNING


def test_a_run_whose_lock_another_run_took_is_reclaimed(directory: Directory) -> None:
    run = abandoned_run(directory, lock_expired=False)
    Directory.objects.filter(pk=directory.pk).update(sync_lock_token="newer-run")

    assert reclaim_interrupted_runs() == [run]


def test_a_run_from_before_lock_tokens_is_reclaimed_only_once_the_lock_expired(
    directory: Directory,
) -> None:
    run = abandoned_run(directory, lock_expired=False, token="")
    Directory.objects.filter(pk=directory.pk).update(sync_lock_token="someone")
    assert reclaim_interrupted_runs() == []
    Directory.objects.filter(pk=directory.pk).update(
        sync_lock_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert reclaim_interrupted_runs() == [run]


def test_the_next_sync_reclaims_the_dead_run_before_it_starts(
    directory: Directory, graph: FakeGraph
) -> None:
    dead = abandoned_run(directory)
    graph.add_group(make_group("Engineering"), [make_user("Ada")])

    run = sync(directory, graph)

    dead.refresh_from_db()
    assert dead.error_class == "interrupted"
    assert run.status == SyncRun.Status.SUCCEEDED
    directory.refresh_from_db()
    assert directory.consecutive_failures == 0  # the success came after


def test_a_worker_killed_every_time_alerts_the_admins(directory: Directory, settings: Any) -> None:
    settings.SYNC_ALERT_AFTER_FAILURES = 3
    get_user_model().objects.create_superuser("root", "root@example.com", "x")
    for _ in range(3):
        abandoned_run(directory)
        reclaim_interrupted_runs()

    assert len(mail.outbox) == 1
    assert "worker running this sync stopped" in mail.outbox[0].body


def test_two_sweeps_at_once_reclaim_a_run_once(directory: Directory) -> None:
    abandoned_run(directory)
    first = reclaim_interrupted_runs(directory=directory)
    second = reclaim_interrupted_runs(directory=directory)
    assert (len(first), len(second)) == (1, 0)
    directory.refresh_from_db()
    assert directory.consecutive_failures == 1


def test_the_sweep_is_scheduled_every_few_minutes_once() -> None:
    reclaim_schedule_sync()
    reclaim_schedule_sync()

    schedule = Schedule.objects.get(name=RECLAIM_SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type) == (
        "directories.tasks.run_reclaim_interrupted",
        Schedule.MINUTES,
    )


def test_the_sweep_task_reports_what_it_reclaimed(directory: Directory) -> None:
    run = abandoned_run(directory)
    assert run_reclaim_interrupted() == {"reclaimed": [run.pk]}


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    yield
    assert threading.active_count() < 20


def test_a_long_user_listing_renews_the_lock_as_it_goes(
    directory: Directory, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph.add_group(make_group("Everyone"), [make_user(f"U{i:05}") for i in range(10_000)])
    renewals: list[bool] = []
    renew = DirectoryLock.renew

    def counted(self: DirectoryLock, *, force: bool = False) -> None:
        renewals.append(force)
        renew(self, force=force)

    monkeypatch.setattr(DirectoryLock, "renew", counted)
    renewed_while_listing_users: list[int] = []
    list_groups = graph.groups

    def groups_after_users() -> Any:
        renewed_while_listing_users.append(len(renewals))
        return list_groups()

    monkeypatch.setattr(graph, "groups", groups_after_users)

    sync(directory, graph)

    assert renewed_while_listing_users == [2]  # at 5,000 and 10,000 users


def test_a_stalled_run_reclaimed_meanwhile_stays_interrupted_and_writes_nothing(
    directory: Directory, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It went a whole TTL without renewing: declared dead, it must not come back to life."""
    graph.add_group(make_group("Engineering"), [make_user("Ada")])
    guard = mass_deletion_reason

    def stalled_past_the_ttl(*args: Any, **kwargs: Any) -> str | None:
        Directory.objects.filter(pk=directory.pk).update(
            sync_lock_expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert len(reclaim_interrupted_runs()) == 1  # the 5-minute sweep ran meanwhile
        return guard(*args, **kwargs)

    monkeypatch.setattr("directories.sync.engine.mass_deletion_reason", stalled_past_the_ttl)

    run = sync(directory, graph)

    run.refresh_from_db()
    assert (run.status, run.error_class) == (SyncRun.Status.FAILED, "interrupted")
    assert not SyncedUser.objects.exists()
    directory.refresh_from_db()
    assert directory.consecutive_failures == 1  # counted once
