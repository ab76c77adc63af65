"""The daily prune: one django-q2 schedule, created after migrate, whose task prunes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule
from pytest_django.fixtures import Settings

from directories.models import SyncRun
from directories.services.retention import (
    PRUNE_SCHEDULE_NAME,
    PRUNE_TASK,
    history_prune_schedule_sync,
    prune_next_run,
)
from directories.signals import schedules_repair_after_migrate
from directories.tasks import run_history_prune
from tests.factories import DirectoryFactory, SyncRunFactory

pytestmark = pytest.mark.django_db


def prune_schedules() -> list[Schedule]:
    return list(Schedule.objects.filter(name=PRUNE_SCHEDULE_NAME))


def test_migrate_creates_the_daily_prune_schedule_once() -> None:
    Schedule.objects.filter(name=PRUNE_SCHEDULE_NAME).delete()

    for _ in range(2):
        schedules_repair_after_migrate(apps.get_app_config("directories"))

    [schedule] = prune_schedules()
    assert (schedule.func, schedule.args, schedule.kwargs) == (PRUNE_TASK, "", "")
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.DAILY, -1)
    assert timezone.now() < schedule.next_run <= timezone.now() + timedelta(days=1)


def test_syncing_the_schedule_again_keeps_its_next_run() -> None:
    history_prune_schedule_sync()
    Schedule.objects.filter(name=PRUNE_SCHEDULE_NAME).update(
        next_run=timezone.now() + timedelta(hours=5)
    )
    before = prune_schedules()[0].next_run

    history_prune_schedule_sync()

    assert [s.next_run for s in prune_schedules()] == [before]


def test_a_changed_or_duplicated_schedule_is_repaired() -> None:
    history_prune_schedule_sync()
    original = prune_schedules()[0]
    Schedule.objects.filter(pk=original.pk).update(schedule_type=Schedule.HOURLY)
    Schedule.objects.create(name=PRUNE_SCHEDULE_NAME, func=PRUNE_TASK)

    history_prune_schedule_sync()

    [schedule] = prune_schedules()
    assert (schedule.pk, schedule.schedule_type) == (original.pk, Schedule.DAILY)


def test_the_sync_schedules_repair_leaves_the_prune_schedule_alone() -> None:
    history_prune_schedule_sync()
    DirectoryFactory()

    schedules_repair_after_migrate(apps.get_app_config("directories"))

    assert len(prune_schedules()) == 1


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 3, 1, 2, 0, tzinfo=UTC), datetime(2026, 3, 1, 3, 30, tzinfo=UTC)),
        (datetime(2026, 3, 1, 3, 30, tzinfo=UTC), datetime(2026, 3, 2, 3, 30, tzinfo=UTC)),
        (datetime(2026, 3, 1, 23, 0, tzinfo=UTC), datetime(2026, 3, 2, 3, 30, tzinfo=UTC)),
    ],
)
def test_the_prune_runs_at_night(settings: Settings, now: datetime, expected: datetime) -> None:
    settings.TIME_ZONE = "UTC"

    assert prune_next_run(now) == expected


def test_the_prune_runs_at_night_in_the_configured_time_zone(settings: Settings) -> None:
    settings.TIME_ZONE = "Europe/Paris"  # UTC+1 in winter

    next_run = prune_next_run(datetime(2026, 1, 10, 12, 0, tzinfo=UTC))

    assert next_run == datetime(2026, 1, 11, 2, 30, tzinfo=UTC)


def test_the_schedule_task_path_names_the_prune_task() -> None:
    assert import_string(PRUNE_TASK) is run_history_prune


def test_the_task_prunes_and_returns_the_counts(settings: Settings) -> None:
    settings.SYNC_RUN_RETENTION_DAYS = 90
    settings.REMOVED_OBJECT_RETENTION_DAYS = 90
    directory = DirectoryFactory()
    SyncRunFactory(directory=directory, started_at=timezone.now() - timedelta(days=91))
    SyncRunFactory(directory=directory)

    result = run_history_prune()

    assert result["pruned"] == {"sync_runs": 1, "memberships": 0, "users": 0, "groups": 0}
    assert result["dry_run"] is False
    assert SyncRun.objects.count() == 1
