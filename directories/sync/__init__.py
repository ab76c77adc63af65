"""The sync engine: fetch the whole scope, plan the difference, guard, apply in one transaction."""

from __future__ import annotations

from .lock import SyncAlreadyRunning
from .service import SyncOutcome, SyncRefused, directory_sync

__all__ = ["SyncAlreadyRunning", "SyncOutcome", "SyncRefused", "directory_sync"]
