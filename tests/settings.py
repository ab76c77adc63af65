"""The test run's settings: config/settings.py as deployed, with a random key for this run.

With DEBUG off, config/settings.py refuses to start without a key of the deployment's own, and
this repository publishes none: each run makes one. It goes into the environment, so the
manage.py, qcluster and gunicorn processes that tests start share it.
"""

from __future__ import annotations

import os
import secrets

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))

from config.settings import *  # noqa: F403

# Django's test client and pytest-django's live server speak plain http.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
