"""directory_sync: fetch -> plan -> guard -> apply, recorded as a SyncRun either way."""

from __future__ import annotations

import getpass
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from directories.graph import ErrorClass, GraphError
from directories.models import Directory, SyncRun
from directories.services.attention import directory_attention_update
from directories.services.graph import graph_client_for
from directories.services.notifications import directory_notify_run

from .apply import apply_plan
from .collector import collector_paused
from .guard import HeldRemovals, mass_deletion_reason, planned_removals, removals_beyond
from .lock import DirectoryLock, SyncLockLost, directory_lock
from .plan import SyncPlan, plan_changes, plan_unchanged
from .read import directory_read
from .reader import DirectoryReader
from .reclaim import reclaim_interrupted_runs
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


@dataclass(frozen=True)
class Approval:
    """An admin's approval of a held run: the sync may remove what that run would have."""

    run_id: int
    user_id: int | None = None


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


def run_starter_name(*, trigger: str, user: AbstractBaseUser | None) -> str:
    """Who started a run, in words kept on the run so that they outlive the user's deletion."""
    if user is not None:
        return user.get_username()[:150]
    if trigger == SyncRun.Trigger.SCHEDULE:
        return "schedule"
    if trigger == SyncRun.Trigger.COMMAND:
        return f"command ({_os_user()})"[:150]
    return ""


def _os_user() -> str:
    """The operator's login name; a container without USER or a passwd entry has none."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown user"


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
    approval: Approval | None = None,
    triggered_by: AbstractBaseUser | None = None,
    client: DirectoryReader | None = None,
    auth_app_id: str | None = None,
    progress: ProgressCallback | None = None,
) -> SyncOutcome:
    """Bring the local copy of one directory up to date with Entra ID.

    A dry run reads and plans only. A real run holds the directory's lock, records a SyncRun
    and either applies the whole plan in one transaction or changes nothing. `client` and
    `auth_app_id` default to the configured Graph client and Authentication application.
    `allow_mass_delete` lifts the guard (an operator's explicit flag); `approval` allows only
    what the approved held run would have removed. `triggered_by` is the admin who clicked
    (Sync Now, an approval); the run records them (see `run_starter_name`).
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
        # Whatever is still "running" here lost its worker: we hold the lock now.
        reclaim_interrupted_runs(directory=directory)
        run = SyncRun.objects.create(
            directory=directory,
            trigger=trigger,
            triggered_by_id=triggered_by.pk if triggered_by is not None else None,
            triggered_by_name=run_starter_name(trigger=trigger, user=triggered_by),
            lock_token=lock.token,
        )
        lock.run_id = run.pk
        approved = _record_approval(directory, run, approval)
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
                directory,
                run,
                plan,
                lock=lock,
                allow_mass_delete=allow_mass_delete,
                approved=approved,
                save_read=read.save,
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


def _record_approval(
    directory: Directory, run: SyncRun, approval: Approval | None
) -> HeldRemovals | None:
    """Tie this run to the held run an admin approved (who, when); None without approval.

    An approval of anything but a held run of this directory allows nothing: the run is
    guarded as usual.
    """
    if approval is None:
        return None
    held = SyncRun.objects.filter(
        pk=approval.run_id, directory=directory, status=SyncRun.Status.NEEDS_APPROVAL
    ).first()
    if held is None:
        logger.warning(
            "Approval of run %s ignored: not a held run of %s", approval.run_id, directory
        )
        return None
    now = timezone.now()
    run.approved_run, run.approved_by_id, run.approved_at = held, approval.user_id, now
    SyncRun.objects.filter(pk=held.pk).update(approved_by_id=approval.user_id, approved_at=now)
    return HeldRemovals.of_run(held)


def _guard_or_apply(
    directory: Directory,
    run: SyncRun,
    plan: SyncPlan,
    *,
    lock: DirectoryLock,
    allow_mass_delete: bool,
    approved: HeldRemovals | None,
    save_read: Callable[[], None],
) -> None:
    """Hold a plan that removes too much for approval; otherwise apply it in one transaction."""
    reason = None
    if not allow_mass_delete:
        reason = mass_deletion_reason(
            plan,
            ratio=settings.SYNC_MASS_DELETE_RATIO,
            floor=settings.SYNC_MASS_DELETE_MIN,
            approved=approved,
        )
    if reason:
        run.status = SyncRun.Status.NEEDS_APPROVAL
        run.error_class = ErrorClass.NEEDS_APPROVAL
        run.error_message = reason
        run.error_remediation = APPROVAL_REMEDIATION
        run.planned_removals = planned_removals(plan)
        if approved is not None:
            run.planned_removals["beyond_approval"] = removals_beyond(plan, approved)
        run.held_removals = HeldRemovals.of_plan(plan).as_json()
        return
    # The mirror and the delta links move only with the synced copy: one transaction, fenced
    # by the lock, so two applies can never interleave whatever the timing.
    with transaction.atomic():
        lock.fence()
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
        run.warnings = list(client.stats.warnings)
    if plan is not None:
        run.set_counts(plan.counts(), applied=run.status == SyncRun.Status.SUCCEEDED)
    # Saved only while still "running": a run reclaimed as interrupted meanwhile keeps that
    # record (it wrote nothing: the fence refused its apply), counted once.
    fields = {f.attname: getattr(run, f.attname) for f in SyncRun._meta.concrete_fields}
    fields.pop("id")
    saved = SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING).update(**fields)
    if not saved:
        logger.warning(
            "Run %s of %s was reclaimed as interrupted before it ended.", run.pk, directory
        )
        run.refresh_from_db()
        return
    directory_record_outcome(directory, run)


def directory_record_outcome(directory: Directory, run: SyncRun) -> None:
    """The directory's summary of its latest run, failure counting and the admins' e-mail.

    Called for every finished run: by the engine, and for a run whose worker died
    (`reclaim_interrupted_runs`).
    """
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
    directory_attention_update(directory=directory, run=run)
    directory_notify_run(directory=directory, run=run, failures_before=failures_before)
