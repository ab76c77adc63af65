"""The admin: the whole user interface of entra-sync.

- `directory`: DirectoryAdmin, its cards and every directory page (Verify Now, Sync Now,
  approval, live status), all served from its `get_urls`
- `runs`: the read-only sync history, and the planned-removals include
- `troubleshooting`: the troubleshooting pages, served by `directories.admin_site`
- `charts`: the history chart
"""

from __future__ import annotations

from . import directory, runs

__all__ = ["directory", "runs"]
