"""Reads that commands and pages need."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from identities.models import SyncedGroup, SyncedUser

from .models import Directory, RunCounts, SyncRun
from .sync import SyncOutcome


def sync_runs_recent(
    *, directory: Directory | None = None, failures_only: bool = False, limit: int = 20
) -> QuerySet[SyncRun]:
    runs = SyncRun.objects.select_related("directory").order_by("-started_at", "-pk")
    if directory is not None:
        runs = runs.filter(directory=directory)
    if failures_only:
        runs = runs.filter(status__in=[SyncRun.Status.FAILED, SyncRun.Status.NEEDS_APPROVAL])
    return runs[:limit]


def sync_run_started_since(
    *, directory: Directory, trigger: str, since: datetime
) -> SyncRun | None:
    """The first run of `directory` started by `trigger` at or after `since`.

    For a caller whose sync raised: the engine records the run before it re-raises.
    """
    return (
        SyncRun.objects.select_related("directory")
        .filter(directory=directory, trigger=trigger, started_at__gte=since)
        .order_by("pk")
        .first()
    )


def _summary(
    *,
    run_id: int | None,
    directory: str,
    trigger: str,
    status: str,
    read_mode: str,
    started_at: datetime | None,
    finished_at: datetime | None,
    seconds: float | None,
    counts: RunCounts,
    requests: int,
    retries: int,
    error: dict[str, Any] | None,
) -> dict[str, Any]:
    """The one shape of a run summary, for a recorded run and a dry run alike."""
    return {
        "run_id": run_id,
        "directory": directory,
        "trigger": trigger,
        "status": status,
        "read": read_mode or None,
        "started_at": started_at.isoformat() if started_at else None,
        "finished_at": finished_at.isoformat() if finished_at else None,
        "seconds": round(seconds, 3) if seconds is not None else None,
        **counts,
        "requests": requests,
        "retries": retries,
        "error": error,
    }


def sync_run_summary(run: SyncRun) -> dict[str, Any]:
    """A run as the JSON that `sync_directory --json`, `sync_history --json` and tasks give."""
    duration = run.duration
    error = None
    if run.error_class:
        error = {
            "class": run.error_class,
            "message": run.error_message,
            "remediation": run.error_remediation,
            "request_id": run.graph_request_id or None,
        }
    return _summary(
        run_id=run.pk,
        directory=run.directory.name,
        trigger=run.trigger,
        status=run.status,
        read_mode=run.read_mode,
        started_at=run.started_at,
        finished_at=run.finished_at,
        seconds=duration.total_seconds() if duration else None,
        counts=run.counts(),
        requests=run.graph_requests,
        retries=run.graph_retries,
        error=error,
    )


def sync_outcome_summary(outcome: SyncOutcome) -> dict[str, Any]:
    """A sync's summary: its recorded run's, or for a dry run what the plan would change."""
    if outcome.run is not None:
        return sync_run_summary(outcome.run)
    assert outcome.plan is not None  # a dry run always has its plan
    return _summary(
        run_id=None,
        directory=outcome.directory.name,
        trigger=SyncRun.Trigger.COMMAND,
        status=outcome.status,
        read_mode=outcome.read_mode,
        started_at=None,
        finished_at=None,
        seconds=outcome.seconds,
        counts=outcome.plan.counts(),
        requests=outcome.requests,
        retries=outcome.retries,
        error=None,
    )


def sync_failure_summary(
    *,
    directory: Directory,
    error_class: str,
    message: str,
    remediation: str,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The summary of a sync that failed without a recorded run (a dry run, a crash before
    the run existed), in the same shape as every other."""
    return _summary(
        run_id=None,
        directory=directory.name,
        trigger=SyncRun.Trigger.COMMAND,
        status=SyncRun.Status.FAILED,
        read_mode="",
        started_at=None,
        finished_at=None,
        seconds=None,
        counts=SyncRun().counts(),  # all zero, in the usual shape
        requests=0,
        retries=0,
        error={
            "class": error_class,
            "message": message,
            "remediation": remediation,
            "request_id": request_id,
        },
    )


def synced_field_changes(
    *, model: type[SyncedUser] | type[SyncedGroup], updates: Mapping[int, Mapping[str, Any]]
) -> dict[int, dict[str, tuple[Any, Any]]]:
    """Old and new value of each column that a plan's updates (pk -> new values) change.

    The plan keeps only the new values; a dry run shows both, read here in one query (pass
    only the updates that will be shown). A row gone since the plan has no entry.
    """
    if not updates:
        return {}
    columns = sorted({column for values in updates.values() for column in values})
    old = {
        row["pk"]: row for row in model.objects.filter(pk__in=list(updates)).values("pk", *columns)
    }
    return {
        pk: {
            column: (old[pk][column], value)
            for column, value in new.items()
            if old[pk][column] != value
        }
        for pk, new in updates.items()
        if pk in old
    }
