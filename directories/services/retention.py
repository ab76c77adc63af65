"""Retention: prune old sync runs and long-removed users, groups and memberships.

A sync marks objects removed instead of deleting them and records every attempt, so without
pruning both grow forever. Once a day (a django-q2 schedule, or `manage.py prune_history`)
this deletes what is older than SYNC_RUN_RETENTION_DAYS and REMOVED_OBJECT_RETENTION_DAYS
(0 keeps forever). Present objects are never touched, and neither are a directory's latest run
(its pages show it), a run still running or one held for approval.

Rows go in chunks, each its own short statement, so millions of memberships never hold one
giant transaction or sit in memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django_q.models import Schedule

from directories.models import Directory, SyncRun
from directories.sync.lock import SyncAlreadyRunning, SyncLockLost, directory_lock
from identities.models import Membership, SyncedGroup, SyncedUser

from .housekeeping import schedule_ensure

CHUNK_SIZE = 1000
# What is pruned, in the order it is pruned: memberships before the users and groups they
# point to, so that deleting a user or group never cascades to a membership still kept.
PRUNED_KINDS = ("sync_runs", "memberships", "users", "groups")
# A queued sync has no run yet; a running one (or one a dead worker left "running") and one
# waiting for an admin's approval are kept whatever their age.
KEPT_RUN_STATUSES = (SyncRun.Status.RUNNING, SyncRun.Status.NEEDS_APPROVAL)

PRUNE_TASK = "directories.tasks.run_history_prune"
PRUNE_SCHEDULE_NAME = "prune-history"
# Daily, at night in TIME_ZONE: outside the hours when people read the history.
PRUNE_AT = time(3, 30)


@dataclass
class PruneResult:
    """What was pruned (or, in a dry run, would be), per kind."""

    dry_run: bool
    sync_run_retention_days: int
    removed_object_retention_days: int
    pruned: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(PRUNED_KINDS, 0)))
    # Directories whose removed objects were left for the next prune: a sync held the lock.
    skipped_directories: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The shape `prune_history --json` prints and the task returns."""
        return {
            "dry_run": self.dry_run,
            "retention_days": {
                "sync_runs": self.sync_run_retention_days,
                "removed_objects": self.removed_object_retention_days,
            },
            "pruned": dict(self.pruned),
            "skipped_directories": list(self.skipped_directories),
        }


def retention_cutoff(days: int, *, now: datetime) -> datetime | None:
    """Rows older than this are pruned; None when `days` is 0 (keep forever)."""
    return now - timedelta(days=days) if days > 0 else None


def history_prune(
    *, dry_run: bool = False, now: datetime | None = None, chunk_size: int = CHUNK_SIZE
) -> PruneResult:
    """Prune sync runs and removed objects past their retention; return the counts per kind.

    A directory's removed objects are pruned while holding its sync lock, so a sync never
    plans against rows that vanish before it applies (a revived user, a membership); a
    directory whose sync is running is skipped until the next prune. A dry run only counts.
    """
    now = now or timezone.now()
    result = PruneResult(
        dry_run=dry_run,
        sync_run_retention_days=settings.SYNC_RUN_RETENTION_DAYS,
        removed_object_retention_days=settings.REMOVED_OBJECT_RETENTION_DAYS,
    )
    run_cutoff = retention_cutoff(settings.SYNC_RUN_RETENTION_DAYS, now=now)
    removed_cutoff = retention_cutoff(settings.REMOVED_OBJECT_RETENTION_DAYS, now=now)
    pruned = result.pruned
    for directory in Directory.objects.order_by("pk"):
        if run_cutoff is not None:
            runs = _prunable_runs(directory, run_cutoff)
            if dry_run:
                pruned["sync_runs"] += runs.count()
            else:
                _delete_in_chunks(runs, chunk_size, deleted=pruned)
        if removed_cutoff is None:
            continue
        removed = _prunable_removed_objects(directory, removed_cutoff)
        if dry_run:
            for kind, queryset in removed:
                pruned[kind] += queryset.count()
        elif not _delete_removed_objects(directory, removed, chunk_size, deleted=pruned):
            result.skipped_directories.append(directory.name)
    return result


def _prunable_runs(directory: Directory, cutoff: datetime) -> QuerySet[SyncRun]:
    """Old finished runs, but never the directory's latest: its pages show that one."""
    latest = (
        SyncRun.objects.filter(directory=directory)
        .order_by("-started_at", "-pk")
        .values_list("pk", flat=True)
        .first()
    )
    runs = SyncRun.objects.filter(directory=directory, started_at__lt=cutoff).exclude(
        status__in=KEPT_RUN_STATUSES
    )
    return runs if latest is None else runs.exclude(pk=latest)


def _prunable_removed_objects(
    directory: Directory, cutoff: datetime
) -> list[tuple[str, QuerySet[Any]]]:
    """Memberships first; then users and groups no kept membership points to.

    A user or group removed long ago that still has a present or recently removed membership
    (which a sync should not leave, but the FK would cascade to) waits until that one goes.
    """
    kept_memberships = Membership.objects.filter(
        Q(removed_at__isnull=True) | Q(removed_at__gte=cutoff)
    )
    return [
        ("memberships", Membership.objects.filter(directory=directory, removed_at__lt=cutoff)),
        (
            "users",
            SyncedUser.objects.filter(directory=directory, removed_at__lt=cutoff).exclude(
                Exists(kept_memberships.filter(user=OuterRef("pk")))
            ),
        ),
        (
            "groups",
            SyncedGroup.objects.filter(directory=directory, removed_at__lt=cutoff).exclude(
                Exists(kept_memberships.filter(group=OuterRef("pk")))
            ),
        ),
    ]


def _delete_removed_objects(
    directory: Directory,
    removed: list[tuple[str, QuerySet[Any]]],
    chunk_size: int,
    *,
    deleted: Counter[str],
) -> bool:
    """Delete them under the directory's sync lock, counting into `deleted`.

    False if a sync holds the lock (or took it over from a prune that stalled): the rest is
    left for the next prune.
    """
    if not any(queryset.exists() for _kind, queryset in removed):
        return True  # nothing to prune: leave the lock to syncs
    try:
        with directory_lock(directory, ttl_seconds=settings.SYNC_LOCK_TTL_SECONDS) as lock:
            for _kind, queryset in removed:
                _delete_in_chunks(queryset, chunk_size, deleted=deleted, on_chunk=lock.renew)
    except (SyncAlreadyRunning, SyncLockLost):
        return False
    return True


_KIND_BY_MODEL = {
    SyncRun._meta.label: "sync_runs",
    Membership._meta.label: "memberships",
    SyncedUser._meta.label: "users",
    SyncedGroup._meta.label: "groups",
}


def _delete_in_chunks(
    queryset: QuerySet[Any],
    chunk_size: int,
    *,
    deleted: Counter[str],
    on_chunk: Callable[[], None] | None = None,
) -> None:
    """Delete what `queryset` matches, `chunk_size` rows per statement; count rows per kind.

    Each chunk is chosen and deleted with the queryset's own conditions, so a row that stopped
    matching in between stays. The counts include what the FKs cascaded to.
    """
    unordered = queryset.order_by()  # a model's default ordering would sort every chunk
    while pks := list(unordered.values_list("pk", flat=True)[:chunk_size]):
        _total, per_model = unordered.filter(pk__in=pks).delete()
        deleted.update({_KIND_BY_MODEL.get(label, label): n for label, n in per_model.items()})
        if on_chunk is not None:
            on_chunk()


def history_prune_schedule_sync() -> None:
    """Create the daily prune schedule, or repair it; safe to call repeatedly.

    It exists even when both retentions are 0: the task reads the settings when it runs, so
    changing them needs only a restart.
    """
    schedule_ensure(
        PRUNE_SCHEDULE_NAME,
        {
            "func": PRUNE_TASK,
            "args": "",
            "kwargs": "",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
        },
        prune_next_run(timezone.now()),
    )


def prune_next_run(now: datetime) -> datetime:
    """The next PRUNE_AT in the current time zone after `now`."""
    local = timezone.localtime(now)
    candidate = local.replace(hour=PRUNE_AT.hour, minute=PRUNE_AT.minute, second=0, microsecond=0)
    return candidate if candidate > local else candidate + timedelta(days=1)
