"""Start-up as an operator sees it: manage.py, qcluster and gunicorn in processes of their own,
configured only by the environment.

A bad variable or a missing secret key stops each of them with one line on stderr and exit
status 1, and the README's production environment passes `check --deploy` without a warning.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
REFUSAL = "entra-sync cannot start: "


def start(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run from the checkout with `env` only (no DJANGO_SETTINGS_MODULE: config.settings)."""
    base = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "LANG": "C.UTF-8"}
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def new_key() -> str:
    return secrets.token_urlsafe(50)


def one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(REFUSAL)
    return lines[0].removeprefix(REFUSAL)


def production_environment() -> dict[str, str]:
    """The environment file of the README's "Production deployment", with a key filled in."""
    section = README.read_text().split("## Production deployment", 1)[1].split("\n## ", 1)[0]
    block = next(b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if "DEBUG=" in b)
    variables = dict(
        line.split("=", 1)
        for line in block.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    assert variables["SECRET_KEY"] == ""  # the README publishes no key, so none can be reused
    return {**variables, "SECRET_KEY": new_key()}


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "GRAPH_TIMEOUT_SECONDS",
            "abc",
            "GRAPH_TIMEOUT_SECONDS='abc' is not a number of seconds; "
            "set e.g. GRAPH_TIMEOUT_SECONDS=30",
        ),
        (
            "DATABASE_URL",
            "postgres//entra:hunter2@db/entra",
            "DATABASE_URL is not a PostgreSQL or SQLite URL (no scheme); set e.g. "
            "DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/NAME "
            "or sqlite:////var/lib/db.sqlite3",
        ),
        ("DEBUG", "ture", "DEBUG='ture' is not true or false; set e.g. DEBUG=true or DEBUG=false"),
    ],
)
def test_a_bad_variable_stops_manage_py_with_one_line_naming_it(
    variable: str, value: str, expected: str
) -> None:
    result = start("manage.py", "check", env={"SECRET_KEY": new_key(), variable: value})

    assert one_line_refusal(result) == expected


@pytest.mark.parametrize("command", [["manage.py", "qcluster"], ["manage.py", "runserver"]])
def test_without_debug_qcluster_and_runserver_refuse_to_start_without_a_key(
    command: list[str],
) -> None:
    result = start(*command, env={})

    assert one_line_refusal(result).startswith("SECRET_KEY is not set (and DEBUG is off)")
    assert "secrets.token_urlsafe(50)" in result.stderr


def test_without_debug_qcluster_refuses_the_published_development_key() -> None:
    result = start(
        "manage.py", "qcluster", env={"SECRET_KEY": "django-insecure-entra-sync-local-only"}
    )

    assert one_line_refusal(result).startswith("SECRET_KEY is a published development key")


def test_without_debug_gunicorn_refuses_to_start_without_a_key() -> None:
    result = start("-m", "gunicorn", "--bind", "127.0.0.1:0", "config.wsgi", env={})

    assert one_line_refusal(result).startswith("SECRET_KEY is not set (and DEBUG is off)")


def test_with_debug_on_a_development_key_is_allowed() -> None:
    result = start("manage.py", "check", env={"DEBUG": "true"})

    assert result.returncode == 0, result.stderr


def test_the_readme_production_environment_passes_check_deploy_without_a_warning() -> None:
    result = start(
        "manage.py", "check", "--deploy", "--fail-level", "WARNING", env=production_environment()
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
    assert result.stderr == ""


def test_the_readme_production_environment_lists_every_variable_the_settings_read() -> None:
    section = README.read_text().split("## Production deployment", 1)[1].split("\n## ", 1)[0]
    read = set()
    for source in (ROOT / "config" / "settings.py", ROOT / "gunicorn.conf.py"):
        # env_int("NAME", …), env.str("NAME", …) and the settings' own _readers("NAME")
        calls = re.findall(
            r"\b(?:env_\w+|env\.\w+|_\w+)\(\s*\"([A-Z][A-Z0-9_]+)\"", source.read_text()
        )
        read |= set(calls)

    undocumented = {name for name in read if not re.search(rf"^#? ?{name}=", section, re.M)}

    assert read > {"SECRET_KEY", "DATABASE_URL", "SECURE_PROXY_SSL_HEADER"}
    assert not undocumented
