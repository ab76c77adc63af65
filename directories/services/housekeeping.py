"""The install-wide schedules beside the per-directory syncs: one django-q2 Schedule each.

`schedule_ensure` creates or repairs one by name (safe to call at every `migrate`); the
reclaim of interrupted runs runs every few minutes, so a killed worker's run is failed, counted
and shown soon after its lock expires, even when no sync of that directory follows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from django_q.models import Schedule

RECLAIM_TASK = "directories.tasks.run_reclaim_interrupted"
RECLAIM_SCHEDULE_NAME = "reclaim-interrupted-runs"
RECLAIM_EVERY_MINUTES = 5


def schedule_ensure(name: str, wanted: dict[str, Any], next_run: datetime) -> None:
    """Create the named schedule with `wanted` fields, or repair it; keeps an unchanged one.

    Schedule.name is not unique: the oldest is kept and duplicates dropped. An unchanged
    schedule keeps its next_run, which django-q2 advances after each run.
    """
    existing = list(Schedule.objects.filter(name=name).order_by("pk"))
    for duplicate in existing[1:]:
        duplicate.delete()
    schedule = existing[0] if existing else None
    if schedule is not None and all(getattr(schedule, k) == v for k, v in wanted.items()):
        return
    if schedule is None:
        Schedule.objects.create(name=name, next_run=next_run, **wanted)
    else:
        Schedule.objects.filter(pk=schedule.pk).update(next_run=next_run, **wanted)


def reclaim_schedule_sync() -> None:
    """Every RECLAIM_EVERY_MINUTES: fail the runs whose worker died (`reclaim`)."""
    schedule_ensure(
        RECLAIM_SCHEDULE_NAME,
        {
            "func": RECLAIM_TASK,
            "args": "",
            "kwargs": "",
            "schedule_type": Schedule.MINUTES,
            "minutes": RECLAIM_EVERY_MINUTES,
            "repeats": -1,
        },
        timezone.now(),
    )
