"""Fixtures for the Graph client tests: mocked login and Graph, waits recorded, no database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses

from directories.graph import GraphClient, GraphSettings, forget_cached_tokens

from .support import (
    CLIENT_ID,
    CLIENT_SECRET,
    GRAPH_URL,
    LOGIN_URL,
    TENANT_ID,
    TIMEOUT,
    FakeBatch,
    FakeGraph,
    FakeLogin,
)


@pytest.fixture(autouse=True)
def no_cached_msal_apps() -> Iterator[None]:
    """MSAL applications (and their tokens) are cached per process; start and end clean."""
    forget_cached_tokens()
    yield
    forget_cached_tokens()


@pytest.fixture(scope="session")
def sent_graph_urls() -> list[str]:
    """Every Graph URL any test sent, for the OpenAPI check at the end of test_client.py."""
    return []


@pytest.fixture
def mocked(sent_graph_urls: list[str]) -> Iterator[responses.RequestsMock]:
    """`responses` for this test; an unregistered URL fails as a refused connection."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps
        graph_host = urlsplit(GRAPH_URL).netloc
        # GETs only: the check reads them as "GET url" lines, and the subset has no $batch
        # (test_batch.py checks the requests inside a batch itself).
        sent_graph_urls.extend(
            str(call.request.url)
            for call in rsps.calls
            if urlsplit(call.request.url).netloc == graph_host and call.request.method == "GET"
        )


@pytest.fixture
def login(mocked: responses.RequestsMock) -> FakeLogin:
    return FakeLogin(mocked, LOGIN_URL).start()


@pytest.fixture
def graph(mocked: responses.RequestsMock) -> FakeGraph:
    return FakeGraph(mocked)


@pytest.fixture
def batch(mocked: responses.RequestsMock) -> FakeBatch:
    return FakeBatch(mocked).start()


@pytest.fixture
def waits() -> list[float]:
    """What the client asked to sleep for, in order (it never really sleeps here)."""
    return []


@pytest.fixture
def make_client(waits: list[float]) -> Callable[..., GraphClient]:
    """Build a client for the test tenant; keyword arguments override GraphSettings fields."""

    def make(*, low_priority: bool = False, **overrides: Any) -> GraphClient:
        options: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "login_url": LOGIN_URL,
            "graph_url": GRAPH_URL,
            "timeout": TIMEOUT,
            "max_retries": 3,
            **overrides,
        }
        return GraphClient(
            tenant_id=TENANT_ID,
            settings=GraphSettings(**options),
            low_priority=low_priority,
            sleep=waits.append,
        )

    return make


@pytest.fixture
def client(make_client: Callable[..., GraphClient], login: FakeLogin) -> GraphClient:
    return make_client()
