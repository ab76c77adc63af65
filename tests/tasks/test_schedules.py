"""Every verified, enabled directory has a django-q2 schedule, spread across the interval."""

from __future__ import annotations

import ast
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from directories.models import Directory, SyncRun
from directories.services.directories import directory_add, directory_delete, directory_save
from directories.services.schedules import (
    SYNC_TASK,
    directory_schedule_sync,
    schedule_name,
    schedule_next_run,
    schedules_sync_all,
)
from directories.services.verify import TenantProbe, directory_mark_verified
from directories.tasks import run_directory_sync
from tests.factories import DirectoryFactory

from ..sync.fakes import FakeGraph, make_group, make_user

pytestmark = pytest.mark.django_db


def schedule_of(directory: Directory) -> Schedule | None:
    return Schedule.objects.filter(name=schedule_name(directory.pk)).first()


def test_saving_a_verified_enabled_directory_schedules_it() -> None:
    directory = DirectoryFactory()

    schedule = schedule_of(directory)

    assert schedule is not None
    assert schedule.name == f"sync-directory-{directory.pk}"
    assert schedule.func == "directories.tasks.run_directory_sync"
    assert ast.literal_eval(schedule.args) == (directory.pk, "schedule")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 120, -1)
    assert timezone.now() < schedule.next_run <= timezone.now() + timedelta(minutes=120)


def test_an_unverified_directory_is_scheduled_once_verified() -> None:
    directory = DirectoryFactory(verified_at=None)
    assert schedule_of(directory) is None

    directory_mark_verified(
        directory=directory,
        probe=TenantProbe(directory.tenant_id, "Contoso", "contoso.com", assigned_groups=None),
    )

    assert schedule_of(directory) is not None


def test_disabling_or_deleting_a_directory_removes_its_schedule() -> None:
    disabled, deleted = DirectoryFactory(), DirectoryFactory()

    disabled.is_enabled = False
    directory_save(directory=disabled)
    deleted_pk = deleted.pk
    directory_delete(directory=deleted)

    assert schedule_of(disabled) is None
    assert not Schedule.objects.filter(name=schedule_name(deleted_pk)).exists()


def test_a_directory_added_by_the_service_is_not_scheduled_until_verified() -> None:
    directory = directory_add(name="Fabrikam", mode="all", tenant_id=str(uuid.uuid4()))

    assert schedule_of(directory) is None


def test_the_schedule_task_path_names_the_sync_task() -> None:
    assert import_string(SYNC_TASK) is run_directory_sync


def test_it_is_idempotent_and_keeps_one_schedule_per_directory() -> None:
    directory = DirectoryFactory()
    first = schedule_of(directory)
    assert first is not None
    Schedule.objects.create(name=first.name, func="stray.duplicate", next_run=timezone.now())

    directory_schedule_sync(directory=directory)
    directory_schedule_sync(directory=directory)

    assert list(Schedule.objects.filter(name=first.name)) == [first]
    kept = schedule_of(directory)
    assert kept is not None and kept.next_run == first.next_run


def test_a_changed_interval_is_applied_by_schedules_sync_all(settings: object) -> None:
    directory = DirectoryFactory()
    Schedule.objects.create(name="sync-directory-999999", func="gone", next_run=timezone.now())
    settings.SYNC_INTERVAL_MINUTES = 30  # type: ignore[attr-defined]

    schedules_sync_all()

    schedule = schedule_of(directory)
    assert schedule is not None and schedule.minutes == 30
    assert schedule.next_run <= timezone.now() + timedelta(minutes=30)
    assert not Schedule.objects.filter(name="sync-directory-999999").exists()


def test_directories_start_at_different_points_of_the_interval() -> None:
    now = timezone.now()
    starts = {schedule_next_run(pk, 120, now) for pk in range(1, 21)}

    assert len(starts) >= 18  # crc32 offsets in 7200 seconds: collisions are rare
    assert all(now < start <= now + timedelta(minutes=120) for start in starts)
    # Deterministic, and on a fixed grid: the next slot is one interval later.
    assert schedule_next_run(7, 120, now) == schedule_next_run(7, 120, now)
    later = schedule_next_run(7, 120, schedule_next_run(7, 120, now))
    assert later - schedule_next_run(7, 120, now) == timedelta(minutes=120)


def test_a_scheduled_run_uses_the_schedule_trigger_and_low_priority(graph: FakeGraph) -> None:
    directory = DirectoryFactory()
    graph.add_group(make_group("Engineering"), [make_user("Ada")])
    schedule = schedule_of(directory)
    assert schedule is not None

    summary = run_directory_sync(*ast.literal_eval(schedule.args))

    assert summary["trigger"] == SyncRun.Trigger.SCHEDULE
    assert summary["status"] == "succeeded"
    assert graph.client_kwargs == [  # type: ignore[attr-defined]
        {"tenant_id": directory.tenant_id, "low_priority": True}
    ]


def test_a_scheduled_run_of_a_disabled_directory_removes_its_schedule(graph: FakeGraph) -> None:
    directory = DirectoryFactory(name="Contoso")
    Directory.objects.filter(pk=directory.pk).update(is_enabled=False)  # no signal

    summary = run_directory_sync(directory.pk, SyncRun.Trigger.SCHEDULE)

    assert summary["status"] == "refused"
    assert "Contoso is disabled" in summary["message"]
    assert schedule_of(directory) is None
    assert not SyncRun.objects.exists()
