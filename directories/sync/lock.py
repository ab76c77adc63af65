"""One sync per directory at a time, across processes and machines, via the database.

The lock is a token and an expiry on the directory row, taken with a single conditional
UPDATE (atomic on SQLite and PostgreSQL alike). The holder renews it while it works; if the
holder dies, the lock expires and the next run takes it over.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from directories.models import Directory, SyncRun


class SyncAlreadyRunning(Exception):
    """Another sync of the same directory holds the lock."""


class SyncLockLost(Exception):
    """Our lock expired and another run took it: stop before writing anything."""


class DirectoryLock:
    def __init__(self, directory_id: int, ttl_seconds: int) -> None:
        self.directory_id = directory_id
        self.ttl = timedelta(seconds=ttl_seconds)
        self.token = uuid.uuid4().hex
        self._renewed_at = 0.0
        self.run_id: int | None = None  # the run this lock is held for, once recorded

    def acquire(self) -> bool:
        now = timezone.now()
        taken = (
            Directory.objects.filter(pk=self.directory_id)
            .filter(Q(sync_lock_expires_at__isnull=True) | Q(sync_lock_expires_at__lt=now))
            .update(sync_lock_token=self.token, sync_lock_expires_at=now + self.ttl)
        )
        self._renewed_at = time.monotonic()
        return taken == 1

    def renew(self, *, force: bool = False) -> None:
        """Push the expiry forward (at most a few times per TTL); fail if the lock was taken."""
        if not force and time.monotonic() - self._renewed_at < self.ttl.total_seconds() / 4:
            return
        kept = self._extend()
        self._renewed_at = time.monotonic()
        if not kept:
            raise SyncLockLost(
                "This sync ran longer than the lock allows and another sync took over; "
                "it stopped without writing anything."
            )

    def fence(self) -> None:
        """Inside the apply transaction: prove the lock is still ours, and keep it so.

        The conditional UPDATE fails (SyncLockLost, the transaction rolls back) if another
        run took the lock; if not, it holds the directory row until COMMIT (PostgreSQL's row
        lock; SQLite's one writer), so no other run can take the lock or apply meanwhile,
        however long this apply stalls.
        """
        if not self._extend():
            raise SyncLockLost(
                "Another sync took over this directory before this one could apply its "
                "changes; this one stopped without writing anything."
            )
        # A run that went a whole TTL without renewing may have been declared interrupted
        # (`reclaim`) meanwhile: it stays so, and writes nothing. The row lock keeps a
        # reclaim from landing between this check and COMMIT.
        if self.run_id is not None and not (
            SyncRun.objects.select_for_update()
            .filter(pk=self.run_id, status=SyncRun.Status.RUNNING)
            .exists()
        ):
            raise SyncLockLost(
                "This run stalled past its lock and was recorded as interrupted; it stopped "
                "without writing anything."
            )

    def _extend(self) -> bool:
        """Push the expiry forward if the lock is still ours (one conditional UPDATE)."""
        return bool(
            Directory.objects.filter(pk=self.directory_id, sync_lock_token=self.token).update(
                sync_lock_expires_at=timezone.now() + self.ttl
            )
        )

    def release(self) -> None:
        Directory.objects.filter(pk=self.directory_id, sync_lock_token=self.token).update(
            sync_lock_token="", sync_lock_expires_at=None
        )


@contextmanager
def directory_lock(directory: Directory, *, ttl_seconds: int) -> Iterator[DirectoryLock]:
    lock = DirectoryLock(directory.pk, ttl_seconds)
    if not lock.acquire():
        raise SyncAlreadyRunning(
            f"A sync of {directory.name} is already running; try again when it has finished."
        )
    try:
        yield lock
    finally:
        lock.release()
