"""Transport-neutral HTTP messages: the emulator core takes an `EmuRequest`, returns an
`EmuResponse`, and never touches sockets, so `responses` (tests) and an HTTPS server (later)
can both drive it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit


@dataclass
class EmuRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @cached_property
    def _lower_headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self._lower_headers.get(name.lower(), default)

    @cached_property
    def split(self) -> SplitResult:
        return urlsplit(self.url)

    @property
    def base(self) -> str:
        """scheme://host[:port] of the request, for links that must stay on the same host."""
        return f"{self.split.scheme}://{self.split.netloc}"

    @property
    def raw_path(self) -> str:
        return self.split.path

    @cached_property
    def segments(self) -> list[str]:
        """Path segments, each percent-decoded (ids and UPNs may be encoded: %23EXT%23)."""
        return [unquote(s) for s in self.split.path.split("/") if s]

    @cached_property
    def query(self) -> list[tuple[str, str]]:
        """Decoded query pairs, in order; '+' reads as a space, as in Graph."""
        return parse_qsl(self.split.query, keep_blank_values=True)

    @cached_property
    def raw_query_parts(self) -> list[str]:
        """The query's `k=v` parts exactly as sent, to copy into `@odata.nextLink`."""
        return [p for p in self.split.query.split("&") if p]

    def form(self) -> dict[str, str]:
        """An `application/x-www-form-urlencoded` body as a dict (last value wins)."""
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass
class EmuResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    # "reset" or "timeout": the transport should fail the request instead of answering.
    disconnect: str | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def dump_json(data: Any) -> bytes:
    """One serialisation per response: compact, UTF-8, non-ASCII kept (as Graph sends it)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
