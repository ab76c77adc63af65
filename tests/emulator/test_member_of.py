"""`/users/{id}/memberOf` and `/transitiveMemberOf` as the emulator serves them."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from entra_emulator import EmuGroup, EmuResponse, EmuTenant, EmuUser

from .conftest import GRAPH_URL, all_pages, guid

Get = Callable[..., EmuResponse]
GROUP_SELECT = "id,displayName,description,mail,mailEnabled,securityEnabled,groupTypes"


def test_member_of_lists_only_the_groups_a_user_is_directly_in(get: Get) -> None:
    # User 11 is in Sales EMEA (nested in Sales) and in Everyone.
    groups, _ = all_pages(get, f"users/{guid(11)}/memberOf/microsoft.graph.group", advanced=True)

    assert {g["id"] for g in groups} == {guid(102), guid(105)}
    assert all(g["@odata.type"] == "#microsoft.graph.group" for g in groups)


def test_transitive_member_of_adds_the_groups_nesting_them(get: Get) -> None:
    groups, _ = all_pages(
        get,
        f"users/{guid(11)}/transitiveMemberOf/microsoft.graph.group?$select={GROUP_SELECT}",
        advanced=True,
    )

    assert {g["id"] for g in groups} == {guid(101), guid(102), guid(105)}
    assert set(groups[0]) == {"@odata.type", *GROUP_SELECT.split(",")}


def test_member_of_is_paged_like_the_other_collections(get: Get) -> None:
    first = get(
        f"users/{guid(11)}/transitiveMemberOf/microsoft.graph.group?$top=2", advanced=True
    ).json()

    assert len(first["value"]) == 2
    assert first["@odata.nextLink"].startswith(
        f"{GRAPH_URL}/v1.0/users/{guid(11)}/transitiveMemberOf/microsoft.graph.group?$top=2&"
    )
    groups, pages = all_pages(
        get, f"users/{guid(11)}/transitiveMemberOf/microsoft.graph.group?$top=2", advanced=True
    )
    assert pages == 2
    assert len({g["id"] for g in groups}) == 3


def test_member_of_without_a_cast_is_a_directory_object_collection(get: Get) -> None:
    body = get(f"users/{guid(11)}/memberOf?$select=id,displayName").json()

    assert body["@odata.context"] == f"{GRAPH_URL}/v1.0/$metadata#directoryObjects(id,displayName)"
    assert {g["displayName"] for g in body["value"]} == {"Sales EMEA", "Everyone"}


def test_a_user_by_upn_works_and_an_unknown_user_is_not_found(get: Get) -> None:
    by_upn = get(
        "users/user10@contoso.onmicrosoft.com/memberOf/microsoft.graph.group", advanced=True
    ).json()
    missing = get(f"users/{guid(999)}/transitiveMemberOf/microsoft.graph.group", advanced=True)

    assert {g["id"] for g in by_upn["value"]} == {guid(102), guid(105)}
    assert missing.status == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"


def test_a_user_in_no_group_has_an_empty_list_and_other_casts_are_empty(get: Get) -> None:
    assert get(f"users/{guid(900)}/memberOf").status == 404  # a device is not a user
    body = get(f"users/{guid(11)}/memberOf/microsoft.graph.user", advanced=True).json()

    assert body["value"] == []
    assert get(f"users/{guid(11)}/memberOf/microsoft.graph.nothing").status == 400


@settings(max_examples=60, deadline=None)
@given(
    edges=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 13)), max_size=40
    ),  # group index -> member index (0-7: groups, 8-13: users), cycles included
    edit_in_place=st.booleans(),
)
def test_member_of_agrees_with_a_scan_of_every_group(
    edges: list[tuple[int, int]], edit_in_place: bool
) -> None:
    """The reverse index answers exactly what scanning each group's members would."""
    tenant = EmuTenant(tenant_id=guid(1), display_name="Contoso", default_domain="contoso.example")
    group_ids = [guid(200 + i) for i in range(8)]
    user_ids = [guid(300 + i) for i in range(6)]
    for user_id in user_ids:
        tenant.users[user_id] = EmuUser(
            user_id, f"{user_id}@contoso.example", None, "u", None, None
        )
    for group_id in group_ids:
        tenant.groups[group_id] = EmuGroup(group_id, "g")
    ids = [*group_ids, *user_ids]
    tenant.groups_containing(user_ids[0], transitive=True)  # build the index, then edit
    for group, member in edges:
        tenant.groups[group_ids[group]].member_ids.append(ids[member])
    if not edit_in_place:
        tenant.touch()

    for member_id in ids:
        for transitive in (False, True):
            scanned = tuple(
                g
                for g in tenant.groups
                if g != member_id and member_id in tenant.members_of(g, transitive=transitive)
            )
            assert tenant.groups_containing(member_id, transitive=transitive) == scanned
