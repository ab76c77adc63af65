"""E-mail to admins when a directory fails persistently, while it needs attention, and when it
recovers.

One failed run is usually Graph having a bad minute (it is retried on schedule); an admin is
told once the failures reach SYNC_ALERT_AFTER_FAILURES in a row, or as soon as the directory
needs attention (`directories.services.attention`: its scheduled syncs are then paused). While
it needs attention, reminders follow 1 h, 4 h and 24 h after the first alert, then daily —
often enough not to be forgotten, rarely enough not to be filtered away. `alerted_at` records
the last one. A run that succeeds after an alert is reported once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.utils import timezone

from directories.models import Directory, SyncRun

logger = logging.getLogger(__name__)

# The gaps between reminders while a directory needs attention; the last one repeats.
REMINDER_GAPS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))

UNCHANGED = (
    "Nothing was changed by the failed runs; the local copy is as of the last successful sync."
)


def admin_recipients() -> list[str]:
    """Superusers' addresses and settings.ADMINS, each once."""
    addresses = [email for _, email in settings.ADMINS]
    addresses += (
        get_user_model()
        .objects.filter(is_superuser=True, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    return list(dict.fromkeys(addresses))


def reminder_due_at(*, attention_since: datetime, alerted_at: datetime) -> datetime:
    """When the next reminder is due, counted from when the directory began to need attention.

    Counting from the start (1 h, 5 h, 29 h, 53 h … after it) rather than from the last mail
    keeps the rhythm when reminders go out late: they are checked only when the paused
    schedule comes round (every SYNC_INTERVAL_MINUTES) or a sync by hand fails.
    """
    due = attention_since
    gaps = iter(REMINDER_GAPS)
    while due <= alerted_at:
        due += next(gaps, REMINDER_GAPS[-1])
    return due


def _latest_failure(directory: Directory) -> SyncRun | None:
    return (
        SyncRun.objects.filter(directory=directory, status=SyncRun.Status.FAILED)
        .order_by("-started_at", "-pk")
        .first()
    )


def _failure_lines(run: SyncRun | None) -> list[str]:
    if run is None:
        return []
    lines = [f"Error class: {run.error_class}"]
    if run.graph_request_id:
        lines.append(f"Graph request-id (for Microsoft support): {run.graph_request_id}")
    return lines


def _send(
    directory: Directory,
    subject: str,
    lines: list[str],
    *,
    previous: datetime | None,
    now: datetime,
) -> bool:
    """Send to the admins and record it in `alerted_at`, unless another process just did.

    The conditional update claims the alert: a paused schedule's reminder and a failing Sync
    Now at the same moment send one e-mail, not two.
    """
    recipients = admin_recipients()
    if not recipients:
        logger.warning("%s (no admin has an e-mail address to tell)", subject)
        return False
    claimed = Directory.objects.filter(pk=directory.pk, alerted_at=previous).update(alerted_at=now)
    if not claimed:
        return False
    directory.alerted_at = now
    send_mail(subject, "\n".join(lines), None, recipients, fail_silently=True)
    return True


def directory_notify_attention(
    *, directory: Directory, run: SyncRun | None = None, now: datetime | None = None
) -> bool:
    """The first alert when a directory comes to need attention, then the reminders as due.

    `run` is the failed run that prompted it (None when the paused schedule asks; the latest
    failed run then gives the error class and request id). Returns whether a mail went out.
    """
    since = directory.attention_since
    if since is None:
        return False
    now = now or timezone.now()
    previous = directory.alerted_at
    first = previous is None or previous < since
    if not first:
        assert previous is not None
        if now < reminder_due_at(attention_since=since, alerted_at=previous):
            return False
    name = directory.name
    if first:
        subject = f"entra-sync: {name} is failing to sync and needs attention"
        opening = f"{name} needs attention: its scheduled syncs are paused until it is fixed."
    else:
        subject = f"entra-sync: {name} still needs attention"
        opening = (
            f"{name} still needs attention: its scheduled syncs have been paused since "
            f"{timezone.localtime(since):%Y-%m-%d %H:%M %Z}."
        )
    lines = [
        opening,
        "",
        *directory.attention_reason.splitlines(),
        *_failure_lines(run or _latest_failure(directory)),
        "",
        "Once it is fixed, verify the directory again (Verify Now in the admin, or "
        f"`manage.py verify_directory {name}`) or sync it by hand (Sync Now, or "
        f"`manage.py sync_directory {name}`): either resumes its scheduled syncs.",
        UNCHANGED,
    ]
    return _send(directory, subject, lines, previous=previous, now=now)


def directory_notify_run(*, directory: Directory, run: SyncRun, failures_before: int) -> bool:
    """After each finished run: alert, remind or report the recovery as due (see the module).

    `directory` carries the summary of this run (and its attention state); `failures_before`
    is its consecutive failures before the run. Returns whether a mail went out.
    """
    threshold = settings.SYNC_ALERT_AFTER_FAILURES
    now = run.finished_at or timezone.now()
    if run.status == SyncRun.Status.FAILED:
        if directory.attention_since is not None:
            return directory_notify_attention(directory=directory, run=run, now=now)
        if directory.consecutive_failures != threshold or directory.alerted_at is not None:
            return False
        lines = [
            f"The last {threshold} syncs of {directory.name} failed.",
            "",
            f"What failed: {run.error_message}",
            f"What to do: {run.error_remediation}",
            *_failure_lines(run),
            "",
            UNCHANGED,
        ]
        subject = f"entra-sync: {directory.name} is failing to sync"
        return _send(directory, subject, lines, previous=None, now=now)
    if run.status != SyncRun.Status.SUCCEEDED:
        return False
    alerted = directory.alerted_at is not None or failures_before >= threshold
    if directory.alerted_at is not None:
        Directory.objects.filter(pk=directory.pk).update(alerted_at=None)
        directory.alerted_at = None
    if not alerted:
        return False
    subject = f"entra-sync: {directory.name} syncs again"
    lines = [
        f"{directory.name} synced successfully after {failures_before} failed "
        f"run{'' if failures_before == 1 else 's'}.",
        f"Changes: {run.summary()}.",
        "Its scheduled syncs run as usual.",
    ]
    recipients = admin_recipients()
    if not recipients:
        logger.warning("%s (no admin has an e-mail address to tell)", subject)
        return False
    send_mail(subject, "\n".join(lines), None, recipients, fail_silently=True)
    return True
