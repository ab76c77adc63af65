"""Shared fixtures: Graph endpoints that can never reach Microsoft, and no real sleeping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings

CLIENT_ID = "11111111-1111-4111-8111-111111111111"
CLIENT_SECRET = "test-secret-value"
AUTH_CLIENT_ID = "22222222-2222-4222-8222-222222222222"
LOGIN_URL = "https://login.emulator.test"
GRAPH_URL = "https://graph.emulator.test"

# Microsoft's OpenAPI description of the Graph paths we use, and its checker, live beside the
# repository in ../shared (or where GRAPH_REQUEST_CHECK points); tests that need it skip
# where it is absent.
GRAPH_REQUEST_CHECKER = Path(
    os.environ.get(
        "GRAPH_REQUEST_CHECK",
        next(
            (
                str(candidate)
                for base in (Path(__file__).resolve().parents[2], Path("/work"))
                if (candidate := base / "shared" / "tools" / "graph_request_check.py").is_file()
            ),
            "/work/shared/tools/graph_request_check.py",
        ),
    )
)


@pytest.fixture(autouse=True)
def entra_settings(settings: Settings) -> None:
    settings.ENTRA_CLIENT_ID = CLIENT_ID
    settings.ENTRA_CLIENT_SECRET = CLIENT_SECRET
    settings.ENTRA_AUTH_CLIENT_ID = AUTH_CLIENT_ID
    settings.ENTRA_LOGIN_URL = LOGIN_URL
    settings.GRAPH_URL = GRAPH_URL
    settings.GRAPH_MAX_RETRIES = 3


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Graph retries wait through time.sleep; record the waits instead."""
    waits: list[float] = []
    monkeypatch.setattr("directories.graph.client.time.sleep", waits.append)
    return waits


@pytest.fixture(autouse=True)
def fresh_msal_apps() -> None:
    from directories.graph import forget_cached_tokens

    forget_cached_tokens()
