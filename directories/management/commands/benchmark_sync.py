"""manage.py benchmark_sync: time full, unchanged and incremental syncs of a generated tenant.

The tenant is served in-process by the emulator (through `responses`), so the numbers measure
entra-sync itself (MSAL, the Graph client, the engine, the database) plus an optional
simulated network latency per Graph request. It writes to the configured database under a
directory named `benchmark-…`, removed at the end unless --keep.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import responses
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from directories.graph import forget_cached_tokens
from directories.models import Directory, SyncMode, SyncRun
from directories.sync import directory_sync
from entra_emulator import Emulator, EmuTenant, EmuUser, generate_tenant
from entra_emulator.expected import expected_directory
from entra_emulator.responses_adapter import install
from identities.models import Membership, SyncedGroup, SyncedUser
from identities.selectors import directory_present_state

LOGIN_URL = "https://login.benchmark.test"
GRAPH_URL = "https://graph.benchmark.test"
CLIENT_ID = "0b0b0b0b-0000-4000-8000-00000000b0b0"
CLIENT_SECRET = "benchmark-secret"
AUTH_CLIENT_ID = "0a0a0a0a-0000-4000-8000-00000000a0a0"


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


def change_tenant(tenant: EmuTenant, *, share: float) -> str:
    """Rename, remove and add a share of users, as a day in a real tenant might."""
    users = sorted(tenant.users)
    step = max(1, int(1 / share))
    renamed = 0
    for user_id in users[::step]:
        tenant.rename_user(user_id, display_name=tenant.users[user_id].display_name + " (new)")
        renamed += 1
    removed = 0
    for group_id in sorted(tenant.groups)[:: max(1, len(tenant.groups) // 10)]:
        members = tenant.members_of(group_id, transitive=False, kind="user")
        if members:
            tenant.remove_member(group_id, members[0])
            removed += 1
    target = next(iter(sorted(tenant.groups)))
    added = max(1, int(len(users) * share))
    for n in range(added):
        user = tenant.add_user(
            EmuUser(
                id=f"b0b0b0b0-0000-4000-8000-{n:012d}",
                user_principal_name=f"new.hire{n}@{tenant.default_domain}",
                mail=None,
                display_name=f"New Hire {n}",
                given_name="New",
                surname=f"Hire {n}",
                account_enabled=True,
                user_type="Member",
            )
        )
        tenant.add_member(target, user.id)
    return f"{renamed} users renamed, {removed} memberships removed, {added} users added"


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
        parser.add_argument("--concurrency", type=int, default=4, help="GRAPH_CONCURRENCY")
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
        emulator = Emulator(graph_url=GRAPH_URL)
        emulator.add_app(CLIENT_ID, CLIENT_SECRET)
        emulator.add_tenant(tenant)
        emulator.graph.latency = options["latency_ms"] / 1000
        assigned = options["mode"] == SyncMode.ASSIGNED
        name = f"benchmark-{options['users']}x{options['groups']}-{options['mode']}"

        results: list[dict[str, Any]] = []
        with (
            responses.RequestsMock(assert_all_requests_are_fired=False) as rsps,
            override_settings(
                ENTRA_LOGIN_URL=LOGIN_URL,
                GRAPH_URL=GRAPH_URL,
                ENTRA_CLIENT_ID=CLIENT_ID,
                ENTRA_CLIENT_SECRET=CLIENT_SECRET,
                ENTRA_AUTH_CLIENT_ID=AUTH_CLIENT_ID,
                GRAPH_CONCURRENCY=options["concurrency"],
            ),
        ):
            install(rsps, emulator, login_url=LOGIN_URL, graph_url=GRAPH_URL)
            forget_cached_tokens()
            _delete_directory(name)
            directory = Directory.objects.create(
                name=name,
                sync_mode=options["mode"],
                tenant_id=tenant.tenant_id,
                tenant_name=tenant.display_name,
                verified_at=timezone.now(),
            )
            try:
                for label in ("full (empty database)", "unchanged", "incremental"):
                    note = ""
                    if label == "incremental":
                        note = change_tenant(tenant, share=0.01)
                    results.append(self._timed_sync(directory, label, note))
                    self._check(directory, tenant, assigned)
            finally:
                if not options["keep"]:
                    _delete_directory(name)

        report = {
            "tenant": {**size, "generated_seconds": round(generated, 3)},
            "mode": options["mode"],
            "database": connection.vendor,
            "latency_ms": options["latency_ms"],
            "concurrency": options["concurrency"],
            "runs": results,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(
            f"Tenant: {size['users']} users, {size['groups']} groups "
            f"(generated in {generated:.2f}s); mode {options['mode']}; {connection.vendor}; "
            f"latency {options['latency_ms']} ms/request; concurrency {options['concurrency']}"
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
        with counting_writes() as counter:
            started = time.perf_counter()
            outcome = directory_sync(
                directory=directory, trigger=SyncRun.Trigger.COMMAND, allow_mass_delete=True
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
    for model in (Membership, SyncedUser, SyncedGroup, SyncRun):
        model._default_manager.filter(directory__name=name)._raw_delete(using="default")
    Directory.objects.filter(name=name).delete()
