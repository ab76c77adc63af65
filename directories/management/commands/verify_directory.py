"""manage.py verify_directory NAME [--tenant-id GUID]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from directories.graph import GraphError
from directories.management.base import EntraSyncCommand
from directories.services.directories import DirectoryInputError, directory_get
from directories.services.verify import directory_verify


class Command(EntraSyncCommand):
    help = (
        "Check with the Directory Sync app's own credentials that the tenant can be read "
        "(organization and, in assigned mode, the Authentication app) and mark it verified."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", help="Directory name or id")
        parser.add_argument("--tenant-id", default="", help="The Entra ID tenant id (GUID)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            directory = directory_get(options["directory"])
            result = directory_verify(directory=directory, tenant_id=options["tenant_id"])
        except (DirectoryInputError, GraphError) as exc:
            raise CommandError(f"Verification failed: {exc}") from exc
        domain = f", {result.tenant_domain}" if result.tenant_domain else ""
        self.stdout.write(
            f"Connected to {result.tenant_name} (tenant id {result.tenant_id}{domain})."
        )
        if result.assigned_groups is not None:
            if result.assigned_groups:
                self.stdout.write(
                    f"{result.assigned_groups} group(s) are assigned to the Authentication app."
                )
            else:
                self.stderr.write(
                    "Warning: no groups are assigned to the Authentication app yet; assign "
                    "groups in Entra ID (needs P1/P2) before the first sync."
                )
