"""manage.py ensure_admin: create a first admin account when there is none; say how to log in."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create an 'admin' superuser with a random password if no superuser exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/")

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                f"Admin: {options['url']} (log in with your admin account; "
                "`manage.py changepassword USER` resets a password)."
            )
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser(username=options["username"], password=password, email="")
        self.stdout.write(
            f"Created the admin account. Log in at {options['url']} as "
            f"{options['username']} / {password} (shown once; change it after logging in)."
        )
