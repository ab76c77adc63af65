"""Stopping: the real qcluster, `make run`'s and `make stack`'s processes, and every child they
start, are gone within seconds of SIGTERM or Ctrl-C.

Each test starts its processes in a session of their own and counts what is left of that
session in /proc, so a grandchild that outlived its parent (a qcluster worker, gunicorn's
workers, runserver's reloaded server) fails the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from config.processes import stop_processes
from tests.processes import session_processes

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts processes in /proc"),
]

ROOT = Path(__file__).resolve().parents[2]
STOPPED_WITHIN = 8.0  # seconds; about 1-3 s on a quiet machine
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, **headers: str) -> tuple[int, str]:
    """Status and Location of a GET that follows no redirect; 0 when nothing answers."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=headers)
    try:
        with opener.open(request, timeout=3) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location", "")
    except OSError:  # not listening yet
        return 0, ""


@contextmanager
def launched(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A manage.py command in a session of its own; whatever is left of it is killed after."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", *argv],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        for pid in session_processes(process.pid):
            os.kill(pid, signal.SIGKILL)
        process.wait(timeout=10)


def stops_within(process: subprocess.Popen[bytes], seconds: float) -> float:
    """Seconds until nothing of the process's session runs any more (fails after `seconds`)."""
    started = time.monotonic()
    gone = wait_until(
        lambda: process.poll() is not None and not session_processes(process.pid), seconds
    )
    assert gone, f"still running after {seconds} s: {session_processes(process.pid)}"
    return time.monotonic() - started


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The deployed settings (not the tests'), on a migrated database of this module's own."""
    database = tmp_path_factory.mktemp("processes") / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{database}",
        "Q_WORKERS": "2",
    }
    # DEBUG as deployed: off, but for `serve --web runserver`, which turns it on as make run does.
    env.pop("DEBUG", None)
    env.pop("REDIS_URL", None)
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrated.returncode == 0, migrated.stderr
    return env


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.parametrize("broker", ["orm", "redis"])
def test_qcluster_and_all_its_processes_stop_within_seconds_of_sigterm(
    environment: dict[str, str], tmp_path: Path, broker: str
) -> None:
    env = dict(environment)
    if broker == "redis":
        if not redis_available():
            pytest.skip(f"no Redis at {REDIS_URL}")
        env["REDIS_URL"] = REDIS_URL
    log = tmp_path / "qcluster.log"
    with launched(["qcluster"], env, log) as qcluster:
        # main process, sentinel, 2 workers, monitor and pusher
        assert wait_until(lambda: "running." in log.read_text(), 60), log.read_text()
        assert len(session_processes(qcluster.pid)) >= 6

        qcluster.send_signal(signal.SIGTERM)

        stops_within(qcluster, STOPPED_WITHIN)
        assert qcluster.returncode == 0
        assert "has stopped." in log.read_text()


@pytest.mark.parametrize(("stop", "name"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_make_run_stops_runserver_and_qcluster_within_seconds(
    environment: dict[str, str], tmp_path: Path, stop: int, name: str
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    argv = ["serve", "--web", "runserver", "--bind", f"127.0.0.1:{port}", "--qclusters", "1"]
    with launched(argv, environment, log) as serve:
        assert wait_until(lambda: get(f"http://127.0.0.1:{port}/admin/login/")[0] == 200, 60), (
            log.read_text()
        )
        assert wait_until(lambda: "running." in log.read_text(), 60), log.read_text()

        # A terminal's Ctrl-C goes to the foreground process group: serve's, not its children's.
        os.killpg(serve.pid, stop)

        stops_within(serve, STOPPED_WITHIN)
        assert serve.returncode == 0, log.read_text()
        assert log.read_text().rstrip().endswith("Stopped.")


def test_make_stack_serves_the_admin_and_static_files_behind_a_proxy_and_stops_within_seconds(
    environment: dict[str, str], tmp_path: Path
) -> None:
    env = {**environment, "STATIC_ROOT": str(tmp_path / "static")}
    env.update(SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto", ALLOWED_HOSTS="entra-sync.example.com")
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proxied = {"Host": "entra-sync.example.com", "X-Forwarded-Proto": "https"}
    log = tmp_path / "serve.log"
    argv = ["serve", "--web", "gunicorn", "--bind", f"127.0.0.1:{port}", "--qclusters", "2"]
    with launched(argv, env, log) as serve:
        assert wait_until(lambda: get(f"{base}/admin/login/", **proxied)[0] == 200, 60), (
            log.read_text()
        )
        assert wait_until(lambda: log.read_text().count("running.") == 2, 60), log.read_text()

        assert get(f"{base}/static/admin/css/base.css", **proxied) == (200, "")
        assert get(f"{base}/admin/login/", Host="entra-sync.example.com") == (
            301,
            "https://entra-sync.example.com/admin/login/",
        )

        serve.send_signal(signal.SIGTERM)

        stops_within(serve, STOPPED_WITHIN)
        assert serve.returncode == 0, log.read_text()


def test_what_ignores_sigterm_is_killed_when_the_stop_timeout_ends() -> None:
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        process_group=0,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"

    started = time.monotonic()
    stop_processes([stubborn], timeout=1.0)

    assert stubborn.returncode == -signal.SIGKILL
    assert 1.0 <= time.monotonic() - started < 3.0


def test_a_child_left_behind_by_its_parent_is_stopped_too() -> None:
    """Like runserver's reloader: SIGTERM ends the parent at once and orphans the server."""
    parent = subprocess.Popen(
        ["/bin/sh", "-c", "sleep 60 & echo $!; wait"],
        stdout=subprocess.PIPE,
        process_group=0,
    )
    assert parent.stdout is not None
    orphan = int(parent.stdout.readline())

    started = time.monotonic()
    stop_processes([parent], timeout=5.0)

    assert time.monotonic() - started < 2.0

    assert wait_until(lambda: not Path(f"/proc/{orphan}").exists(), 2) or (
        "Z" in Path(f"/proc/{orphan}/stat").read_text().rsplit(")", 1)[1].split()[0]
    )
