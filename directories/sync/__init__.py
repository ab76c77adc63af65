"""The sync engine: fetch the whole scope, plan the difference, guard, apply in one transaction.

`engine.directory_sync` is the entry point; `scope` is the one rule for what a directory
syncs; `reader.DirectoryReader` is what the engine needs from Graph.
"""

from __future__ import annotations

from .engine import SyncOutcome, SyncRefused, directory_sync
from .lock import SyncAlreadyRunning

__all__ = ["SyncAlreadyRunning", "SyncOutcome", "SyncRefused", "directory_sync"]
