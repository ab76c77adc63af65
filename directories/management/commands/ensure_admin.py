"""manage.py ensure_admin: create a first admin account when there is none; say how to log in."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create an 'admin' superuser with a random password if no superuser exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/")
        parser.add_argument(
            "--password-file",
            help="Keep the generated password here (0600) and print it on every run (demos)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        saved = Path(options["password_file"]) if options["password_file"] else None
        if users.objects.filter(is_superuser=True).exists():
            if (
                saved
                and saved.is_file()
                and users.objects.filter(username=options["username"]).exists()
            ):
                password = saved.read_text().strip()
                self.stdout.write(
                    f"Log in at {options['url']} as {options['username']} / {password}"
                )
                return
            self.stdout.write(
                f"Admin: {options['url']} (log in with your admin account; "
                "`manage.py changepassword USER` resets a password)."
            )
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser(username=options["username"], password=password, email="")
        if saved:
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(password + "\n")
            os.chmod(saved, 0o600)
        self.stdout.write(
            f"Created the admin account. Log in at {options['url']} as "
            f"{options['username']} / {password}"
            + ("" if saved else " (shown once; change it after logging in).")
        )
