"""manage.py sync_directory (NAME | --all) [--json] [--dry-run] [--allow-mass-delete]"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directories.graph import GraphError
from directories.models import Directory, SyncRun
from directories.selectors import sync_outcome_summary
from directories.services.directories import DirectoryInputError, directory_get
from directories.sync import SyncAlreadyRunning, SyncOutcome, SyncRefused, directory_sync
from directories.sync.plan import ObjectChanges, SyncPlan

EXIT_FAILED = 1
EXIT_NEEDS_APPROVAL = 3
LISTED = 20


class Command(BaseCommand):
    help = "Sync one directory (or all verified, enabled ones) in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("directory", nargs="?", help="Directory name or id")
        target.add_argument("--all", action="store_true", help="Every verified, enabled one")
        parser.add_argument("--json", action="store_true", help="Print the run summary as JSON")
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would change; write nothing"
        )
        parser.add_argument(
            "--allow-mass-delete",
            action="store_true",
            help="Apply even if the run removes more than the mass-deletion limit",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["all"]:
            directories = list(Directory.objects.syncable())
            if not directories and not options["json"]:
                # Not an error (a fresh install), but silence would look like a sync.
                self.stderr.write("No directory is verified and enabled: nothing to sync.")
        else:
            try:
                directories = [directory_get(options["directory"])]
            except DirectoryInputError as exc:
                raise CommandError(str(exc)) from exc

        summaries: list[dict[str, Any]] = []
        failures: list[str] = []
        held = False
        for directory in directories:
            try:
                outcome = directory_sync(
                    directory=directory,
                    trigger=SyncRun.Trigger.COMMAND,
                    dry_run=options["dry_run"],
                    allow_mass_delete=options["allow_mass_delete"],
                )
            except (SyncRefused, SyncAlreadyRunning, GraphError) as exc:
                failures.append(f"{directory.name}: {exc}")
                continue
            summaries.append(sync_outcome_summary(outcome))
            if outcome.run is None:
                if not options["json"]:
                    self._print_plan(outcome)
                continue
            if not options["json"]:
                self._print_run(outcome)
            if outcome.run.status == SyncRun.Status.FAILED:
                failures.append(f"{directory.name}: {outcome.run.error_message}")
            elif outcome.run.status == SyncRun.Status.NEEDS_APPROVAL:
                held = True
                failures.append(f"{directory.name}: {outcome.run.error_message}")

        if options["json"]:
            payload: Any = summaries if options["all"] else (summaries[0] if summaries else None)
            self.stdout.write(json.dumps(payload, indent=2))
        if failures:
            for line in failures[:-1]:
                self.stderr.write(line)
            code = EXIT_NEEDS_APPROVAL if held and len(failures) == 1 else EXIT_FAILED
            raise CommandError(failures[-1], returncode=code)

    def _print_run(self, outcome: SyncOutcome) -> None:
        run = outcome.run
        assert run is not None
        line = (
            f"{run.directory.name}: {run.get_status_display().lower()} in "
            f"{outcome.seconds:.1f}s: {run.summary()} ({run.users_seen} users, "
            f"{run.groups_seen} groups, {run.memberships_seen} memberships in scope; "
            f"{run.graph_requests} Graph requests, {run.graph_retries} retried)"
        )
        self.stdout.write(line)
        if run.status == SyncRun.Status.NEEDS_APPROVAL:
            removals = run.planned_removals
            for kind in ("users", "groups"):
                for item in removals.get(kind, [])[:LISTED]:
                    self.stdout.write(f"  would remove {kind[:-1]} {item['name']} ({item['id']})")
            self.stdout.write(f"  {run.error_remediation}")

    def _print_plan(self, outcome: SyncOutcome) -> None:
        plan = outcome.plan
        assert plan is not None
        counts = plan.counts()
        changes = ", ".join(
            f"{kind} +{c['created']}"
            + (f" ~{c['updated']}" if "updated" in c else "")
            + f" -{c['removed']}"
            for kind, c in counts.items()
        )
        self.stdout.write(
            f"{outcome.directory.name} (dry run, nothing written): {changes} "
            f"({outcome.requests} Graph requests)"
        )
        self._print_changes("user", plan.users, "user_principal_name")
        self._print_changes("group", plan.groups, "display_name")
        self._print_memberships(plan)

    def _print_changes(self, kind: str, changes: ObjectChanges, name_field: str) -> None:
        lines = [
            f"  + {kind} {values[name_field]} ({eid})" for eid, values in changes.create.items()
        ]
        lines += [
            f"  + {kind} {values[name_field]} (returning)" for values in changes.revive.values()
        ]
        lines += [f"  ~ {kind} {values[name_field]}" for values in changes.update.values()]
        lines += [f"  - {kind} {name} ({eid})" for eid, name in changes.remove.values()]
        for line in lines[:LISTED]:
            self.stdout.write(line)
        if len(lines) > LISTED:
            self.stdout.write(f"  … and {len(lines) - LISTED} more {kind} changes")

    def _print_memberships(self, plan: SyncPlan) -> None:
        if plan.memberships_created or plan.memberships_remove:
            self.stdout.write(
                f"  memberships: {plan.memberships_created} to add, "
                f"{len(plan.memberships_remove)} to remove"
            )
