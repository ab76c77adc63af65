#!/usr/bin/env python
"""Django's command-line utility for entra-sync."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        # Loads config/settings.py now: Django would otherwise hide its error behind "Unknown
        # command" or print a traceback, where the operator needs the one line that says what
        # to set.
        settings.INSTALLED_APPS  # noqa: B018
    except ImproperlyConfigured as exc:
        sys.exit(f"entra-sync cannot start: {exc}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
