"""Serve the emulator to `requests` through the `responses` library (no sockets).

with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
    install(rsps, emulator, login_url=LOGIN_URL, graph_url=GRAPH_URL)
    ...  # MSAL and requests now talk to the emulator
"""

from __future__ import annotations

import re
from typing import Any

import requests
import responses

from .core import Emulator
from .messages import EmuRequest


def _callback(api: Any) -> Any:
    def callback(request: requests.PreparedRequest) -> Any:
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif body is not None and not isinstance(body, bytes):
            body = b"".join(body)  # a generator body (streamed upload)
        emu_request = EmuRequest(
            method=str(request.method or "GET").upper(),
            url=str(request.url),  # what `requests` put on the wire: query still encoded
            headers=dict(request.headers),
            body=body or b"",
        )
        response = api.handle(emu_request)
        if response.disconnect == "timeout":
            return requests.exceptions.ReadTimeout(f"emulator: no answer from {request.url}")
        if response.disconnect:
            return requests.exceptions.ConnectionError(
                f"emulator: connection reset by {request.url}"
            )
        return response.status, response.headers, response.body

    return callback


def install(
    rsps: responses.RequestsMock, emulator: Emulator, *, login_url: str, graph_url: str
) -> None:
    """Route every GET and POST under `login_url` and `graph_url` to the emulator."""
    emulator.login.add_graph_url(graph_url)
    for base, api in ((login_url, emulator.login), (graph_url, emulator.graph)):
        pattern = re.compile(re.escape(base.rstrip("/")) + r"(?:[/?#].*)?$")
        for method in (responses.GET, responses.POST):
            rsps.add_callback(method, pattern, callback=_callback(api), content_type=None)
