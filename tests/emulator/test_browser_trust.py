"""The demo's promise: once the CA is trusted, Chromium opens the emulated sign-in page with no
certificate warning (and without it, Chromium refuses the page)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from entra_emulator.server import DEMO_CLIENT_ID, EmulatorLaunch, emulator_launch
from entra_emulator.tls import trust_in_browsers

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or shutil.which("certutil") is None,
    reason="needs Debian's chromium and certutil (libnss3-tools)",
)


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorLaunch]:
    started = emulator_launch(tenants=[], state_dir=tmp_path_factory.mktemp("state"), port=0)
    yield started
    started.server.stop()


def load_in_chromium(url: str, home: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={home / 'profile'}",
            "--dump-dom",
            url,
        ],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def sign_in_url(launch: EmulatorLaunch) -> str:
    query = urlencode(
        {
            "client_id": DEMO_CLIENT_ID,
            "response_type": "code",
            "redirect_uri": "http://localhost:8000/callback",
            "scope": "openid",
            "state": "s",
        }
    )
    return f"{launch.server.localhost_url}/organizations/oauth2/v2.0/authorize?{query}"


def test_chromium_shows_the_sign_in_page_once_the_ca_is_trusted(
    launch: EmulatorLaunch, tmp_path: Path
) -> None:
    trusted, message = trust_in_browsers(launch.server.ca_pem, home=tmp_path)
    assert trusted, message

    page = load_in_chromium(sign_in_url(launch), tmp_path)

    assert "<title>Sign in to your account</title>" in page.stdout
    assert "ERR_CERT" not in page.stderr


def test_chromium_refuses_the_page_without_the_ca(launch: EmulatorLaunch, tmp_path: Path) -> None:
    page = load_in_chromium(sign_in_url(launch), tmp_path)

    assert "Sign in to your account" not in page.stdout
    assert "ERR_CERT_AUTHORITY_INVALID" in page.stderr
