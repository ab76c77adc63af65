"""gunicorn's settings for entra-sync, read from the working directory: run gunicorn from here.

`gunicorn config.wsgi` (`make stack`, the README's production deployment) loads Django's
settings here first, so a missing SECRET_KEY or a bad variable stops gunicorn with one line
instead of a traceback from every worker that fails to boot.
"""

from __future__ import annotations

import os
import sys

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
try:
    from django.conf import settings

    from config.environment import env_int

    settings.INSTALLED_APPS  # noqa: B018  (loads config/settings.py)
    workers = env_int("WEB_CONCURRENCY", default=2, minimum=1, maximum=64, unit="processes")
except ImproperlyConfigured as exc:
    sys.exit(f"entra-sync cannot start: {exc}")

wsgi_app = "config.wsgi"
accesslog = "-"
# On SIGTERM, requests in flight get this long to finish; the admin's pages are quick.
graceful_timeout = 10
