"""manage.py export_directory NAME --format {json,csv} [--output FILE]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from directories.management.base import EntraSyncCommand
from directories.services.directories import DirectoryInputError, directory_get
from identities.export import directory_export_data, write_users_csv


class Command(EntraSyncCommand):
    help = (
        "Export a directory's present users and groups. JSON holds users and groups with "
        "their members; CSV holds one row per user with its groups' object ids."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", help="Directory name or id")
        parser.add_argument("--format", choices=["json", "csv"], default="json")
        parser.add_argument("--output", help="Write to this file instead of standard output")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            directory = directory_get(options["directory"])
        except DirectoryInputError as exc:
            raise CommandError(str(exc)) from exc
        data = directory_export_data(directory=directory)
        if options["output"]:
            try:
                with Path(options["output"]).open("w", encoding="utf-8", newline="") as stream:
                    self._write(data, options["format"], stream)
            except OSError as exc:
                raise CommandError(f"Cannot write {options['output']}: {exc.strerror}") from exc
            self.stderr.write(
                f"Exported {len(data['users'])} users and {len(data['groups'])} groups to "
                f"{options['output']}."
            )
        else:
            self._write(data, options["format"], self.stdout)

    def _write(self, data: dict[str, Any], fmt: str, stream: Any) -> None:
        if fmt == "json":
            stream.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        else:
            write_users_csv(data, stream)
