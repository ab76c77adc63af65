"""django-q2 tasks for syncing, and the Sync Now service that queues them.

Tasks are thin: they take ids (a task package must survive pickling and a trip through Redis
or the database), load the directory and call `directory_sync`. Expected failures are recorded
on the run or logged, never raised, so the task queue's failure list stays for real bugs.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from .graph import GraphError
from .models import Directory, SyncRun
from .selectors import sync_run_summary
from .sync import SyncAlreadyRunning, SyncRefused, directory_sync
from .sync.service import directory_check_ready

logger = logging.getLogger(__name__)

RUN_DIRECTORY_SYNC = "directories.tasks.run_directory_sync"
# A queued Sync Now whose task never started (a cluster that was down, a flushed Redis) must
# not block the button forever: after this long the marker is ignored.
QUEUED_MARKER_TTL = timedelta(hours=1)


class SyncAlreadyQueued(Exception):
    """A Sync Now of this directory is already waiting in the task queue."""


def directory_sync_is_running(directory: Directory) -> bool:
    """Whether a sync holds the directory's lock (an expired lock belongs to a dead worker)."""
    expires = directory.sync_lock_expires_at
    return bool(directory.sync_lock_token) and expires is not None and expires > timezone.now()


def directory_sync_is_queued(directory: Directory) -> bool:
    requested = directory.sync_requested_at
    return requested is not None and requested > timezone.now() - QUEUED_MARKER_TTL


def directory_sync_enqueue(
    *,
    directory: Directory,
    trigger: str = SyncRun.Trigger.MANUAL,
    allow_mass_delete: bool = False,
) -> str:
    """Queue a sync of one directory (Sync Now) and return the django-q2 task id.

    Refuses, with a sentence for the admin, a directory that cannot sync, one whose sync is
    running, and one that already has a Sync Now waiting: one click, one run.
    `allow_mass_delete` is for an admin's approval of a run the mass-deletion guard held.
    """
    directory.refresh_from_db()
    directory_check_ready(directory)
    if directory_sync_is_running(directory):
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
    # Only an approval carries the flag, so ordinary task packages stay as they were.
    extra: dict[str, Any] = {"allow_mass_delete": True} if allow_mass_delete else {}
    try:
        task_id = str(
            async_task(
                RUN_DIRECTORY_SYNC,
                directory.pk,
                str(trigger),
                queued=True,
                task_name=f"sync-directory-{directory.pk}-{now:%Y%m%dT%H%M%S}",
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


def run_directory_sync(
    directory_id: int, trigger: str, queued: bool = False, allow_mass_delete: bool = False
) -> dict[str, Any]:
    """The task: sync one directory and return the run summary (or why nothing ran).

    `queued` is set by `directory_sync_enqueue`, whose marker this task clears as it starts;
    `allow_mass_delete` by an admin's approval of a held run.
    """
    if queued:
        Directory.objects.filter(pk=directory_id).update(sync_requested_at=None, sync_task_id="")
    directory = Directory.objects.filter(pk=directory_id).first()
    if directory is None:
        from .schedules import directory_schedule_remove

        directory_schedule_remove(directory_id=directory_id)
        logger.info("Directory %s no longer exists; its sync was dropped.", directory_id)
        return {"status": "missing", "directory_id": directory_id}
    try:
        outcome = directory_sync(
            directory=directory, trigger=trigger, allow_mass_delete=allow_mass_delete
        )
    except SyncRefused as exc:
        # A schedule that outlived its directory's verification or enablement: repair it.
        from .schedules import directory_schedule_sync

        directory_schedule_sync(directory=directory)
        logger.info("Sync of %s refused: %s", directory, exc)
        return {"status": "refused", "directory": directory.name, "message": str(exc)}
    except SyncAlreadyRunning as exc:
        logger.info("Sync of %s skipped: %s", directory, exc)
        return {"status": "already_running", "directory": directory.name, "message": str(exc)}
    except GraphError as exc:
        # Raised before a run exists (e.g. no credentials configured); a run records the rest.
        logger.warning("Sync of %s failed before it started: %s", directory, exc.message)
        return {"status": "failed", "directory": directory.name, "message": exc.message}
    assert outcome.run is not None  # not a dry run
    return sync_run_summary(outcome.run)
