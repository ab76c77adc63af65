"""directory_sync: fetch -> plan -> guard -> apply, recorded as a SyncRun either way."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from directories.graph import ErrorClass, GraphError
from directories.models import Directory, SyncRun
from directories.services.graph import graph_client_for
from directories.services.notifications import directory_notify_run

from .apply import apply_plan
from .collector import collector_paused
from .guard import mass_deletion_reason, planned_removals
from .lock import SyncLockLost, directory_lock
from .plan import SyncPlan, plan_changes, plan_unchanged
from .read import directory_read
from .reader import DirectoryReader
from .snapshot import FetchProgress, ProgressCallback

logger = logging.getLogger(__name__)

APPROVAL_REMEDIATION = (
    "Review the planned removals. If they are expected, approve the run in the admin or run "
    "`manage.py sync_directory NAME --allow-mass-delete`; otherwise fix the group assignments "
    "in Entra ID and sync again."
)
INTERNAL_REMEDIATION = "Nothing was changed. Report this with the server log."


class SyncRefused(Exception):
    """The directory cannot sync now (not verified, disabled); nothing was recorded."""


@dataclass
class SyncOutcome:
    """What a sync did: the recorded run (None for a dry run) and the plan it computed."""

    directory: Directory
    run: SyncRun | None
    plan: SyncPlan | None
    dry_run: bool
    seconds: float
    requests: int
    retries: int
    error: GraphError | None = None
    read_mode: str = ""

    @property
    def status(self) -> str:
        if self.run is not None:
            return self.run.status
        return "dry_run"

    @property
    def ok(self) -> bool:
        return self.status in (SyncRun.Status.SUCCEEDED, "dry_run")


def directory_check_ready(directory: Directory) -> None:
    """Refuse (SyncRefused) a directory that may not sync: see `Directory.sync_refusal`."""
    refusal = directory.sync_refusal()
    if refusal is not None:
        raise SyncRefused(refusal)


def directory_sync(
    *,
    directory: Directory,
    trigger: str,
    dry_run: bool = False,
    allow_mass_delete: bool = False,
    client: DirectoryReader | None = None,
    auth_app_id: str | None = None,
    progress: ProgressCallback | None = None,
) -> SyncOutcome:
    """Bring the local copy of one directory up to date with Entra ID.

    A dry run reads and plans only. A real run holds the directory's lock, records a SyncRun
    and either applies the whole plan in one transaction or changes nothing. `client` and
    `auth_app_id` default to the configured Graph client and Authentication application.
    """
    directory_check_ready(directory)
    started = time.monotonic()
    if dry_run:
        client = client or graph_client_for(tenant_id=directory.tenant_id)
        read = directory_read(
            directory=directory,
            client=client,
            auth_app_id=auth_app_id,
            progress=progress,
            workers=settings.GRAPH_CONCURRENCY,
        )  # never saved: a dry run leaves the mirror and the delta links as they were
        return SyncOutcome(
            directory=directory,
            run=None,
            plan=plan_unchanged(directory=directory)
            if read.snapshot is None
            else plan_changes(directory=directory, snapshot=read.snapshot),
            dry_run=True,
            seconds=time.monotonic() - started,
            requests=client.stats.requests,
            retries=client.stats.retries,
            read_mode=read.read_mode,
        )

    with (
        directory_lock(directory, ttl_seconds=settings.SYNC_LOCK_TTL_SECONDS) as lock,
        collector_paused(),
    ):
        run = SyncRun.objects.create(directory=directory, trigger=trigger)
        plan: SyncPlan | None = None
        error: GraphError | None = None
        try:
            client = client or graph_client_for(
                tenant_id=directory.tenant_id,
                low_priority=trigger == SyncRun.Trigger.SCHEDULE,
            )
            record_progress = _progress_recorder(run)

            def on_progress(state: FetchProgress) -> None:
                lock.renew()
                record_progress(state)
                if progress:
                    progress(state)

            read = directory_read(
                directory=directory,
                client=client,
                auth_app_id=auth_app_id,
                progress=on_progress,
                workers=settings.GRAPH_CONCURRENCY,
            )
            run.read_mode = read.read_mode
            plan = (
                plan_unchanged(directory=directory)
                if read.snapshot is None
                else plan_changes(directory=directory, snapshot=read.snapshot)
            )
            read.snapshot = None  # the plan holds what apply needs: free the rest before it
            lock.renew(force=True)
            _guard_or_apply(
                directory, run, plan, allow_mass_delete=allow_mass_delete, save_read=read.save
            )
        except GraphError as exc:
            error = exc
            _record_error(run, exc.error_class, exc.message, exc.remediation, exc.request_id)
        except SyncLockLost as exc:
            _record_error(run, ErrorClass.INTERNAL, str(exc), "Sync again.", None)
        except Exception as exc:
            message = f"Unexpected error: {type(exc).__name__}: {exc}"
            _record_error(run, ErrorClass.INTERNAL, message, INTERNAL_REMEDIATION, None)
            raise
        finally:
            _finish(directory, run, plan, client)
    return SyncOutcome(
        directory=directory,
        run=run,
        plan=plan,
        dry_run=False,
        seconds=time.monotonic() - started,
        requests=run.graph_requests,
        retries=run.graph_retries,
        error=error,
        read_mode=run.read_mode,
    )


def _guard_or_apply(
    directory: Directory,
    run: SyncRun,
    plan: SyncPlan,
    *,
    allow_mass_delete: bool,
    save_read: Callable[[], None],
) -> None:
    """Hold a plan that removes too much for approval; otherwise apply it in one transaction."""
    reason = None
    if not allow_mass_delete:
        reason = mass_deletion_reason(
            plan, ratio=settings.SYNC_MASS_DELETE_RATIO, floor=settings.SYNC_MASS_DELETE_MIN
        )
    if reason:
        run.status = SyncRun.Status.NEEDS_APPROVAL
        run.error_class = ErrorClass.NEEDS_APPROVAL
        run.error_message = reason
        run.error_remediation = APPROVAL_REMEDIATION
        run.planned_removals = planned_removals(plan)
        return
    # The mirror and the delta links move only with the synced copy: one transaction.
    with transaction.atomic():
        apply_plan(directory=directory, plan=plan, now=timezone.now())
        save_read()
    run.status = SyncRun.Status.SUCCEEDED


PROGRESS_INTERVAL_SECONDS = 1.0


def _progress_recorder(run: SyncRun) -> ProgressCallback:
    """Write fetch progress to the run, at most about once a second and always at the end.

    A page polls the run to show "objects fetched so far"; a single-row UPDATE keeps this
    cheap and outside the apply transaction.
    """
    last_write = -PROGRESS_INTERVAL_SECONDS

    def record(state: FetchProgress) -> None:
        nonlocal last_write
        finished = state.groups_done >= state.groups_total
        if not finished and time.monotonic() - last_write < PROGRESS_INTERVAL_SECONDS:
            return
        last_write = time.monotonic()
        run.groups_total, run.groups_done = state.groups_total, state.groups_done
        run.users_seen, run.progress_at = state.users_seen, timezone.now()
        SyncRun.objects.filter(pk=run.pk).update(
            groups_total=run.groups_total,
            groups_done=run.groups_done,
            users_seen=run.users_seen,
            progress_at=run.progress_at,
        )

    return record


def _record_error(
    run: SyncRun, error_class: str, message: str, remediation: str, request_id: str | None
) -> None:
    run.status = SyncRun.Status.FAILED
    run.error_class = error_class
    run.error_message = message
    run.error_remediation = remediation
    run.graph_request_id = request_id or ""


def _finish(
    directory: Directory, run: SyncRun, plan: SyncPlan | None, client: DirectoryReader | None
) -> None:
    """Save the run and the directory's summary of it."""
    run.finished_at = timezone.now()
    if client is not None:
        run.graph_requests = client.stats.requests
        run.graph_retries = client.stats.retries
    if plan is not None:
        run.set_counts(plan.counts(), applied=run.status == SyncRun.Status.SUCCEEDED)
    run.save()

    summary: dict[str, Any] = {
        "last_sync_at": run.finished_at,
        "last_sync_status": run.status,
        "error_class": run.error_class,
        "error_message": run.error_message,
    }
    if run.status == SyncRun.Status.SUCCEEDED:
        summary |= {
            "last_success_at": run.finished_at,
            "last_sync_summary": run.summary()[:255],
            "consecutive_failures": 0,
        }
    elif run.status == SyncRun.Status.FAILED:
        summary |= {
            "last_sync_summary": f"Failed: {run.error_message}"[:255],
            "consecutive_failures": F("consecutive_failures") + 1,
        }
        logger.warning("Sync of %s failed (%s): %s", directory, run.error_class, run.error_message)
    else:
        summary["last_sync_summary"] = "Waiting for approval of a mass deletion"
    failures_before = directory.consecutive_failures
    Directory.objects.filter(pk=directory.pk).update(**summary)
    directory.refresh_from_db()
    directory_notify_run(directory=directory, run=run, failures_before=failures_before)
