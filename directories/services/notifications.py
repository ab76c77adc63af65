"""E-mail to admins when a directory starts failing persistently, and when it recovers.

One failed run is usually Graph having a bad minute (it is retried on schedule); an admin is
told once the failures reach SYNC_ALERT_AFTER_FAILURES in a row, and again when a run succeeds.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from directories.models import Directory, SyncRun

logger = logging.getLogger(__name__)


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


def directory_notify_run(*, directory: Directory, run: SyncRun, failures_before: int) -> bool:
    """Send the failing or recovered e-mail when this run crosses the threshold."""
    threshold = settings.SYNC_ALERT_AFTER_FAILURES
    if run.status == SyncRun.Status.FAILED and directory.consecutive_failures == threshold:
        subject = f"entra-sync: {directory.name} is failing to sync"
        lines = [
            f"The last {threshold} syncs of {directory.name} failed.",
            "",
            f"What failed: {run.error_message}",
            f"What to do: {run.error_remediation}",
            f"Error class: {run.error_class}",
        ]
        if run.graph_request_id:
            lines.append(f"Graph request-id (for Microsoft support): {run.graph_request_id}")
        lines += [
            "",
            "Nothing was changed by the failed runs; the local copy is as of the last "
            "successful sync.",
        ]
    elif run.status == SyncRun.Status.SUCCEEDED and failures_before >= threshold:
        subject = f"entra-sync: {directory.name} syncs again"
        lines = [
            f"{directory.name} synced successfully after {failures_before} failed runs.",
            f"Changes: {run.summary()}.",
        ]
    else:
        return False
    recipients = admin_recipients()
    if not recipients:
        logger.warning("%s (no admin has an e-mail address to tell)", subject)
        return False
    send_mail(subject, "\n".join(lines), None, recipients, fail_silently=True)
    return True
