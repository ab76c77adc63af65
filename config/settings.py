"""Settings for entra-sync, read from the environment (django-environ).

Every variable has a default that gives a working one-machine install: SQLite and the
django-q2 ORM broker. See the README's table for what each one does. Variables are read through
config/environment.py, so a bad value stops start-up with one line naming it.
"""

from __future__ import annotations

from pathlib import Path

import django_stubs_ext
import environ

from config.environment import (
    env_bool,
    env_choice,
    env_database,
    env_dotted_path,
    env_emails,
    env_existing_path,
    env_float,
    env_int,
    env_list,
    env_origins,
    env_proxy_ssl_header,
    env_redis_url,
    env_secret_key,
    env_str,
    env_time_zone,
    env_url,
)

# Lets typed code subscript Django generics (ModelAdmin[Directory]) at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env_bool("DEBUG", default=False)
# With DEBUG off, start-up stops unless the key is this deployment's own: django-q2 runs any
# task signed with it (config/environment.py says more).
SECRET_KEY = env_secret_key("SECRET_KEY", debug=DEBUG)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# --- HTTPS (behind a TLS-terminating proxy) ---------------------------------------------------
# Secure by default once DEBUG is off; a plain-http trial on one's own machine turns them off.
# The header the proxy sets on every request it forwards (and strips from clients), e.g.
# `X-Forwarded-Proto`: request.is_secure() and Verify Now's https redirect URI depend on it.
SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=not DEBUG)
# Sent on https responses only; a year once DEBUG is off.
SECURE_HSTS_SECONDS = env_int(
    "SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000, minimum=0, unit="seconds"
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
CSRF_TRUSTED_ORIGINS = env_origins("CSRF_TRUSTED_ORIGINS")

# --- Microsoft Entra ID / Graph -----------------------------------------------------------
# The Directory Sync application (app-only Graph reads).
ENTRA_CLIENT_ID = env_str("ENTRA_CLIENT_ID")
ENTRA_CLIENT_SECRET = env_str("ENTRA_CLIENT_SECRET")
# A client certificate instead of the secret (Microsoft's advice): one PEM file with the private
# key and its certificate, and the key's password if it is encrypted. Used when set.
ENTRA_CLIENT_CERTIFICATE_PATH = env.str("ENTRA_CLIENT_CERTIFICATE_PATH", default="")
ENTRA_CLIENT_CERTIFICATE_PASSWORD = env.str("ENTRA_CLIENT_CERTIFICATE_PASSWORD", default="")
# The Authentication application: in "assigned" mode, the groups assigned to it are synced.
ENTRA_AUTH_CLIENT_ID = env_str("ENTRA_AUTH_CLIENT_ID")
ENTRA_LOGIN_URL = env_url("ENTRA_LOGIN_URL", default="https://login.microsoftonline.com")
GRAPH_URL = env_url("GRAPH_URL", default="https://graph.microsoft.com")
GRAPH_TIMEOUT_SECONDS = env_float("GRAPH_TIMEOUT_SECONDS", default=30.0, minimum=1, unit="seconds")
GRAPH_MAX_RETRIES = env_int("GRAPH_MAX_RETRIES", default=6, minimum=0, maximum=20, unit="retries")
# Groups whose members are read from Graph at the same time during a sync.
GRAPH_CONCURRENCY = env_int("GRAPH_CONCURRENCY", default=4, minimum=1, maximum=32, unit="groups")
# A private CA bundle for Graph and the login service (a proxy, the emulator). Passed on every
# request, because `requests` lets this variable override a Session's own `verify`.
GRAPH_CA_BUNDLE = env_existing_path("REQUESTS_CA_BUNDLE")

# --- Sync ---------------------------------------------------------------------------------
SYNC_INTERVAL_MINUTES = env_int("SYNC_INTERVAL_MINUTES", default=120, minimum=1, unit="minutes")
# A run that would remove more than this share of a directory's users or groups (and more
# than SYNC_MASS_DELETE_MIN objects) waits for an admin's approval.
SYNC_MASS_DELETE_RATIO = env_float(
    "SYNC_MASS_DELETE_RATIO", default=0.2, minimum=0, maximum=1, unit="a share"
)
SYNC_MASS_DELETE_MIN = env_int("SYNC_MASS_DELETE_MIN", default=10, minimum=0, unit="objects")
# A sync lock whose holder stopped renewing it for this long is taken over.
SYNC_LOCK_TTL_SECONDS = env_int("SYNC_LOCK_TTL_SECONDS", default=300, minimum=30, unit="seconds")
# A full read (instead of a delta round) at least this often heals any drift; 0 turns it off.
SYNC_FULL_RECONCILE_HOURS = env_int(
    "SYNC_FULL_RECONCILE_HOURS", default=24, minimum=0, unit="hours"
)

# --- Retention ------------------------------------------------------------------------------
# Sync runs, and users, groups and memberships removed from the directory, older than this many
# days are pruned daily (directories.services.retention); 0 keeps them forever.
SYNC_RUN_RETENTION_DAYS = env_int(
    "SYNC_RUN_RETENTION_DAYS", default=90, minimum=0, maximum=36500, unit="days"
)
REMOVED_OBJECT_RETENTION_DAYS = env_int(
    "REMOVED_OBJECT_RETENTION_DAYS", default=90, minimum=0, maximum=36500, unit="days"
)

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
    # Static files from STATIC_ROOT (after collectstatic) when no runserver serves them.
    "whitenoise.middleware.WhiteNoiseMiddleware",
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

DATABASES = {
    "default": env_database("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (runserver, qcluster, commands) share the file: wait for locks
    # instead of failing at once, and take the write lock at BEGIN to avoid upgrade deadlocks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Task queue (django-q2) -----------------------------------------------------------------
REDIS_URL = env_redis_url("REDIS_URL")
Q_CLUSTER: dict[str, object] = {
    "name": "entra-sync",
    "workers": env_int("Q_WORKERS", default=2, minimum=1, maximum=64, unit="processes"),
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
TIME_ZONE = env_time_zone("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `manage.py collectstatic` puts the files WhiteNoise serves (gunicorn has no runserver).
STATIC_ROOT = Path(env_str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies made once by collectstatic. No manifest: a page still renders (without
    # its CSS) where collectstatic has not run, instead of failing.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Our console backend writes to stderr: stdout belongs to a command's output (--json).
EMAIL_BACKEND = env_dotted_path("EMAIL_BACKEND", default="directories.mail.ConsoleEmailBackend")
# The SMTP server, for EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend.
EMAIL_HOST = env_str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env_int("EMAIL_PORT", default=25, minimum=1, maximum=65535, unit="a TCP port")
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)

LOG_LEVEL = env_choice(
    "LOG_LEVEL", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
)
# The server log as a file as well (every record, a command's crash traceback included:
# commands keep stderr for their one line unless run with -v 2).
LOG_FILE = env_str("LOG_FILE")
_LOG_HANDLERS: dict[str, dict[str, str]] = {
    "console": {"class": "logging.StreamHandler", "formatter": "plain"}
}
if LOG_FILE:
    _LOG_HANDLERS["file"] = {
        "class": "logging.handlers.WatchedFileHandler",
        "filename": LOG_FILE,
        "formatter": "plain",
    }
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": _LOG_HANDLERS,
    "loggers": {
        "directories": {"handlers": list(_LOG_HANDLERS), "level": LOG_LEVEL},
        # MSAL logs request details at DEBUG; keep it quiet so nothing sensitive leaks.
        "msal": {"level": "WARNING"},
    },
}

# E-mail admins (superusers with an address, and ADMINS) after this many failed runs in a row,
# and again when the directory recovers.
SYNC_ALERT_AFTER_FAILURES = env_int(
    "SYNC_ALERT_AFTER_FAILURES", default=3, minimum=1, unit="failed runs"
)
# A directory whose runs have all failed this long with passing errors (throttled, transient,
# bad response, internal, interrupted) needs attention: its scheduled syncs pause until it is
# verified again or a sync succeeds. Credentials, permission, assignment and tenant errors
# pause it at once (directories/services/attention.py).
SYNC_ATTENTION_AFTER_HOURS = env_int(
    "SYNC_ATTENTION_AFTER_HOURS", default=24, minimum=1, unit="hours"
)
ADMINS = [("Admin", email) for email in env_emails("ADMIN_EMAILS")]
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", default="entra-sync@localhost")
