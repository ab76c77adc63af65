"""manage.py sync_directory (NAME | --all) [--json] [--dry-run] [--allow-mass-delete]"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, islice
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from directories.graph import ErrorClass, GraphError
from directories.management.base import (
    EXIT_FAILED,
    EntraSyncCommand,
    internal_error_line,
    one_line,
)
from directories.models import Directory, SyncRun
from directories.selectors import (
    sync_failure_summary,
    sync_outcome_summary,
    sync_run_started_since,
    sync_run_summary,
    synced_field_changes,
)
from directories.services.attention import schedule_pause_message
from directories.services.directories import DirectoryInputError, directory_get
from directories.sync import SyncAlreadyRunning, SyncOutcome, SyncRefused, directory_sync
from directories.sync.engine import APPROVAL_REMEDIATION, INTERNAL_REMEDIATION
from directories.sync.guard import mass_deletion_reason
from directories.sync.plan import ObjectChanges, SyncPlan
from identities.models import SyncedGroup, SyncedUser

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_NEEDS_APPROVAL = 3
LISTED = 20  # changes listed per kind (users, groups), then "… and N more"
SHOWN_VALUE = 60  # characters of an old or new value in a dry run's "~" line


def sync_exit_status(*, failed: bool, held: bool) -> int:
    """The exit status of a command that synced one or more directories.

    Broken wins: if any directory did not sync (its run failed or crashed, or it was refused
    or already running), 1, even when another waits for approval, because something needs
    fixing, not just a decision. Otherwise 3 if a run waits for a person's approval, else 0.
    """
    if failed:
        return EXIT_FAILED
    if held:
        return EXIT_NEEDS_APPROVAL
    return EXIT_OK


def dry_run_hold_reason(plan: SyncPlan, *, allow_mass_delete: bool) -> str | None:
    """Why the real run of this plan would wait for approval, or None if it would apply.

    The engine's own guard, with the same settings; a dry run has no approval to weigh.
    """
    if allow_mass_delete:
        return None
    return mass_deletion_reason(
        plan, ratio=settings.SYNC_MASS_DELETE_RATIO, floor=settings.SYNC_MASS_DELETE_MIN
    )


def shown_value(value: Any) -> str:
    """A column's value in one short line: quoted text (so '' shows), clipped."""
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE else text[: SHOWN_VALUE - 1] + "…"


@dataclass(frozen=True)
class DirectoryResult:
    """How one directory's sync ended, for the exit status, stderr and the JSON."""

    summary: dict[str, Any] | None  # None when nothing ran (refused, already running)
    problem: str = ""  # the one line for standard error
    failed: bool = False
    held: bool = False


class Command(EntraSyncCommand):
    help = (
        "Sync one directory (or all verified, enabled ones) in the foreground. "
        "Standard output has the result only (--json: the run summary, a list with --all); "
        "standard error one line per directory that did not succeed. "
        "Exit status: 0 every directory synced (or nothing was to sync); 1 at least one did "
        "not (a failed or crashed run, a refused directory, a sync already running), even if "
        "another waits for approval; 3 none failed but at least one run waits for approval "
        "of a mass deletion (approve it in the admin, or run again with --allow-mass-delete) "
        "or, with --dry-run, would wait; "
        "2 the command line is wrong. --all skips, and counts as not synced, a directory that "
        "needs attention (its scheduled syncs are paused); name it to sync it."
    )

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

        results = [
            self._paused(directory)
            if options["all"] and directory.needs_attention
            else self._sync(directory, options)
            for directory in directories
        ]

        if options["json"]:
            summaries = [r.summary for r in results if r.summary is not None]
            payload: Any = summaries if options["all"] else (summaries[0] if summaries else None)
            self.stdout.write(json.dumps(payload, indent=2))
        problems = [r.problem for r in results if r.problem]
        if problems:
            for line in problems[:-1]:
                self.stderr.write(one_line(line))
            code = sync_exit_status(
                failed=any(r.failed for r in results), held=any(r.held for r in results)
            )
            raise CommandError(problems[-1], returncode=code)

    def _paused(self, directory: Directory) -> DirectoryResult:
        """--all leaves out a directory that needs attention, as its schedule does; naming it
        syncs it, so that an admin can check a fix."""
        return DirectoryResult(
            summary=None,
            problem=f"{directory.name}: {schedule_pause_message(directory)}",
            failed=True,
        )

    def _sync(self, directory: Directory, options: dict[str, Any]) -> DirectoryResult:
        """Sync one directory and print it (unless --json); never raises for its failure."""
        started = timezone.now()
        try:
            outcome = directory_sync(
                directory=directory,
                trigger=SyncRun.Trigger.COMMAND,
                dry_run=options["dry_run"],
                allow_mass_delete=options["allow_mass_delete"],
            )
        except (SyncRefused, SyncAlreadyRunning) as exc:
            return DirectoryResult(summary=None, problem=f"{directory.name}: {exc}", failed=True)
        except GraphError as exc:  # a dry run reads before anything is recorded
            summary = sync_failure_summary(
                directory=directory,
                error_class=exc.error_class,
                message=exc.message,
                remediation=exc.remediation,
                request_id=exc.request_id,
            )
            return DirectoryResult(summary, problem=f"{directory.name}: {exc}", failed=True)
        except Exception as exc:
            if options["traceback"]:
                raise
            return self._crashed(directory, exc, since=started, dry_run=options["dry_run"])

        if outcome.run is None:
            assert outcome.plan is not None  # a dry run always has its plan
            reason = dry_run_hold_reason(
                outcome.plan, allow_mass_delete=options["allow_mass_delete"]
            )
            summary = sync_outcome_summary(outcome) | {
                "would_hold": reason is not None,
                "hold_reason": reason,
            }
            if not options["json"]:
                self._print_plan(outcome, hold_reason=reason)
            if reason:  # exit 3, as the real run would: a script can check before it runs
                problem = f"{directory.name}: a real run would wait for approval: {reason}"
                return DirectoryResult(summary, problem=problem, held=True)
            return DirectoryResult(summary)
        if not options["json"]:
            self._print_run(outcome)
        run = outcome.run
        problem = f"{directory.name}: {run.error_message}"
        if run.status == SyncRun.Status.FAILED:
            return DirectoryResult(sync_outcome_summary(outcome), problem=problem, failed=True)
        if run.status == SyncRun.Status.NEEDS_APPROVAL:
            return DirectoryResult(sync_outcome_summary(outcome), problem=problem, held=True)
        return DirectoryResult(sync_outcome_summary(outcome))

    def _crashed(
        self, directory: Directory, exc: Exception, *, since: datetime, dry_run: bool
    ) -> DirectoryResult:
        """A bug, not a Graph failure: the traceback to the log, one line to the person.

        The engine has recorded the run as failed (internal) before re-raising, unless it
        crashed before the run existed (or in a dry run, which records nothing).
        """
        logger.exception("Sync of %s crashed", directory)
        run = None
        if not dry_run:
            try:
                run = sync_run_started_since(
                    directory=directory, trigger=SyncRun.Trigger.COMMAND, since=since
                )
            except Exception:  # the database may be what broke: report the crash regardless
                logger.exception("The run of %s that crashed could not be read", directory)
        summary = (
            sync_run_summary(run)
            if run is not None
            else sync_failure_summary(
                directory=directory,
                error_class=ErrorClass.INTERNAL,
                message=f"Unexpected error: {type(exc).__name__}: {exc}",
                remediation=INTERNAL_REMEDIATION,
            )
        )
        return DirectoryResult(
            summary, problem=internal_error_line(directory.name, exc), failed=True
        )

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

    def _print_plan(self, outcome: SyncOutcome, *, hold_reason: str | None) -> None:
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
        self._print_changes("user", plan.users, "user_principal_name", SyncedUser)
        self._print_changes("group", plan.groups, "display_name", SyncedGroup)
        self._print_memberships(plan)
        if hold_reason:
            self.stdout.write(f"  A real run would wait for approval. {APPROVAL_REMEDIATION}")

    def _print_changes(
        self,
        kind: str,
        changes: ObjectChanges,
        name_field: str,
        model: type[SyncedUser] | type[SyncedGroup],
    ) -> None:
        """The first LISTED changes of one kind; an update says which fields, old → new."""
        total = len(changes.create) + len(changes.revive) + len(changes.update)
        total += len(changes.remove)
        # Lines come in this order, so the updates shown are the first ones after + lines.
        room = max(0, LISTED - len(changes.create) - len(changes.revive))
        shown = dict(islice(changes.update.items(), room))
        old_and_new = synced_field_changes(model=model, updates=shown)

        def updates() -> Iterator[str]:
            for pk, values in shown.items():
                fields = ", ".join(
                    f"{column} {shown_value(old)} → {shown_value(new)}"
                    for column, (old, new) in old_and_new.get(pk, {}).items()
                )
                yield f"  ~ {kind} {values[name_field]}" + (f": {fields}" if fields else "")

        lines = chain(
            (f"  + {kind} {values[name_field]} ({eid})" for eid, values in changes.create.items()),
            (f"  + {kind} {values[name_field]} (returning)" for values in changes.revive.values()),
            updates(),
            (f"  - {kind} {name} ({eid})" for eid, name in changes.remove.values()),
        )
        for line in islice(lines, LISTED):
            self.stdout.write(line)
        if total > LISTED:
            self.stdout.write(f"  … and {total - LISTED} more {kind} changes")

    def _print_memberships(self, plan: SyncPlan) -> None:
        if plan.memberships_created or plan.memberships_remove:
            self.stdout.write(
                f"  memberships: {plan.memberships_created} to add, "
                f"{len(plan.memberships_remove)} to remove"
            )
