"""Needs attention: a directory whose syncs keep failing is paused until a person fixes it.

Some failures do not go away by themselves (credentials refused, a permission missing, no
group assigned, the wrong tenant): the first such run marks the directory. Throttling, Graph
outages, malformed pages, our own bugs and killed workers usually do, so they mark it only
once no run has read the directory for SYNC_ATTENTION_AFTER_HOURS and the runs kept failing
all that time. Retrying either every two hours would only fill the history with the same
failure, so a marked directory's scheduled syncs are paused (`directory_schedule_pause`);
Sync Now and `sync_directory NAME` still run, so an admin can check a fix.

The mark is cleared by verifying the directory again (`directory_mark_verified`) or by a run
that reads the directory: one that succeeds, or one held for approval, which proves Graph
answers again (its removals then wait for a person, as they would anyway).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from directories.graph import ErrorClass
from directories.models import Directory, SyncRun

from .notifications import directory_notify_attention

logger = logging.getLogger(__name__)

# What will not fix itself, in the words the admin reads first (the run's own message follows).
PERSISTENT_CAUSES: dict[str, str] = {
    ErrorClass.UNAUTHORIZED: "Microsoft refused entra-sync's credentials for this tenant",
    ErrorClass.FORBIDDEN: "Microsoft Graph denied a permission entra-sync needs",
    ErrorClass.NOT_ASSIGNED: "No groups can be read in 'Assigned groups only' mode",
    ErrorClass.WRONG_TENANT: "The tenant answering is not the one this directory is connected to",
}
# Runs that read the directory: Graph answered, whatever the mass-deletion guard then decided.
_READ_OK = (SyncRun.Status.SUCCEEDED, SyncRun.Status.NEEDS_APPROVAL)


def is_persistent(error_class: str) -> bool:
    """Whether a failure of this class marks the directory at once (not after hours)."""
    return error_class in PERSISTENT_CAUSES


def attention_after() -> timedelta:
    return timedelta(hours=settings.SYNC_ATTENTION_AFTER_HOURS)


def directory_failing_since(*, directory: Directory) -> datetime | None:
    """When the current run of failures began: the first failed run since the directory was
    last read or verified, or None if the latest run did not fail."""
    boundary = directory.verified_at
    last_read = (
        SyncRun.objects.filter(directory=directory, status__in=_READ_OK)
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    if last_read is not None and (boundary is None or last_read > boundary):
        boundary = last_read
    failures = SyncRun.objects.filter(directory=directory, status=SyncRun.Status.FAILED)
    if boundary is not None:
        failures = failures.filter(started_at__gt=boundary)
    return failures.order_by("started_at").values_list("started_at", flat=True).first()


def _hours(span: timedelta) -> str:
    hours = int(span.total_seconds() // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


def attention_reason(*, directory: Directory, run: SyncRun, now: datetime) -> str | None:
    """Why this failed run puts the directory in need of attention, or None if it does not.

    Three lines: why it is paused, and what failed and what to do, in the run's own words.
    """
    if is_persistent(run.error_class):
        cause = PERSISTENT_CAUSES[run.error_class]
    else:
        since = directory_failing_since(directory=directory)
        if since is None or now - since < attention_after():
            return None
        cause = f"No sync has read the directory for {_hours(now - since)}: every run failed"
    # Lines for the e-mail; the admin shows them as lines, commands as one line.
    return "\n".join(
        [f"{cause}.", f"What failed: {run.error_message}", f"What to do: {run.error_remediation}"]
    )


def directory_attention_update(*, directory: Directory, run: SyncRun) -> None:
    """Mark or clear "needs attention" after a finished run (the engine calls it for each run).

    A failure that is a reason keeps the first `attention_since` and refreshes the reason; one
    that is not (a passing error while already marked) leaves the mark as it was.
    """
    now = run.finished_at or timezone.now()
    changes: dict[str, Any] = {}
    if run.status == SyncRun.Status.FAILED:
        reason = attention_reason(directory=directory, run=run, now=now)
        if reason is not None:
            changes["attention_reason"] = reason
            if directory.attention_since is None:
                changes["attention_since"] = now
                logger.warning(
                    "%s needs attention; its scheduled syncs are paused: %s", directory, reason
                )
    elif run.status in _READ_OK and directory.attention_since is not None:
        changes = {"attention_since": None, "attention_reason": ""}
        logger.info("%s no longer needs attention: a sync read it again.", directory)
    if changes:
        Directory.objects.filter(pk=directory.pk).update(**changes)
        for name, value in changes.items():
            setattr(directory, name, value)


def schedule_pause_message(directory: Directory) -> str:
    """The one line a paused scheduled sync (or `sync_directory --all`) reports."""
    since = directory.attention_since
    when = timezone.localtime(since).strftime("%Y-%m-%d %H:%M") if since else "?"
    return (
        f"paused: needs attention since {when}. {directory.attention_reason} Scheduled syncs "
        f"resume once it is verified again or a sync of it succeeds (Sync Now, or "
        f"`manage.py sync_directory {directory.name}`)."
    )


def directory_schedule_pause(*, directory: Directory) -> dict[str, Any] | None:
    """What a scheduled sync of a directory that needs attention does instead of syncing.

    None if the scheduled sync should go ahead (not marked; or refused anyway, which the
    engine reports and repairs). Otherwise nothing runs and nothing is recorded — no failed
    run, no failure counted — and the admins get a reminder if one is due: the schedule keeps
    firing so that reminders go out without anyone syncing by hand.
    """
    if directory.attention_since is None or directory.sync_refusal() is not None:
        return None
    directory_notify_attention(directory=directory)
    message = schedule_pause_message(directory)
    logger.info("Scheduled sync of %s skipped: %s", directory, message)
    return {"status": "paused", "directory": directory.name, "message": message}
