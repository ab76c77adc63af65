"""JSON batching: `POST /v1.0/$batch`, as "Combine multiple HTTP requests using JSON batching"
(graph/json-batching) describes it.

- The body is `{"requests": [...]}`, at most 20 requests; each has `id` (unique, not
  case-sensitive, "otherwise, the batch request fails with a 400"), `method`, `url` (relative to
  the version: `/users` or `users?...`), optional `headers` ("required when the body is
  specified", with a Content-Type), optional `body`, optional `dependsOn` (ids that must run
  first; "if an individual request fails, any request that depends on that request fails with
  status code 424").
- A malformed batch is answered 400; a parseable one 200, whatever its parts did: each part
  has its own `id`, `status`, `headers` and `body` ("Individual responses might appear in a
  different order than the requests": here shuffled by a seeded random generator).
- "Requests in a batch are evaluated individually against the applicable throttling limits":
  a throttled part is a 429 with its own `Retry-After` in its `headers`.
Each part goes through the Graph handler like a request of its own (faults, throttling,
`requests_seen`); the emulator serves GET only, so other methods get Graph's 405 part.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .messages import EmuRequest, EmuResponse
from .odata import EmulatedGraphError

MAX_BATCH_REQUESTS = 20
# Headers that describe the outer exchange, not a part.
_OUTER_ONLY = frozenset(("request-id", "client-request-id", "x-ms-ags-diagnostic"))


@dataclass
class _Part:
    id: str
    method: str
    url: str
    headers: dict[str, str]
    body: Any
    depends_on: list[str]


def _malformed(message: str) -> EmulatedGraphError:
    return EmulatedGraphError(400, "BadRequest", message)


def parse_batch(request: EmuRequest) -> list[_Part]:
    """The parts of a batch request, or 400 for a batch that is not well formed."""
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise _malformed("A JSON batch must be sent as Content-Type: application/json.")
    try:
        data = json.loads(request.body or b"null")
    except ValueError:
        raise _malformed("Invalid batch payload format: the body is not valid JSON.") from None
    requests = data.get("requests") if isinstance(data, dict) else None
    if not isinstance(requests, list) or not requests:
        raise _malformed("Invalid batch payload format: 'requests' must be a non-empty array.")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise _malformed(
            f"The batch has {len(requests)} requests: JSON batch requests are limited to "
            f"{MAX_BATCH_REQUESTS} individual requests."
        )
    parts: list[_Part] = []
    seen: set[str] = set()
    for item in requests:
        if not isinstance(item, dict):
            raise _malformed("Invalid batch payload format: each request must be an object.")
        part_id, method, url = item.get("id"), item.get("method"), item.get("url")
        if not all(isinstance(v, str) and v for v in (part_id, method, url)):
            raise _malformed("Each batch request needs a string 'id', 'method' and 'url'.")
        assert isinstance(part_id, str) and isinstance(method, str) and isinstance(url, str)
        if part_id.lower() in seen:
            raise _malformed(f"The batch request id '{part_id}' is used more than once.")
        seen.add(part_id.lower())
        headers = item.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise _malformed(f"Request '{part_id}': 'headers' must be an object of strings.")
        if "body" in item and not any(k.lower() == "content-type" for k in headers):
            raise _malformed(
                f"Request '{part_id}' has a body, so its headers must include Content-Type."
            )
        depends_on = item.get("dependsOn", [])
        if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
            raise _malformed(f"Request '{part_id}': 'dependsOn' must be an array of ids.")
        parts.append(_Part(part_id, method, url, dict(headers), item.get("body"), depends_on))
    ids = {p.id.lower() for p in parts}
    for part in parts:
        for dependency in part.depends_on:
            if dependency.lower() not in ids or dependency.lower() == part.id.lower():
                raise _malformed(
                    f"Request '{part.id}' depends on '{dependency}', which is not another "
                    "request of this batch."
                )
    return parts


def _run_order(parts: list[_Part]) -> list[_Part]:
    """Dependencies first, otherwise in the order given; 400 for a cycle."""
    done: set[str] = set()
    order: list[_Part] = []
    pending = list(parts)
    while pending:
        ready = next(
            (p for p in pending if all(d.lower() in done for d in p.depends_on)),
            None,
        )
        if ready is None:
            raise _malformed("The dependsOn references of this batch form a cycle.")
        pending.remove(ready)
        done.add(ready.id.lower())
        order.append(ready)
    return order


@dataclass
class BatchResult:
    body: dict[str, Any]
    disconnect: str | None = None  # a part's injected reset/timeout drops the whole exchange


def run_batch(
    request: EmuRequest,
    parts: list[_Part],
    *,
    serve: Callable[[EmuRequest], EmuResponse],
    error: Callable[[EmulatedGraphError], EmuResponse],
    rng: random.Random,
) -> BatchResult:
    """Run the parts (each through `serve`) and collect their answers, shuffled."""
    statuses: dict[str, int] = {}
    answers: list[dict[str, Any]] = []
    for part in _run_order(parts):
        failed = [d for d in part.depends_on if statuses.get(d.lower(), 0) >= 400]
        if "://" in part.url:
            response = error(
                EmulatedGraphError(
                    400,
                    "BadRequest",
                    "The url of a batch request is relative to the version: /users, not "
                    "https://graph.microsoft.com/v1.0/users.",
                )
            )
        elif failed:
            response = error(
                EmulatedGraphError(
                    424,
                    "FailedDependency",
                    f"The request it depends on ('{failed[0]}') failed.",
                )
            )
        else:
            response = serve(_sub_request(request, part))
            if response.disconnect:
                return BatchResult({}, response.disconnect)
        statuses[part.id.lower()] = response.status
        answers.append(_answer(part.id, response))
    rng.shuffle(answers)
    return BatchResult({"responses": answers})


def _sub_request(request: EmuRequest, part: _Part) -> EmuRequest:
    url = part.url
    if not url.startswith("/"):
        url = "/" + url  # "users?$select=..." is as good as "/users?$select=..."
    headers = {}
    authorization = request.header("authorization")
    if authorization is not None:
        headers["Authorization"] = authorization
    headers.update(part.headers)
    body = b""
    if part.body is not None:
        body = json.dumps(part.body).encode() if not isinstance(part.body, str) else b""
        if isinstance(part.body, str):
            body = base64.urlsafe_b64decode(part.body + "=" * (-len(part.body) % 4))
    return EmuRequest(part.method.upper(), f"{request.base}/v1.0{url}", headers, body)


def _answer(part_id: str, response: EmuResponse) -> dict[str, Any]:
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _OUTER_ONLY}
    headers.setdefault("Cache-Control", "no-cache")
    answer: dict[str, Any] = {"id": part_id, "status": response.status, "headers": headers}
    if response.body:
        try:
            answer["body"] = json.loads(response.body)
        except ValueError:
            # Not JSON (an injected truncated page): "a base64 URL-encoded value".
            answer["body"] = base64.urlsafe_b64encode(response.body).decode()
    return answer
