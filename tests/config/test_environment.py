"""config/environment.py: every variable read from the environment, good values and bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.environment import (
    DEV_SECRET_KEY,
    env_bool,
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
    env_time_zone,
    env_url,
)

DEFAULT_DB = "sqlite:////tmp/default.sqlite3"


def refusal(excinfo: pytest.ExceptionInfo[ImproperlyConfigured]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_unset_and_blank_variables_take_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAPH_TIMEOUT_SECONDS", raising=False)
    monkeypatch.setenv("SYNC_INTERVAL_MINUTES", "  ")

    assert env_float("GRAPH_TIMEOUT_SECONDS", default=30.0, minimum=1, unit="seconds") == 30.0
    assert env_int("SYNC_INTERVAL_MINUTES", default=120, minimum=1, unit="minutes") == 120


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("Yes", True), ("1", True), ("off", False)]
)
def test_booleans_read_the_usual_words(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("DEBUG", value)

    assert env_bool("DEBUG", default=not expected) is expected


def test_a_boolean_typo_is_refused_rather_than_read_as_false(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "ture")

    with pytest.raises(ImproperlyConfigured) as excinfo:
        env_bool("SESSION_COOKIE_SECURE", default=True)

    assert refusal(excinfo) == (
        "SESSION_COOKIE_SECURE='ture' is not true or false; "
        "set e.g. SESSION_COOKIE_SECURE=true or SESSION_COOKIE_SECURE=false"
    )


def test_a_number_that_is_not_a_number_names_the_variable_and_a_good_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRAPH_TIMEOUT_SECONDS", "abc")

    with pytest.raises(ImproperlyConfigured) as excinfo:
        env_float("GRAPH_TIMEOUT_SECONDS", default=30.0, minimum=1, unit="seconds")

    assert refusal(excinfo) == (
        "GRAPH_TIMEOUT_SECONDS='abc' is not a number of seconds; set e.g. GRAPH_TIMEOUT_SECONDS=30"
    )


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_a_timeout_below_its_minimum_or_not_finite_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("GRAPH_TIMEOUT_SECONDS", value)

    with pytest.raises(ImproperlyConfigured, match=r"^GRAPH_TIMEOUT_SECONDS="):
        env_float("GRAPH_TIMEOUT_SECONDS", default=30.0, minimum=1, unit="seconds")


def test_whole_numbers_are_checked_against_their_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("Q_WORKERS", "2.5")
    with pytest.raises(ImproperlyConfigured, match="is not a whole number of processes"):
        env_int("Q_WORKERS", default=2, minimum=1, unit="processes")

    monkeypatch.setenv("SYNC_MASS_DELETE_RATIO", "1.5")
    with pytest.raises(ImproperlyConfigured) as excinfo:
        env_float("SYNC_MASS_DELETE_RATIO", default=0.2, minimum=0, maximum=1, unit="a share")
    assert refusal(excinfo) == (
        "SYNC_MASS_DELETE_RATIO='1.5' is out of range (a share: from 0 to 1); "
        "set e.g. SYNC_MASS_DELETE_RATIO=0.2"
    )

    monkeypatch.setenv("GRAPH_CONCURRENCY", "8")
    assert env_int("GRAPH_CONCURRENCY", default=4, minimum=1, maximum=32, unit="groups") == 8


def test_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", "entra-sync.example.com, ,localhost")

    assert env_list("ALLOWED_HOSTS", default=[]) == ["entra-sync.example.com", "localhost"]


def test_urls_need_a_scheme_and_a_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPH_URL", "https://graph.microsoft.us/")
    assert env_url("GRAPH_URL", default="https://graph.microsoft.com") == (
        "https://graph.microsoft.us"
    )

    monkeypatch.setenv("GRAPH_URL", "graph.microsoft.us")
    with pytest.raises(ImproperlyConfigured, match=r"^GRAPH_URL='graph\.microsoft\.us' is not an"):
        env_url("GRAPH_URL", default="https://graph.microsoft.com")


def test_postgres_and_sqlite_urls_become_database_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DATABASE_URL", "postgres://sync:pw@db.internal:5432/entra_sync?sslmode=require"
    )

    config = env_database("DATABASE_URL", default=DEFAULT_DB)

    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.internal", 5432, "entra_sync")
    assert config["OPTIONS"] == {"sslmode": "require"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("nonsense", "is not a PostgreSQL or SQLite URL (no scheme)"),
        (
            "postgress://sync:hunter2@db/entra",
            "is not a PostgreSQL or SQLite URL (scheme 'postgress')",
        ),
        ("postgres://sync:hunter2@db:abc/entra", "has a port that is not a number"),
        ("postgres://sync:hunter2@db:5432/", "names no database"),
    ],
)
def test_a_malformed_database_url_is_refused_without_repeating_its_password(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", value)

    with pytest.raises(ImproperlyConfigured) as excinfo:
        env_database("DATABASE_URL", default=DEFAULT_DB)

    message = refusal(excinfo)
    assert message.startswith(f"DATABASE_URL {problem}")
    assert "postgres://USER:PASSWORD@HOST:5432/NAME" in message
    assert "hunter2" not in message


def test_redis_urls_are_checked_without_repeating_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "rediss://:hunter2@cache.internal:6380/0")
    assert env_redis_url("REDIS_URL") == "rediss://:hunter2@cache.internal:6380/0"

    monkeypatch.setenv("REDIS_URL", "cache.internal:hunter2")
    with pytest.raises(ImproperlyConfigured) as excinfo:
        env_redis_url("REDIS_URL")
    assert "hunter2" not in refusal(excinfo)


def test_the_proxy_header_is_named_as_the_proxy_sends_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto")
    assert env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER") == ("HTTP_X_FORWARDED_PROTO", "https")

    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Ssl=on")
    assert env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER") == ("HTTP_X_FORWARDED_SSL", "on")

    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", "X Forwarded Proto")
    with pytest.raises(
        ImproperlyConfigured, match=r"set e\.g\. SECURE_PROXY_SSL_HEADER=X-Forwarded"
    ):
        env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER")


def test_trusted_origins_need_a_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSRF_TRUSTED_ORIGINS", "https://entra-sync.example.com/")
    assert env_origins("CSRF_TRUSTED_ORIGINS") == ["https://entra-sync.example.com"]

    monkeypatch.setenv("CSRF_TRUSTED_ORIGINS", "entra-sync.example.com")
    with pytest.raises(ImproperlyConfigured, match="is not an origin"):
        env_origins("CSRF_TRUSTED_ORIGINS")


def test_time_zones_addresses_paths_and_backends_are_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIME_ZONE", "Europe/Amsterdam")
    assert env_time_zone("TIME_ZONE", default="UTC") == "Europe/Amsterdam"
    monkeypatch.setenv("TIME_ZONE", "Mars/Olympus")
    with pytest.raises(ImproperlyConfigured, match="is not an IANA time zone"):
        env_time_zone("TIME_ZONE", default="UTC")

    monkeypatch.setenv("ADMIN_EMAILS", "ops@example.com,not-an-address")
    with pytest.raises(ImproperlyConfigured, match="'not-an-address' is not an e-mail address"):
        env_emails("ADMIN_EMAILS")

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(ImproperlyConfigured, match="does not exist"):
        env_existing_path("REQUESTS_CA_BUNDLE")

    monkeypatch.setenv("EMAIL_BACKEND", "smtp")
    with pytest.raises(ImproperlyConfigured, match="is not a Python import path"):
        env_dotted_path("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")


def test_without_debug_the_secret_key_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)

    with pytest.raises(ImproperlyConfigured) as excinfo:
        env_secret_key("SECRET_KEY", debug=False)

    assert refusal(excinfo) == (
        "SECRET_KEY is not set (and DEBUG is off): set it to a random value that only this "
        "deployment knows, e.g. the output of "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )


@pytest.mark.parametrize("published", [DEV_SECRET_KEY, "django-insecure-abc123"])
def test_without_debug_a_published_secret_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, published: str
) -> None:
    monkeypatch.setenv("SECRET_KEY", published)

    with pytest.raises(ImproperlyConfigured) as excinfo:
        env_secret_key("SECRET_KEY", debug=False)

    message = refusal(excinfo)
    assert message.startswith("SECRET_KEY is a published development key (and DEBUG is off)")
    assert published not in message


def test_with_debug_the_development_key_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)

    assert env_secret_key("SECRET_KEY", debug=True) == DEV_SECRET_KEY
