"""Fuzzed Graph answers through the real client and the whole engine (issue 9, items 5 and 15).

The directory is first synced from a small, well-formed tenant; then a full read or a delta
round serves malformed pages (bad ids, wrong types, control characters, lone surrogates, huge
text, duplicates, broken envelopes). Each run must either succeed with storable data exactly
where Graph sent usable objects, or fail cleanly: a failed run recorded and nothing changed.
No exception other than the GraphError family may escape (the engine re-raises anything else).

HTTP is `responses` (as tests/graph does), so Graph's JSON goes through the client's real
parsing, paging and `$batch` code. CI runs this suite on PostgreSQL too, where a NUL in text or
jsonb fails the insert: `test_a_nul_in_any_property_never_reaches_the_database` proves it there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import responses
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from directories.graph import GraphClient, GraphSettings
from directories.graph import client as client_module
from directories.models import (
    Directory,
    MirroredEdge,
    MirroredGroup,
    MirroredUser,
    SyncMode,
    SyncRun,
)
from directories.sync import directory_sync
from identities.models import Membership, SyncedGroup, SyncedUser
from tests.factories import DirectoryFactory
from tests.graph.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    GRAPH_URL,
    GROUPS_LATEST_URL,
    GROUPS_URL,
    LOGIN_URL,
    TENANT_ID,
    USERS_LATEST_URL,
    USERS_URL,
    V1,
    FakeBatch,
    FakeLogin,
    members_path,
)
from tests.graph.test_fuzz_parsing import (
    POOL,
    USABLE_ID,
    USER_PROPERTIES,
    groups,
    json_values,
    members_delta,
    object_ids,
    pages_of,
    property_values,
    serve_pages,
    users,
)

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
USERS_LINK = f"{V1}/users/delta?$deltatoken=users-after-the-full-read"
GROUPS_LINK = f"{V1}/groups/delta?$deltatoken=groups-after-the-full-read"

# The well-formed tenant every example starts from: two groups, three users (POOL's ids).
BASE_GROUP, OTHER_GROUP = (
    "02bd9fd6-8f93-4758-87c3-1fb73740a315",
    "8a7c50d3-fcbd-4727-a889-8ab232dfea01",
)


def user_json(user_id: str, name: str, **properties: Any) -> dict[str, Any]:
    # As on "List users" (transitive-members-users.json).
    return {
        "id": user_id,
        "userPrincipalName": f"{name.lower()}@contoso.com",
        "mail": f"{name.lower()}@contoso.com",
        "displayName": name,
        "givenName": name,
        "surname": None,
        "accountEnabled": True,
        "userType": "Member",
        **properties,
    }


def group_json(group_id: str, name: str, **properties: Any) -> dict[str, Any]:
    # As on "List groups" (groups-page-1.json).
    return {
        "id": group_id,
        "displayName": name,
        "description": None,
        "mail": None,
        "mailEnabled": False,
        "securityEnabled": True,
        "groupTypes": [],
        **properties,
    }


USER_TYPE, DEVICE_TYPE = "#microsoft.graph.user", "#microsoft.graph.device"


def user_member(user_id: str) -> dict[str, Any]:
    return {"@odata.type": USER_TYPE, "id": user_id}


BASE_USERS = [user_json(POOL[0], "Ada"), user_json(POOL[1], "Bob"), user_json(POOL[2], "Eve")]
BASE_GROUPS = [group_json(BASE_GROUP, "Engineering"), group_json(OTHER_GROUP, "Sales")]
BASE_MEMBERS = {
    BASE_GROUP: [user_member(POOL[0]), user_member(POOL[1])],
    OTHER_GROUP: [user_member(POOL[2])],
}


# --- Graph over `responses` ----------------------------------------------------------------------


@contextmanager
def graph_client() -> Iterator[tuple[GraphClient, responses.RequestsMock, FakeBatch]]:
    """A real client for one run, its own `responses` and `$batch` endpoint."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        FakeLogin(rsps, LOGIN_URL).start()
        batch = FakeBatch(rsps).start()
        settings = GraphSettings(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            login_url=LOGIN_URL,
            graph_url=GRAPH_URL,
            max_retries=1,
        )
        yield GraphClient(tenant_id=TENANT_ID, settings=settings, sleep=lambda _: None), rsps, batch


def serve_full_read(
    rsps: responses.RequestsMock,
    batch: FakeBatch,
    user_pages: list[Any],
    group_pages: list[Any],
    listings: dict[str, list[Any]],
) -> None:
    """A full read: "sync from now" links first, then every user, every group, their members."""
    rsps.get(USERS_LATEST_URL, json={"@odata.deltaLink": USERS_LINK, "value": []})
    rsps.get(GROUPS_LATEST_URL, json={"@odata.deltaLink": GROUPS_LINK, "value": []})
    serve_pages(rsps, USERS_URL, user_pages)
    serve_pages(rsps, GROUPS_URL, group_pages)
    for group_id, value in listings.items():
        batch.reply(members_path(group_id), body={"value": value})


def sync(directory: Directory, client: GraphClient) -> SyncRun:
    directory.refresh_from_db()
    outcome = directory_sync(
        directory=directory,
        trigger=SyncRun.Trigger.COMMAND,
        client=client,
        allow_mass_delete=True,  # the guard is tested elsewhere: here every run applies or fails
    )
    assert outcome.run is not None
    return outcome.run


def force_full_read(directory: Directory) -> None:
    """The next run reads in full, as when the stored links are gone."""
    Directory.objects.filter(pk=directory.pk).update(users_delta_link="", groups_delta_link="")


def synced_base(mode: str = SyncMode.ALL) -> Directory:
    directory = DirectoryFactory(sync_mode=mode)
    with graph_client() as (client, rsps, batch):
        serve_full_read(
            rsps, batch, [{"value": BASE_USERS}], [{"value": BASE_GROUPS}], BASE_MEMBERS
        )
        run = sync(directory, client)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error_message
    return directory


# --- what the database holds ---------------------------------------------------------------------


def stored(directory: Directory) -> dict[str, Any]:
    """Every row a run may write for the directory, and its delta links."""
    directory.refresh_from_db()
    return {
        "users": set(
            SyncedUser.objects.filter(directory=directory).values_list(
                "entra_id",
                "user_principal_name",
                "mail",
                "display_name",
                "given_name",
                "surname",
                "account_enabled",
                "user_type",
                "removed_at",
            )
        ),
        "groups": {
            (*row[:4], tuple(row[4]), row[5])
            for row in SyncedGroup.objects.filter(directory=directory).values_list(
                "entra_id", "display_name", "description", "mail", "group_types", "removed_at"
            )
        },
        "memberships": set(
            Membership.objects.filter(directory=directory).values_list(
                "group__entra_id", "user__entra_id", "removed_at"
            )
        ),
        "mirror_users": set(
            MirroredUser.objects.filter(directory=directory).values_list("entra_id", "display_name")
        ),
        "mirror_groups": set(
            MirroredGroup.objects.filter(directory=directory).values_list(
                "entra_id", "display_name", "description"
            )
        ),
        "mirror_edges": set(
            MirroredEdge.objects.filter(directory=directory).values_list(
                "group_id", "member_id", "member_kind"
            )
        ),
        "links": (directory.users_delta_link, directory.groups_delta_link),
    }


def assert_all_storable(directory: Directory) -> None:
    """No stored text holds what PostgreSQL or UTF-8 refuse, and every id is usable."""
    state = stored(directory)
    for row in state["users"] | state["groups"] | state["mirror_users"] | state["mirror_groups"]:
        assert USABLE_ID.fullmatch(row[0])
        for value in row[1:]:
            texts = value if isinstance(value, tuple) else (value,)
            for text in texts:
                if isinstance(text, str):
                    assert not UNSTORABLE.search(text), ascii(text)
    for row in state["memberships"] | state["mirror_edges"]:
        assert USABLE_ID.fullmatch(row[0]) and USABLE_ID.fullmatch(row[1])


def present(directory: Directory) -> tuple[set[str], set[str], set[tuple[str, str]]]:
    state = stored(directory)
    return (
        {row[0] for row in state["users"] if row[-1] is None},
        {row[0] for row in state["groups"] if row[-1] is None},
        {(g, u) for g, u, removed_at in state["memberships"] if removed_at is None},
    )


def items(pages: list[Any]) -> list[Any]:
    """Every item of the pages whose envelope holds a list."""
    return [item for page in pages if isinstance(page.get("value"), list) for item in page["value"]]


def usable(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("id"), str)
        and bool(USABLE_ID.fullmatch(item["id"]))
    )


def expected_full_read(
    user_pages: list[Any], group_pages: list[Any], listings: dict[str, list[Any]]
) -> tuple[set[str], set[str], set[tuple[str, str]]] | None:
    """What a full read in "all groups" mode must store, or None when it must fail.

    It fails on a broken page envelope, and on a member with a usable id but no @odata.type
    (it could be a user or a device: skipping it could lose a membership). Every other bad
    object is skipped; with no nested groups here, a user is synced if it is a direct member.
    """
    pages = user_pages + group_pages
    if not all(isinstance(page.get("value"), list) for page in pages):
        return None
    group_ids = {item["id"] for page in group_pages for item in page["value"] if usable(item)}
    all_users = {item["id"] for page in user_pages for item in page["value"] if usable(item)}
    memberships = set()
    for group_id in group_ids:
        kinds: dict[str, str] = {}  # a member listed twice is what its first mention says
        for member in listings.get(group_id, []):
            if not usable(member):
                continue
            kind = member.get("@odata.type")
            if not isinstance(kind, str) or not kind:
                return None
            kinds.setdefault(member["id"], kind)
        memberships |= {
            (group_id, member_id)
            for member_id, kind in kinds.items()
            if kind == USER_TYPE and member_id in all_users
        }
    return {u for _, u in memberships}, group_ids, memberships


# --- properties ----------------------------------------------------------------------------------


# Members as "List group members" sends them, mostly users of the tenant (so memberships form),
# at times anything else, and rarely one without @odata.type (which fails the run); nested
# groups are left to the delta tests.
typed_members = st.fixed_dictionaries(
    {
        "id": object_ids,
        "@odata.type": st.one_of(st.sampled_from([USER_TYPE, DEVICE_TYPE]), json_values),
    }
)
tenant_members = st.integers(0, 29).flatmap(
    lambda n: (
        st.sampled_from(POOL).map(lambda i: {"id": i})
        if n == 0
        else st.one_of(
            st.sampled_from(POOL).map(user_member),
            st.sampled_from(POOL).map(lambda i: {"@odata.type": DEVICE_TYPE, "id": i}),
            typed_members,
            json_values,
        )
    )
)


# The tenant's own users with fuzzed properties: they are members, so they are stored.
tenant_users = st.builds(
    lambda user_id, properties: {**properties, "id": user_id},
    st.sampled_from(POOL),
    st.fixed_dictionaries({}, optional={name: property_values for name in USER_PROPERTIES}),
)


@FUZZ
@given(
    user_pages=pages_of(st.one_of(users, tenant_users, st.sampled_from(BASE_USERS))),
    group_pages=pages_of(st.one_of(groups, st.sampled_from(BASE_GROUPS))),
    member_lists=st.lists(st.lists(tenant_members, max_size=4), min_size=4, max_size=4),
)
def test_a_fuzzed_full_read_syncs_what_is_usable_or_changes_nothing(
    user_pages: list[Any], group_pages: list[Any], member_lists: list[list[Any]]
) -> None:
    directory = synced_base()
    force_full_read(directory)
    before = stored(directory)
    group_ids = list(dict.fromkeys(item["id"] for item in items(group_pages) if usable(item)))
    listings = {g: member_lists[n % len(member_lists)] for n, g in enumerate(group_ids)}

    with graph_client() as (client, rsps, batch):
        serve_full_read(rsps, batch, user_pages, group_pages, listings)
        run = sync(directory, client)

    expected = expected_full_read(user_pages, group_pages, listings)
    event(f"run {run.status}")
    if expected is None:
        assert run.status == SyncRun.Status.FAILED
        assert run.error_class == "bad_response", run.error_message
        assert stored(directory) == before
    else:
        assert run.status == SyncRun.Status.SUCCEEDED, run.error_message
        assert present(directory) == expected
        assert len(run.warnings) <= 3 + 3 + 1  # per kind: users, groups, members
    assert_all_storable(directory)


def delta_item_with_members(group: Any, members_delta: Any) -> Any:
    return {**group, "members@delta": members_delta} if isinstance(group, dict) else group


@FUZZ
@given(
    user_pages=pages_of(st.one_of(users, tenant_users, st.sampled_from(BASE_USERS))),
    group_pages=pages_of(
        st.builds(
            delta_item_with_members,
            st.one_of(groups, st.sampled_from(BASE_GROUPS)),
            members_delta,
        )
    ),
)
def test_a_fuzzed_delta_round_syncs_storable_data_or_changes_nothing(
    user_pages: list[Any], group_pages: list[Any]
) -> None:
    directory = synced_base()
    before = stored(directory)
    newcomers = {item["id"] for item in items(user_pages) if usable(item)}

    with graph_client() as (client, rsps, batch):
        serve_pages(rsps, USERS_LINK, user_pages, delta=True)
        serve_pages(rsps, GROUPS_LINK, group_pages, delta=True)
        for user_id in newcomers:  # "List a user's direct memberships", for users new to us
            batch.reply(
                f"/users/{user_id}/memberOf?$select=id&$top=999",
                body={"value": [{"@odata.type": "#microsoft.graph.group", "id": BASE_GROUP}]},
            )
        run = sync(directory, client)

    event(f"run {run.status}")
    if run.status == SyncRun.Status.FAILED:
        assert run.error_class == "bad_response", run.error_message
        assert stored(directory) == before
    else:
        assert run.status == SyncRun.Status.SUCCEEDED, run.error_message
        assert run.read_mode == SyncRun.ReadMode.DELTA
        users_now, groups_now, _ = present(directory)
        known = set(POOL) | newcomers
        assert users_now <= known
        assert groups_now <= {BASE_GROUP, OTHER_GROUP} | {
            item["id"] for item in items(group_pages) if usable(item)
        }
    assert_all_storable(directory)


# --- NUL and friends, end to end (PostgreSQL refuses them: CI proves it there) ------------------


def test_a_nul_in_any_property_never_reaches_the_database() -> None:
    directory = DirectoryFactory(sync_mode=SyncMode.ALL)
    dirty_users = [
        user_json(POOL[0], "Ada\x00 Lovelace", userPrincipalName="ada\x00@contoso.com"),
        user_json(POOL[1], "Bob\ud800", surname="\x00" * 5000, mail="\x00"),
        user_json("x" * 65, "Too long an id"),
    ]
    dirty_groups = [
        group_json(
            BASE_GROUP,
            "Engineering\x00",
            description="Line\x00 one\nLine two" + "d" * 5_000_000,
            groupTypes=["Unified\x00"],
        )
    ]
    listing = [user_member(POOL[0]), user_member(POOL[1]), {"@odata.type": "#microsoft.graph.user"}]

    with graph_client() as (client, rsps, batch):
        serve_full_read(
            rsps, batch, [{"value": dirty_users}], [{"value": dirty_groups}], {BASE_GROUP: listing}
        )
        run = sync(directory, client)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error_message
    ada = SyncedUser.objects.get(directory=directory, entra_id=POOL[0])
    assert (ada.display_name, ada.user_principal_name) == ("Ada Lovelace", "ada@contoso.com")
    bob = SyncedUser.objects.get(directory=directory, entra_id=POOL[1])
    assert (bob.display_name, bob.surname, bob.mail) == ("Bob", "", "")
    group = SyncedGroup.objects.get(directory=directory)
    assert group.display_name == "Engineering"
    # Clipped to 1024 characters first, then cleaned: one NUL fewer.
    assert group.description == "Line one\nLine two" + "d" * 1006
    assert group.group_types == ["Unified"]
    assert MirroredUser.objects.get(directory=directory, entra_id=POOL[0]).display_name == (
        "Ada Lovelace"
    )
    assert Membership.objects.filter(directory=directory).count() == 2
    assert run.users_created == 2
    assert sorted(run.warnings) == sorted(
        [
            "2 users had control characters removed from userPrincipalName, mail, displayName, "
            f"givenName and surname, e.g. user {POOL[0]}.",
            "1 user had over-long text shortened (surname to 128 characters), e.g. user "
            f"{POOL[1]}.",
            "Skipped a user Graph sent with an invalid id ('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'… "
            "(request-id 'page-1')): it was not stored.",
            f"1 group had control characters removed from displayName, description and "
            f"groupTypes, e.g. group {BASE_GROUP}.",
            f"1 group had over-long text shortened (description to 1024 characters), e.g. group "
            f"{BASE_GROUP}.",
            "Skipped a group member Graph sent with an invalid id (none in the members of group "
            f"{BASE_GROUP}): it was not stored.",
        ]
    )
    assert_all_storable(directory)


def test_a_nul_in_a_delta_round_never_reaches_the_database() -> None:
    directory = synced_base()
    renamed = user_json(POOL[0], "Ada\x00 King", userType="Guest\x00")
    group = {
        **group_json(BASE_GROUP, "Engineering\r\nTeam", description="Builds\x00 things"),
        "members@delta": [
            user_member(POOL[2]),
            {"@odata.type": "#microsoft.graph.user", "id": "\x00"},
            {"@odata.type": "#microsoft.graph.user", "id": "", "@removed": {"reason": "deleted"}},
        ],
    }

    with graph_client() as (client, rsps, _):
        serve_pages(rsps, USERS_LINK, [{"value": [renamed, {"id": 7}]}], delta=True)
        serve_pages(rsps, GROUPS_LINK, [{"value": [group]}], delta=True)
        run = sync(directory, client)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error_message
    assert run.read_mode == SyncRun.ReadMode.DELTA
    ada = SyncedUser.objects.get(directory=directory, entra_id=POOL[0])
    assert (ada.display_name, ada.user_type) == ("Ada King", "Guest")
    engineering = SyncedGroup.objects.get(directory=directory, entra_id=BASE_GROUP)
    assert (engineering.display_name, engineering.description) == (
        "Engineering  Team",
        "Builds things",
    )
    assert (BASE_GROUP, POOL[2]) in present(directory)[2]
    assert len(run.warnings) == 4
    assert_all_storable(directory)


def test_the_same_user_twice_in_a_full_listing_is_one_row() -> None:
    # "List users" pages may repeat an object; the engine keys users by id.
    directory = DirectoryFactory(sync_mode=SyncMode.ALL)
    first = [user_json(POOL[0], "Ada"), user_json(POOL[1], "Bob")]
    second = [user_json(POOL[0], "Ada Lovelace")]

    with graph_client() as (client, rsps, batch):
        serve_full_read(
            rsps,
            batch,
            [{"value": first}, {"value": second}],
            [{"value": BASE_GROUPS[:1]}, {"value": BASE_GROUPS[:1]}],
            {BASE_GROUP: [user_member(POOL[0]), user_member(POOL[0]), user_member(POOL[1])]},
        )
        run = sync(directory, client)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error_message
    assert SyncedUser.objects.filter(directory=directory).count() == 2
    assert SyncedUser.objects.get(entra_id=POOL[0], directory=directory).display_name == (
        "Ada Lovelace"  # the later page wins
    )
    assert SyncedGroup.objects.filter(directory=directory).count() == 1
    assert Membership.objects.filter(directory=directory).count() == 2
    assert (run.users_created, run.memberships_created) == (2, 2)


def test_a_member_without_odata_type_fails_the_run_and_changes_nothing() -> None:
    directory = synced_base()
    listing = {BASE_GROUP: [{"id": POOL[0]}], OTHER_GROUP: [user_member(POOL[2])]}

    force_full_read(directory)
    before = stored(directory)
    with graph_client() as (client, rsps, batch):
        serve_full_read(rsps, batch, [{"value": BASE_USERS}], [{"value": BASE_GROUPS}], listing)
        run = sync(directory, client)

    assert run.status == SyncRun.Status.FAILED
    assert "@odata.type" in run.error_message
    assert stored(directory) == before


def test_a_listing_that_never_ends_fails_the_run_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each page links to a new one (no loop to catch): the page bound ends the run.
    monkeypatch.setattr(client_module, "MAX_PAGES", 20)
    directory = synced_base()
    force_full_read(directory)
    before = stored(directory)

    with graph_client() as (client, rsps, batch):
        serve_full_read(rsps, batch, [{"value": []}] * 30, [{"value": BASE_GROUPS}], BASE_MEMBERS)
        run = sync(directory, client)

    assert run.status == SyncRun.Status.FAILED
    assert "more than 20 pages" in run.error_message
    assert stored(directory) == before


def test_a_member_whose_kind_changes_in_a_delta_round_is_stored_once() -> None:
    # No Entra object changes type, but a malformed answer must fail cleanly or sync, not crash.
    directory = synced_base()
    group = {
        **group_json(BASE_GROUP, "Engineering"),
        "members@delta": [{"@odata.type": "#microsoft.graph.group", "id": POOL[0]}],
    }

    with graph_client() as (client, rsps, _):
        serve_pages(rsps, USERS_LINK, [{"value": []}], delta=True)
        serve_pages(rsps, GROUPS_LINK, [{"value": [group]}], delta=True)
        run = sync(directory, client)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error_message
    assert MirroredEdge.objects.filter(directory=directory, member_id=POOL[0]).count() == 1
