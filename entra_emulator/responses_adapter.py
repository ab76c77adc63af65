"""Serve the emulator to `requests` through the `responses` library (tests only: a dev package).

with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
    install(rsps, emulator, login_url=LOGIN_URL, graph_url=GRAPH_URL)
    ...  # MSAL and requests now talk to the emulator

Tests use it for `responses`' call log and for mixing emulated and hand-made answers; tools
that run from a runtime install use `transport.serve_in_process`, which needs no test library.
"""

from __future__ import annotations

import re
from typing import Any

import requests
import responses

from .core import Emulator
from .transport import emu_request, transport_failure


def _callback(api: Any) -> Any:
    def callback(request: requests.PreparedRequest) -> Any:
        response = api.handle(emu_request(request))
        failure = transport_failure(response, str(request.url))
        if failure is not None:
            return failure
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
