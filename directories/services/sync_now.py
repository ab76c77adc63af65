"""Sync Now: queue a sync of one directory on the django-q2 cluster, once per click."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from directories.models import QUEUED_MARKER_TTL, Directory, SyncRun
from directories.sync import SyncAlreadyRunning
from directories.sync.engine import Approval, directory_check_ready

from .schedules import SCHEDULE_PREFIX, SYNC_TASK


class SyncAlreadyQueued(Exception):
    """A Sync Now of this directory is already waiting in the task queue."""


def directory_sync_enqueue(
    *,
    directory: Directory,
    trigger: str = SyncRun.Trigger.MANUAL,
    approval: Approval | None = None,
    triggered_by: AbstractBaseUser | None = None,
) -> str:
    """Queue a sync of one directory (Sync Now) and return the django-q2 task id.

    Refuses, with a sentence for the admin, a directory that cannot sync, one whose sync is
    running, and one that already has a Sync Now waiting: one click, one run.
    `approval` names the held run an admin approved (and who): the queued sync may remove
    what that run would have, and no more. `triggered_by` (the admin who clicked) goes to the
    task as an id, to be recorded on the run.
    """
    directory.refresh_from_db()
    directory_check_ready(directory)
    if directory.is_sync_running:
        raise SyncAlreadyRunning(
            f"A sync of {directory.name} is already running; its result will appear here when "
            "it has finished."
        )
    now = timezone.now()
    # One conditional UPDATE claims the marker, so two clicks racing cannot both queue.
    free = Q(sync_requested_at__isnull=True) | Q(sync_requested_at__lt=now - QUEUED_MARKER_TTL)
    claimed = Directory.objects.filter(free, pk=directory.pk).update(
        sync_requested_at=now, sync_task_id=""
    )
    if not claimed:
        raise SyncAlreadyQueued(
            f"A sync of {directory.name} is already queued; it starts as soon as a worker is free."
        )
    # Only an approval carries these, so ordinary task packages stay as they were.
    extra: dict[str, Any] = (
        {"approved_run_id": approval.run_id, "approved_by_id": approval.user_id}
        if approval is not None
        else {}
    )
    if triggered_by is not None:
        extra["triggered_by_id"] = triggered_by.pk
    try:
        task_id = str(
            async_task(
                SYNC_TASK,
                directory.pk,
                str(trigger),
                queued=True,
                task_name=f"{SCHEDULE_PREFIX}{directory.pk}-{now:%Y%m%dT%H%M%S}",
                **extra,
            )
        )
    except Exception:
        Directory.objects.filter(pk=directory.pk, sync_requested_at=now).update(
            sync_requested_at=None
        )
        raise
    # Filtered on our marker: a task that already ran (sync mode, a fast worker) cleared it.
    Directory.objects.filter(pk=directory.pk, sync_requested_at=now).update(sync_task_id=task_id)
    directory.refresh_from_db()
    return task_id
