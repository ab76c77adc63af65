"""Settings for entra-sync, read from the environment (django-environ).

Every variable has a default that gives a working one-machine install: SQLite and the
django-q2 ORM broker. See the README's table for what each one does.
"""

from __future__ import annotations

from pathlib import Path

import django_stubs_ext
import environ

# Lets typed code subscript Django generics (ModelAdmin[Directory]) at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# The default key is for a local try-out only; `manage.py check --deploy` flags it.
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-entra-sync-local-only")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# --- Microsoft Entra ID / Graph -----------------------------------------------------------
# The Directory Sync application (app-only Graph reads).
ENTRA_CLIENT_ID = env.str("ENTRA_CLIENT_ID", default="")
ENTRA_CLIENT_SECRET = env.str("ENTRA_CLIENT_SECRET", default="")
# The Authentication application: in "assigned" mode, the groups assigned to it are synced.
ENTRA_AUTH_CLIENT_ID = env.str("ENTRA_AUTH_CLIENT_ID", default="")
ENTRA_LOGIN_URL = env.str("ENTRA_LOGIN_URL", default="https://login.microsoftonline.com").rstrip(
    "/"
)
GRAPH_URL = env.str("GRAPH_URL", default="https://graph.microsoft.com").rstrip("/")
GRAPH_TIMEOUT_SECONDS = env.float("GRAPH_TIMEOUT_SECONDS", default=30.0)
GRAPH_MAX_RETRIES = env.int("GRAPH_MAX_RETRIES", default=6)
# Groups whose members are read from Graph at the same time during a sync.
GRAPH_CONCURRENCY = env.int("GRAPH_CONCURRENCY", default=4)
# A private CA bundle for Graph and the login service (a proxy, the emulator). Passed on every
# request, because `requests` lets this variable override a Session's own `verify`.
GRAPH_CA_BUNDLE = env.str("REQUESTS_CA_BUNDLE", default="")

# --- Sync ---------------------------------------------------------------------------------
SYNC_INTERVAL_MINUTES = env.int("SYNC_INTERVAL_MINUTES", default=120)
# A run that would remove more than this share of a directory's users or groups (and more
# than SYNC_MASS_DELETE_MIN objects) waits for an admin's approval.
SYNC_MASS_DELETE_RATIO = env.float("SYNC_MASS_DELETE_RATIO", default=0.2)
SYNC_MASS_DELETE_MIN = env.int("SYNC_MASS_DELETE_MIN", default=10)
# A sync lock whose holder stopped renewing it for this long is taken over.
SYNC_LOCK_TTL_SECONDS = env.int("SYNC_LOCK_TTL_SECONDS", default=300)
# A full read (instead of a delta round) at least this often heals any drift; 0 turns it off.
SYNC_FULL_RECONCILE_HOURS = env.int("SYNC_FULL_RECONCILE_HOURS", default=24)

INSTALLED_APPS = [
    "directories.admin_site.EntraSyncAdminConfig",  # django.contrib.admin with our pages
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "directories",
    "identities",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (runserver, qcluster, commands) share the file: wait for locks
    # instead of failing at once, and take the write lock at BEGIN to avoid upgrade deadlocks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Task queue (django-q2) -----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER: dict[str, object] = {
    "name": "entra-sync",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": 60 * 60,
    "retry": 60 * 60 + 60,
    "max_attempts": 1,
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "directories": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
        # MSAL logs request details at DEBUG; keep it quiet so nothing sensitive leaks.
        "msal": {"level": "WARNING"},
    },
}

# E-mail admins (superusers with an address, and ADMINS) after this many failed runs in a row,
# and again when the directory recovers.
SYNC_ALERT_AFTER_FAILURES = env.int("SYNC_ALERT_AFTER_FAILURES", default=3)
ADMINS = [("Admin", email) for email in env.list("ADMIN_EMAILS", default=[])]
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="entra-sync@localhost")
