"""Reads that commands and pages need."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import Directory, SyncRun


def sync_runs_recent(
    *, directory: Directory | None = None, failures_only: bool = False, limit: int = 20
) -> QuerySet[SyncRun]:
    runs = SyncRun.objects.select_related("directory").order_by("-started_at", "-pk")
    if directory is not None:
        runs = runs.filter(directory=directory)
    if failures_only:
        runs = runs.filter(status__in=[SyncRun.Status.FAILED, SyncRun.Status.NEEDS_APPROVAL])
    return runs[:limit]


def sync_run_summary(run: SyncRun) -> dict[str, Any]:
    """A run as the JSON that `sync_directory --json` and `sync_history --json` print."""
    duration = run.duration
    error = None
    if run.error_class:
        error = {
            "class": run.error_class,
            "message": run.error_message,
            "remediation": run.error_remediation,
            "request_id": run.graph_request_id or None,
        }
    return {
        "run_id": run.pk,
        "directory": run.directory.name,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "seconds": round(duration.total_seconds(), 3) if duration else None,
        "users": {
            "seen": run.users_seen,
            "created": run.users_created,
            "updated": run.users_updated,
            "removed": run.users_removed,
        },
        "groups": {
            "seen": run.groups_seen,
            "created": run.groups_created,
            "updated": run.groups_updated,
            "removed": run.groups_removed,
        },
        "memberships": {
            "seen": run.memberships_seen,
            "created": run.memberships_created,
            "removed": run.memberships_removed,
        },
        "requests": run.graph_requests,
        "retries": run.graph_retries,
        "error": error,
    }
