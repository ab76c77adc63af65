"""Runs whose worker died: reclaimed as failed (`interrupted`), counted and shown.

A worker killed mid-sync (out of memory, a deploy, SIGKILL) leaves its run "running" and its
lock to expire. Once the lock is no longer the run's — expired, or taken by a newer run — the
run can never finish, so it is failed here: the badge, the troubleshooting page and the
failure counter (and so the admins' alert) see it like any other failure. The database was
not changed by it: apply is one transaction.
"""

from __future__ import annotations

import logging

from django.db.models import F, Q
from django.utils import timezone

from directories.graph import ErrorClass
from directories.models import Directory, SyncRun

logger = logging.getLogger(__name__)

INTERRUPTED_MESSAGE = (
    "The worker running this sync stopped before it finished (killed, out of memory or restarted)."
)
INTERRUPTED_REMEDIATION = (
    "Nothing was changed; the next sync starts over. If it keeps happening, check the "
    "worker's memory limit and its log around the run's start time."
)


def reclaim_interrupted_runs(*, directory: Directory | None = None) -> list[SyncRun]:
    """Fail every "running" run whose lock is gone; returns the runs reclaimed.

    Each run is claimed with a conditional UPDATE (still running, lock still not its own),
    so two workers sweeping at once reclaim it once and a live run is never touched.
    """
    from .engine import directory_record_outcome  # the engine imports this module

    now = timezone.now()
    running = SyncRun.objects.filter(status=SyncRun.Status.RUNNING)
    if directory is not None:
        running = running.filter(directory=directory)
    lock_lost = (
        Q(directory__sync_lock_expires_at__isnull=True)
        | Q(directory__sync_lock_expires_at__lt=now)
        # Taken by another run (a run from before lock tokens were recorded: by expiry only).
        | (~Q(lock_token="") & ~Q(directory__sync_lock_token=F("lock_token")))
    )
    reclaimed = []
    for run in running.filter(lock_lost).select_related("directory"):
        still_lost = SyncRun.objects.filter(lock_lost, pk=run.pk, status=SyncRun.Status.RUNNING)
        claimed = still_lost.update(
            status=SyncRun.Status.FAILED,
            error_class=ErrorClass.INTERRUPTED,
            error_message=INTERRUPTED_MESSAGE,
            error_remediation=INTERRUPTED_REMEDIATION,
            finished_at=now,
        )
        if not claimed:
            continue
        run.refresh_from_db()
        logger.warning(
            "Sync run %s of %s was interrupted: its worker stopped.", run.pk, run.directory
        )
        directory_record_outcome(run.directory, run)
        reclaimed.append(run)
    return reclaimed
