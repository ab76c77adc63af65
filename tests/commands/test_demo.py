"""`manage.py demo --check` brings up the emulator, a synced demo directory and the admin."""

from __future__ import annotations

import io
import socket
import sqlite3
from pathlib import Path

import pytest
from django.core.management import call_command

from entra_emulator.tls import trust_in_browsers
from tests.emulator.test_consent_permissions import (
    assert_asks_for_the_readme_four,
    capture_launches,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_demo(tmp_path: Path, *options: str) -> tuple[str, int, int]:
    """Run `demo --check` on its own database; return its output, present users and verified
    directories."""
    database = tmp_path / "demo.sqlite3"
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATABASE_URL", f"sqlite:///{database}")  # the children's database
        call_command(
            "demo",
            "--check",
            "--no-trust",
            "--users",
            "60",
            "--groups",
            "8",
            "--port",
            str(free_port()),
            "--emulator-port",
            str(free_port()),
            "--state-dir",
            str(tmp_path / "state"),
            *options,
            stdout=out,
        )
    with sqlite3.connect(database) as db:
        (users,) = db.execute(
            "SELECT count(*) FROM identities_synceduser WHERE removed_at IS NULL"
        ).fetchone()
        (verified,) = db.execute(
            "SELECT count(*) FROM directories_directory WHERE verified_at IS NOT NULL"
        ).fetchone()
    return out.getvalue(), users, verified


def test_demo_leaves_contoso_for_a_person_to_verify_in_the_admin(tmp_path: Path) -> None:
    text, users, verified = run_demo(tmp_path)

    assert "Log in at http://127.0.0.1:" in text and " as admin / " in text
    assert "sign in there as admin@contoso.onmicrosoft.com / entra-sync-demo" in text
    assert "click Verify Now, accept and sign in, Save, then Sync Now" in text
    assert (users, verified) == (0, 0)
    assert (tmp_path / "state" / "emulator.env").is_file()


def test_the_demo_app_asks_for_the_four_permissions_readme_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launches = capture_launches(monkeypatch, "directories.management.commands.demo")

    run_demo(tmp_path)

    [launch] = launches
    assert_asks_for_the_readme_four(launch)


def test_demo_verify_connects_and_syncs_contoso_at_once(tmp_path: Path) -> None:
    """With only the four read-only permissions (the previous test), as a real registration."""
    text, users, verified = run_demo(tmp_path, "--verify")

    assert "Connected to Contoso (tenant id " in text
    assert "Contoso (demo): succeeded" in text
    assert users > 0 and verified == 1


def test_without_certutil_the_demo_says_how_to_trust_the_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("entra_emulator.tls.shutil.which", lambda name: None)

    trusted, message = trust_in_browsers(tmp_path / "ca.pem", home=tmp_path)

    assert not trusted
    assert "certutil (libnss3-tools) is not installed" in message
    assert "security add-trusted-cert" in message
