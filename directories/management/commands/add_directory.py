"""manage.py add_directory --name NAME --mode {assigned,all} [--tenant-id GUID]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from directories.management.base import EntraSyncCommand
from directories.models import SyncMode
from directories.services.directories import DirectoryInputError, directory_add


class Command(EntraSyncCommand):
    help = "Record a directory to sync. Like one added in the admin, it syncs once verified."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="A unique name, e.g. Contoso")
        parser.add_argument(
            "--mode",
            required=True,
            choices=SyncMode.values,
            help="assigned: groups assigned to the Authentication app (recommended, needs "
            "Entra ID P1/P2); all: every group in the tenant",
        )
        parser.add_argument("--tenant-id", default="", help="The Entra ID tenant id, if known")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            directory = directory_add(
                name=options["name"], mode=options["mode"], tenant_id=options["tenant_id"]
            )
        except DirectoryInputError as exc:
            raise CommandError(str(exc)) from exc
        hint = "" if directory.tenant_id else " --tenant-id TENANT_ID"
        self.stdout.write(
            f"Added directory {directory.name} ({directory.get_sync_mode_display()}, id "
            f"{directory.pk}). It syncs once verified: use Verify Now in the admin, or run "
            f"`manage.py verify_directory {directory.name}{hint}`."
        )
