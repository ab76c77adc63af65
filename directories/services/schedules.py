"""The django-q2 schedule of each directory: every SYNC_INTERVAL_MINUTES, spread out.

One idempotent function decides what a directory's schedule should be and makes it so. Every
service that changes a directory's verification, enablement or existence calls it (no save
signal: an `.update()` would slip past one); `schedules_sync_all` repairs every schedule after
migrate (the one signal left) or when SYNC_INTERVAL_MINUTES changes.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from directories.models import Directory, SyncRun

# The task every schedule and Sync Now runs, and the prefix of their names.
SYNC_TASK = "directories.tasks.run_directory_sync"
SCHEDULE_PREFIX = "sync-directory-"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def schedule_name(directory_id: int) -> str:
    return f"{SCHEDULE_PREFIX}{directory_id}"


def schedule_offset(directory_id: int, interval_minutes: int) -> timedelta:
    """Where in each interval a directory starts: stable across processes and restarts.

    crc32 rather than hash(): Python's hash of a string is salted per process.
    """
    seconds = interval_minutes * 60
    return timedelta(seconds=zlib.crc32(schedule_name(directory_id).encode()) % seconds)


def schedule_next_run(directory_id: int, interval_minutes: int, now: datetime) -> datetime:
    """The first start after `now` on the directory's own slot of the interval grid."""
    interval = timedelta(minutes=interval_minutes)
    first = _EPOCH + schedule_offset(directory_id, interval_minutes)
    periods = (now - first) // interval + 1
    return first + periods * interval


def directory_schedule_remove(*, directory_id: int) -> None:
    Schedule.objects.filter(name=schedule_name(directory_id)).delete()


def directory_schedule_sync(*, directory: Directory) -> None:
    """Create, update or remove the directory's schedule so it matches the directory.

    Verified, enabled directories sync every SYNC_INTERVAL_MINUTES with the schedule trigger
    (Graph then gets low-priority requests); others have no schedule. Safe to call repeatedly.
    A directory that needs attention keeps its schedule, whose task then syncs nothing and
    reminds the admins when due (`attention.directory_schedule_pause`): pausing costs no
    schedule change, and verifying or a successful sync resumes it without one.
    """
    name = schedule_name(directory.pk)
    if directory.sync_refusal() is not None:
        Schedule.objects.filter(name=name).delete()
        return
    interval = max(1, int(settings.SYNC_INTERVAL_MINUTES))
    wanted = {
        "func": SYNC_TASK,
        "args": repr((directory.pk, str(SyncRun.Trigger.SCHEDULE))),
        "kwargs": "",
        "schedule_type": Schedule.MINUTES,
        "minutes": interval,
        "repeats": -1,
    }
    # Schedule.name is not unique: keep the oldest and drop any duplicates.
    existing = list(Schedule.objects.filter(name=name).order_by("pk"))
    for duplicate in existing[1:]:
        duplicate.delete()
    schedule = existing[0] if existing else None
    if schedule is not None and all(getattr(schedule, k) == v for k, v in wanted.items()):
        return  # unchanged: keep next_run, which django-q2 advances after each run
    next_run = schedule_next_run(directory.pk, interval, timezone.now())
    if schedule is None:
        Schedule.objects.create(name=name, next_run=next_run, **wanted)
    else:
        Schedule.objects.filter(pk=schedule.pk).update(next_run=next_run, **wanted)


def schedules_sync_all() -> None:
    """Repair every directory's schedule and remove those of directories that are gone."""
    ids = set()
    for directory in Directory.objects.all():
        directory_schedule_sync(directory=directory)
        ids.add(schedule_name(directory.pk))
    Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX).exclude(name__in=ids).delete()
