"""Real processes for the many-workers test: a PostgreSQL database and a Redis database of the
test's own, qclusters that can be killed whole, and the SQL the test watches them with.

Each qcluster runs in a session (and process group) of its own, so that one SIGKILL reaches
its main process, sentinel, workers, pusher and monitor at once, as an out-of-memory kill or a
lost machine would, and so that whatever is left of it can be found in /proc and killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from time import monotonic
from time import sleep as real_sleep  # bound now: the tests' autouse fixture patches time.sleep

import psycopg
import redis

from config.processes import stop_processes
from tests.processes import session_processes

ROOT = Path(__file__).resolve().parents[2]
# The server the test creates its database on, and the Redis database it may empty.
POSTGRES_URL = os.environ.get(
    "WORKERS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE_NAME = "entra_many_workers"
REDIS_URL = os.environ.get("WORKERS_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
SYNC_SCHEDULES = "sync-directory-%"
RECLAIM_SCHEDULE = "reclaim-interrupted-runs"


def postgres_unreachable() -> str | None:
    """Why the test cannot have a PostgreSQL database, or None when it can."""
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=2):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL at {POSTGRES_URL} ({str(exc).strip().splitlines()[0]})"


def redis_unreachable() -> str | None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        return None
    except redis.RedisError as exc:
        return f"no Redis at {REDIS_URL} ({exc})"


def wait_until(condition: Callable[[], bool], *, timeout: float, every: float = 0.25) -> bool:
    deadline = monotonic() + timeout
    while monotonic() < deadline:
        if condition():
            return True
        real_sleep(every)
    return condition()


def _admin_execute(sql: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(sql)


@contextmanager
def own_database() -> Iterator[str]:
    """A new, empty database (one left by an earlier run is dropped); its DATABASE_URL."""
    _admin_execute(f"DROP DATABASE IF EXISTS {DATABASE_NAME} WITH (FORCE)")
    _admin_execute(f"CREATE DATABASE {DATABASE_NAME}")
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{DATABASE_NAME}"
    finally:
        _admin_execute(f"DROP DATABASE IF EXISTS {DATABASE_NAME} WITH (FORCE)")


@contextmanager
def own_redis() -> Iterator[redis.Redis]:
    """The test's Redis database, emptied before and after (queued tasks, cluster stats)."""
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    try:
        yield connection
    finally:
        connection.flushdb()
        connection.close()


class Watch:
    """What the test reads and moves in the workers' database, in plain SQL."""

    def __init__(self, database_url: str) -> None:
        self.connection = psycopg.connect(database_url, autocommit=True)

    def close(self) -> None:
        self.connection.close()

    def now(self) -> datetime:
        row = self.connection.execute("SELECT now()").fetchone()
        assert row is not None
        now: datetime = row[0]
        return now

    def make_due(self, name_like: str) -> datetime:
        """Make these django-q2 schedules due now: the next scheduler pass queues their tasks,
        as it would at the end of their interval. Returns when, in the database's clock."""
        now = self.now()
        self.connection.execute(
            "UPDATE django_q_schedule SET next_run = %s WHERE name LIKE %s", (now, name_like)
        )
        return now

    def park(self, name_like: str) -> None:
        """Keep these schedules from firing on their own while the test runs."""
        self.connection.execute(
            "UPDATE django_q_schedule SET next_run = now() + interval '1 day' WHERE name LIKE %s",
            (name_like,),
        )

    def running_runs(self) -> dict[int, int]:
        """Run id -> directory id of every run still "running"."""
        rows = self.connection.execute(
            "SELECT id, directory_id FROM directories_syncrun WHERE status = 'running'"
        ).fetchall()
        return dict(rows)

    def synced_since(self, since: datetime) -> set[int]:
        """Directories with a succeeded run that started at or after `since`."""
        rows = self.connection.execute(
            "SELECT DISTINCT directory_id FROM directories_syncrun "
            "WHERE status = 'succeeded' AND started_at >= %s",
            (since,),
        ).fetchall()
        return {row[0] for row in rows}

    def seconds_since_last_change(self) -> float:
        """Seconds since any run started or finished (a large number when there is none)."""
        row = self.connection.execute(
            "SELECT extract(epoch FROM now() - max(greatest(started_at, "
            "coalesce(finished_at, started_at)))) FROM directories_syncrun"
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else 1e9

    def tasks_started_since(self, since: datetime) -> int:
        """django-q2 tasks that ran (their results saved) since then."""
        row = self.connection.execute(
            "SELECT count(*) FROM django_q_task WHERE started >= %s", (since,)
        ).fetchone()
        return int(row[0]) if row else 0

    def locks_expired(self, directory_ids: list[int]) -> bool:
        row = self.connection.execute(
            "SELECT count(*) FROM directories_directory WHERE id = ANY(%s) "
            "AND sync_lock_expires_at >= now()",
            (directory_ids,),
        ).fetchone()
        return row is not None and row[0] == 0


def run_python(env: dict[str, str], *args: str, stdin: str = "", timeout: float = 300) -> str:
    """`python ARGS` from the repository root (manage.py, a module); its standard output."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


class QCluster:
    """One `manage.py qcluster` with its own session, log file and name."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_running(self, timeout: float = 60) -> None:
        assert wait_until(lambda: "running." in self.log_text(), timeout=timeout), (
            f"{self.name} did not start:\n{self.log_text()[-3000:]}"
        )

    def processes(self) -> list[int]:
        return session_processes(self.process.pid)

    def kill(self) -> None:
        """SIGKILL the whole process group at once; returns when none of it runs any more."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        assert wait_until(lambda: not self.processes(), timeout=10), (
            f"{self.name} outlived SIGKILL: {self.processes()}"
        )

    def kill_leftovers(self) -> None:
        for pid in self.processes():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


@contextmanager
def qclusters() -> Iterator[list[QCluster]]:
    """The list the test starts its qclusters into; whatever is left of them is stopped after,
    cleanly if it can be (SIGTERM, as `manage.py serve` stops them), by SIGKILL if not."""
    started: list[QCluster] = []
    try:
        yield started
    finally:
        alive = [cluster.process for cluster in started if cluster.process.poll() is None]
        stop_processes(alive, timeout=15)
        for cluster in started:
            cluster.kill_leftovers()
