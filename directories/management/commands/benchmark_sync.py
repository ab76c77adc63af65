"""manage.py benchmark_sync: entra-sync against a plain sequential sync of a generated tenant.

One run on the configured database:
1. entra-sync itself: a full sync into an empty directory, a re-sync with no change, and a
   re-sync after `entra_emulator.scenarios.churn` changed about 1 % of the tenant — each through
   `directory_sync` with a fresh Graph client, as `sync_directory` would run it;
2. a *reference*: the naive sync a first version would write — list the groups, then one
   `transitiveMembers/microsoft.graph.user` listing per group, one after another, then one
   INSERT per row (`objects.create`) in one transaction — into a second benchmark directory;
3. one table (`--json`: the same data): wall time, Graph requests, resource units, 429 answers,
   rows written (and per second), the reference's time divided by each run's, and peak RSS
   (sampled during the run, and the process's ru_maxrss so far).
Every run is compared with `entra_emulator.expected.expected_directory`; a run that does not
match exactly is marked in the table and the command exits non-zero.

The tenant is served in-process by the emulator (`entra_emulator.transport`: no sockets, no
test library), so the numbers are entra-sync's own (MSAL, the Graph client, the engine, the
database) plus the emulator's CPU time and an optional latency per Graph request, which the
emulator sleeps on the real clock. `--throttle` turns on the emulator's resource-unit budget
(8,000 units per 10 s per app+tenant, Microsoft's limit for a large tenant); each run starts
with a full budget, as syncs hours apart would. The benchmark uses its own Graph client and
Authentication app id, so the Entra settings are neither needed nor changed; GRAPH_CONCURRENCY
is read as in a real sync. Its directories (`benchmark-…`) are removed at the end unless
--keep. It needs only the runtime requirements.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from directories.graph import GraphClient, GraphSettings, GraphUser, forget_cached_tokens
from directories.models import (
    Directory,
    MirroredEdge,
    MirroredGroup,
    MirroredUser,
    SyncMode,
    SyncRun,
)
from directories.sync import directory_sync
from directories.sync.plan import group_fields, user_fields
from entra_emulator import Emulator, EmuTenant, churn, generate_tenant
from entra_emulator.expected import ExpectedDirectory, expected_directory
from entra_emulator.scenarios import single_tenant_emulator
from entra_emulator.transport import serve_in_process
from identities.models import Membership, SyncedGroup, SyncedUser

LOGIN_URL = "https://login.benchmark.test"
GRAPH_URL = "https://graph.benchmark.test"
CLIENT_ID = "0b0b0b0b-0000-4000-8000-00000000b0b0"
CLIENT_SECRET = "benchmark-secret"
AUTH_CLIENT_ID = "0a0a0a0a-0000-4000-8000-00000000a0a0"
GRAPH_SETTINGS = GraphSettings(
    client_id=CLIENT_ID, client_secret=CLIENT_SECRET, login_url=LOGIN_URL, graph_url=GRAPH_URL
)
# "Identity and access service limits", a large tenant (over 500 users).
RU_LIMIT = 8_000
RU_WINDOW = 10.0
CHURN_SHARE = 0.01

FULL, UNCHANGED, CHANGES, REFERENCE = "full", "unchanged", "changes", "reference"
LABELS = {
    FULL: "full sync (empty database)",
    UNCHANGED: "re-sync, no change",
    CHANGES: "re-sync after 1 % changes",
    REFERENCE: "reference (sequential)",
}


class WriteCounter:
    """Counts SQL statements that write to the identities tables (a COPY is not seen)."""

    def __init__(self) -> None:
        self.writes = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if "identities_" in sql and sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.writes += 1
        return execute(sql, params, many, context)


@contextmanager
def counting_writes() -> Iterator[WriteCounter]:
    counter = WriteCounter()
    with connection.execute_wrapper(counter):
        yield counter


@dataclass
class Measured:
    """What one run did, before the emulator's counters and the check are added."""

    seconds: float
    rows_written: int
    write_statements: int
    client_requests: int
    client_retries: int
    summary: str


class Command(BaseCommand):
    help = "Benchmark entra-sync (full, unchanged, 1 % changes) against a sequential reference."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=10_000)
        parser.add_argument("--groups", type=int, default=500)
        parser.add_argument(
            "--members-per-group",
            type=int,
            default=None,
            help="Typical size of a group (log-normal around it); default: 80 in large tenants",
        )
        parser.add_argument(
            "--nesting-depth", type=int, default=2, help="Depth of the nested group chains"
        )
        parser.add_argument("--mode", choices=SyncMode.values, default=SyncMode.ALL)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--latency-ms", type=float, default=0.0, help="Simulated latency per Graph request"
        )
        parser.add_argument(
            "--throttle",
            action="store_true",
            help=f"Resource-unit throttling: {RU_LIMIT:,} units per {RU_WINDOW:g} s",
        )
        parser.add_argument(
            "--reference",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="Also time the plain sequential sync (default: yes)",
        )
        parser.add_argument("--keep", action="store_true", help="Keep the benchmark directories")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["users"] < 1 or options["groups"] < 1:
            raise CommandError("--users and --groups must be at least 1.")
        started = time.perf_counter()
        tenant = generate_tenant(
            users=options["users"],
            groups=options["groups"],
            seed=options["seed"],
            auth_app_id=AUTH_CLIENT_ID,
            members_per_group=options["members_per_group"],
            nesting_depth=options["nesting_depth"],
        )
        generated = time.perf_counter() - started
        assigned = options["mode"] == SyncMode.ASSIGNED
        size: dict[str, Any] = {
            "users": len(tenant.users),
            "groups": len(tenant.groups),
            "members_per_group": options["members_per_group"],
            "nesting_depth": options["nesting_depth"],
            "seed": options["seed"],
            "generated_seconds": round(generated, 3),
        }
        emulator = single_tenant_emulator(
            tenant,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            graph_url=GRAPH_URL,
            latency_ms=options["latency_ms"],
        )
        if options["throttle"]:
            _emulator_call(
                emulator,
                "PUT",
                "settings",
                {"ru_throttling": True, "ru_limit": RU_LIMIT, "ru_window": RU_WINDOW},
            )
        name = f"benchmark-{options['users']}x{options['groups']}-{options['mode']}"
        reference_name = f"{name}-reference"
        rss_before = _peak_rss_mb()

        results: list[dict[str, Any]] = []
        churned = ""
        with (
            serve_in_process(emulator, login_url=LOGIN_URL, graph_url=GRAPH_URL),
            _retries_logged(options["verbosity"]),
        ):
            forget_cached_tokens(tenant_id=tenant.tenant_id)  # a token of an earlier emulator
            for leftover in (name, reference_name):
                _delete_directory(leftover)
            directory = _benchmark_directory(name, tenant, options["mode"])
            try:
                expected: ExpectedDirectory | None = None
                for run in (FULL, UNCHANGED, CHANGES):
                    if run == CHANGES:
                        churned = str(churn(tenant, share=CHURN_SHARE, seed=options["seed"]))
                        expected = None
                    measured = _with_emulator_counts(
                        emulator, partial(_timed_sync, directory, LABELS[run])
                    )
                    # Computed after the run, so that the sync's peak RSS does not include it.
                    expected = expected or expected_directory(tenant, assigned_only=assigned)
                    if run == FULL:
                        size |= {
                            # Transitive (group, user) pairs in scope: what a full sync writes.
                            "memberships": len(expected.memberships),
                            "synced_users": len(expected.user_ids),
                            "synced_groups": len(expected.group_ids),
                        }
                    results.append(_result(run, measured, directory, expected))
                if options["reference"]:
                    reference = _benchmark_directory(reference_name, tenant, options["mode"])
                    measured = _with_emulator_counts(
                        emulator, partial(_timed_reference_sync, reference, assigned_only=assigned)
                    )
                    expected = expected or expected_directory(tenant, assigned_only=assigned)
                    results.append(_result(REFERENCE, measured, reference, expected))
            finally:
                forget_cached_tokens(tenant_id=tenant.tenant_id)
                if not options["keep"]:
                    for created in (name, reference_name):
                        _delete_directory(created)

        reference_seconds = next((r["seconds"] for r in results if r["run"] == REFERENCE), None)
        for result in results:
            result["ratio_to_reference"] = (
                round(reference_seconds / result["seconds"], 2)
                if reference_seconds and result["seconds"]
                else None
            )
        report = {
            "tenant": size,
            "mode": options["mode"],
            "database": connection.vendor,
            "latency_ms": options["latency_ms"],
            "throttle": options["throttle"],
            "ru_limit": RU_LIMIT if options["throttle"] else None,
            "ru_window_seconds": RU_WINDOW if options["throttle"] else None,
            "concurrency": settings.GRAPH_CONCURRENCY,
            "changes": churned,
            "rss_before_first_sync_mb": rss_before,
            "peak_rss_mb": _peak_rss_mb(),
            "matched": all(r["matched"] for r in results),
            "kept": options["keep"],
            "runs": results,
        }
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write(_table(report))
        if not report["matched"]:
            failed = ", ".join(LABELS[r["run"]] for r in results if not r["matched"])
            raise CommandError(f"The synced directory does not match the tenant after: {failed}.")


@contextmanager
def _retries_logged(verbosity: int) -> Iterator[None]:
    """Throttled retries are counted in the table; only `-v 2` logs each one as well."""
    graph_logger = logging.getLogger("directories.graph")
    level = graph_logger.level
    if verbosity < 2:
        graph_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        graph_logger.setLevel(level)


def _benchmark_directory(name: str, tenant: EmuTenant, mode: str) -> Directory:
    return Directory.objects.create(
        name=name,
        sync_mode=mode,
        tenant_id=tenant.tenant_id,
        tenant_name=tenant.display_name,
        verified_at=timezone.now(),
    )


def _timed_sync(directory: Directory, label: str) -> Measured:
    """One entra-sync run, as `sync_directory --allow-mass-delete` would do it."""
    # A client per run: its RequestStats are the run's request counts.
    client = GraphClient(tenant_id=directory.tenant_id, settings=GRAPH_SETTINGS)
    with counting_writes() as counter:
        started = time.perf_counter()
        outcome = directory_sync(
            directory=directory,
            trigger=SyncRun.Trigger.COMMAND,
            allow_mass_delete=True,
            client=client,
            auth_app_id=AUTH_CLIENT_ID,
        )
        seconds = time.perf_counter() - started
    run = outcome.run
    if run is None or run.status != SyncRun.Status.SUCCEEDED:
        raise CommandError(f"The {label} did not succeed: {run and run.error_message}")
    counts = run.counts()
    return Measured(
        seconds=seconds,
        rows_written=sum(
            value
            for actions in counts.values()
            for action, value in actions.items()
            if action != "seen"
        ),
        write_statements=counter.writes,
        client_requests=run.graph_requests,
        client_retries=run.graph_retries,
        summary=f"{run.read_mode}: {run.summary()}",
    )


def _timed_reference_sync(directory: Directory, *, assigned_only: bool) -> Measured:
    client = GraphClient(tenant_id=directory.tenant_id, settings=GRAPH_SETTINGS)
    with counting_writes() as counter:
        started = time.perf_counter()
        rows = reference_sync(directory=directory, client=client, assigned_only=assigned_only)
        seconds = time.perf_counter() - started
    return Measured(
        seconds=seconds,
        rows_written=rows,
        write_statements=counter.writes,
        client_requests=client.stats.requests,
        client_retries=client.stats.retries,
        summary=f"+{rows} rows",
    )


def reference_sync(*, directory: Directory, client: GraphClient, assigned_only: bool) -> int:
    """The sync a first version would write; returns the rows it inserted.

    Reads the groups in scope page by page, then each group's transitive user members, one
    group after another; then inserts every user, group and membership with its own INSERT,
    in one transaction (so a failure changes nothing, as DESIGN.md asks of any sync).
    """
    assigned: set[str] = set()
    if assigned_only:
        assigned = {
            a.principal_id
            for a in client.app_role_assignments(AUTH_CLIENT_ID)
            if a.principal_type == "Group"
        }
    groups = [g for g in client.groups() if not assigned_only or g.id in assigned]
    users: dict[str, GraphUser] = {}
    members: dict[str, list[str]] = {}
    for group in groups:
        found = client.group_transitive_users(group.id)
        users.update((user.id, user) for user in found)
        members[group.id] = [user.id for user in found]

    now = timezone.now()
    rows = 0
    with transaction.atomic():
        user_rows: dict[str, SyncedUser] = {}
        for user in users.values():
            user_rows[user.id] = SyncedUser.objects.create(
                directory=directory,
                entra_id=user.id,
                first_synced_at=now,
                changed_at=now,
                **user_fields(user),
            )
            rows += 1
        for group in groups:
            group_row = SyncedGroup.objects.create(
                directory=directory,
                entra_id=group.id,
                first_synced_at=now,
                changed_at=now,
                **group_fields(group),
            )
            rows += 1
            for user_id in dict.fromkeys(members[group.id]):
                Membership.objects.create(
                    directory=directory,
                    group=group_row,
                    user=user_rows[user_id],
                    first_synced_at=now,
                )
                rows += 1
    return rows


def _with_emulator_counts(emulator: Emulator, timed: Callable[[], Measured]) -> dict[str, Any]:
    """Run `timed` with a full resource-unit budget; add what the emulator counted meanwhile."""
    # Back to back, a run would start in the window the previous one spent; real syncs are
    # hours apart. Only the budget is reset: the counters keep running.
    emulator.graph.ru.reset()
    before = _emulator_call(emulator, "GET", "stats")
    with RssSampler() as rss:
        measured = timed()
    after = _emulator_call(emulator, "GET", "stats")
    delta = {
        key: after[key] - before[key]
        for key in ("requests", "subrequests", "status_429", "ru_spent", "ru_throttled")
    }
    return {
        "measured": measured,
        "emulator": delta,
        "run_peak_rss_mb": rss.peak_mb,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _result(
    run: str, counted: dict[str, Any], directory: Directory, expected: ExpectedDirectory
) -> dict[str, Any]:
    measured: Measured = counted["measured"]
    emulated = counted["emulator"]
    differences = _differences(directory, expected)
    return {
        "run": run,
        "label": LABELS[run],
        "seconds": round(measured.seconds, 3),
        "graph_requests": emulated["requests"],
        "batch_subrequests": emulated["subrequests"],
        "client_retries": measured.client_retries,
        "resource_units": emulated["ru_spent"],
        "resource_units_throttled": emulated["ru_throttled"],
        "status_429": emulated["status_429"],
        "rows_written": measured.rows_written,
        "rows_per_second": round(measured.rows_written / measured.seconds, 1)
        if measured.seconds
        else 0.0,
        "write_statements": measured.write_statements,
        "run_peak_rss_mb": counted["run_peak_rss_mb"],
        "peak_rss_mb": counted["peak_rss_mb"],
        "summary": measured.summary,
        "matched": not any(differences.values()),
        "differences": differences,
    }


def _differences(directory: Directory, expected: ExpectedDirectory) -> dict[str, int]:
    """Present rows missing from, or not in, the expected directory (all zero: exact).

    Memberships are streamed from the database, so a million of them is not held twice.
    """
    present_users = set(
        SyncedUser.objects.present().filter(directory=directory).values_list("entra_id", flat=True)
    )
    present_groups = set(
        SyncedGroup.objects.present().filter(directory=directory).values_list("entra_id", flat=True)
    )
    found = extra = 0
    memberships = (
        Membership.objects.present()
        .filter(directory=directory)
        .values_list("group__entra_id", "user__entra_id")
    )
    for pair in memberships.iterator(chunk_size=20_000):
        if pair in expected.memberships:
            found += 1
        else:
            extra += 1
    return {
        "users_missing": len(expected.user_ids - present_users),
        "users_extra": len(present_users - expected.user_ids),
        "groups_missing": len(expected.group_ids - present_groups),
        "groups_extra": len(present_groups - expected.group_ids),
        "memberships_missing": len(expected.memberships) - found,
        "memberships_extra": extra,
    }


def _emulator_call(
    emulator: Emulator, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The emulator's control API (`/_emulator/…`), called in-process."""
    answer = emulator.handle(
        method,
        f"{GRAPH_URL}/_emulator/{path}",
        {"Content-Type": "application/json"},
        json.dumps(body) if body is not None else b"",
    )
    payload: dict[str, Any] = json.loads(answer.body)
    if answer.status >= 400:
        raise CommandError(f"The emulator refused {method} {path}: {payload}")
    return payload


class RssSampler:
    """The resident set's peak during a block, sampled from /proc/self/statm (Linux).

    ru_maxrss is the process's peak so far, which after the first run also holds what earlier
    runs and checks needed; this shows what each run itself reached. None without /proc.
    """

    INTERVAL = 0.02

    def __init__(self) -> None:
        self.peak_mb: float | None = None
        self._page = resource.getpagesize()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        peak = 0
        try:
            with open("/proc/self/statm", "rb") as statm:
                while True:
                    statm.seek(0)
                    peak = max(peak, int(statm.read().split()[1]))
                    if self._stop.wait(self.INTERVAL):
                        break
        except (OSError, ValueError, IndexError):
            return
        self.peak_mb = round(peak * self._page / 2**20, 1)


def _peak_rss_mb() -> float:
    """The process's peak resident set so far (Linux reports kilobytes)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _table(report: dict[str, Any]) -> str:
    tenant = report["tenant"]
    throttle = (
        f"on ({report['ru_limit']:,} RU / {report['ru_window_seconds']:g} s per app+tenant)"
        if report["throttle"]
        else "off"
    )
    lines = [
        f"Tenant: {tenant['users']:,} users, {tenant['groups']:,} groups, "
        f"{tenant['memberships']:,} memberships in scope ({tenant['synced_users']:,} users "
        f"synced); mode {report['mode']}; seed {tenant['seed']}; generated in "
        f"{tenant['generated_seconds']:.1f} s",
        f"Database {report['database']}; latency {report['latency_ms']:g} ms per Graph request; "
        f"throttle {throttle}; GRAPH_CONCURRENCY {report['concurrency']}",
        "",
    ]
    header = (
        "run",
        "wall (s)",
        "Graph requests",
        "RU spent",
        "429s",
        "rows written",
        "rows/s",
        "ratio",
        "peak RSS MB (run / process)",
    )
    rows = [header]
    for run in report["runs"]:
        ratio = run["ratio_to_reference"]
        rows.append(
            (
                run["label"] + ("" if run["matched"] else " (MISMATCH)"),
                f"{run['seconds']:.2f}",
                f"{run['graph_requests']:,}",
                f"{run['resource_units']:,}",
                f"{run['status_429']:,}",
                f"{run['rows_written']:,}",
                f"{run['rows_per_second']:,.0f}",
                "-" if ratio is None else f"{ratio:.1f}x",
                f"{_mb(run['run_peak_rss_mb'])} / {_mb(run['peak_rss_mb'])}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines.append("")
    lines.append(
        "ratio: the reference's wall time / the run's. Peak RSS: sampled during the run / the "
        f"process's peak so far, ru_maxrss ({_mb(report['rss_before_first_sync_mb'])} MB before "
        "the first sync: Python, Django and the emulated tenant)"
    )
    if report["changes"]:
        lines.append(f"1 % changes: {report['changes']}")
    lines.append(
        "Every run matched the tenant exactly."
        if report["matched"]
        else "MISMATCH: see the runs marked above (--json shows the differences)."
    )
    return "\n".join(lines)


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def _delete_directory(name: str) -> None:
    """Delete in dependency order so each statement is one fast bulk DELETE."""
    for model in (
        Membership,
        SyncedUser,
        SyncedGroup,
        SyncRun,
        MirroredEdge,
        MirroredUser,
        MirroredGroup,
    ):
        model._default_manager.filter(directory__name=name)._raw_delete(using="default")
    Directory.objects.filter(name=name).delete()
