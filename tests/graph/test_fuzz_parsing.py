"""Fuzzed Graph answers through the real client (issue 9, item 15).

Every read a sync makes (`users()`, `groups()`, `$batch` member listings, delta rounds) is fed
pages with missing and wrong-typed properties, unicode, control characters and lone surrogates,
huge strings, ids of every shape, duplicates across pages and broken page envelopes. Each call
must either return objects a database can store (no control character, within the column
lengths, a usable id) or fail with one of the GraphError family: nothing else may escape.
HTTP is `responses`, so the client's own paging and JSON handling are what is tested.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import responses
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from directories.graph import GraphClient, GraphError, GraphGroup, GraphSettings, GraphUser
from directories.graph.clean import (
    DESCRIPTION_MAX_LENGTH,
    GROUP_TYPE_MAX_LENGTH,
    GROUP_TYPES_MAX,
    MAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    PART_NAME_MAX_LENGTH,
    UPN_MAX_LENGTH,
    USER_TYPE_MAX_LENGTH,
)
from directories.graph.client import GROUP_FIELDS, USER_FIELDS

from .support import (
    CLIENT_ID,
    CLIENT_SECRET,
    GRAPH_URL,
    GROUPS_DELTA_URL,
    GROUPS_URL,
    LOGIN_URL,
    TENANT_ID,
    USERS_DELTA_URL,
    USERS_URL,
    V1,
    FakeBatch,
    FakeLogin,
    members_path,
)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# What PostgreSQL (text and jsonb) and UTF-8 refuse, and what a one-line property must not hold.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
CONTROL_BUT_LAYOUT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
USABLE_ID = re.compile(r"[A-Za-z0-9._~-]{1,64}")

# A few ids that recur, so the same object turns up on several pages.
POOL = [
    "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0",
    "4562bcc8-c436-4f95-b7c0-4f8ce89dca5e",
    "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
]

# --- strategies ----------------------------------------------------------------------------------

nasty_characters = st.one_of(
    st.sampled_from(["\x00", "\ud800", "\udfff", "\x85", "\x9f", "\x7f", "\n", "\t", "\r"]),
    st.sampled_from(["😀", "é", "\u202e", "\u200d", "ß", "İ", "\ufeff", "\uffff"]),
    st.characters(exclude_categories=()),  # anything, lone surrogates included
)
nasty_text = st.one_of(
    st.text(nasty_characters, max_size=20),
    # Huge: beyond every column (and a 5 MB description is cut the same way, just slower).
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "\x00", "é", "😀"]), st.integers(0, 3000)),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), nasty_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
object_ids = st.one_of(
    st.sampled_from(POOL),
    st.uuids().map(str),
    st.text(st.sampled_from("abcXYZ019-_.~"), min_size=1, max_size=70),  # lengths around 64
    nasty_text,
    json_values,
)
property_values = st.one_of(nasty_text, json_values, st.sampled_from(["true", "false", "False"]))


def objects(properties: list[str]) -> st.SearchStrategy[Any]:
    """An item of a listing: mostly an object with an id and some of its properties, at times
    anything at all."""
    shaped = st.fixed_dictionaries(
        {"id": object_ids},
        optional={name: property_values for name in properties},
    )
    return st.one_of(shaped, shaped, shaped, json_values)


# Every property the client selects, besides the id (each one fuzzed).
USER_PROPERTIES = [name for name in USER_FIELDS if name != "id"]
GROUP_PROPERTIES = [name for name in GROUP_FIELDS if name != "id"]
users = objects(USER_PROPERTIES)
groups = objects(GROUP_PROPERTIES)
member_types = st.one_of(
    st.sampled_from(["#microsoft.graph.user", "#microsoft.graph.group", "#microsoft.graph.device"]),
    json_values,
)
members = st.one_of(
    st.fixed_dictionaries({"id": object_ids, "@odata.type": member_types}),
    st.fixed_dictionaries(
        {"id": object_ids, "@odata.type": member_types, "@removed": st.just({"reason": "deleted"})}
    ),
    st.fixed_dictionaries({"id": object_ids}),  # no @odata.type: fails the read if the id is good
    json_values,
)
# `members@delta`: a list, or (rarely) something else, which fails the round.
members_delta = st.integers(0, 9).flatmap(
    lambda n: json_values if n == 0 else st.lists(members, max_size=4)
)
groups_with_members = st.builds(
    lambda group, delta: {**group, "members@delta": delta} if isinstance(group, dict) else group,
    groups,
    members_delta,
)


def pages_of(items: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """Pages of a listing: mostly well formed, at times a broken envelope (no list, a number)."""
    good = st.lists(items, max_size=5).map(lambda value: {"value": value})
    broken = st.fixed_dictionaries({}, optional={"value": json_values})
    page = st.integers(0, 39).flatmap(lambda n: broken if n == 0 else good)  # 1 in 40 broken
    return st.lists(page, min_size=1, max_size=4)


# Defaults for a change's fields that Graph did not send (as the mirror's would be).
BLANK_USER: dict[str, Any] = {
    "user_principal_name": "",
    "mail": None,
    "display_name": "",
    "given_name": None,
    "surname": None,
    "account_enabled": True,
    "user_type": "Member",
}
BLANK_GROUP: dict[str, Any] = {
    "display_name": "",
    "description": None,
    "mail": None,
    "mail_enabled": False,
    "security_enabled": False,
    "group_types": (),
}


# --- serving pages -------------------------------------------------------------------------------


@contextmanager
def mocked_client() -> Iterator[tuple[GraphClient, responses.RequestsMock]]:
    """A client with its own `responses` for one example: nothing leaks between examples."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        FakeLogin(rsps, LOGIN_URL).start()
        settings = GraphSettings(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            login_url=LOGIN_URL,
            graph_url=GRAPH_URL,
            max_retries=1,
        )
        yield GraphClient(tenant_id=TENANT_ID, settings=settings, sleep=lambda _: None), rsps


def serve_pages(
    rsps: responses.RequestsMock, first_url: str, pages: list[Any], *, delta: bool = False
) -> None:
    """Chain the pages with next links; the last one ends the listing (a delta link in a round)."""
    url = first_url
    for number, page in enumerate(pages, 1):
        body = dict(page)
        if number < len(pages):
            next_url = f"{first_url}&$skiptoken=page-{number + 1}"
            body["@odata.nextLink"] = next_url
        elif delta:
            body["@odata.deltaLink"] = f"{first_url}&$deltatoken=next"
        rsps.get(url, json=body, headers={"request-id": f"page-{number}"})
        if number < len(pages):
            url = next_url


def read_or_fail(read: Callable[[], Any]) -> Any:
    """What the read returned, or None when it failed as documented (a GraphError)."""
    try:
        found = read()
    except GraphError as error:
        event(f"failed: {type(error).__name__}")
        return None
    event("read")
    return found


# --- what may be stored --------------------------------------------------------------------------


def assert_one_line(value: str | None, limit: int) -> None:
    if value is not None:
        assert not CONTROL.search(value) and not UNSTORABLE.search(value)
        assert len(value) <= limit
        value.encode("utf-8")


def assert_storable_user(user: GraphUser) -> None:
    assert USABLE_ID.fullmatch(user.id)
    assert_one_line(user.user_principal_name, UPN_MAX_LENGTH)
    assert_one_line(user.mail, MAIL_MAX_LENGTH)
    assert_one_line(user.display_name, NAME_MAX_LENGTH)
    assert_one_line(user.given_name, PART_NAME_MAX_LENGTH)
    assert_one_line(user.surname, PART_NAME_MAX_LENGTH)
    assert_one_line(user.user_type, USER_TYPE_MAX_LENGTH)
    assert isinstance(user.account_enabled, bool)


def assert_storable_group(group: GraphGroup) -> None:
    assert USABLE_ID.fullmatch(group.id)
    assert_one_line(group.display_name, NAME_MAX_LENGTH)
    assert_one_line(group.mail, MAIL_MAX_LENGTH)
    if group.description is not None:
        assert not CONTROL_BUT_LAYOUT.search(group.description)
        assert not UNSTORABLE.search(group.description)
        assert len(group.description) <= DESCRIPTION_MAX_LENGTH
    assert isinstance(group.mail_enabled, bool) and isinstance(group.security_enabled, bool)
    assert isinstance(group.group_types, tuple) and len(group.group_types) <= GROUP_TYPES_MAX
    for group_type in group.group_types:
        assert_one_line(group_type, GROUP_TYPE_MAX_LENGTH)


def usable(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("id"), str)
        and bool(USABLE_ID.fullmatch(item["id"]))
    )


def assert_warnings_summarised(client: GraphClient, kinds: int) -> None:
    """One warning per kind of cleaning, whatever the number of objects."""
    warnings = client.stats.warnings
    assert len(warnings) <= kinds
    for warning in warnings:
        assert warning and not UNSTORABLE.search(warning) and not CONTROL.search(warning)
        assert len(warning) < 600


# --- properties ----------------------------------------------------------------------------------


@FUZZ
@given(pages=pages_of(users))
def test_a_users_listing_keeps_only_storable_users_or_fails_cleanly(pages: list[Any]) -> None:
    with mocked_client() as (client, rsps):
        serve_pages(rsps, USERS_URL, pages)

        found = read_or_fail(lambda: list(client.users()))

    well_formed = all(isinstance(page.get("value"), list) for page in pages)
    if found is None:
        assert not well_formed  # only a broken envelope may fail a listing
        return
    for user in found:
        assert_storable_user(user)
    assert len(found) == sum(usable(item) for page in pages for item in page["value"])
    assert_warnings_summarised(client, kinds=3)


@FUZZ
@given(pages=pages_of(groups))
def test_a_groups_listing_keeps_only_storable_groups_or_fails_cleanly(pages: list[Any]) -> None:
    with mocked_client() as (client, rsps):
        serve_pages(rsps, GROUPS_URL, pages)

        found = read_or_fail(lambda: list(client.groups()))

    if found is None:
        assert not all(isinstance(page.get("value"), list) for page in pages)
        return
    for group in found:
        assert_storable_group(group)
    assert len(found) == sum(usable(item) for page in pages for item in page["value"])
    assert_warnings_summarised(client, kinds=3)


@FUZZ
@given(pages=pages_of(users))
def test_a_users_delta_round_keeps_only_storable_changes_or_fails_cleanly(
    pages: list[Any],
) -> None:
    with mocked_client() as (client, rsps):
        serve_pages(rsps, USERS_DELTA_URL, pages, delta=True)

        round_ = read_or_fail(client.users_delta)

    if round_ is None:
        return
    for change in round_.changes:
        assert USABLE_ID.fullmatch(change.id)
        if change.removed:
            assert change.fields == {}
            continue
        # A change's fields are those a full read would keep for the same item.
        merged = GraphUser(**{**BLANK_USER, "id": change.id, **change.fields})
        assert_storable_user(merged)
    assert len({c.id for c in round_.changes}) == len(round_.changes)  # one change per id
    assert_warnings_summarised(client, kinds=3)


@FUZZ
@given(pages=pages_of(st.one_of(groups, groups_with_members)))
def test_a_groups_delta_round_keeps_only_storable_changes_or_fails_cleanly(
    pages: list[Any],
) -> None:
    with mocked_client() as (client, rsps):
        serve_pages(rsps, GROUPS_DELTA_URL, pages, delta=True)

        round_ = read_or_fail(client.groups_delta)

    if round_ is None:
        return
    for change in round_.changes:
        assert USABLE_ID.fullmatch(change.id)
        merged = GraphGroup(**{**BLANK_GROUP, "id": change.id, **change.fields})
        assert_storable_group(merged)
        for ref in change.members_added:
            assert USABLE_ID.fullmatch(ref.id) and ref.kind in ("user", "group", "other")
        for member_id in change.members_removed:
            assert USABLE_ID.fullmatch(member_id)
    assert_warnings_summarised(client, kinds=5)


@FUZZ
@given(listing=pages_of(members), duplicate=st.booleans())
def test_a_batch_member_listing_keeps_only_usable_members_or_fails_cleanly(
    listing: list[Any], duplicate: bool
) -> None:
    group_id = POOL[0]
    path = members_path(group_id)
    with mocked_client() as (client, rsps):
        batch = FakeBatch(rsps).start()
        for number, page in enumerate(listing, 1):
            body = dict(page)
            if number < len(listing):
                body["@odata.nextLink"] = f"{V1}{path}&$skiptoken=page-{number + 1}"
            batch.reply(path if number == 1 else f"{path}&$skiptoken=page-{number}", body=body)

        found = read_or_fail(lambda: client.group_members([group_id, group_id][: 1 + duplicate]))

    if found is None:
        return
    assert list(found) == [group_id]
    refs = found[group_id]
    assert len({ref.id for ref in refs}) == len(refs)  # a member listed twice is one member
    for ref in refs:
        assert USABLE_ID.fullmatch(ref.id)
    assert_warnings_summarised(client, kinds=1)


# --- absurd page counts --------------------------------------------------------------------------


def test_a_thousand_empty_pages_are_followed_to_the_data() -> None:
    # "Use delta query": Graph may answer with empty pages and a next link "many times" before
    # the data; the bound (client.MAX_PAGES, 20,000) is far above that. (10,000 such pages read
    # the same way in about 5 seconds: too slow to run on every commit.)
    served = 0

    def next_page(request: Any) -> tuple[int, dict[str, str], str]:
        nonlocal served
        served += 1
        body: dict[str, Any]
        if served < 1000:
            body = {"value": [], "@odata.nextLink": f"{USERS_URL}&$skiptoken=page-{served + 1}"}
        else:
            body = {"value": [{"id": POOL[0], "displayName": "Ada"}]}
        return 200, {"request-id": f"page-{served}"}, json.dumps(body)

    with mocked_client() as (client, rsps):
        rsps.add_callback(responses.GET, re.compile(re.escape(f"{V1}/users?")), callback=next_page)

        found = list(client.users())

    assert [(u.id, u.display_name) for u in found] == [(POOL[0], "Ada")]
    assert client.stats.requests == 1000
