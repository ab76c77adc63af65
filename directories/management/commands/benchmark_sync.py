"""manage.py benchmark_sync: time full, unchanged and incremental syncs of a generated tenant.

The tenant is served in-process by the emulator (`entra_emulator.transport`, no sockets and
no test library), so the numbers measure entra-sync itself (MSAL, the Graph client, the
engine, the database) plus an optional simulated network latency per Graph request. The
benchmark uses its own Graph client and Authentication app id, so the Entra settings are
neither needed nor changed; GRAPH_CONCURRENCY is read from the environment as in a real sync.
It writes to the configured database under a directory named `benchmark-…`, removed at the
end unless --keep. It needs only the runtime requirements.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone

from directories.graph import GraphClient, GraphSettings, forget_cached_tokens
from directories.models import (
    Directory,
    MirroredEdge,
    MirroredGroup,
    MirroredUser,
    SyncMode,
    SyncRun,
)
from directories.sync import directory_sync
from entra_emulator import EmuTenant, generate_tenant
from entra_emulator.expected import expected_directory
from entra_emulator.scenarios import day_of_changes, single_tenant_emulator
from entra_emulator.transport import serve_in_process
from identities.models import Membership, SyncedGroup, SyncedUser
from identities.selectors import directory_present_state

LOGIN_URL = "https://login.benchmark.test"
GRAPH_URL = "https://graph.benchmark.test"
CLIENT_ID = "0b0b0b0b-0000-4000-8000-00000000b0b0"
CLIENT_SECRET = "benchmark-secret"
AUTH_CLIENT_ID = "0a0a0a0a-0000-4000-8000-00000000a0a0"
GRAPH_SETTINGS = GraphSettings(
    client_id=CLIENT_ID, client_secret=CLIENT_SECRET, login_url=LOGIN_URL, graph_url=GRAPH_URL
)
RUNS = ("full (empty database)", "unchanged", "incremental")


class WriteCounter:
    """Counts SQL statements that write to the identities tables."""

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


class Command(BaseCommand):
    help = "Benchmark full, unchanged and incremental syncs of a generated tenant."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=10_000)
        parser.add_argument("--groups", type=int, default=500)
        parser.add_argument("--mode", choices=SyncMode.values, default=SyncMode.ALL)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--latency-ms", type=float, default=0.0, help="Simulated latency per Graph request"
        )
        parser.add_argument("--keep", action="store_true", help="Keep the benchmark directory")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        tenant = generate_tenant(
            users=options["users"],
            groups=options["groups"],
            seed=options["seed"],
            auth_app_id=AUTH_CLIENT_ID,
        )
        generated = time.perf_counter() - started
        size = {"users": len(tenant.users), "groups": len(tenant.groups)}
        emulator = single_tenant_emulator(
            tenant,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            graph_url=GRAPH_URL,
            latency_ms=options["latency_ms"],
        )
        assigned = options["mode"] == SyncMode.ASSIGNED
        name = f"benchmark-{options['users']}x{options['groups']}-{options['mode']}"

        results: list[dict[str, Any]] = []
        with serve_in_process(emulator, login_url=LOGIN_URL, graph_url=GRAPH_URL):
            forget_cached_tokens(tenant_id=tenant.tenant_id)  # a token of an earlier emulator
            _delete_directory(name)
            directory = Directory.objects.create(
                name=name,
                sync_mode=options["mode"],
                tenant_id=tenant.tenant_id,
                tenant_name=tenant.display_name,
                verified_at=timezone.now(),
            )
            try:
                for label in RUNS:
                    note = day_of_changes(tenant, share=0.01) if label == "incremental" else ""
                    results.append(self._timed_sync(directory, label, note))
                    self._check(directory, tenant, assigned)
            finally:
                forget_cached_tokens(tenant_id=tenant.tenant_id)
                if not options["keep"]:
                    _delete_directory(name)

        concurrency = settings.GRAPH_CONCURRENCY
        report = {
            "tenant": {**size, "generated_seconds": round(generated, 3)},
            "mode": options["mode"],
            "database": connection.vendor,
            "latency_ms": options["latency_ms"],
            "concurrency": concurrency,
            "runs": results,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(
            f"Tenant: {size['users']} users, {size['groups']} groups "
            f"(generated in {generated:.2f}s); mode {options['mode']}; {connection.vendor}; "
            f"latency {options['latency_ms']} ms/request; concurrency {concurrency} "
            "(GRAPH_CONCURRENCY)"
        )
        for result in results:
            self.stdout.write(
                f"  {result['run']:<22} {result['seconds']:>7.2f}s  "
                f"{result['requests']:>5} requests ({result['retries']} retried)  "
                f"{result['identity_writes']:>4} write statements  {result['summary']}"
                + (f"  [{result['note']}]" if result["note"] else "")
            )
        self.stdout.write(f"  peak RSS {report['peak_rss_mb']} MB; every run matched the tenant")

    def _timed_sync(self, directory: Directory, label: str, note: str) -> dict[str, Any]:
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
            raise CommandError(f"The {label} sync did not succeed: {run and run.error_message}")
        return {
            "run": label,
            "seconds": round(seconds, 3),
            "requests": run.graph_requests,
            "retries": run.graph_retries,
            "identity_writes": counter.writes,
            "users": run.users_seen,
            "memberships": run.memberships_seen,
            "summary": run.summary(),
            "note": note,
        }

    def _check(self, directory: Directory, tenant: EmuTenant, assigned: bool) -> None:
        expected = expected_directory(tenant, assigned_only=assigned)
        state = directory_present_state(directory=directory)
        if (state.user_ids, state.group_ids, state.memberships) != (
            expected.user_ids,
            expected.group_ids,
            expected.memberships,
        ):
            raise CommandError("The synced directory does not match the emulated tenant.")


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
