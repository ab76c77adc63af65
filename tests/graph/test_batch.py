"""Direct members of many groups through JSON batching (`POST /v1.0/$batch`).

The envelope follows "Combine multiple HTTP requests using JSON batching" (batch-response.json),
each answer's body "List group members" (group-members*.json), and the retry rules "Microsoft
Graph throttling guidance" (Throttling and batching). No request inside a batch may be dropped:
every group is in the answer with all its members, or was not found (404), or the call fails.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from directories.graph import (
    ErrorClass,
    GraphBadResponse,
    GraphClient,
    GraphForbidden,
    GraphThrottled,
    GraphTransient,
    GraphUnauthorized,
    MemberRef,
)
from directories.graph import client as client_module
from tests.conftest import GRAPH_REQUEST_CHECKER

from .support import (
    BATCH_URL,
    ERROR_HEADERS,
    FIXTURES,
    GRAPH_URL,
    GROUP_ID,
    OK_HEADERS,
    TIMEOUT,
    V1,
    FakeBatch,
    FakeLogin,
    SubAnswer,
    access_token,
    load_fixture,
    members_path,
)

MakeClient = Callable[..., GraphClient]

CHECKER = GRAPH_REQUEST_CHECKER
needs_checker = pytest.mark.skipif(
    not CHECKER.is_file(), reason=f"{CHECKER} (the Graph OpenAPI checker) is not here"
)

# "List group members" bodies and the request each answers, for the OpenAPI check and census.
MEMBERS_PAGE_2 = load_fixture("group-members-page-1.json")["@odata.nextLink"]
BATCH_BODIES = {
    "group-members.json": f"{V1}{members_path(GROUP_ID)}",
    "group-members-page-1.json": f"{V1}{members_path(GROUP_ID)}",
    "group-members-page-2.json": MEMBERS_PAGE_2,
}
BATCH_EXAMPLES = ["batch-response.json"]  # the $batch envelope: no OpenAPI path describes it

MEMBERS = (
    MemberRef("6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0", "user"),
    MemberRef("d9fb0c47-c783-40a1-bce1-53b52ada51fc", "group"),
    MemberRef("4c1ba2b0-5a3e-4bd3-9e1c-1f4b3c3e6f55", "other"),  # a device
    MemberRef("25caf956-4da0-4bfd-8c8f-5ba0c1a2f1c4", "other"),  # an organizational contact
    MemberRef("4562bcc8-c436-4f95-b7c0-4f8ce89dca5e", "user"),
)


def group_ids(count: int) -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"group-{n}")) for n in range(count)]


def one_member(member_id: str) -> dict[str, Any]:
    # A "List group members" page with a single user.
    return {
        "@odata.context": f"{V1}/$metadata#directoryObjects(id)",
        "value": [{"@odata.type": "#microsoft.graph.user", "id": member_id}],
    }


def serve_members(batch: FakeBatch, ids: list[str]) -> None:
    """Each group answered with one member of its own, so answers cannot be mixed up."""
    for group_id in ids:
        batch.reply(members_path(group_id), body=one_member(f"member-of-{group_id}"))


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> SubAnswer:
    return SubAnswer(status, body, {**ERROR_HEADERS, **(headers or {})})


def throttled_body() -> Any:
    # "Microsoft Graph throttling guidance", sample response.
    return load_fixture("error-429-too-many-requests.json")


def throttled(*, retry_after: str) -> SubAnswer:
    return answer(429, throttled_body(), {"Retry-After": retry_after})


def sub_answer(number: str, body: Any, status: int = 200) -> dict[str, Any]:
    return {"id": number, "status": status, "headers": OK_HEADERS, "body": body}


def throttled_answer(number: str, *, retry_after: str) -> dict[str, Any]:
    headers = {**ERROR_HEADERS, "Retry-After": retry_after}
    return {"id": number, "status": 429, "headers": headers, "body": throttled_body()}


# --- batching ------------------------------------------------------------------------------------


def test_45_groups_are_read_in_three_batches_of_at_most_20(
    client: GraphClient, batch: FakeBatch
) -> None:
    ids = group_ids(45)
    serve_members(batch, ids)

    members = client.group_members(ids)

    assert [len(b) for b in batch.posted] == [20, 20, 5]
    assert [url for urls in batch.urls for url in urls] == [members_path(g) for g in ids]
    for sent in batch.posted:
        assert len({request["id"] for request in sent}) == len(sent)  # unique in a batch
        assert {request["method"] for request in sent} == {"GET"}
    assert list(members) == ids
    assert all(members[g] == [MemberRef(f"member-of-{g}", "user")] for g in ids)
    assert client.stats.requests == 3
    assert client.stats.subrequests == 45
    assert client.stats.retries == 0
    assert client.stats.last_request_id == "batch-3"


def test_answers_in_any_order_are_matched_to_their_requests_by_id(
    client: GraphClient, batch: FakeBatch
) -> None:
    # "Individual responses might appear in a different order than the requests."
    batch.order = lambda answers: random.Random(7).sample(answers, len(answers))
    ids = group_ids(20)
    serve_members(batch, ids)

    members = client.group_members(ids)

    assert members == {g: [MemberRef(f"member-of-{g}", "user")] for g in ids}


def test_each_member_keeps_what_its_odata_type_says_it_is(
    client: GraphClient, batch: FakeBatch
) -> None:
    # "List group members": users, groups, devices and contacts, each with @odata.type.
    batch.reply(members_path(GROUP_ID), "group-members.json")

    assert client.group_members([GROUP_ID]) == {GROUP_ID: list(MEMBERS)}


def test_the_batch_is_one_post_with_relative_urls_and_the_usual_headers(
    make_client: MakeClient, login: FakeLogin, batch: FakeBatch
) -> None:
    batch.reply(members_path(GROUP_ID), "group-members.json")

    make_client(low_priority=True).group_members([GROUP_ID])

    (call,) = [c for c in batch.rsps.calls if c.request.url == BATCH_URL]
    request = call.request
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == f"Bearer {access_token()}"
    assert request.headers["x-ms-throttle-priority"] == "low"
    assert (
        str(uuid.UUID(request.headers["client-request-id"])) == request.headers["client-request-id"]
    )
    sent_with: dict[str, Any] = request.req_kwargs  # type: ignore[attr-defined]
    assert sent_with["timeout"] == TIMEOUT
    assert request.body is not None
    assert json.loads(request.body) == {
        "requests": [
            {
                "id": "1",
                "method": "GET",
                # "The relative resource URL": /groups/{id}/members, no cast, so no
                # advanced-query pair is needed.
                "url": f"/groups/{GROUP_ID}/members?$select=id&$top=999",
            }
        ]
    }


def test_no_groups_need_no_request(client: GraphClient, batch: FakeBatch) -> None:
    assert client.group_members([]) == {}
    assert batch.posted == []


def test_a_group_asked_twice_is_read_once(client: GraphClient, batch: FakeBatch) -> None:
    # Ids must be unique in a batch; the same group twice would only be read twice.
    batch.reply(members_path(GROUP_ID), "group-members.json")

    assert client.group_members([GROUP_ID, GROUP_ID]) == {GROUP_ID: list(MEMBERS)}
    assert batch.urls == [[members_path(GROUP_ID)]]


# --- answers that are not 200 --------------------------------------------------------------------


def test_a_throttled_request_is_retried_alone_after_its_own_retry_after(
    client: GraphClient, batch: FakeBatch, waits: list[float]
) -> None:
    # "Throttling and batching": a request over the limits "fails with a status of 429";
    # "retry each failed request from the batch using the value provided in the retry-after
    # response header from the JSON content".
    ids = group_ids(3)
    serve_members(batch, ids)
    batch.answers[members_path(ids[1])].insert(0, throttled(retry_after="3"))

    members = client.group_members(ids)

    assert waits == [3.0]
    assert batch.urls == [[members_path(g) for g in ids], [members_path(ids[1])]]
    assert members == {g: [MemberRef(f"member-of-{g}", "user")] for g in ids}
    assert client.stats.requests == 2
    assert client.stats.subrequests == 4
    assert client.stats.retries == 1


def test_throttled_requests_wait_for_their_own_retry_after_each(
    client: GraphClient, batch: FakeBatch, waits: list[float]
) -> None:
    ids = group_ids(3)
    serve_members(batch, ids)
    batch.answers[members_path(ids[0])].insert(0, throttled(retry_after="5"))
    batch.answers[members_path(ids[2])].insert(0, throttled(retry_after="2"))

    client.group_members(ids)

    assert waits == [2.0, 3.0]  # at 2 s the one that said 2, at 5 s the one that said 5
    assert batch.urls[1:] == [[members_path(ids[2])], [members_path(ids[0])]]


def test_a_retry_after_longer_than_the_client_waits_is_capped(
    make_client: MakeClient, login: FakeLogin, batch: FakeBatch, waits: list[float]
) -> None:
    batch.answers[members_path(GROUP_ID)] = [throttled(retry_after="3600")]
    batch.reply(members_path(GROUP_ID), "group-members.json")

    make_client(max_retry_after=120.0).group_members([GROUP_ID])

    assert waits == [120.0]


def test_a_request_still_throttled_after_every_retry_fails_the_call(
    client: GraphClient, batch: FakeBatch, waits: list[float]
) -> None:
    ids = group_ids(2)
    serve_members(batch, ids)
    batch.answers[members_path(ids[0])] = [throttled(retry_after="2.128")]

    with pytest.raises(GraphThrottled) as caught:
        client.group_members(ids)

    assert caught.value.error_class == ErrorClass.THROTTLED
    assert caught.value.request_id == "94fb3b52-452a-4535-a601-69e0a90e3aa2"
    assert waits == [2.128, 2.128, 2.128]  # max_retries=3: four tries, three waits
    assert len(batch.posted) == 4


def test_a_request_that_fails_with_5xx_is_retried_after_a_backoff(
    client: GraphClient,
    batch: FakeBatch,
    waits: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "Microsoft Graph error responses": 503 serviceNotAvailable, no Retry-After.
    monkeypatch.setattr(client_module, "random", random.Random(20241001))
    ids = group_ids(2)
    serve_members(batch, ids)
    batch.answers[members_path(ids[0])].insert(
        0, answer(503, load_fixture("error-503-service-not-available.json"))
    )

    members = client.group_members(ids)

    assert len(waits) == 1 and 0.5 <= waits[0] <= 1.0  # backoff_base 1 s, with jitter
    assert list(members) == ids


def test_a_request_that_keeps_failing_with_5xx_fails_the_call(
    client: GraphClient, batch: FakeBatch, waits: list[float]
) -> None:
    batch.error(members_path(GROUP_ID), "error-503-service-not-available.json", status=503)

    with pytest.raises(GraphTransient) as caught:
        client.group_members([GROUP_ID])

    assert caught.value.status == 503
    assert len(waits) == 3


def test_a_group_not_found_is_left_out(client: GraphClient, batch: FakeBatch) -> None:
    # 404 Request_ResourceNotFound: deleted while we were reading, as a single read treats it.
    ids = group_ids(3)
    serve_members(batch, ids)
    batch.answers[members_path(ids[1])] = []
    batch.error(members_path(ids[1]), "error-404-request-resource-not-found.json", status=404)

    members = client.group_members(ids)

    assert list(members) == [ids[0], ids[2]]


def test_a_refused_request_is_forbidden_naming_the_permission(
    client: GraphClient, batch: FakeBatch, waits: list[float]
) -> None:
    # The JSON batching page's example answer: request 1 succeeded, request 3 was refused
    # (403 Authorization_RequestDenied). Request 2 is answered like request 1.
    example = load_fixture("batch-response.json")
    example["responses"].append({**example["responses"][0], "id": "2"})
    batch.outer.append((200, {"request-id": "example"}, example))

    with pytest.raises(GraphForbidden) as caught:
        client.group_members(group_ids(3))

    assert caught.value.error_class == ErrorClass.FORBIDDEN
    assert caught.value.code == "Authorization_RequestDenied"
    assert "GroupMember.Read.All" in caught.value.message
    assert caught.value.request_id == "93b6f17e-c05d-4f45-ad2a-6665c708d8a0"
    assert waits == []


def test_a_rejected_token_is_replaced_once(
    client: GraphClient, login: FakeLogin, batch: FakeBatch, waits: list[float]
) -> None:
    # "Microsoft Graph error responses": 401 InvalidAuthenticationToken, inside the batch.
    login.issue_tokens(access_token("stale"), access_token("fresh"))
    batch.error(members_path(GROUP_ID), "error-401-invalid-authentication-token.json", status=401)
    batch.reply(members_path(GROUP_ID), "group-members.json")

    assert client.group_members([GROUP_ID]) == {GROUP_ID: list(MEMBERS)}

    posts = [c.request for c in batch.rsps.calls if c.request.url == BATCH_URL]
    assert [p.headers["Authorization"] for p in posts] == [
        f"Bearer {access_token('stale')}",
        f"Bearer {access_token('fresh')}",
    ]
    assert waits == []


def test_a_second_401_is_unauthorized(
    client: GraphClient, login: FakeLogin, batch: FakeBatch
) -> None:
    login.issue_tokens(access_token("stale"), access_token("fresh"))
    batch.error(members_path(GROUP_ID), "error-401-invalid-authentication-token.json", status=401)

    with pytest.raises(GraphUnauthorized):
        client.group_members([GROUP_ID])

    assert len(login.token_requests) == 2
    assert len(batch.posted) == 2


def test_any_other_failure_fails_the_call(client: GraphClient, batch: FakeBatch) -> None:
    batch.reply(
        members_path(GROUP_ID),
        status=400,
        body={"error": {"code": "Request_BadRequest", "message": "Invalid request."}},
    )

    with pytest.raises(GraphBadResponse) as caught:
        client.group_members([GROUP_ID])

    assert "400" in caught.value.message


# --- paging --------------------------------------------------------------------------------------


def test_a_paged_answer_is_followed_in_a_later_batch_to_its_last_page(
    client: GraphClient, batch: FakeBatch
) -> None:
    # "List group members": more members than a page holds come with @odata.nextLink.
    others = group_ids(2)
    serve_members(batch, others)
    batch.reply(members_path(GROUP_ID), "group-members-page-1.json")
    next_path = MEMBERS_PAGE_2.removeprefix(V1)
    batch.reply(next_path, "group-members-page-2.json")

    members = client.group_members([GROUP_ID, *others])

    assert members[GROUP_ID] == list(MEMBERS)
    # The next link, verbatim, made relative to /v1.0 as a batch request's url must be.
    assert batch.urls == [[members_path(GROUP_ID), *map(members_path, others)], [next_path]]
    assert "$skiptoken=RFNwdAIAAQAAACpHcm91cF8" in next_path


def test_a_next_page_elsewhere_is_refused(client: GraphClient, batch: FakeBatch) -> None:
    first = load_fixture("group-members-page-1.json")
    first["@odata.nextLink"] = first["@odata.nextLink"].replace(
        GRAPH_URL, "https://attacker.example.test"
    )
    batch.reply(members_path(GROUP_ID), body=first)

    with pytest.raises(GraphBadResponse) as caught:
        client.group_members([GROUP_ID])

    assert "another host" in caught.value.message
    assert len(batch.posted) == 1


def test_a_next_page_that_repeats_is_a_bad_response(client: GraphClient, batch: FakeBatch) -> None:
    first = load_fixture("group-members-page-1.json")
    next_path = first["@odata.nextLink"].removeprefix(V1)
    batch.reply(members_path(GROUP_ID), body=first)
    batch.reply(next_path, body=first)  # page 2 links to itself

    with pytest.raises(GraphBadResponse) as caught:
        client.group_members([GROUP_ID])

    assert "same next-page link twice" in caught.value.message


# --- the POST itself -----------------------------------------------------------------------------


def test_a_503_for_the_whole_batch_is_retried(
    client: GraphClient, batch: FakeBatch, waits: list[float]
) -> None:
    ids = group_ids(3)
    serve_members(batch, ids)
    batch.fail_batch(503, "error-503-service-not-available.json")

    members = client.group_members(ids)

    assert len(waits) == 1
    assert batch.urls == [[members_path(g) for g in ids]] * 2
    assert list(members) == ids
    assert client.stats.requests == 2
    assert client.stats.subrequests == 6
    assert client.stats.retries == 1


def test_a_429_for_the_whole_batch_waits_for_its_retry_after(
    client: GraphClient, batch: FakeBatch, waits: list[float]
) -> None:
    serve_members(batch, [GROUP_ID])
    batch.fail_batch(429, "error-429-too-many-requests.json", headers={"Retry-After": "4"})

    client.group_members([GROUP_ID])

    assert waits == [4.0]


def test_a_batch_that_fails_with_424_is_still_read_request_by_request(
    client: GraphClient, batch: FakeBatch, waits: list[float]
) -> None:
    # "Throttling and batching": a throttled request fails with 429 and "the batch itself
    # fails with a status code of 424 (Failed Dependency)". The answers are still there.
    ids = group_ids(2)
    batch.outer.append(
        (
            424,
            {"request-id": "failed-dependency"},
            {
                "responses": [
                    throttled_answer("2", retry_after="1"),
                    sub_answer("1", one_member("a")),
                ]
            },
        )
    )
    serve_members(batch, ids)

    members = client.group_members(ids)

    assert waits == [1.0]
    assert batch.urls == [[members_path(g) for g in ids], [members_path(ids[1])]]
    assert members == {
        ids[0]: [MemberRef("a", "user")],
        ids[1]: [MemberRef(f"member-of-{ids[1]}", "user")],
    }


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param(lambda a: a[:-1], id="one-missing"),
        pytest.param(lambda a: [*a, a[0]], id="one-twice"),
        pytest.param(lambda a: [{**a[0], "id": "99"}, *a[1:]], id="an-unknown-id"),
        pytest.param(lambda a: [{**a[0], "status": "200"}, *a[1:]], id="a-status-not-a-number"),
    ],
)
def test_an_answer_that_does_not_match_the_requests_is_a_bad_response(
    client: GraphClient, batch: FakeBatch, answers: Callable[[list[Any]], list[Any]]
) -> None:
    # Every request has exactly one answer: a missing one must not pass for an empty group.
    ids = group_ids(3)
    batch.order = answers
    serve_members(batch, ids)

    with pytest.raises(GraphBadResponse):
        client.group_members(ids)


def test_a_batch_answer_without_responses_is_a_bad_response(
    client: GraphClient, batch: FakeBatch
) -> None:
    batch.outer.append((200, {}, {"value": []}))

    with pytest.raises(GraphBadResponse):
        client.group_members([GROUP_ID])


def test_a_member_without_odata_type_is_a_bad_response(
    client: GraphClient, batch: FakeBatch
) -> None:
    # The first answer of "List group members" on its old page: {"id": "id-value"} only.
    batch.reply(members_path(GROUP_ID), body={"value": [{"id": "id-value"}]})

    with pytest.raises(GraphBadResponse):
        client.group_members([GROUP_ID])


# --- nothing is ever dropped ---------------------------------------------------------------------


def test_every_group_is_answered_in_full_or_was_not_found(
    client: GraphClient, batch: FakeBatch, waits: list[float]
) -> None:
    # 45 groups, answers shuffled, some throttled once or twice, some failing once with 5xx,
    # some paged, some gone: every group ends in the answer with its members, or was a 404.
    rng = random.Random(45)
    batch.order = lambda answers: rng.sample(answers, len(answers))
    ids = group_ids(45)
    expected: dict[str, list[MemberRef]] = {}
    not_found: set[str] = set()
    for n, group_id in enumerate(ids):
        path = members_path(group_id)
        kind = n % 5
        if kind == 0:
            not_found.add(group_id)
            batch.error(path, "error-404-request-resource-not-found.json", status=404)
            continue
        if kind == 1:
            batch.reply(path, body=throttled_body(), status=429, headers={"Retry-After": "2"})
            batch.reply(path, body=throttled_body(), status=429, headers={"Retry-After": "1"})
        if kind == 2:
            batch.error(path, "error-503-service-not-available.json", status=503)
        if kind == 3:
            next_link = f"{V1}{path}&$skiptoken=page-2"
            batch.reply(path, body={**one_member(f"{group_id}-1"), "@odata.nextLink": next_link})
            batch.reply(next_link.removeprefix(V1), body=one_member(f"{group_id}-2"))
            expected[group_id] = [
                MemberRef(f"{group_id}-1", "user"),
                MemberRef(f"{group_id}-2", "user"),
            ]
            continue
        batch.reply(path, body=one_member(group_id))
        expected[group_id] = [MemberRef(group_id, "user")]

    members = client.group_members(ids)

    assert members == expected
    assert set(members) | not_found == set(ids)
    assert not set(members) & not_found
    assert all(len(b) <= 20 for b in batch.posted)


# --- fixtures and Microsoft's OpenAPI description ------------------------------------------------


def run_checker(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        input=stdin,
    )


def test_the_batch_example_is_shaped_as_the_batching_page_says() -> None:
    # "Processing the JSON batch response": responses, each with id, status, headers, body.
    example = json.loads((FIXTURES / "batch-response.json").read_text())
    assert list(example) == ["responses"]
    for item in example["responses"]:
        assert set(item) == {"id", "status", "headers", "body"}
        assert isinstance(item["status"], int)


@needs_checker
@pytest.mark.parametrize("name", sorted(BATCH_BODIES))
def test_members_fixtures_match_microsofts_openapi_description(name: str) -> None:
    result = run_checker(
        "--response", str(FIXTURES / name), "--request", f"GET {BATCH_BODIES[name]}"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("1 response checked, 0 problems")


@needs_checker
def test_the_requests_inside_its_batches_match_microsofts_openapi_description(
    client: GraphClient, batch: FakeBatch, tmp_path: Path
) -> None:
    # A batch request's url is relative to the version: checked as the GET it stands for.
    batch.reply(members_path(GROUP_ID), "group-members-page-1.json")
    batch.reply(MEMBERS_PAGE_2.removeprefix(V1), "group-members-page-2.json")
    client.group_members([GROUP_ID])

    urls = sorted({f"{V1}{request['url']}" for sent in batch.posted for request in sent})
    requests_file = tmp_path / "batch-requests.txt"
    requests_file.write_text("".join(f"GET {url}\n" for url in urls))
    result = run_checker(str(requests_file))

    assert len(urls) == 2
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith(f"{len(urls)} requests checked, 0 problems")


@needs_checker
def test_the_openapi_subset_does_not_describe_batch_itself() -> None:
    # graph-openapi/README.md: no openApiDocs/v1.0 file describes JSON batching. If this
    # starts failing, the subset learnt $batch: check the POST too.
    result = run_checker(stdin=f"POST {BATCH_URL}\n")

    assert "no path in the subset matches /$batch" in result.stdout
