"""Cleaning what Graph sends before it is stored: text, lengths, ids, types, and the warnings.

One bad object must not stop a directory (issue 9, item 5): NUL in a name, an overlong id or a
5 MB description are cleaned, clipped or skipped, on every path a sync reads (full listings,
`$batch` member listings, delta rounds, `memberOf`), and summed up in one warning per kind.
Bodies are shaped like the "List users" / "List groups" / delta / batch examples (see the
fixtures' README) with the bad values put in.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from directories.graph import GraphBadResponse, GraphClient, MemberRef
from directories.graph import client as client_module
from directories.graph.clean import (
    DESCRIPTION_MAX_LENGTH,
    Cleaning,
    clean_text,
    escaped,
    parse_group,
    parse_user,
)
from directories.graph.delta import GroupRound, UserRound

from .support import (
    ASSIGNMENTS_URL,
    AUTH_APP_ID,
    GROUP_ID,
    GROUPS_DELTA_URL,
    GROUPS_URL,
    USERS_DELTA_URL,
    USERS_URL,
    V1,
    FakeBatch,
    FakeGraph,
    load_fixture,
    members_path,
)

USER_ID = "4562bcc8-c436-4f95-b7c0-4f8ce89dca5e"
DELTA_LINK = f"{V1}/users/delta?$deltatoken=next-round"


def a_user(user_id: str = USER_ID, **properties: Any) -> dict[str, Any]:
    """A user as "List users" sends it (transitive-members-users.json), with changes."""
    return {
        "id": user_id,
        "userPrincipalName": "admin@contoso.com",
        "mail": None,
        "displayName": "MOD Administrator",
        "givenName": "MOD",
        "surname": "Administrator",
        "accountEnabled": True,
        "userType": "Member",
        **properties,
    }


def a_group(group_id: str = GROUP_ID, **properties: Any) -> dict[str, Any]:
    """A group as "List groups" sends it (groups-page-1.json), with changes."""
    return {
        "id": group_id,
        "displayName": "Sales and Marketing",
        "description": "Everyone in sales and marketing",
        "mail": "SalesAndMarketing@contoso.com",
        "mailEnabled": True,
        "securityEnabled": False,
        "groupTypes": ["Unified"],
        **properties,
    }


def listing(items: list[Any], next_link: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"@odata.context": f"{V1}/$metadata#users", "value": items}
    if next_link:
        body["@odata.nextLink"] = next_link
    return body


def delta_page(items: list[Any]) -> dict[str, Any]:
    return {
        "@odata.context": f"{V1}/$metadata#users",
        "@odata.deltaLink": DELTA_LINK,
        "value": items,
    }


def ids(count: int) -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"object-{n}")) for n in range(count)]


# --- text ----------------------------------------------------------------------------------------


def test_nul_and_other_control_characters_are_removed_from_every_text_property() -> None:
    cleaning = Cleaning()
    user = parse_user(
        a_user(
            displayName="Ada\x00 Lovelace\x1b[31m",
            userPrincipalName="ada\x00@contoso.com",
            mail="ada@contoso.com\x7f",
            givenName="\x85Ada",
            surname="Love\x9flace",
            userType="Guest\x00",
        ),
        cleaning,
    )

    assert user is not None
    assert user.display_name == "Ada Lovelace[31m"
    assert user.user_principal_name == "ada@contoso.com"
    assert user.mail == "ada@contoso.com"
    assert user.given_name == " Ada"  # NEL is a line break: a space
    assert user.surname == "Lovelace"
    assert user.user_type == "Guest" and user.is_guest


def test_a_line_break_or_tab_in_a_name_becomes_a_space_but_a_description_keeps_them() -> None:
    cleaning = Cleaning()
    group = parse_group(
        a_group(displayName="Sales\tand\r\nMarketing", description="Line one\n\tLine two\x00"),
        cleaning,
    )

    assert group is not None
    assert group.display_name == "Sales and  Marketing"
    # A description is prose: Entra's forms allow line breaks, and they are harmless stored.
    assert group.description == "Line one\n\tLine two"


def test_a_lone_surrogate_which_cannot_be_encoded_is_removed() -> None:
    # JSON may escape half a surrogate pair ("\ud800"); no database can store it as UTF-8.
    user = parse_user(a_user(displayName="Ada \ud800Lovelace 😀"), Cleaning())

    assert user is not None
    assert user.display_name == "Ada Lovelace 😀"
    user.display_name.encode("utf-8")  # no UnicodeEncodeError


def test_overlong_text_is_clipped_to_the_columns_it_is_stored_in() -> None:
    user = parse_user(
        a_user(displayName="N" * 300, userPrincipalName="u" * 400, givenName="G" * 200),
        Cleaning(),
    )

    assert user is not None
    assert len(user.display_name) == 256
    assert len(user.user_principal_name) == 320
    assert user.given_name == "G" * 128


def test_a_five_megabyte_description_is_kept_to_its_first_1024_characters() -> None:
    # Microsoft's group page documents no maximum for description: 1024 characters are kept.
    group = parse_group(a_group(description="d" * 5_000_000), Cleaning())

    assert group is not None
    assert group.description == "d" * DESCRIPTION_MAX_LENGTH == "d" * 1024


def test_text_without_anything_to_clean_is_the_same_string() -> None:
    text = "Sales and Marketing"

    assert clean_text(text, 256) is text


# --- wrong types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (True, True),
        (False, False),
        ("false", False),
        ("False", False),
        ("true", True),
        (None, True),  # unknown: enabled, as before
        (0, True),
        ("no", True),
        ([], True),
    ],
)
def test_account_enabled_sent_as_a_string_means_what_it_says(sent: Any, kept: bool) -> None:
    user = parse_user(a_user(accountEnabled=sent), Cleaning())

    assert user is not None
    assert user.account_enabled is kept


def test_a_group_flag_sent_as_the_string_false_is_false() -> None:
    # bool("false") is True: a mail-disabled group must not become mail-enabled.
    group = parse_group(a_group(mailEnabled="false", securityEnabled="true"), Cleaning())

    assert group is not None
    assert group.mail_enabled is False
    assert group.security_enabled is True


@pytest.mark.parametrize("types", [None, "Unified", {"0": "Unified"}, 7])
def test_group_types_that_are_not_a_list_are_none(types: Any) -> None:
    group = parse_group(a_group(groupTypes=types), Cleaning())

    assert group is not None
    assert group.group_types == ()


def test_group_types_keep_their_strings_cleaned_and_a_sane_number_of_them() -> None:
    # jsonb refuses NUL too: the list is cleaned like any text.
    group = parse_group(a_group(groupTypes=["Unified\x00", 5, None, *["x" * 100] * 40]), Cleaning())

    assert group is not None
    assert group.group_types[0] == "Unified"
    assert len(group.group_types) == 16
    assert all(len(t) == 64 for t in group.group_types[1:])


@pytest.mark.parametrize("name", [42, 4.2, True, ["Ada"], {"first": "Ada"}, None])
def test_a_name_that_is_not_a_string_is_no_name(name: Any) -> None:
    user = parse_user(a_user(displayName=name, mail=name), Cleaning())

    assert user is not None
    assert user.display_name == ""
    assert user.mail is None


def test_a_mail_that_was_only_control_characters_is_no_mail() -> None:
    user = parse_user(a_user(mail="\x00\x01"), Cleaning())

    assert user is not None
    assert user.mail is None


# --- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        pytest.param({"displayName": "No id"}, id="missing"),
        pytest.param({"id": None}, id="null"),
        pytest.param({"id": 12345}, id="a-number"),
        pytest.param({"id": ""}, id="empty"),
        pytest.param({"id": "a" * 65}, id="longer-than-the-column"),
        pytest.param({"id": f"{USER_ID}\x00"}, id="with-nul"),
        pytest.param({"id": f"{USER_ID} "}, id="with-a-space"),
        pytest.param({"id": "../groups/x"}, id="with-a-slash"),
        pytest.param({"id": "ü" + USER_ID[1:]}, id="not-ascii"),
        pytest.param("4562bcc8-c436-4f95-b7c0-4f8ce89dca5e", id="not-an-object"),
        pytest.param(None, id="null-item"),
    ],
)
def test_an_object_without_a_usable_id_is_skipped_with_a_warning(item: Any) -> None:
    cleaning = Cleaning()

    assert parse_user(item, cleaning) is None
    (warning,) = cleaning.warnings
    assert warning.startswith("Skipped a user Graph sent with an invalid id (")
    assert "\x00" not in warning and "\n" not in warning


@pytest.mark.parametrize(
    "object_id",
    [
        USER_ID,
        USER_ID.upper(),
        "632f6bb2-3ec8-4c1f-9073-0027a8c6859",  # as on "Get incremental changes for groups"
        "VHJ510Uw0ESZyaO1qxSVOHHFE8pMZhxDun-ThPczmJE",  # an appRoleAssignment id (base64url)
        "a" * 64,
    ],
)
def test_ids_are_accepted_as_leniently_as_graph_writes_them(object_id: str) -> None:
    cleaning = Cleaning()
    user = parse_user(a_user(object_id), cleaning)

    assert user is not None and user.id == object_id
    assert cleaning.warnings == []


def test_a_one_off_read_of_an_object_with_a_bad_id_fails() -> None:
    # GET /users/{id}: there is nothing to skip to, and nothing may be stored.
    with pytest.raises(GraphBadResponse) as caught:
        client_module._user(a_user("bad id"))

    assert "'bad id'" in caught.value.message


# --- warnings ------------------------------------------------------------------------------------


def test_ten_thousand_dirty_names_make_one_warning_per_kind() -> None:
    cleaning = Cleaning()
    many = ids(10_000)
    for user_id in many:
        parse_user(a_user(user_id, displayName="Ada\x00", surname="S" * 500), cleaning)
    for n in range(3):
        parse_user(a_user(f"bad\x00{n}"), cleaning)

    assert cleaning.warnings == [
        f"10000 users had control characters removed from displayName, e.g. user {many[0]}.",
        "10000 users had over-long text shortened (surname to 128 characters), e.g. user "
        f"{many[0]}.",
        "Skipped 3 users Graph sent with invalid ids (missing, not a string, empty, over 64 "
        "characters or not an object id), e.g. 'bad\\x000': they were not stored.",
    ]


def test_a_warning_names_every_property_cleaned_and_quotes_no_raw_bad_text() -> None:
    cleaning = Cleaning()
    parse_user(a_user(ids(1)[0], displayName="A\x00", mail="m\x07@contoso.com"), cleaning)
    parse_user(a_user("\x1b]0;pwned\x07" + "x" * 100), cleaning)

    control, skipped = cleaning.warnings
    assert "from mail and displayName," in control
    assert "\x1b" not in skipped and "\x07" not in skipped
    assert "('\\x1b]0;pwned\\x07" + "x" * 22 + "'…)" in skipped  # 32 characters, escaped


def test_an_object_repeated_in_a_delta_round_is_counted_once() -> None:
    cleaning = Cleaning()
    fold = UserRound(cleaning)
    for _ in range(3):
        fold.add(a_user(displayName="Ada\x00"))

    assert cleaning.warnings == [
        f"1 user had control characters removed from displayName, e.g. user {USER_ID}."
    ]


@pytest.mark.parametrize(
    ("value", "sample"),
    [
        (None, "none"),
        ("x" * 40, "'" + "x" * 32 + "'…"),
        ("\x00", "'\\x00'"),
        ("é", "'\\xe9'"),
        (7, "7"),
        (True, "true"),
        ({"id": "x"}, "an object"),
        (["x"], "a list"),
    ],
)
def test_a_bad_value_is_quoted_short_and_escaped(value: Any, sample: str) -> None:
    assert escaped(value) == sample


# --- delta rounds --------------------------------------------------------------------------------


def test_a_delta_round_cleans_properties_as_a_full_read_does() -> None:
    item = a_user(displayName="Ada\x00", userPrincipalName="u" * 400)
    fold = UserRound(Cleaning())
    fold.add(item)

    (change,) = fold.changes()
    full = parse_user(item, Cleaning())
    assert full is not None
    assert change.fields["display_name"] == full.display_name == "Ada"
    assert change.fields["user_principal_name"] == full.user_principal_name == "u" * 320


def test_a_delta_round_skips_items_and_members_without_a_usable_id() -> None:
    cleaning = Cleaning()
    fold = GroupRound(cleaning)
    member = ids(1)[0]
    fold.add({"id": 7, "displayName": "No id"})
    fold.add({"id": "x" * 65, "@removed": {"reason": "deleted"}})
    fold.add(
        {
            "id": GROUP_ID,
            "members@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": member},
                {"@odata.type": "#microsoft.graph.user"},
                {"@odata.type": "#microsoft.graph.user", "id": "", "@removed": {"reason": "x"}},
                "not an object",
            ],
        }
    )

    (change,) = fold.changes()
    assert change.id == GROUP_ID
    assert change.members_added == (MemberRef(member, "user"),)
    assert change.members_removed == ()
    group_warning, member_warning = cleaning.warnings
    assert group_warning.startswith("Skipped 2 groups Graph sent with invalid ids")
    assert member_warning.startswith("Skipped 3 group members Graph sent with invalid ids")
    assert f"in the members of group {GROUP_ID}" in member_warning


def test_a_member_with_an_id_but_no_odata_type_still_fails_the_round() -> None:
    # A real member that could be a user or a device: skipping could lose a membership.
    fold = GroupRound(Cleaning())

    with pytest.raises(GraphBadResponse):
        fold.add({"id": GROUP_ID, "members@delta": [{"id": USER_ID}]})


# --- every path of the client --------------------------------------------------------------------


def test_a_full_listing_skips_the_bad_users_and_cleans_the_rest(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "List users", two pages, the same user on both (a listing may repeat an object).
    next_link = f"{USERS_URL}&$skiptoken=RFNwdAIAAQAAAA"
    first = [a_user(displayName="Ada\x00"), {"id": None}, a_user("x" * 65)]
    graph.reply(USERS_URL, json_body=listing(first, next_link), request_id="page-1")
    graph.reply(next_link, json_body=listing([a_user(displayName="Ada")]), request_id="page-2")

    users = list(client.users())

    assert [(u.id, u.display_name) for u in users] == [(USER_ID, "Ada"), (USER_ID, "Ada")]
    control, skipped = client.stats.warnings
    assert control.startswith("1 user had control characters removed from displayName")
    assert skipped.startswith("Skipped 2 users")
    assert "(request-id 'page-1')" in skipped


def test_a_full_group_listing_clips_descriptions(client: GraphClient, graph: FakeGraph) -> None:
    graph.reply(GROUPS_URL, json_body=listing([a_group(description="d\x00" * 100_000)]))

    (group,) = client.groups()

    # Clipped first (a 5 MB value costs no more than 1024 characters), then cleaned.
    assert group.description == "d" * 512
    assert len(client.stats.warnings) == 2


def test_a_batch_member_listing_skips_members_without_a_usable_id(
    client: GraphClient, batch: FakeBatch
) -> None:
    # "List group members": the member without an id used to fail the whole run.
    good = ids(1)[0]
    body = {
        "value": [
            {"@odata.type": "#microsoft.graph.user", "id": good},
            {"@odata.type": "#microsoft.graph.user", "id": None},
            {"@odata.type": "#microsoft.graph.user", "id": "bad\x00id"},
        ]
    }
    batch.reply(members_path(GROUP_ID), body=body)

    members = client.group_members([GROUP_ID])

    assert members == {GROUP_ID: [MemberRef(good, "user")]}
    (warning,) = client.stats.warnings
    assert warning.startswith("Skipped 2 group members Graph sent with invalid ids")
    assert f"in the members of group {GROUP_ID}" in warning


def test_a_batch_member_without_odata_type_still_fails(
    client: GraphClient, batch: FakeBatch
) -> None:
    batch.reply(members_path(GROUP_ID), body={"value": [{"id": USER_ID}]})

    with pytest.raises(GraphBadResponse):
        client.group_members([GROUP_ID])


def test_member_of_skips_groups_without_a_usable_id(client: GraphClient, batch: FakeBatch) -> None:
    # "List a user's direct memberships".
    good = ids(1)[0]
    batch.reply(
        f"/users/{USER_ID}/memberOf?$select=id&$top=999",
        body={
            "value": [
                {"@odata.type": "#microsoft.graph.group", "id": good},
                {"@odata.type": "#microsoft.graph.group", "id": 42},
            ]
        },
    )

    found = client.users_member_of([USER_ID])

    assert found == {USER_ID: [MemberRef(good, "group")]}
    (warning,) = client.stats.warnings
    assert warning.startswith("Skipped a group membership Graph sent with an invalid id (42 in ")
    assert f"the groups of user {USER_ID}" in warning


def test_a_users_delta_round_cleans_and_skips(client: GraphClient, graph: FakeGraph) -> None:
    graph.reply(
        USERS_DELTA_URL,
        json_body=delta_page([a_user(displayName="Ada\x00"), {"id": "", "displayName": "x"}]),
    )

    round_ = client.users_delta()

    (change,) = round_.changes
    assert change.fields["display_name"] == "Ada"
    assert len(client.stats.warnings) == 2


def test_a_groups_delta_round_cleans_and_skips(client: GraphClient, graph: FakeGraph) -> None:
    item = {
        **a_group(displayName="Sales\x00"),
        "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": "no good"}],
    }
    graph.reply(GROUPS_DELTA_URL, json_body=delta_page([item]))

    (change,) = client.groups_delta().changes

    assert change.fields["display_name"] == "Sales"
    assert change.members_added == ()
    assert len(client.stats.warnings) == 2


def test_an_assignment_whose_principal_id_is_unusable_is_skipped(
    client: GraphClient, graph: FakeGraph
) -> None:
    # "List appRoleAssignments granted for a service principal" (app-role-assigned-to.json).
    body = load_fixture("app-role-assigned-to.json")
    good = body["value"][0]
    body["value"] = [
        {**good, "principalDisplayName": "Sales\x00"},
        {**good, "principalId": None},
        {**good, "principalId": "x\x00"},
    ]
    graph.reply(ASSIGNMENTS_URL, json_body=body)

    (assignment,) = client.app_role_assignments(AUTH_APP_ID)

    assert assignment.principal_id == good["principalId"]
    assert assignment.principal_display_name == "Sales"
    (warning,) = client.stats.warnings
    assert warning.startswith("Skipped 2 app role assignments")


# --- page bounds ---------------------------------------------------------------------------------


@pytest.fixture
def few_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(client_module, "MAX_PAGES", 5)
    return 5


def endless(url: str, page: int) -> str:
    return f"{url}&$skiptoken=page-{page}"


def test_a_listing_that_never_ends_stops_at_the_page_bound(
    client: GraphClient, graph: FakeGraph, few_pages: int
) -> None:
    # Every page empty and linking to a new one: no loop to catch, but no end either.
    graph.reply(USERS_URL, json_body=listing([], endless(USERS_URL, 1)))
    for n in range(1, 10):
        graph.reply(endless(USERS_URL, n), json_body=listing([], endless(USERS_URL, n + 1)))

    with pytest.raises(GraphBadResponse) as caught:
        list(client.users())

    assert "more than 5 pages" in caught.value.message
    assert len(graph.requests) == few_pages


def test_a_delta_round_that_never_ends_stops_at_the_page_bound(
    client: GraphClient, graph: FakeGraph, few_pages: int
) -> None:
    graph.reply(USERS_DELTA_URL, json_body=listing([], endless(USERS_DELTA_URL, 1)))
    for n in range(1, 10):
        graph.reply(
            endless(USERS_DELTA_URL, n), json_body=listing([], endless(USERS_DELTA_URL, n + 1))
        )

    with pytest.raises(GraphBadResponse):
        client.users_delta()

    assert len(graph.requests) == few_pages


def test_a_member_listing_that_never_ends_stops_at_the_page_bound(
    client: GraphClient, batch: FakeBatch, few_pages: int
) -> None:
    path = members_path(GROUP_ID)
    batch.reply(path, body=listing([], f"{V1}{endless(path, 1)}"))
    for n in range(1, 10):
        batch.reply(endless(path, n), body=listing([], f"{V1}{endless(path, n + 1)}"))

    with pytest.raises(GraphBadResponse):
        client.group_members([GROUP_ID])

    assert len(batch.posted) == few_pages


def test_empty_pages_within_the_bound_are_followed_to_the_end(
    client: GraphClient, graph: FakeGraph, few_pages: int
) -> None:
    # "Use delta query": empty pages with a next link are normal; keep following them.
    graph.reply(USERS_URL, json_body=listing([], endless(USERS_URL, 1)))
    for n in range(1, few_pages - 1):
        graph.reply(endless(USERS_URL, n), json_body=listing([], endless(USERS_URL, n + 1)))
    graph.reply(endless(USERS_URL, few_pages - 1), json_body=listing([a_user()]))

    assert [u.id for u in client.users()] == [USER_ID]


def test_the_real_page_bound_is_far_beyond_any_directory() -> None:
    # 999 objects a page: the bound must never cut a real tenant short.
    assert client_module.MAX_PAGES * client_module.PAGE_SIZE >= 10_000_000
