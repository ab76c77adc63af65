"""Pause Python's cyclic garbage collector while a sync builds its large, acyclic data.

A large tenant's read allocates millions of long-lived objects (ids, sets, rows); each
allocation burst triggers full collections that traverse all of them again, which cost
about 8 s of a 100,000-user first sync and find nothing to free. Reference counting still
frees everything as usual; only cycles wait until the sync ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_paused_by = 0  # syncs running in this process with the collector paused


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block; re-enable it when the last sync ends."""
    global _paused_by
    with _lock:
        if _paused_by == 0 and not gc.isenabled():
            was_disabled_already = True
        else:
            was_disabled_already = False
            _paused_by += 1
            gc.disable()
    try:
        yield
    finally:
        if not was_disabled_already:
            with _lock:
                _paused_by -= 1
                if _paused_by == 0:
                    gc.enable()
