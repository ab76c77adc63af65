"""Serve the emulator to `requests` in this process, without sockets or test libraries.

    with serve_in_process(emulator, login_url=LOGIN_URL, graph_url=GRAPH_URL):
        ...  # MSAL and requests now talk to the emulator; every other URL goes out as usual

Used by the benchmark and the demo tooling, which must run from a runtime install.
`responses_adapter` plugs the same conversion into the `responses` library for tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from .core import Emulator
from .messages import EmuRequest, EmuResponse

_patch_lock = threading.Lock()


def emu_request(request: requests.PreparedRequest) -> EmuRequest:
    """What `requests` would put on the wire, as the emulator's request (query still encoded)."""
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif body is not None and not isinstance(body, bytes):
        body = b"".join(body)  # a generator body (streamed upload)
    return EmuRequest(
        method=str(request.method or "GET").upper(),
        url=str(request.url),
        headers=dict(request.headers),
        body=body or b"",
    )


def transport_failure(response: EmuResponse, url: str) -> requests.RequestException | None:
    """The exception a real network would raise for an injected timeout or reset."""
    if response.disconnect == "timeout":
        return requests.exceptions.ReadTimeout(f"emulator: no answer from {url}")
    if response.disconnect:
        return requests.exceptions.ConnectionError(f"emulator: connection reset by {url}")
    return None


def _requests_response(request: requests.PreparedRequest, answer: EmuResponse) -> requests.Response:
    response = requests.Response()
    response.status_code = answer.status
    response.headers = CaseInsensitiveDict(answer.headers)
    response._content = answer.body
    response.url = str(request.url)
    response.request = request
    response.encoding = "utf-8"
    response.reason = ""
    return response


def _route(emulator: Emulator, login_url: str, graph_url: str) -> Callable[[str], Any]:
    bases = ((login_url.rstrip("/"), emulator.login), (graph_url.rstrip("/"), emulator.graph))

    def api_for(url: str) -> Any:
        for base, api in bases:
            if url == base or url.startswith((f"{base}/", f"{base}?", f"{base}#")):
                return api
        return None

    return api_for


@contextmanager
def serve_in_process(emulator: Emulator, *, login_url: str, graph_url: str) -> Iterator[None]:
    """Answer every request under `login_url` and `graph_url` from the emulator, in-process."""
    emulator.login.add_graph_url(graph_url)
    api_for = _route(emulator, login_url, graph_url)
    with _patch_lock:
        original = HTTPAdapter.send

        def send(self: HTTPAdapter, request: requests.PreparedRequest, **kwargs: Any) -> Any:
            api = api_for(str(request.url))
            if api is None:
                return original(self, request, **kwargs)
            answer = api.handle(emu_request(request))
            failure = transport_failure(answer, str(request.url))
            if failure is not None:
                raise failure
            return _requests_response(request, answer)

        HTTPAdapter.send = send  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        with _patch_lock:
            HTTPAdapter.send = original  # type: ignore[method-assign]
