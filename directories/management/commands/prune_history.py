"""manage.py prune_history [--dry-run] [--json]"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from directories.management.base import EntraSyncCommand
from directories.services.retention import PRUNED_KINDS, PruneResult, history_prune

# Singular and plural, and what the age is counted from.
KIND_NOUNS = {
    "sync_runs": ("sync run", "sync runs", "started"),
    "memberships": ("membership", "memberships", "removed"),
    "users": ("user", "users", "removed"),
    "groups": ("group", "groups", "removed"),
}


class Command(EntraSyncCommand):
    help = (
        "Delete sync runs older than SYNC_RUN_RETENTION_DAYS and users, groups and "
        "memberships removed more than REMOVED_OBJECT_RETENTION_DAYS ago (what the daily "
        "schedule does). A directory's latest run, running and held runs and present objects "
        "are always kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would be pruned; delete nothing"
        )
        parser.add_argument("--json", action="store_true", help="Print the counts as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        result = history_prune(dry_run=options["dry_run"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        for line in _lines(result):
            self.stdout.write(line)
        for name in result.skipped_directories:
            self.stderr.write(
                f"{name}: a sync is running, so its removed objects are left for the next prune."
            )


def _lines(result: PruneResult) -> list[str]:
    """One line per kind: '12 sync runs pruned (started more than 90 days ago)'."""
    verb = "would be pruned" if result.dry_run else "pruned"
    lines = []
    for kind in PRUNED_KINDS:
        one, many, since = KIND_NOUNS[kind]
        if kind == "sync_runs":
            variable, days = "SYNC_RUN_RETENTION_DAYS", result.sync_run_retention_days
        else:
            variable, days = "REMOVED_OBJECT_RETENTION_DAYS", result.removed_object_retention_days
        count = result.pruned[kind]
        if days == 0:
            lines.append(f"{many}: kept forever ({variable}=0)")
        else:
            noun = one if count == 1 else many
            lines.append(f"{count} {noun} {verb} ({since} more than {days} days ago)")
    return lines
