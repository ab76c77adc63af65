"""Run entra-sync's long-running processes together, and stop all of them within seconds.

`manage.py serve` (`make run`, `make stack`) starts a web server and qcluster workers through
`run_until_stopped`. Each child gets a process group of its own, so that a terminal's Ctrl-C
reaches only this supervisor, which then stops the children itself, and so that stopping a
child reaches every process it started: runserver's reloaded server, gunicorn's workers,
qcluster's sentinel, workers, pusher and monitor.

The order matters for qcluster. SIGTERM to its main process makes it stop its own processes
cleanly, in about a second. SIGTERM to its whole group kills the sentinel at once (django-q2
leaves SIGTERM at its default there) while the main process, handling the same signal, waits
on an Event the dead sentinel was sleeping on: forever (django-q2 1.11). So each main process
gets SIGTERM first; what is left of its group once it has exited gets SIGTERM next; and
whatever is still running after `stop_timeout` gets SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WEB_SERVERS = ("runserver", "gunicorn")


@dataclass(frozen=True)
class ProcessSpec:
    """One process to run: a name for messages, its command line and its environment."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]


def entra_sync_processes(
    *, web: str, bind: str, qclusters: int, environ: Mapping[str, str]
) -> list[ProcessSpec]:
    """The web server on `bind` and `qclusters` qcluster processes, run from this checkout.

    runserver is the development server: it runs with DEBUG on unless DEBUG is set. gunicorn
    reads gunicorn.conf.py from the working directory. The qclusters keep DEBUG as it is set:
    with DEBUG on, Django would keep every SQL query of a sync in memory.
    """
    manage = (sys.executable, "manage.py")
    if web == "runserver":
        web_spec = ProcessSpec(
            "runserver",
            (*manage, "runserver", bind),
            {**environ, "DEBUG": environ.get("DEBUG", "true")},
        )
    elif web == "gunicorn":
        web_spec = ProcessSpec(
            "gunicorn", (sys.executable, "-m", "gunicorn", "--bind", bind, "config.wsgi"), environ
        )
    else:
        raise ValueError(f"web must be one of {', '.join(WEB_SERVERS)}, not {web!r}")
    workers = [
        ProcessSpec(f"qcluster {number}", (*manage, "qcluster"), environ)
        for number in range(1, qclusters + 1)
    ]
    return [web_spec, *workers]


def run_until_stopped(
    specs: Sequence[ProcessSpec],
    *,
    cwd: Path,
    stop_timeout: float,
    report: Callable[[str], None],
) -> bool:
    """Start every process; on SIGINT, SIGTERM or SIGHUP, or when one of them exits, stop all.

    Returns True when a signal asked for the stop, False when a process exited by itself.
    """
    stop = threading.Event()
    signalled: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    children: list[subprocess.Popen[bytes]] = []
    try:
        for spec in specs:
            if stop.is_set():
                break
            children.append(
                subprocess.Popen(
                    spec.argv,
                    cwd=cwd,
                    env=dict(spec.env),
                    stdin=subprocess.DEVNULL,
                    process_group=0,
                )
            )
        while not stop.wait(0.2):
            for spec, child in zip(specs, children, strict=False):
                if child.poll() is not None:
                    report(f"{spec.name} exited with status {child.returncode}; stopping the rest.")
                    stop.set()
                    break
    finally:
        stop_processes(children, timeout=stop_timeout)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return bool(signalled)


def stop_processes(children: Sequence[subprocess.Popen[bytes]], *, timeout: float) -> None:
    """SIGTERM each main process, then what is left of its group, then SIGKILL at `timeout`.

    Each child must lead its own process group (`process_group=0`).
    """
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + timeout
    orphans_told: set[int] = set()
    while time.monotonic() < deadline:
        running = False
        for child in children:
            if child.poll() is None:
                running = True
            elif _group_running(child.pid):
                running = True
                if child.pid not in orphans_told:
                    _signal_group(child.pid, signal.SIGTERM)
                    orphans_told.add(child.pid)
        if not running:
            return
        time.sleep(0.05)
    for child in children:
        if child.poll() is None or _group_running(child.pid):
            _signal_group(child.pid, signal.SIGKILL)
        child.wait()


def _group_running(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)
