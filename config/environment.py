"""Settings from the environment: a bad value stops start-up with one line, not a traceback.

config/settings.py reads every variable through these functions. Each one raises
ImproperlyConfigured with a single line that names the variable, says what is wrong with its
value and shows a good one; manage.py and gunicorn.conf.py print that line and exit 1. A blank
value counts as unset. Values that can hold a password (database and Redis URLs, the secret key)
are never repeated in the message.
"""

from __future__ import annotations

import math
import os
import re
import warnings
import zoneinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email

# Published in this repository: good enough for DEBUG on one's own machine, never for a server,
# where anyone who can write to the task queue could sign a pickled task with it.
DEV_SECRET_KEY = "django-insecure-entra-sync-local-only"
NEW_SECRET_KEY_COMMAND = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
# Schemes of the databases entra-sync runs on (django-environ knows more, whose drivers
# requirements.txt does not install).
DATABASE_SCHEMES = ("postgres", "postgresql", "pgsql", "sqlite")
DATABASE_URL_EXAMPLE = "postgres://USER:PASSWORD@HOST:5432/NAME or sqlite:////var/lib/db.sqlite3"
REDIS_SCHEMES = ("redis", "rediss", "unix")
# An HTTP header name (RFC 9110 token characters).
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def _raw(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _invalid(name: str, value: str | None, problem: str, example: str) -> ImproperlyConfigured:
    """One line: the variable (and its value, unless it may hold a secret), why, and a fix."""
    subject = name if value is None else f"{name}={value!r}"
    return ImproperlyConfigured(f"{subject} {problem}; set e.g. {example}")


def env_str(name: str, *, default: str = "") -> str:
    return _raw(name) or default


def env_bool(name: str, *, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise _invalid(name, value, "is not true or false", f"{name}=true or {name}=false")


def env_int(name: str, *, default: int, minimum: int, maximum: int | None = None, unit: str) -> int:
    """A whole number of `unit` from `minimum` (to `maximum`)."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _invalid(
            name, value, f"is not a whole number of {unit}", f"{name}={default}"
        ) from None
    _check_range(name, value, number, minimum, maximum, unit, default)
    return number


def env_float(
    name: str, *, default: float, minimum: float, maximum: float | None = None, unit: str
) -> float:
    """A number of `unit` from `minimum` (to `maximum`); `1.5` and `30` are both fine."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise _invalid(name, value, f"is not a number of {unit}", f"{name}={default:g}") from None
    if not math.isfinite(number):  # nan and inf pass the comparisons below
        raise _invalid(name, value, f"is not a number of {unit}", f"{name}={default:g}")
    _check_range(name, value, number, minimum, maximum, unit, default)
    return number


def _check_range(
    name: str,
    value: str,
    number: float,
    minimum: float,
    maximum: float | None,
    unit: str,
    default: float,
) -> None:
    if number < minimum or (maximum is not None and number > maximum):
        allowed = (
            f"from {minimum:g} to {maximum:g}" if maximum is not None else f"{minimum:g} or more"
        )
        raise _invalid(name, value, f"is out of range ({unit}: {allowed})", f"{name}={default:g}")


def env_list(name: str, *, default: list[str]) -> list[str]:
    """Comma-separated values; blanks between commas are dropped."""
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, *, default: str) -> str:
    """An http(s) URL with a host, without its trailing slash."""
    value = _raw(name)
    if value is None:
        return default
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise _invalid(name, value, "is not an https:// URL with a host", f"{name}={default}")
    return value.rstrip("/")


def env_origins(name: str) -> list[str]:
    """Origins Django accepts unsafe requests from: `scheme://host[:port]`, comma-separated."""
    origins = env_list(name, default=[])
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.path not in ("", "/"):
            raise _invalid(
                name,
                origin,
                "is not an origin (scheme and host)",
                f"{name}=https://admin.example.com",
            )
    return [origin.rstrip("/") for origin in origins]


def env_database(name: str, *, default: str) -> dict[str, Any]:
    """Django's DATABASES entry from a PostgreSQL or SQLite URL (django-environ's format)."""
    value = _raw(name) or default
    parts = urlsplit(value)
    if parts.scheme not in DATABASE_SCHEMES:
        scheme = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise _invalid(
            name,
            None,
            f"is not a PostgreSQL or SQLite URL ({scheme})",
            f"{name}={DATABASE_URL_EXAMPLE}",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # django-environ's warnings repeat the password
            config: dict[str, Any] = environ.Env.db_url_config(value)
    except ValueError:  # urllib's answer to a port that is not a number
        raise _invalid(
            name, None, "has a port that is not a number", f"{name}={DATABASE_URL_EXAMPLE}"
        ) from None
    if parts.scheme != "sqlite" and not str(config.get("NAME", "")).strip("/"):
        raise _invalid(
            name,
            None,
            "names no database (the path after the host)",
            f"{name}={DATABASE_URL_EXAMPLE}",
        )
    return config


def env_redis_url(name: str) -> str:
    """A Redis URL, or "" when unset."""
    value = _raw(name)
    if value is None:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in REDIS_SCHEMES or not (parts.netloc or parts.path):
        raise _invalid(
            name,
            None,
            "is not a Redis URL (redis://, rediss:// or unix://)",
            f"{name}=redis://HOST:6379/0",
        )
    return value


def env_proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """`X-Forwarded-Proto` (meaning `…: https`) or `NAME=VALUE` as Django's (META key, value)."""
    value = _raw(name)
    if value is None:
        return None
    header, _, expected = (part.strip() for part in value.partition("="))
    if not HEADER_NAME.match(header) or ("=" in value and not expected):
        raise _invalid(
            name,
            value,
            "is not a header name (optionally =VALUE)",
            f"{name}=X-Forwarded-Proto",
        )
    return "HTTP_" + header.upper().replace("-", "_"), expected or "https"


def env_choice(name: str, *, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(name)
    if value is None:
        return default
    if value.upper() not in choices:
        raise _invalid(name, value, f"is not one of {', '.join(choices)}", f"{name}={default}")
    return value.upper()


def env_time_zone(name: str, *, default: str) -> str:
    value = _raw(name)
    if value is None:
        return default
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _invalid(
            name, value, "is not an IANA time zone", f"{name}=Europe/Amsterdam"
        ) from None
    return value


def env_emails(name: str) -> list[str]:
    addresses = env_list(name, default=[])
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise _invalid(
                name, address, "is not an e-mail address", f"{name}=ops@example.com,it@example.com"
            ) from None
    return addresses


def env_dotted_path(name: str, *, default: str) -> str:
    """A Python import path (a class or module), as Django's backend settings take."""
    value = _raw(name)
    if value is None:
        return default
    if not all(part.isidentifier() for part in value.split(".")) or "." not in value:
        raise _invalid(name, value, "is not a Python import path", f"{name}={default}")
    return value


def env_existing_path(name: str) -> str:
    """A file or directory that exists (a CA bundle), or "" when unset."""
    value = _raw(name)
    if value is None:
        return ""
    if not Path(value).exists():
        raise _invalid(name, value, "does not exist", f"{name}=/etc/ssl/certs/ca-certificates.crt")
    return value


def env_secret_key(name: str, *, debug: bool) -> str:
    """The deployment's own key; a published one only with DEBUG on.

    Django signs sessions and Verify Now's state with it, and django-q2 the pickled tasks its
    workers run: with a published key, whoever can write to Redis or the task table runs code
    as the worker.
    """
    value = _raw(name)
    if debug:
        return value or DEV_SECRET_KEY
    if value is None:
        problem = "is not set (and DEBUG is off)"
    elif value == DEV_SECRET_KEY or value.startswith("django-insecure-"):
        problem = "is a published development key (and DEBUG is off)"
    else:
        return value
    raise ImproperlyConfigured(
        f"{name} {problem}: set it to a random value that only this deployment knows, "
        f"e.g. the output of {NEW_SECRET_KEY_COMMAND}"
    )
