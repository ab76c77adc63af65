"""manage.py sync_history [NAME] [--failures] [--json] [--limit N]"""

from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from directories.management.base import EXIT_USAGE, EntraSyncCommand
from directories.selectors import sync_run_summary, sync_runs_recent
from directories.services.directories import DirectoryInputError, directory_get

# A database refuses a LIMIT beyond 64 bits; nobody reads more runs than this in a terminal.
MAX_LIMIT = 100_000


def run_limit(text: str) -> int:
    """--limit's value: a count of runs. Zero or fewer is a mistake on the command line (exit
    2), not "show one"; more than MAX_LIMIT shows MAX_LIMIT."""
    try:
        limit = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if limit < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {limit}")
    return min(limit, MAX_LIMIT)


class Command(EntraSyncCommand):
    help = "Show recent sync runs, newest first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", nargs="?", help="Only this directory (name or id)")
        parser.add_argument("--failures", action="store_true", help="Only failed and held runs")
        parser.add_argument("--json", action="store_true")
        parser.add_argument(
            "--limit",
            type=run_limit,
            default=20,
            help=f"At most this many runs (at least 1; more than {MAX_LIMIT} shows {MAX_LIMIT})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:  # call_command(limit=0) skips the parser's check
            raise CommandError(
                f"--limit must be at least 1, not {options['limit']}", returncode=EXIT_USAGE
            )
        directory = None
        if options["directory"]:
            try:
                directory = directory_get(options["directory"])
            except DirectoryInputError as exc:
                raise CommandError(str(exc)) from exc
        runs = list(
            sync_runs_recent(
                directory=directory,
                failures_only=options["failures"],
                limit=min(options["limit"], MAX_LIMIT),
            )
        )
        if options["json"]:
            self.stdout.write(json.dumps([sync_run_summary(run) for run in runs], indent=2))
            return
        if not runs:
            self.stdout.write("No sync runs yet.")
            return
        for run in runs:
            duration = f"{run.duration.total_seconds():.1f}s" if run.duration else "-"
            if run.error_class:
                detail = f"[{run.error_class}] {run.error_message}"
                if run.graph_request_id:
                    detail += f" (request-id {run.graph_request_id})"
            else:
                detail = run.summary()
            self.stdout.write(
                f"#{run.pk} {run.started_at:%Y-%m-%d %H:%M:%S} {run.directory.name} "
                f"{run.get_trigger_display()} {run.get_status_display()} {duration} {detail}"
            )
