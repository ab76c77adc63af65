"""manage.py ensure_admin: create a first admin account when there is none; say how to log in."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.db.models import Field

from directories.management.base import EntraSyncCommand


class Command(EntraSyncCommand):
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
        username = _checked_username(options["username"])
        password = secrets.token_urlsafe(12)
        if saved:
            # Before the account exists: a password nobody can read back is no use.
            try:
                saved.parent.mkdir(parents=True, exist_ok=True)
                saved.write_text(password + "\n")
                os.chmod(saved, 0o600)
            except OSError as exc:
                raise CommandError(f"Cannot write {saved}: {exc.strerror}.") from exc
        users.objects.create_superuser(username=username, password=password, email="")
        self.stdout.write(
            f"Created the admin account. Log in at {options['url']} as "
            f"{username} / {password}"
            + ("" if saved else " (shown once; change it after logging in).")
        )


def _checked_username(username: str) -> str:
    """The username as the user model's own field rules it (length, allowed characters)."""
    users = get_user_model()
    field = users._meta.get_field(users.USERNAME_FIELD)
    assert isinstance(field, Field)
    try:
        field.clean(username, None)
    except ValidationError as exc:
        raise CommandError(
            f"Cannot use {username[:40]!r} as a username: {' '.join(exc.messages)}"
        ) from exc
    return username
