"""Delta rounds (`/users/delta`, `/groups/delta` with members) and `$deltatoken=latest`.

Bodies are the examples of "Get incremental changes for users" and "Get incremental changes
for groups" (tests/fixtures/graph/*-delta-*.json); the rules tested come from "Use delta query
to track changes in Microsoft Graph data" and the user/group `delta` reference pages.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from directories.graph import (
    DeltaRound,
    ErrorClass,
    GraphBadResponse,
    GraphClient,
    GraphDeltaExpired,
    GroupChange,
    MemberRef,
    UserChange,
)
from directories.graph import client as client_module
from tests.conftest import GRAPH_REQUEST_CHECKER

from .support import (
    FIXTURES,
    GRAPH_URL,
    GROUPS_DELTA_URL,
    GROUPS_LATEST_URL,
    ORGANIZATION_URL,
    USERS_DELTA_URL,
    USERS_LATEST_URL,
    USERS_URL,
    FakeGraph,
    load_fixture,
)

CHECKER = GRAPH_REQUEST_CHECKER
needs_checker = pytest.mark.skipif(
    not CHECKER.is_file(), reason=f"{CHECKER} (the Graph OpenAPI checker) is not here"
)

USERS_PAGE_2 = load_fixture("users-delta-page-1.json")["@odata.nextLink"]
USERS_PAGE_3 = load_fixture("users-delta-page-2.json")["@odata.nextLink"]
USERS_DELTA_LINK = load_fixture("users-delta-page-3.json")["@odata.deltaLink"]
USERS_NEXT_DELTA_LINK = load_fixture("users-delta-changes.json")["@odata.deltaLink"]
GROUPS_PAGE_2 = load_fixture("groups-delta-page-1.json")["@odata.nextLink"]
GROUPS_PAGE_3 = load_fixture("groups-delta-page-2.json")["@odata.nextLink"]
GROUPS_DELTA_LINK = load_fixture("groups-delta-page-3.json")["@odata.deltaLink"]
LARGE_GROUP_PAGE_2 = load_fixture("groups-delta-large-group-page-1.json")["@odata.nextLink"]

# Each success body and the request it answers, for the OpenAPI check (and the fixture census).
DELTA_BODIES = {
    "users-delta-page-1.json": USERS_DELTA_URL,
    "users-delta-page-2.json": USERS_PAGE_2,
    "users-delta-page-3.json": USERS_PAGE_3,
    "users-delta-changes.json": USERS_DELTA_LINK,
    "users-delta-empty.json": USERS_LATEST_URL,
    "groups-delta-page-1.json": GROUPS_DELTA_URL,
    "groups-delta-page-2.json": GROUPS_PAGE_2,
    "groups-delta-page-3.json": GROUPS_PAGE_3,
    "groups-delta-changes.json": GROUPS_DELTA_LINK,
    "groups-delta-more-changes.json": GROUPS_DELTA_LINK,
    "groups-delta-empty.json": GROUPS_LATEST_URL,
    "groups-delta-large-group-page-1.json": GROUPS_DELTA_URL,
    "groups-delta-large-group-page-2.json": LARGE_GROUP_PAGE_2,
}
DELTA_ERRORS = ["error-400-sync-state-not-found.json", "error-resync-required.json"]


def user(user_id: str, **fields: object) -> UserChange:
    return UserChange(id=user_id, removed=False, fields=fields)


def gone_user(user_id: str) -> UserChange:
    return UserChange(id=user_id, removed=True, fields={})


def serve_users_round(graph: FakeGraph) -> None:
    # "Get incremental changes for users": initial request, nextLink, final nextLink.
    graph.reply(USERS_DELTA_URL, "users-delta-page-1.json", request_id="users-1")
    graph.reply(USERS_PAGE_2, "users-delta-page-2.json", request_id="users-2")
    graph.reply(USERS_PAGE_3, "users-delta-page-3.json", request_id="users-3")


def serve_groups_round(graph: FakeGraph) -> None:
    # "Get incremental changes for groups": initial request, nextLink, final nextLink.
    graph.reply(GROUPS_DELTA_URL, "groups-delta-page-1.json")
    graph.reply(GROUPS_PAGE_2, "groups-delta-page-2.json")
    graph.reply(GROUPS_PAGE_3, "groups-delta-page-3.json")


def page(value: list[Any], *, next_link: str | None = None, delta_link: str | None = None) -> Any:
    """A delta page shaped like the delta query pages' (context, one link, value)."""
    body: dict[str, Any] = {"@odata.context": f"{GRAPH_URL}/v1.0/$metadata#groups"}
    if next_link:
        body["@odata.nextLink"] = next_link
    if delta_link:
        body["@odata.deltaLink"] = delta_link
    return {**body, "value": value}


# --- users ---------------------------------------------------------------------------------------


def test_a_first_users_round_follows_every_page_to_the_delta_link(
    client: GraphClient, graph: FakeGraph
) -> None:
    serve_users_round(graph)

    round_ = client.users_delta()

    assert isinstance(round_, DeltaRound)
    assert round_.delta_link == USERS_DELTA_LINK
    # The next links are sent as Graph wrote them; the $select is ours, asked once.
    assert [r.url for r in graph.requests] == [USERS_DELTA_URL, USERS_PAGE_2, USERS_PAGE_3]
    assert [c.id for c in round_.changes] == [
        "ffff7b1a-13b6-477b-8c0c-380905cd99f7",
        "605d1257-ffff-40b6-8e6f-528a53f5dc55",
        "86462606-fde0-4fc4-9e0c-a20eb73e54c6",
        "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0",
        "d8c37826-ffff-4cae-b348-e2725b1e814b",
        "8b1ee412-cd8f-4d59-ffff-24010edb9f1f",
        "25dcffff-959e-4ece-9973-e5d9b800e8cc",
        "f6ede700-27d0-4c42-bfb9-4dffff43c74a",
    ]
    assert round_.changes[0] == user(
        "ffff7b1a-13b6-477b-8c0c-380905cd99f7",
        display_name="Cameron White",
        given_name="Cameron",
        surname="White",
    )
    # "@removed" with reason "deleted": permanently deleted.
    assert round_.changes[2] == gone_user("86462606-fde0-4fc4-9e0c-a20eb73e54c6")
    # "If the property has never been set before it will not be included in the response at
    # all": Conf Room Adams has no givenName or surname, and none is invented for it.
    assert round_.changes[3] == user(
        "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0", display_name="Conf Room Adams"
    )
    assert client.stats.requests == 3


def test_its_first_request_selects_what_the_client_keeps(
    client: GraphClient, graph: FakeGraph
) -> None:
    serve_users_round(graph)
    serve_groups_round(graph)

    client.users_delta()
    client.groups_delta()

    users_query = parse_qs(urlsplit(graph.requests[0].url).query)
    groups_query = parse_qs(urlsplit(graph.requests[3].url).query)
    assert urlsplit(graph.requests[0].url).path == "/v1.0/users/delta"
    assert urlsplit(graph.requests[3].url).path == "/v1.0/groups/delta"
    assert set(users_query["$select"][0].split(",")) == {
        "id",
        "userPrincipalName",
        "mail",
        "displayName",
        "givenName",
        "surname",
        "accountEnabled",
        "userType",
    }
    # `$select=members` is what asks for members@delta ("group: delta").
    assert set(groups_query["$select"][0].split(",")) == {
        "id",
        "displayName",
        "description",
        "mail",
        "mailEnabled",
        "securityEnabled",
        "groupTypes",
        "members",
    }
    # The user and group delta functions support neither $top nor $expand nor $orderby.
    for query in (users_query, groups_query):
        assert set(query) == {"$select"}
    assert all("ConsistencyLevel" not in r.headers for r in graph.requests)


def test_a_stored_delta_link_is_sent_verbatim_and_brings_the_changes(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "Get incremental changes for users": the deltaLink request and its response.
    graph.reply(USERS_DELTA_LINK, "users-delta-changes.json")

    round_ = client.users_delta(USERS_DELTA_LINK)

    assert [r.url for r in graph.requests] == [USERS_DELTA_LINK]
    assert round_ == DeltaRound(
        changes=(
            user(
                "25dcffff-959e-4ece-9973-e5d9b800e8cc",
                display_name="MOD Administrator",
                given_name="MOD",
                surname="Administrator",
            ),
            # "@removed" with reason "changed": deleted, restorable from deleted items.
            gone_user("8ffff70c-1c63-4860-b963-e34ec660931d"),
        ),
        delta_link=USERS_NEXT_DELTA_LINK,
    )


def test_no_changes_is_an_empty_round_with_a_new_link(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "Get incremental changes for users": a deltaLink response with an empty value.
    graph.reply(USERS_DELTA_LINK, "users-delta-empty.json")

    assert client.users_delta(USERS_DELTA_LINK) == DeltaRound(
        changes=(), delta_link=USERS_NEXT_DELTA_LINK
    )


def test_the_properties_sent_are_normalised_as_a_full_read_normalises_them(
    client: GraphClient, graph: FakeGraph
) -> None:
    # The users of "List users" (transitive-members-users.json) as a delta page would carry
    # them: every selected property set, `mail` and `givenName` null for some.
    users = load_fixture("transitive-members-users.json")["value"]
    graph.reply(USERS_DELTA_URL, json_body=page(users, delta_link=USERS_DELTA_LINK))

    changes = client.users_delta().changes

    for item, change in zip(users, changes, strict=True):
        full_read = dataclasses.asdict(client_module._user(item))
        assert change.id == full_read.pop("id")
        assert dict(change.fields) == full_read
    assert changes[0].fields["given_name"] is None  # sent as null: known to be empty
    assert changes[1].fields["mail"] is None


def test_a_user_seen_twice_in_a_round_is_one_change_with_the_later_values(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "It's possible that a single entity will be contained multiple times in the response":
    # later pages win per property; a removal followed by a restore is not a removal.
    next_link = f"{USERS_DELTA_URL}&$skiptoken=page-2"
    first = [
        {"id": "u-1", "displayName": "Old Name", "mail": "old@contoso.com"},
        {"id": "u-2", "displayName": "Leaving"},
        {"id": "u-3", "@removed": {"reason": "changed"}},
    ]
    second = [
        {"id": "u-1", "displayName": "New Name"},
        {"id": "u-2", "@removed": {"reason": "changed"}},
        {"id": "u-3", "displayName": "Restored"},
    ]
    graph.reply(USERS_DELTA_URL, json_body=page(first, next_link=next_link))
    graph.reply(next_link, json_body=page(second, delta_link=USERS_DELTA_LINK))

    changes = client.users_delta().changes

    assert changes == (
        user("u-1", display_name="New Name", mail="old@contoso.com"),
        gone_user("u-2"),
        user("u-3", display_name="Restored"),
    )


def test_every_user_reads_the_users_collection(client: GraphClient, graph: FakeGraph) -> None:
    # "List users", paged like every collection.
    users = load_fixture("transitive-members-users.json")
    next_link = f"{USERS_URL}&$skiptoken=RFNwdAIAAQAAAA"
    graph.reply(USERS_URL, json_body={**users, "@odata.nextLink": next_link})
    graph.reply(next_link, json_body={**users, "value": users["value"][:1]})

    found = list(client.users())

    assert len(found) == len(users["value"]) + 1
    assert found[0] == client_module._user(users["value"][0])
    assert [r.url for r in graph.requests] == [USERS_URL, next_link]


# --- groups --------------------------------------------------------------------------------------


def test_a_first_groups_round_has_each_group_with_its_members(
    client: GraphClient, graph: FakeGraph
) -> None:
    serve_groups_round(graph)

    round_ = client.groups_delta()

    assert round_.delta_link == GROUPS_DELTA_LINK
    assert [r.url for r in graph.requests] == [GROUPS_DELTA_URL, GROUPS_PAGE_2, GROUPS_PAGE_3]
    changes = {c.id: c for c in round_.changes}
    assert len(changes) == len(round_.changes) == 6
    assert changes["c2f798fd-f95d-4623-8824-63aec21fffff"] == GroupChange(
        id="c2f798fd-f95d-4623-8824-63aec21fffff",
        removed=False,
        fields={
            "display_name": "All Company",
            "description": "This is the default group for everyone in the network",
        },
        members_added=(
            MemberRef("693acd06-2877-4339-8ade-b704261fe7a0", "user"),
            MemberRef("49320844-be99-4164-8167-87ff5d047ace", "user"),
        ),
        members_removed=(),
    )
    # "sg-HR does not contain that property because the group does not have any members."
    hr = changes["ec22655c-8eb2-432a-b4ea-8b8a254bffff"]
    assert hr.members_added == ()
    assert hr.members_removed == ()
    # "All Employees" has no description: not sent, so not in the fields.
    assert changes["bed7f0d4-750e-4e7e-ffff-169002d06fc9"].fields == {
        "display_name": "All Employees"
    }


def test_a_large_group_split_across_pages_is_merged_into_one_change(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "Paging through members in a large group": the same group on two pages, each with part
    # of members@delta; then the final page of the round.
    graph.reply(GROUPS_DELTA_URL, "groups-delta-large-group-page-1.json")
    graph.reply(LARGE_GROUP_PAGE_2, "groups-delta-large-group-page-2.json")
    graph.reply(GROUPS_PAGE_3, "groups-delta-page-3.json")

    changes = client.groups_delta().changes

    assert [c.id for c in changes] == [
        "2e5807ce-58f3-4a94-9b37-ffff2e085957",
        "bed7f0d4-750e-4e7e-ffff-169002d06fc9",
        "421e797f-9406-ffff-b778-4908421e3505",
    ]
    large = changes[0]
    assert large.fields == {
        "display_name": "LargeGroup",
        "description": "A group containing thousands of users",
    }
    assert large.members_added == (
        MemberRef("37de1ae3-408f-4702-8636-20824abda004", "user"),
        MemberRef("23423fa6-821e-44b2-aae4-d039d33884c2", "user"),
    )
    assert large.members_removed == (
        "632f6bb2-3ec8-4c1f-9073-0027a8c6859",
        "c08a463b-7b8a-40a4-aa31-f9bf690b9551",
    )


def test_members_added_and_removed_in_a_later_round(client: GraphClient, graph: FakeGraph) -> None:
    # "Get incremental changes for groups", the deltaLink response with changes: one member
    # removed ("@removed": deleted), one added.
    graph.reply(GROUPS_DELTA_LINK, "groups-delta-changes.json")

    (change,) = client.groups_delta(GROUPS_DELTA_LINK).changes

    assert change == GroupChange(
        id="2e5807ce-58f3-4a94-9b37-ffff2e085957",
        removed=False,
        fields={"display_name": "TestGroup3", "description": "A test group for change tracking"},
        members_added=(MemberRef("37de1ae3-408f-4702-8636-20824abda004", "user"),),
        members_removed=("632f6bb2-3ec8-4c1f-9073-0027a8c6859",),
    )


def test_members_of_every_kind_and_a_deleted_group(client: GraphClient, graph: FakeGraph) -> None:
    # A nested group, a contact and a device are members too ("List group transitive members"
    # example 1); a deleted Microsoft 365 group comes with "@removed": changed.
    graph.reply(GROUPS_DELTA_LINK, "groups-delta-more-changes.json")

    sales, deleted = client.groups_delta(GROUPS_DELTA_LINK).changes

    assert sales.members_added == (
        MemberRef("6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0", "user"),
        MemberRef("d9fb0c47-c783-40a1-bce1-53b52ada51fc", "group"),
        MemberRef("25caf956-4da0-4bfd-8c8f-5ba0c1a2f1c4", "other"),
    )
    assert sales.members_removed == (
        "4c1ba2b0-5a3e-4bd3-9e1c-1f4b3c3e6f55",  # a device
        "3c8ac7c4-d365-4df9-abfa-356a9dd7763c",  # a user
    )
    assert deleted == GroupChange(
        id="bed7f0d4-750e-4e7e-ffff-169002d06fc9",
        removed=True,
        fields={},
        members_added=(),
        members_removed=(),
    )


def test_a_member_mentioned_twice_ends_as_its_last_mention_says(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "Don't assume a specific sequence of the responses": the same group, pages apart.
    next_link = f"{GROUPS_DELTA_URL}&$skiptoken=page-2"
    group_id = "421e797f-9406-4934-b778-4908421e3505"
    joined_then_left = "3c8ac7c4-d365-4df9-abfa-356a9dd7763c"
    left_then_joined = "49320844-be99-4164-8167-87ff5d047ace"
    first = {
        "id": group_id,
        "displayName": "Sales and Marketing",
        "members@delta": [
            {"@odata.type": "#microsoft.graph.user", "id": joined_then_left},
            {
                "@odata.type": "#microsoft.graph.user",
                "id": left_then_joined,
                "@removed": {"reason": "deleted"},
            },
        ],
    }
    second = {
        "id": group_id,
        "displayName": "Sales and Marketing",
        "members@delta": [
            {
                "@odata.type": "#microsoft.graph.user",
                "id": joined_then_left,
                "@removed": {"reason": "deleted"},
            },
            {"@odata.type": "#microsoft.graph.user", "id": left_then_joined},
        ],
    }
    graph.reply(GROUPS_DELTA_URL, json_body=page([first], next_link=next_link))
    graph.reply(next_link, json_body=page([second], delta_link=GROUPS_DELTA_LINK))

    (change,) = client.groups_delta().changes

    assert change.members_added == (MemberRef(left_then_joined, "user"),)
    assert change.members_removed == (joined_then_left,)


def test_replays_collapse_into_one_change_per_group_and_member(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "Replays": "the same change appears in subsequent responses". Page 2 repeats page 1.
    first = load_fixture("groups-delta-page-1.json")
    graph.reply(GROUPS_DELTA_URL, "groups-delta-page-1.json")
    graph.reply(GROUPS_PAGE_2, json_body={**first, "@odata.nextLink": GROUPS_PAGE_3})
    graph.reply(GROUPS_PAGE_3, "groups-delta-page-3.json")

    changes = client.groups_delta().changes

    assert [c.id for c in changes] == [
        "c2f798fd-f95d-4623-8824-63aec21fffff",
        "ec22655c-8eb2-432a-b4ea-8b8a254bffff",
        "bed7f0d4-750e-4e7e-ffff-169002d06fc9",
        "421e797f-9406-ffff-b778-4908421e3505",
    ]
    assert changes[0].members_added == (
        MemberRef("693acd06-2877-4339-8ade-b704261fe7a0", "user"),
        MemberRef("49320844-be99-4164-8167-87ff5d047ace", "user"),
    )


def test_group_properties_are_normalised_as_a_full_read_normalises_them(
    client: GraphClient, graph: FakeGraph
) -> None:
    # The groups of "List groups" (groups-page-*.json), as a delta page would carry them.
    groups = (
        load_fixture("groups-page-1.json")["value"] + load_fixture("groups-page-3.json")["value"]
    )
    graph.reply(GROUPS_DELTA_URL, json_body=page(groups, delta_link=GROUPS_DELTA_LINK))

    changes = client.groups_delta().changes

    for item, change in zip(groups, changes, strict=True):
        full_read = dataclasses.asdict(client_module._group(item))
        assert change.id == full_read.pop("id")
        assert dict(change.fields) == full_read
    assert changes[0].fields["group_types"] == ("Unified",)


def test_a_member_that_cannot_be_told_apart_is_a_bad_response(
    client: GraphClient, graph: FakeGraph
) -> None:
    # Without @odata.type a user could not be told from a device: never guess, never skip.
    member = {"id": "49320844-be99-4164-8167-87ff5d047ace"}
    item = {"id": "c2f798fd-f95d-4623-8824-63aec21fffff", "members@delta": [member]}
    graph.reply(GROUPS_DELTA_URL, json_body=page([item], delta_link=GROUPS_DELTA_LINK))

    with pytest.raises(GraphBadResponse):
        client.groups_delta()


@pytest.mark.parametrize(
    "member",
    [{"@odata.type": "#microsoft.graph.user"}, "49320844-be99-4164-8167-87ff5d047ace"],
    ids=["without-id", "not-an-object"],
)
def test_a_member_without_a_usable_id_is_skipped_with_a_warning(
    client: GraphClient, graph: FakeGraph, member: Any
) -> None:
    # It could never be stored, so no stored membership names it: skipping loses nothing,
    # while failing would stop the directory for as long as Graph sends it (clean.py).
    item = {"id": "c2f798fd-f95d-4623-8824-63aec21fffff", "members@delta": [member]}
    graph.reply(GROUPS_DELTA_URL, json_body=page([item], delta_link=GROUPS_DELTA_LINK))

    (change,) = client.groups_delta().changes

    assert (change.members_added, change.members_removed) == ((), ())
    (warning,) = client.stats.warnings
    assert warning.startswith("Skipped a group member Graph sent with an invalid id")


# --- sync from now -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "url", "fixture"),
    [
        ("users", USERS_LATEST_URL, "users-delta-empty.json"),
        ("groups", GROUPS_LATEST_URL, "groups-delta-empty.json"),
    ],
)
def test_latest_asks_for_a_delta_link_from_now_without_reading_objects(
    client: GraphClient, graph: FakeGraph, resource: Any, url: str, fixture: str
) -> None:
    # "Use delta query": Entra ID resources support "sync from now": $deltatoken=latest, and
    # the response has an @odata.deltaLink and no resource data.
    graph.reply(url, fixture)

    link = client.latest_delta_link(resource)

    assert link == load_fixture(fixture)["@odata.deltaLink"]
    (request,) = graph.requests
    query = parse_qs(urlsplit(request.url).query)
    assert query["$deltatoken"] == ["latest"]
    # The same $select as a round's first request: a delta link keeps its query.
    first = USERS_DELTA_URL if resource == "users" else GROUPS_DELTA_URL
    assert query["$select"] == parse_qs(urlsplit(first).query)["$select"]


# --- an expired or unknown delta link ------------------------------------------------------------


def test_410_gone_means_a_full_read_is_needed(
    client: GraphClient, graph: FakeGraph, waits: list[float]
) -> None:
    # "Use delta query", Synchronization reset: "410 (gone) and a Location header containing a
    # request URL with an empty $deltaToken ... the application must restart with a full
    # synchronization". No body is documented; none is needed.
    graph.reply(
        USERS_DELTA_LINK,
        status=410,
        body="",
        headers={"Location": f"{GRAPH_URL}/v1.0/users/delta?$deltatoken="},
        request_id="gone",
    )

    with pytest.raises(GraphDeltaExpired) as caught:
        client.users_delta(USERS_DELTA_LINK)

    assert caught.value.error_class == ErrorClass.TRANSIENT
    assert caught.value.status == 410
    assert caught.value.request_id == "gone"
    assert "full read" in caught.value.message
    assert waits == []  # no amount of retrying brings a dead link back
    assert len(graph.requests) == 1


@pytest.mark.parametrize(
    ("fixture", "status"),
    [
        # "Duration of change tracking tokens": BadRequest with syncStateNotFound.
        ("error-400-sync-state-not-found.json", 400),
        # "Microsoft Graph error responses": resyncRequired, status not given.
        ("error-resync-required.json", 400),
        ("error-resync-required.json", 409),
        ("error-resync-required.json", 410),
        ("error-resync-required.json", 503),
    ],
)
def test_an_expired_delta_token_means_a_full_read_is_needed_whatever_the_status(
    client: GraphClient, graph: FakeGraph, waits: list[float], fixture: str, status: int
) -> None:
    request_id = graph.error(GROUPS_DELTA_LINK, fixture, status=status)

    with pytest.raises(GraphDeltaExpired) as caught:
        client.groups_delta(GROUPS_DELTA_LINK)

    assert caught.value.code in ("syncStateNotFound", "resyncRequired")
    assert caught.value.request_id == request_id
    assert waits == []


def test_an_expired_token_in_the_middle_of_a_round_fails_the_whole_round(
    client: GraphClient, graph: FakeGraph
) -> None:
    # A round is all or nothing: half a round must not be taken for the changes.
    graph.reply(USERS_DELTA_URL, "users-delta-page-1.json")
    graph.error(USERS_PAGE_2, "error-400-sync-state-not-found.json", status=400)

    with pytest.raises(GraphDeltaExpired):
        client.users_delta()


def test_an_error_code_nested_in_inner_error_counts_too(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "Microsoft Graph error responses": loop through all the error codes, innerError too.
    body = load_fixture("error-resync-required.json")
    body["error"]["innerError"]["code"] = body["error"].pop("code")
    body["error"]["code"] = "badRequest"
    graph.reply(USERS_DELTA_LINK, status=400, json_body=body)

    with pytest.raises(GraphDeltaExpired):
        client.users_delta(USERS_DELTA_LINK)


def test_410_outside_a_delta_round_is_still_a_bad_response(
    client: GraphClient, graph: FakeGraph
) -> None:
    graph.reply(ORGANIZATION_URL, status=410, body="")

    with pytest.raises(GraphBadResponse) as caught:
        client.organization()

    assert not isinstance(caught.value, GraphDeltaExpired)


def test_throttling_in_the_middle_of_a_round_is_retried(
    client: GraphClient, graph: FakeGraph, waits: list[float]
) -> None:
    # "Microsoft Graph throttling guidance": 429 with Retry-After, then the page.
    graph.reply(USERS_DELTA_URL, "users-delta-page-1.json")
    graph.error(USERS_PAGE_2, "error-429-too-many-requests.json", status=429, retry_after="2.128")
    graph.reply(USERS_PAGE_2, "users-delta-page-2.json")
    graph.reply(USERS_PAGE_3, "users-delta-page-3.json")

    round_ = client.users_delta()

    assert waits == [2.128]
    assert len(round_.changes) == 8
    assert client.stats.retries == 1


# --- links that cannot be followed ---------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    [
        "https://attacker.example.test/v1.0/users/delta?$skiptoken=oEBwdSP6uehIAxQOWq_3Ksh",
        "http://graph.example.test/v1.0/users/delta?$skiptoken=oEBwdSP6uehIAxQOWq_3Ksh",
    ],
    ids=["another-host", "plain-http"],
)
def test_a_next_link_elsewhere_is_refused_before_the_token_is_sent_there(
    client: GraphClient, graph: FakeGraph, link: str
) -> None:
    graph.reply(
        USERS_DELTA_URL,
        json_body={**load_fixture("users-delta-page-1.json"), "@odata.nextLink": link},
    )

    with pytest.raises(GraphBadResponse) as caught:
        client.users_delta()

    assert "another host" in caught.value.message
    assert [r.url for r in graph.requests] == [USERS_DELTA_URL]


def test_a_delta_link_elsewhere_is_refused_before_it_is_stored(
    client: GraphClient, graph: FakeGraph
) -> None:
    link = "https://attacker.example.test/v1.0/users/delta?$deltatoken=oEcOySpF_hWYmTIU"
    graph.reply(
        USERS_DELTA_URL,
        json_body={**load_fixture("users-delta-page-3.json"), "@odata.deltaLink": link},
    )

    with pytest.raises(GraphBadResponse):
        client.users_delta()


def test_a_stored_link_elsewhere_is_never_sent(client: GraphClient, graph: FakeGraph) -> None:
    with pytest.raises(GraphBadResponse):
        client.users_delta("https://attacker.example.test/v1.0/users/delta?$deltatoken=x")

    assert graph.requests == []


def test_a_round_without_a_delta_link_at_its_end_is_a_bad_response(
    client: GraphClient, graph: FakeGraph
) -> None:
    # A page with neither link ends the round without a way to ask for what comes next.
    last = load_fixture("users-delta-page-3.json")
    del last["@odata.deltaLink"]
    graph.reply(USERS_DELTA_URL, "users-delta-page-1.json")
    graph.reply(USERS_PAGE_2, "users-delta-page-2.json")
    graph.reply(USERS_PAGE_3, json_body=last, request_id="no-delta-link")

    with pytest.raises(GraphBadResponse) as caught:
        client.users_delta()

    assert "@odata.deltaLink" in caught.value.message
    assert caught.value.request_id == "no-delta-link"


def test_a_next_link_that_repeats_is_a_bad_response(client: GraphClient, graph: FakeGraph) -> None:
    looping = {**load_fixture("users-delta-page-2.json"), "@odata.nextLink": USERS_PAGE_2}
    graph.reply(USERS_DELTA_URL, "users-delta-page-1.json")
    graph.reply(USERS_PAGE_2, json_body=looping)

    with pytest.raises(GraphBadResponse) as caught:
        client.users_delta()

    assert "same next-page link twice" in caught.value.message
    assert len(graph.requests) == 2


def test_a_delta_page_without_value_is_a_bad_response(
    client: GraphClient, graph: FakeGraph
) -> None:
    body = load_fixture("groups-delta-empty.json")
    del body["value"]
    graph.reply(GROUPS_LATEST_URL, json_body=body)

    with pytest.raises(GraphBadResponse):
        client.latest_delta_link("groups")


# --- fixtures and Microsoft's OpenAPI description ------------------------------------------------


def run_checker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", DELTA_ERRORS)
def test_delta_error_fixtures_are_shaped_like_graph_error_responses(name: str) -> None:
    body = json.loads((FIXTURES / name).read_text())
    assert list(body) == ["error"]
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)
    uuid.UUID(body["error"]["innerError"]["request-id"])


@needs_checker
@pytest.mark.parametrize("name", sorted(DELTA_BODIES))
def test_delta_fixtures_match_microsofts_openapi_description(name: str) -> None:
    result = run_checker(
        "--response", str(FIXTURES / name), "--request", f"GET {DELTA_BODIES[name]}"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("1 response checked, 0 problems")


@needs_checker
def test_the_delta_requests_it_sends_match_microsofts_openapi_description(
    client: GraphClient, graph: FakeGraph, tmp_path: Path
) -> None:
    serve_users_round(graph)
    serve_groups_round(graph)
    graph.reply(USERS_DELTA_LINK, "users-delta-changes.json")
    graph.reply(GROUPS_DELTA_LINK, "groups-delta-changes.json")
    graph.reply(USERS_LATEST_URL, "users-delta-empty.json")
    graph.reply(GROUPS_LATEST_URL, "groups-delta-empty.json")
    graph.reply(USERS_URL, "transitive-members-users.json")
    client.users_delta()
    client.groups_delta()
    client.users_delta(USERS_DELTA_LINK)
    client.groups_delta(GROUPS_DELTA_LINK)
    client.latest_delta_link("users")
    client.latest_delta_link("groups")
    list(client.users())

    urls = sorted({r.url for r in graph.requests})
    requests_file = tmp_path / "sent-requests.txt"
    requests_file.write_text("".join(f"GET {url}\n" for url in urls))
    result = run_checker(str(requests_file))

    assert len(urls) == 11
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith(f"{len(urls)} requests checked, 0 problems")
