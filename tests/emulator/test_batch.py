"""`POST /v1.0/$batch`, as "Combine multiple HTTP requests using JSON batching" describes it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from entra_emulator import Emulator, EmuResponse, EmuTenant

from .conftest import GRAPH_URL, FakeClock, guid

Batch = Callable[..., EmuResponse]


@pytest.fixture
def batch(emulator: Emulator, token: str) -> Batch:
    """POST a batch body (a list of requests, or any JSON) with the tenant's token."""

    def do(requests: Any, *, headers: dict[str, str] | None = None) -> EmuResponse:
        body = {"requests": requests} if isinstance(requests, list) else requests
        sent = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            **(headers or {}),
        }
        return emulator.handle("POST", f"{GRAPH_URL}/v1.0/$batch", sent, json.dumps(body))

    return do


def gets(*urls: str) -> list[dict[str, Any]]:
    return [{"id": str(n), "method": "GET", "url": url} for n, url in enumerate(urls, 1)]


def answers(response: EmuResponse) -> dict[str, dict[str, Any]]:
    assert response.status == 200, response.text
    return {a["id"]: a for a in response.json()["responses"]}


def test_every_request_is_answered_under_its_id_in_a_shuffled_order(
    emulator: Emulator, batch: Batch
) -> None:
    urls = [f"/users/{guid(n)}?$select=displayName" for n in range(1, 21)]

    response = batch(gets(*urls))

    order = [a["id"] for a in response.json()["responses"]]
    assert sorted(order, key=int) == [str(n) for n in range(1, 21)]
    assert order != sorted(order, key=int)  # "might appear in a different order"
    by_id = answers(response)
    assert by_id["3"]["status"] == 200
    assert by_id["3"]["body"]["displayName"] == "User 02"
    assert by_id["3"]["headers"]["Content-Type"].startswith("application/json")
    # The same seed gives the same order again; another seed another order.
    emulator.graph.batch_seed = 0
    assert [a["id"] for a in batch(gets(*urls)).json()["responses"]] == order
    emulator.graph.batch_seed = 1
    assert [a["id"] for a in batch(gets(*urls)).json()["responses"]] != order


def test_urls_may_leave_out_the_leading_slash(batch: Batch) -> None:
    response = batch(gets("users?$select=id&$top=2", "/groups?$top=1"))

    by_id = answers(response)
    assert len(by_id["1"]["body"]["value"]) == 2
    assert by_id["1"]["body"]["@odata.nextLink"].startswith(f"{GRAPH_URL}/v1.0/users?")
    assert len(by_id["2"]["body"]["value"]) == 1


def test_more_than_20_requests_fail_the_whole_batch(batch: Batch) -> None:
    response = batch(gets(*["/users"] * 21))

    assert response.status == 400
    assert response.json()["error"]["code"] == "BadRequest"


@pytest.mark.parametrize(
    "body",
    [
        {"requests": []},
        {"requests": [{"id": "1", "method": "GET"}]},
        {"requests": [{"id": "1", "method": "GET", "url": "/users"}] * 2},
        {
            "requests": [
                {"id": "a", "method": "GET", "url": "/users"},
                {"id": "A", "method": "GET", "url": "/groups"},  # ids are not case-sensitive
            ]
        },
        {"requests": [{"id": "1", "method": "GET", "url": "/users", "body": {}}]},
        {"requests": [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}]},
        {"value": []},
    ],
)
def test_a_malformed_batch_is_a_bad_request(batch: Batch, body: Any) -> None:
    assert batch(body).status == 400


def test_a_batch_needs_a_token_json_and_post(emulator: Emulator, batch: Batch) -> None:
    url = f"{GRAPH_URL}/v1.0/$batch"
    assert emulator.handle("POST", url, {"Content-Type": "application/json"}, "{}").status == 401
    assert batch(gets("/users"), headers={"Content-Type": "text/plain"}).status == 400
    assert emulator.handle("GET", url, {}).status == 405


def test_each_part_has_its_own_status(batch: Batch) -> None:
    requests = [
        *gets("/users/not-there@contoso.onmicrosoft.com", "/nothing", "https://elsewhere/users"),
        {"id": "4", "method": "DELETE", "url": f"/groups/{guid(101)}"},
        {
            "id": "5",
            "method": "POST",
            "url": "/$batch",
            "body": {},
            "headers": {"Content-Type": "application/json"},
        },
    ]

    by_id = answers(batch(requests))

    assert {k: a["status"] for k, a in by_id.items()} == {
        "1": 404,
        "2": 400,
        "3": 400,
        "4": 405,
        "5": 400,
    }
    assert by_id["4"]["body"]["error"]["code"] == "Request_BadRequest"
    assert by_id["1"]["body"]["error"]["code"] == "Request_ResourceNotFound"


def test_a_part_that_depends_on_a_failed_part_fails_with_424(batch: Batch) -> None:
    requests = gets("/users/nobody@contoso.onmicrosoft.com", "/users", "/groups")
    requests[1]["dependsOn"] = ["1"]
    requests[2]["dependsOn"] = ["2"]

    by_id = answers(batch(requests))

    assert [by_id[k]["status"] for k in "123"] == [404, 424, 424]


def test_a_part_with_a_header_of_its_own(batch: Batch) -> None:
    cast = f"/groups/{guid(101)}/members/microsoft.graph.user?$count=true"
    requests = gets(cast, cast)
    requests[0]["headers"] = {"ConsistencyLevel": "eventual"}

    by_id = answers(batch(requests))

    assert by_id["1"]["status"] == 200 and by_id["1"]["body"]["@odata.count"] == 10
    assert by_id["2"]["status"] == 400  # the header is per part, as in Graph


def test_a_throttled_part_gets_its_own_429_and_retry_after(
    emulator: Emulator, tenant: EmuTenant, batch: Batch, clock: FakeClock
) -> None:
    emulator.graph.ru.enabled = True
    emulator.graph.ru.pair_limit = 6  # users: 2 resource units each

    response = batch(gets(*["/users"] * 5))

    assert response.status == 200  # the batch itself was parseable
    by_id = answers(response)
    assert [by_id[str(n)]["status"] for n in range(1, 6)] == [200, 200, 200, 429, 429]
    throttled = by_id["4"]
    assert throttled["headers"]["Retry-After"] == "10"
    assert throttled["body"]["error"]["code"] == "TooManyRequests"
    assert emulator.graph.counters["throttled"] == 2
    assert emulator.graph.counters["batch.status.429"] == 2
    assert emulator.graph.counters["status.200"] == 1
    clock.advance(10)
    assert answers(batch(gets("/users")))["1"]["status"] == 200


def test_parts_are_logged_and_counted_like_requests(emulator: Emulator, batch: Batch) -> None:
    emulator.requests_seen.clear()
    emulator.graph.counters.clear()

    batch(gets("/users", "/groups"))

    assert emulator.requests_seen[0] == ("POST", f"{GRAPH_URL}/v1.0/$batch")
    assert sorted(emulator.requests_seen[1:]) == [
        ("GET", f"{GRAPH_URL}/v1.0/groups"),
        ("GET", f"{GRAPH_URL}/v1.0/users"),
    ]
    counters = emulator.graph.counters
    assert (counters["requests"], counters["batch.requests"], counters["subrequests"]) == (1, 1, 2)
    assert counters["ru.spent"] == 3  # users 2, groups 1; the envelope costs nothing


def test_faults_can_hit_one_part(emulator: Emulator, batch: Batch) -> None:
    emulator.graph.fail_next(503, path_contains="/groups", retry_after=3)

    by_id = answers(batch(gets("/users", "/groups")))

    assert by_id["1"]["status"] == 200
    assert by_id["2"]["status"] == 503 and by_id["2"]["headers"]["Retry-After"] == "3"


def test_a_truncated_part_comes_back_base64_encoded(emulator: Emulator, batch: Batch) -> None:
    emulator.graph.malformed_next(path_contains="/groups")

    by_id = answers(batch(gets("/groups")))

    assert isinstance(by_id["1"]["body"], str)


def test_a_dropped_connection_drops_the_whole_batch(emulator: Emulator, batch: Batch) -> None:
    emulator.graph.disconnect_next(path_contains="/groups")

    assert batch(gets("/users", "/groups")).disconnect == "reset"


def test_delta_pages_can_be_read_through_a_batch(emulator: Emulator, batch: Batch) -> None:
    emulator.graph.delta.settings.user_page_size = 20

    first = answers(batch(gets("/users/delta?$select=displayName")))["1"]["body"]
    next_link = first["@odata.nextLink"]
    relative = next_link.removeprefix(f"{GRAPH_URL}/v1.0")
    second = answers(batch(gets(relative)))["1"]["body"]

    assert len(first["value"]) == 20 and len(second["value"]) == 5
    assert "@odata.deltaLink" in second


def test_requests_can_post_a_batch_through_the_responses_adapter(session: requests.Session) -> None:
    response = session.post(
        f"{GRAPH_URL}/v1.0/$batch", json={"requests": gets("/organization", "/users?$top=1")}
    )

    assert response.status_code == 200
    statuses = {a["id"]: a["status"] for a in response.json()["responses"]}
    assert statuses == {"1": 200, "2": 200}
