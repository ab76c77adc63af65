"""Many workers, proven: two qclusters on PostgreSQL and the Redis broker sync 50 directories
cycle after cycle, never run one directory twice at once, and lose nothing when a worker is
killed mid-sync.

Everything is real but Microsoft: `migrate` and `qcluster` processes with the deployed settings,
django-q2's scheduler and Redis broker, MSAL and the Graph client over HTTPS to the emulator,
which serves the tenants from a thread of this process.

Each directory has a tenant of its own, as an install with many customers has: every worker then
holds 50 token caches and delta links, and a run that wrote one directory's data into another
(a wrong token, delta link or lock) shows as rows that are not the tenant's. Half the
directories sync assigned groups only, half all groups.

A cycle is forced rather than waited for: the test makes every directory's schedule due, as the
end of its SYNC_INTERVAL_MINUTES does, and the clusters' schedulers (a pass every 30 s each)
queue the syncs. Between cycles the schedules are parked a day away, so a cycle is exactly one
scheduled task per directory, and a cycle takes seconds instead of an interval. A scheduled
cycle never gives two workers the same directory, so one more round does: each directory's
Sync Now queued right beside its scheduled sync, as when an admin clicks as the schedule fires.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from time import monotonic
from time import sleep as real_sleep  # bound before the autouse fixture stubs time.sleep
from typing import Any

import pytest
import redis

from config.processes import stop_processes
from entra_emulator import EmulatorControl, EmuTenant, generate_tenant
from entra_emulator.expected import expected_directory
from entra_emulator.server import EmulatorLaunch, emulator_launch

from .support import (
    RECLAIM_SCHEDULE,
    REDIS_URL,
    SYNC_SCHEDULES,
    QCluster,
    Watch,
    own_database,
    own_redis,
    postgres_unreachable,
    qclusters,
    redis_unreachable,
    run_python,
    wait_until,
)

_unavailable = postgres_unreachable() or redis_unreachable()
pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(_unavailable is not None, reason=str(_unavailable)),
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts processes in /proc"),
]

DIRECTORIES = 50
USERS_PER_TENANT = 30
GROUPS_PER_TENANT = 6
WORKERS_PER_CLUSTER = 2
AUTH_CLIENT_ID = "22222222-2222-4222-8222-222222222222"
LATENCY_MS = 20
# Slower Graph answers while workers race and one is killed: runs overlap and are caught mid-sync.
SLOW_LATENCY_MS = 400
LOCK_TTL_SECONDS = 30  # the smallest allowed: a dead worker's lock expires within it
CYCLE_TIMEOUT = 150  # a scheduler pass (<= 30 s) and 50 syncs on four workers
QUEUE_KEY = "django_q:entra-sync:q"  # django-q2's Redis list for the cluster "entra-sync"
INTERRUPTED = "interrupted"
# The tasks' outcomes, as the report counts them.
SUCCEEDED = "run_directory_sync: succeeded"
ALREADY_RUNNING = "run_directory_sync: already_running"


@pytest.fixture(autouse=True)
def real_sleep_for_processes(no_real_sleep: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared fixture stubs time.sleep for Graph retries; stopping processes needs it."""
    monkeypatch.setattr("time.sleep", real_sleep)


@dataclass(frozen=True)
class Run:
    """A SyncRun, as the report gives it."""

    id: int
    directory_id: int
    trigger: str
    status: str
    error_class: str
    error_message: str
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, data: dict[str, Any]) -> Run:
        finished = data["finished_at"]
        return cls(
            id=data["id"],
            directory_id=data["directory_id"],
            trigger=data["trigger"],
            status=data["status"],
            error_class=data["error_class"],
            error_message=data["error_message"],
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(finished) if finished else None,
        )


@dataclass
class Cycle:
    """A round of syncs: from when the test set it going (every schedule made due, or the
    race queued) to the start of the next; a run belongs to the round it started in."""

    label: str
    start: datetime
    end: datetime | None = None

    def holds(self, run: Run) -> bool:
        return self.start <= run.started_at and (self.end is None or run.started_at < self.end)

    def seconds(self, runs: list[Run]) -> int:
        """From its start (a scheduler pass may be up to 30 s away) to its last run's end."""
        ends = [run.finished_at for run in runs if self.holds(run) and run.finished_at]
        return round((max(ends) - self.start).total_seconds()) if ends else 0


def tenant_for(index: int) -> EmuTenant:
    return generate_tenant(
        users=USERS_PER_TENANT,
        groups=GROUPS_PER_TENANT,
        seed=9000 + index,
        display_name=f"Tenant {index:02d}",
        domain=f"tenant{index:02d}.onmicrosoft.com",
        auth_app_id=AUTH_CLIENT_ID,
    )


def mode_for(index: int) -> str:
    return "assigned" if index % 2 == 0 else "all"


def workers_environment(launch: EmulatorLaunch, database_url: str) -> dict[str, str]:
    """The deployed settings (not the tests'), pointed at the emulator on 127.0.0.1."""
    env = {
        **os.environ,
        **launch.env,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "Q_WORKERS": str(WORKERS_PER_CLUSTER),
        "GRAPH_URL": launch.server.url,
        "ENTRA_LOGIN_URL": launch.server.url,
        "ENTRA_AUTH_CLIENT_ID": AUTH_CLIENT_ID,
        "SYNC_LOCK_TTL_SECONDS": str(LOCK_TTL_SECONDS),
    }
    env.pop("DEBUG", None)  # as deployed; with DEBUG on, Django keeps every query in memory
    return env


@dataclass
class Fleet:
    """The emulated tenants, the workers' database and queue, and the qclusters started."""

    began: float
    tmp_path: Path
    launch: EmulatorLaunch
    control: EmulatorControl
    env: dict[str, str]
    watch: Watch
    queue: redis.Redis
    directory_ids: set[int]
    clusters: list[QCluster]

    @property
    def tenants(self) -> list[EmuTenant]:
        return [
            self.launch.server.emulator.tenants[t.tenant_id.lower()] for t in self.launch.tenants
        ]

    def start_cluster(self, name: str) -> QCluster:
        log = self.tmp_path / f"qcluster-{len(self.clusters) + 1}.log"
        cluster = QCluster(name, self.env, log)
        self.clusters.append(cluster)
        return cluster

    def cycle(self, label: str) -> Cycle:
        """Make every directory's schedule due: the next scheduler pass queues their syncs."""
        return Cycle(label, self.watch.make_due(SYNC_SCHEDULES))

    def wait_for_cycle(self, cycle: Cycle) -> None:
        """Every directory has a succeeded run in the cycle, and no run is left running."""
        watch, wanted = self.watch, self.directory_ids

        def done() -> bool:
            return watch.synced_since(cycle.start) >= wanted and not watch.running_runs()

        assert wait_until(done, timeout=CYCLE_TIMEOUT, every=0.5), (
            f"cycle {cycle.label}: {len(watch.synced_since(cycle.start))} of {len(wanted)} "
            f"directories synced after {CYCLE_TIMEOUT} s; still running: {watch.running_runs()}"
        )

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(
            run_python(self.env, "-m", "tests.workers.fleet", "report")
        )
        return report


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """50 verified directories on a migrated database of their own, each with its tenant in
    the emulator, and no schedule due; qclusters started by the test are stopped after it."""
    began = monotonic()
    with ExitStack() as stack:
        # Undone in reverse: the clusters stop before the emulator, Redis and the database go.
        database_url = stack.enter_context(own_database())
        queue = stack.enter_context(own_redis())
        (tmp_path / "emulator").mkdir()
        launch = emulator_launch(
            tenants=[tenant_for(index) for index in range(DIRECTORIES)],
            state_dir=tmp_path / "emulator",
            port=0,
            auth_client_id=AUTH_CLIENT_ID,
            latency_ms=LATENCY_MS,
        )
        stack.callback(launch.server.stop)
        control = EmulatorControl(launch.server.url, verify=str(launch.ca_bundle))
        stack.callback(control.close)
        env = workers_environment(launch, database_url)
        run_python(env, "manage.py", "migrate", "--noinput", "-v0")
        wanted = [
            {"name": f"Directory {index:02d}", "mode": mode_for(index), "tenant_id": t.tenant_id}
            for index, t in enumerate(launch.tenants)
        ]
        added = run_python(env, "-m", "tests.workers.fleet", "setup", stdin=json.dumps(wanted))
        watch = Watch(database_url)
        stack.callback(watch.close)
        watch.park("%")  # every schedule: the test makes due the ones each step needs
        yield Fleet(
            began=began,
            tmp_path=tmp_path,
            launch=launch,
            control=control,
            env=env,
            watch=watch,
            queue=queue,
            directory_ids=set(json.loads(added).values()),
            clusters=stack.enter_context(qclusters()),
        )


def change_tenants(fleet: Fleet, cycle: int) -> None:
    """A day in every tenant: a user renamed, a new hire in a synced group, a member leaving
    another, so that every cycle writes (and a lost or doubled write shows)."""
    control = fleet.control
    for index, tenant in enumerate(fleet.tenants):
        expected = expected_directory(tenant, assigned_only=mode_for(index) == "assigned")
        groups, users = sorted(expected.group_ids), sorted(expected.user_ids)
        tid = tenant.tenant_id
        control.update_user(tid, users[cycle % len(users)], displayName=f"Renamed in {cycle}")
        control.add_user(
            tid,
            userPrincipalName=f"hire.{cycle}@{tenant.default_domain}",
            displayName=f"Hire of cycle {cycle}",
            groups=[groups[0]],
        )
        leaving = tenant.members_of(groups[-1], transitive=False, kind="user")
        if leaving:
            control.remove_member(tid, groups[-1], leaving[0])


def kill_mid_sync(fleet: Fleet, victim: QCluster) -> tuple[datetime, dict[int, int]]:
    """SIGKILL `victim` once every worker of both clusters is syncing; when, and the runs
    running then."""
    watch, workers = fleet.watch, 2 * WORKERS_PER_CLUSTER
    assert wait_until(lambda: len(watch.running_runs()) >= workers, timeout=90), (
        f"the two clusters never ran {workers} syncs at once"
    )
    victim.kill()
    return watch.now(), watch.running_runs()


def wait_for_the_dead(fleet: Fleet, running: dict[int, int]) -> dict[int, int]:
    """Once the queue is empty and the live clusters are idle, the runs still "running" are
    the killed cluster's; returns them once their locks have expired."""
    watch = fleet.watch

    def quiet() -> bool:
        return (
            fleet.queue.llen(QUEUE_KEY) == 0
            and set(watch.running_runs()) <= set(running)
            and watch.seconds_since_last_change() > 5
        )

    assert wait_until(quiet, timeout=CYCLE_TIMEOUT, every=0.5), watch.running_runs()
    dead = watch.running_runs()
    assert dead, f"the kill caught no run mid-sync (running at the kill: {running})"
    # Until its lock expires, a dead run's directory is (rightly) "already running".
    assert wait_until(
        lambda: watch.locks_expired(list(dead.values())), timeout=LOCK_TTL_SECONDS + 15
    )
    return dead


def overlapping_runs(runs: list[Run], killed_at: datetime) -> list[tuple[int, int]]:
    """Pairs of runs of one directory whose times overlap.

    An interrupted run stopped when its worker was killed; its finished_at is when it was
    reclaimed, later (once its lock had expired), so the kill is where it ended.
    """
    by_directory: dict[int, list[Run]] = defaultdict(list)
    for run in runs:
        by_directory[run.directory_id].append(run)
    overlaps = []
    for directory_runs in by_directory.values():
        directory_runs.sort(key=lambda run: run.started_at)
        for earlier, later in pairwise(directory_runs):
            ended = killed_at if earlier.error_class == INTERRUPTED else earlier.finished_at
            if ended is None or later.started_at < ended:
                overlaps.append((earlier.id, later.id))
    return overlaps


def rows_differing(report: dict[str, Any], tenants: dict[str, EmuTenant]) -> tuple[int, int]:
    """Rows (users, groups, memberships) the tenants have and the database lacks, and the
    other way round, over every directory."""
    lost = extra = 0
    for directory in report["directories"]:
        expected = expected_directory(
            tenants[directory["tenant_id"]], assigned_only=directory["mode"] == "assigned"
        )
        for wanted, held in (
            (expected.user_ids, set(directory["user_ids"])),
            (expected.group_ids, set(directory["group_ids"])),
            (expected.memberships, {tuple(m) for m in directory["memberships"]}),
        ):
            lost += len(wanted - held)
            extra += len(held - wanted)
    return lost, extra


def test_two_qclusters_sync_fifty_directories_and_lose_nothing_to_a_killed_worker(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    emulated, watch = fleet.launch.server.emulator.tenants, fleet.watch
    first, second = fleet.start_cluster("qcluster 1"), fleet.start_cluster("qcluster 2")
    first.wait_running()
    second.wait_running()

    # Cycle 1: every directory read in full, on two clusters of two workers.
    cycles = [fleet.cycle("1")]
    fleet.wait_for_cycle(cycles[-1])
    assert rows_differing(fleet.report(), emulated) == (0, 0)

    # The race: two workers take each directory at once; the lock lets one of them sync.
    change_tenants(fleet, 2)
    fleet.control.update_settings(latency_ms=SLOW_LATENCY_MS)
    race = Cycle("race", watch.now())
    cycles.append(race)
    queued = int(run_python(fleet.env, "-m", "tests.workers.fleet", "race"))
    assert wait_until(
        lambda: watch.tasks_started_since(race.start) == queued and not watch.running_runs(),
        timeout=CYCLE_TIMEOUT,
        every=0.5,
    ), f"race: {watch.tasks_started_since(race.start)} of {queued} tasks ran"

    # Cycle 2: changes read as deltas, slowly; one cluster is killed with runs in flight and a
    # replacement starts, as a supervisor would start one.
    change_tenants(fleet, 3)
    kill_cycle = fleet.cycle("2 (kill)")
    cycles.append(kill_cycle)
    killed_at, running_at_kill = kill_mid_sync(fleet, first)
    fleet.control.update_settings(latency_ms=LATENCY_MS)
    replacement = fleet.start_cluster("qcluster 3 (replacement)")
    replacement.wait_running()
    dead = wait_for_the_dead(fleet, running_at_kill)

    # Cycle 3: the killed runs are reclaimed (by the reclaim schedule or by the next sync of
    # their directory, whichever comes first) and every directory syncs again.
    change_tenants(fleet, 4)
    watch.make_due(RECLAIM_SCHEDULE)
    cycles.append(fleet.cycle("3"))
    fleet.wait_for_cycle(cycles[-1])
    for earlier, later in pairwise(cycles):
        earlier.end = later.start

    # Stopped as `manage.py serve` stops them: SIGTERM to each main process first.
    stop_processes([second.process, replacement.process], timeout=15)
    assert (second.process.returncode, replacement.process.returncode) == (0, 0)
    report = fleet.report()

    runs = [Run.of(data) for data in report["runs"]]
    outcomes = report["task_outcomes"]
    interrupted = {run.id for run in runs if run.error_class == INTERRUPTED}
    reclaimed_by_schedule = set(report["reclaimed_by_schedule"])
    no_run_in_kill_cycle = fleet.directory_ids - {
        run.directory_id for run in runs if kill_cycle.holds(run)
    }
    overlaps = overlapping_runs(runs, killed_at)
    rows_lost, rows_extra = rows_differing(report, emulated)
    figures = {
        "directories": len(fleet.directory_ids),
        "cycles": len(cycles),
        "runs": len(runs),
        "succeeded runs": sum(run.status == "succeeded" for run in runs),
        "syncs refused by the lock (already running)": outcomes.get(ALREADY_RUNNING, 0),
        "qclusters started": len(fleet.clusters),
        "kills": 1,
        "runs running at the kill": len(running_at_kill),
        "of them on the killed cluster": len(dead),
        "interrupted runs reclaimed": len(interrupted),
        "reclaimed by the reclaim schedule": len(interrupted & reclaimed_by_schedule),
        "reclaimed by the next sync": len(interrupted - reclaimed_by_schedule),
        "queued tasks lost with the killed cluster": len(no_run_in_kill_cycle),
        "overlapping runs": len(overlaps),
        "rows lost": rows_lost,
        "rows extra": rows_extra,
        "seconds": round(monotonic() - fleet.began),
        "seconds per cycle": {cycle.label: cycle.seconds(runs) for cycle in cycles},
    }
    with capsys.disabled():
        print("\nmany workers: " + ", ".join(f"{name} {value}" for name, value in figures.items()))
        print(f"many workers: task outcomes {outcomes}")

    # 1. Every directory synced in every cycle, each task by one run at most.
    for cycle in cycles:
        held = [run for run in runs if cycle.holds(run)]
        synced = {run.directory_id for run in held if run.status == "succeeded"}
        per_task = Counter((run.directory_id, run.trigger) for run in held)
        # A cluster killed during its scheduler pass has its transaction rolled back after it
        # pushed some tasks: those schedules stay due and the other scheduler fires them again
        # (django-q2 delivers schedules at least once). The second run then comes after the
        # first (no overlap, checked below) and finds the changes already applied.
        at_most = 2 if cycle is kill_cycle else 1
        assert max(per_task.values()) <= at_most, f"cycle {cycle.label}: {per_task}"
        if cycle is kill_cycle:
            # Only the killed cluster's work may be missing: its runs, and the tasks it had
            # taken off the queue but not started (django-q2's Redis broker has no ack): at
            # most its queue (workers squared), the task in its pusher's hand and one per
            # worker. Cycle 3 syncs those directories like every other.
            missed = fleet.directory_ids - synced
            assert missed <= set(dead.values()) | no_run_in_kill_cycle
            assert len(no_run_in_kill_cycle) <= WORKERS_PER_CLUSTER**2 + 1 + WORKERS_PER_CLUSTER
        else:
            assert synced == fleet.directory_ids, (
                f"cycle {cycle.label}: missed {fleet.directory_ids - synced}"
            )
        if cycle is not race:
            assert {trigger for _, trigger in per_task} == {"schedule"}

    # 2. Never two runs of one directory at once, though workers raced for them; nothing
    # failed but the killed runs.
    assert overlaps == []
    assert outcomes.get(ALREADY_RUNNING, 0) > 0, "the race never made two workers meet"
    assert set(outcomes) <= {SUCCEEDED, ALREADY_RUNNING}, outcomes
    assert report["failed_tasks"] == []
    assert [run.id for run in runs if run.status not in ("succeeded", "failed")] == []
    failed = [run for run in runs if run.status == "failed"]
    assert {run.id for run in failed} == interrupted, [
        (run.id, run.error_class, run.error_message) for run in failed
    ]
    assert [d["name"] for d in report["directories"] if d["lock_token"]] == []
    assert [d["name"] for d in report["directories"] if d["sync_now_queued"]] == []

    # 3. The killed runs were reclaimed as interrupted, not left running; no row was lost.
    assert interrupted == set(dead) and interrupted <= set(running_at_kill)
    assert (rows_lost, rows_extra) == (0, 0)
    assert {d["last_sync_status"] for d in report["directories"]} == {"succeeded"}
    for cluster in fleet.clusters:
        assert cluster.processes() == [], f"{cluster.name} left {cluster.processes()}"
        assert "Traceback" not in cluster.log_text(), cluster.log_text()[-5000:]
