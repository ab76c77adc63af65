"""Helpers for tests that start real processes (qcluster, gunicorn, runserver)."""

from __future__ import annotations

import os
from pathlib import Path


def session_processes(session: int) -> list[int]:
    """Live (not zombie) processes of a session, from /proc: what a stop must leave empty."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _ppid, _pgrp, sid = stat.rsplit(")", 1)[1].split()[:4]
        if int(sid) == session and state != "Z":
            found.append(int(entry))
    return found
