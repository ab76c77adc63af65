"""django-q2 tasks for syncing, and the daily prune of old history.

Tasks are thin: they take ids (a task package must survive pickling and a trip through Redis
or the database), load the directory and call `directory_sync`. Expected failures are recorded
on the run or logged, never raised, so the task queue's failure list stays for real bugs.
Sync Now queues them through `directories.services.sync_now`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser

from .graph import GraphError
from .models import Directory, SyncRun
from .selectors import sync_run_summary
from .services.attention import directory_schedule_pause
from .services.retention import history_prune
from .services.schedules import directory_schedule_remove, directory_schedule_sync
from .sync import SyncAlreadyRunning, SyncRefused, directory_sync
from .sync.engine import Approval
from .sync.reclaim import reclaim_interrupted_runs

logger = logging.getLogger(__name__)


def run_directory_sync(
    directory_id: int,
    trigger: str,
    queued: bool = False,
    approved_run_id: int | None = None,
    approved_by_id: int | None = None,
    triggered_by_id: int | None = None,
) -> dict[str, Any]:
    """The task: sync one directory and return the run summary (or why nothing ran).

    `queued` is set by `directory_sync_enqueue`, whose marker this task clears as it starts;
    `approved_run_id` / `approved_by_id` by an admin's approval of a held run;
    `triggered_by_id` names the admin who clicked, recorded on the run.
    """
    if queued:
        Directory.objects.filter(pk=directory_id).update(sync_requested_at=None, sync_task_id="")
    directory = Directory.objects.filter(pk=directory_id).first()
    if directory is None:
        directory_schedule_remove(directory_id=directory_id)
        logger.info("Directory %s no longer exists; its sync was dropped.", directory_id)
        return {"status": "missing", "directory_id": directory_id}
    if trigger == SyncRun.Trigger.SCHEDULE:
        # Needs attention: the schedule keeps firing (for reminders) but syncs nothing.
        paused = directory_schedule_pause(directory=directory)
        if paused is not None:
            return paused
    try:
        approval = (
            Approval(run_id=approved_run_id, user_id=approved_by_id)
            if approved_run_id is not None
            else None
        )
        outcome = directory_sync(
            directory=directory,
            trigger=trigger,
            approval=approval,
            triggered_by=_user(triggered_by_id),
        )
    except SyncRefused as exc:
        # A schedule that outlived its directory's verification or enablement: repair it.
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


def _user(user_id: int | None) -> AbstractBaseUser | None:
    """The admin who started the sync; None if none did, or if they were deleted meanwhile."""
    if user_id is None:
        return None
    return get_user_model().objects.filter(pk=user_id).first()


def run_history_prune() -> dict[str, Any]:
    """The daily task: prune old sync runs and long-removed objects (`history_prune`)."""
    result = history_prune().as_dict()
    logger.info("History pruned: %s", result)
    return result


def run_reclaim_interrupted() -> dict[str, Any]:
    """Every few minutes: fail, count and report the runs whose worker died."""
    reclaimed = reclaim_interrupted_runs()
    if reclaimed:
        logger.warning("Reclaimed %d interrupted sync run(s).", len(reclaimed))
    return {"reclaimed": [run.pk for run in reclaimed]}
