"""`/users/delta` and `/groups/delta`: rounds, pages, the change log, tokens that expire.

Shapes follow Microsoft's "user: delta", "group: delta", "Use delta query to track changes in
Microsoft Graph data", "Get incremental changes for groups" and "... for users" pages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from entra_emulator import (
    EmuGroup,
    Emulator,
    EmulatorControl,
    EmuResponse,
    EmuTenant,
    EmuUser,
)

from .conftest import GRAPH_URL, FakeClock, guid, token_for

Get = Callable[..., EmuResponse]
SALES, SALES_EMEA, MARKETING, EMPTY, EVERYONE, DEVICES = (guid(n) for n in range(101, 107))


def read_round(get: Get, url: str, **headers: str) -> tuple[list[dict[str, Any]], list[Any], str]:
    """Every item of a delta round, each page's body, and the deltaLink that ends it."""
    items: list[dict[str, Any]] = []
    pages: list[Any] = []
    next_url: str | None = url
    while next_url:
        response = get(next_url, headers=headers)
        assert response.status == 200, response.text
        body = response.json()
        pages.append(body)
        items.extend(body["value"])
        assert not ("@odata.nextLink" in body and "@odata.deltaLink" in body)
        next_url = body.get("@odata.nextLink")
    return items, pages, pages[-1]["@odata.deltaLink"]


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


def error_of(response: EmuResponse) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


# --- users: the initial round -----------------------------------------------------------------


def test_users_delta_pages_through_every_user_and_ends_with_a_delta_link(
    emulator: Emulator, tenant: EmuTenant, get: Get
) -> None:
    emulator.graph.delta.settings.user_page_size = 10

    items, pages, delta_link = read_round(get, "users/delta")

    assert [len(p["value"]) for p in pages] == [10, 10, 5]
    assert {i["id"] for i in items} == set(tenant.users)
    assert all("@odata.nextLink" in p for p in pages[:-1])
    assert set(query_of(pages[0]["@odata.nextLink"])) == {"$skiptoken"}
    assert delta_link.startswith(f"{GRAPH_URL}/v1.0/users/delta?$deltatoken=")
    assert pages[0]["@odata.context"] == f"{GRAPH_URL}/v1.0/$metadata#users"


def test_users_delta_returns_the_default_properties_and_leaves_out_unset_ones(
    tenant: EmuTenant, get: Get
) -> None:
    items, _, _ = read_round(get, "users/delta")
    users = by_id(items)

    # "If the property has never been set before it will not be included in the response".
    assert "mail" not in users[guid(1)] and "jobTitle" not in users[guid(1)]
    assert users[guid(2)]["mail"] == "user01@contoso.com"
    assert users[guid(2)]["businessPhones"] == []
    assert users[guid(2)]["userPrincipalName"] == "user01@contoso.onmicrosoft.com"
    assert "accountEnabled" not in users[guid(2)]  # not in the default set


def test_the_select_of_the_first_request_is_carried_by_the_tokens(get: Get) -> None:
    items, pages, _ = read_round(get, "users/delta?$select=displayName,accountEnabled")

    assert {tuple(sorted(i)) for i in items} == {("accountEnabled", "displayName", "id")}
    assert pages[0]["@odata.context"].endswith("#users(displayName,accountEnabled)")


def test_the_fully_qualified_function_name_works_as_the_sdks_send_it(get: Get) -> None:
    for path in ("users/microsoft.graph.delta()", "users/delta()", "groups/microsoft.graph.delta"):
        assert get(path).status == 200, path


def test_soft_deleted_users_show_as_removed_in_the_initial_round(
    tenant: EmuTenant, get: Get
) -> None:
    tenant.soft_delete_user(guid(7))

    items, _, _ = read_round(get, "users/delta")

    assert by_id(items)[guid(7)] == {"id": guid(7), "@removed": {"reason": "changed"}}


# --- users: later rounds ----------------------------------------------------------------------


def test_a_delta_link_returns_what_changed_since_it_was_issued(tenant: EmuTenant, get: Get) -> None:
    _, _, delta_link = read_round(get, "users/delta?$select=displayName,mail")
    tenant.add_user(EmuUser(guid(50), "new@contoso.onmicrosoft.com", None, "New", None, None))
    tenant.rename_user(guid(2), display_name="Renamed")
    tenant.soft_delete_user(guid(3))
    tenant.remove_user(guid(4))

    items, _, next_link = read_round(get, delta_link)

    assert by_id(items) == {
        guid(50): {"displayName": "New", "id": guid(50)},
        guid(2): {"displayName": "Renamed", "mail": "user01@contoso.com", "id": guid(2)},
        guid(3): {"id": guid(3), "@removed": {"reason": "changed"}},
        guid(4): {"id": guid(4), "@removed": {"reason": "deleted"}},
    }
    assert read_round(get, next_link)[0] == []


def test_a_change_to_a_property_that_is_not_selected_does_not_show(
    tenant: EmuTenant, get: Get
) -> None:
    _, _, delta_link = read_round(get, "users/delta?$select=displayName")
    tenant.update_user(guid(2), job_title="Engineer")

    assert read_round(get, delta_link)[0] == []
    tenant.update_user(guid(2), display_name="Renamed")
    assert read_round(get, delta_link)[0] == [{"displayName": "Renamed", "id": guid(2)}]


def test_prefer_return_minimal_returns_only_the_changed_properties(
    tenant: EmuTenant, get: Get
) -> None:
    tenant.update_user(guid(2), job_title="Engineer")
    _, _, delta_link = read_round(get, "users/delta?$select=displayName,mail,jobTitle")
    tenant.rename_user(guid(2), display_name="Renamed", mail=None)

    full, _, _ = read_round(get, delta_link)
    minimal, _, _ = read_round(get, delta_link, Prefer="return=minimal")

    # A property set to null is included as null; an unchanged one has its current value.
    assert full == [{"displayName": "Renamed", "mail": None, "jobTitle": "Engineer", "id": guid(2)}]
    assert minimal == [{"displayName": "Renamed", "mail": None, "id": guid(2)}]


def test_a_delta_link_used_twice_replays_the_same_changes(tenant: EmuTenant, get: Get) -> None:
    _, _, delta_link = read_round(get, "users/delta?$select=displayName")
    tenant.rename_user(guid(5), display_name="Once")

    first, _, _ = read_round(get, delta_link)
    again, _, _ = read_round(get, delta_link)

    assert first == again == [{"displayName": "Once", "id": guid(5)}]


def test_changes_made_during_a_round_come_again_in_the_next_round(
    emulator: Emulator, tenant: EmuTenant, get: Get
) -> None:
    emulator.graph.delta.settings.user_page_size = 10
    first_page = get("users/delta?$select=displayName").json()
    tenant.rename_user(guid(1), display_name="Changed mid-round")  # already served on page 1

    items, _, delta_link = read_round(get, first_page["@odata.nextLink"])

    assert guid(1) not in by_id(items)
    assert read_round(get, delta_link)[0] == [{"displayName": "Changed mid-round", "id": guid(1)}]


def test_restored_users_show_up_as_new_ones(tenant: EmuTenant, get: Get) -> None:
    _, _, delta_link = read_round(get, "users/delta?$select=displayName")
    tenant.soft_delete_user(guid(6))
    assert read_round(get, delta_link)[0] == [{"id": guid(6), "@removed": {"reason": "changed"}}]

    tenant.restore_user(guid(6))

    assert read_round(get, delta_link)[0] == [{"displayName": "User 05", "id": guid(6)}]


def test_deltatoken_latest_skips_the_initial_round_and_tracks_from_now(
    tenant: EmuTenant, get: Get
) -> None:
    tenant.rename_user(guid(8), display_name="Before")

    response = get("users/delta?$select=displayName&$deltatoken=latest")

    body = response.json()
    assert response.status == 200 and body["value"] == [] and "@odata.nextLink" not in body
    tenant.rename_user(guid(9), display_name="After")
    assert read_round(get, body["@odata.deltaLink"])[0] == [{"displayName": "After", "id": guid(9)}]


def test_select_on_a_delta_link_changes_what_is_tracked(tenant: EmuTenant, get: Get) -> None:
    _, _, delta_link = read_round(get, "users/delta?$select=displayName")
    tenant.update_user(guid(2), job_title="Engineer")

    items, _, _ = read_round(get, f"{delta_link}&$select=jobTitle")

    assert items == [{"jobTitle": "Engineer", "id": guid(2)}]


def test_filter_by_id_tracks_only_those_users(tenant: EmuTenant, get: Get) -> None:
    wanted = f"id eq '{guid(2)}' or id eq '{guid(3)}'"
    items, _, delta_link = read_round(get, f"users/delta?$select=displayName&$filter={wanted}")
    assert {i["id"] for i in items} == {guid(2), guid(3)}
    tenant.rename_user(guid(2), display_name="Tracked")
    tenant.rename_user(guid(4), display_name="Not tracked")

    assert read_round(get, delta_link)[0] == [{"displayName": "Tracked", "id": guid(2)}]

    too_many = " or ".join(f"id eq '{guid(n)}'" for n in range(51))
    assert get(f"users/delta?$filter={too_many}").status == 400
    assert get("users/delta?$filter=displayName eq 'x'").status == 400


# --- tokens that are no longer good -----------------------------------------------------------


def test_expired_delta_tokens_answer_sync_state_not_found(
    control: EmulatorControl, tenant: EmuTenant, get: Get
) -> None:
    _, _, delta_link = read_round(get, "users/delta")

    control.expire_delta_tokens(tenant.tenant_id)
    response = get(delta_link)

    # "Duration of change tracking tokens for identity and education resources": BadRequest.
    assert response.status == 400
    assert error_of(response)["code"] == "syncStateNotFound"
    control.expire_delta_tokens(tenant.tenant_id, status=410)
    assert get(delta_link).status == 410
    _, _, fresh = read_round(get, "users/delta")  # a new full round works
    assert get(fresh).status == 200


def test_delta_tokens_older_than_seven_days_expire(
    clock: FakeClock, emulator: Emulator, tenant: EmuTenant, get: Get
) -> None:
    _, _, delta_link = read_round(get, "users/delta")

    def later(seconds: float) -> EmuResponse:
        clock.advance(seconds)
        headers = {"Authorization": f"Bearer {token_for(emulator, tenant.tenant_id)}"}
        return emulator.handle("GET", delta_link, headers)

    assert later(7 * 24 * 3600 - 1).status == 200
    response = later(2)

    assert response.status == 400 and error_of(response)["code"] == "syncStateNotFound"


def test_a_synchronization_reset_answers_410_with_the_initial_query_in_location(
    control: EmulatorControl, emulator: Emulator, tenant: EmuTenant
) -> None:
    token = token_for(emulator, tenant.tenant_id)

    def get(url: str, headers: dict[str, str] | None = None) -> EmuResponse:
        url = url if "://" in url else f"{GRAPH_URL}/v1.0/{url}"
        return emulator.handle("GET", url, {"Authorization": f"Bearer {token}"})

    emulator.graph.delta.settings.group_page_size = 2
    first = get("groups/delta?$select=displayName,members").json()
    control.reset_delta_tokens(tenant.tenant_id)

    response = get(first["@odata.nextLink"])

    assert response.status == 410
    assert error_of(response)["code"] == "resyncRequired"
    location = response.headers["Location"]
    assert location == f"{GRAPH_URL}/v1.0/groups/delta?$select=displayName,members&$deltatoken="
    items, _, _ = read_round(get, location)
    assert {i["id"] for i in items} == set(tenant.groups)


def test_a_replaced_tenant_does_not_honour_the_old_tenants_tokens(
    emulator: Emulator, tenant: EmuTenant, get: Get
) -> None:
    _, _, delta_link = read_round(get, "users/delta")

    emulator.add_tenant(EmuTenant.from_dict(tenant.to_dict()))

    assert get(delta_link).status == 410


def test_delta_refuses_what_the_docs_say_it_does_not_support(emulator: Emulator, get: Get) -> None:
    emulator.graph.delta.settings.user_page_size = 10
    first = get("users/delta").json()
    for path in ("users/delta?$top=5", "users/delta?$expand=manager", "users/delta?$orderby=id"):
        response = get(path)
        assert response.status == 400, path
    # "Delta queries with both $select and $skiptoken aren't supported."
    assert get(f"{first['@odata.nextLink']}&$select=displayName").status == 400
    assert get("users/delta?$skiptoken=bm90LWEtdG9rZW4").status == 400
    assert get("users/delta?$deltatoken=bm90LWEtdG9rZW4").status == 400
    groups_link = read_round(get, "groups/delta")[2]
    token = query_of(groups_link)["$deltatoken"]
    assert get(f"users/delta?$deltatoken={token}").status == 400


def test_delta_needs_the_permission_that_listing_needs(
    emulator: Emulator, tenant: EmuTenant
) -> None:
    emulator.add_app("limited", "s", permissions={"GroupMember.Read.All"})
    response = emulator.handle(
        "POST",
        f"https://login.emulator.test/{tenant.tenant_id}/oauth2/v2.0/token",
        {"Content-Type": "application/x-www-form-urlencoded"},
        f"grant_type=client_credentials&client_id=limited&client_secret=s"
        f"&scope={GRAPH_URL}/.default",
    )
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    assert emulator.handle("GET", f"{GRAPH_URL}/v1.0/users/delta", headers).status == 403
    assert emulator.handle("GET", f"{GRAPH_URL}/v1.0/groups/delta", headers).status == 200


# --- groups -----------------------------------------------------------------------------------


def test_groups_delta_lists_members_by_default_and_leaves_it_out_for_empty_groups(
    get: Get,
) -> None:
    items, _, _ = read_round(get, "groups/delta")
    groups = by_id(items)

    assert "members@delta" not in groups[EMPTY]
    assert {(m["@odata.type"], m["id"]) for m in groups[DEVICES]["members@delta"]} == {
        ("#microsoft.graph.device", guid(900)),
        ("#microsoft.graph.user", guid(1)),
    }
    assert {"@odata.type": "#microsoft.graph.group", "id": SALES_EMEA} in groups[SALES][
        "members@delta"
    ]
    assert groups[MARKETING]["groupTypes"] == ["Unified"]


def test_a_big_groups_members_are_split_over_pages_and_the_group_comes_again(
    emulator: Emulator, tenant: EmuTenant, get: Get
) -> None:
    emulator.graph.delta.settings.member_page_size = 4

    items, pages, _ = read_round(get, "groups/delta?$select=displayName,members")

    everyone = [i for i in items if i["id"] == EVERYONE]
    assert len(everyone) == 7  # 25 members, 4 a page
    assert {i["displayName"] for i in everyone} == {"Everyone"}
    members = [m["id"] for i in everyone for m in i["members@delta"]]
    assert sorted(members) == sorted(tenant.groups[EVERYONE].member_ids)
    assert all(sum(len(i.get("members@delta", [])) for i in p["value"]) <= 4 for p in pages)


def test_membership_changes_show_in_members_delta(tenant: EmuTenant, get: Get) -> None:
    _, _, delta_link = read_round(get, "groups/delta?$select=displayName,members")
    tenant.add_member(EMPTY, guid(3))
    tenant.remove_member(SALES, guid(2))
    tenant.add_member(SALES, guid(20))

    items, _, _ = read_round(get, delta_link)

    assert by_id(items) == {
        EMPTY: {
            "displayName": "Empty",
            "id": EMPTY,
            "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": guid(3)}],
        },
        SALES: {
            "displayName": "Sales",
            "id": SALES,
            "members@delta": [
                {
                    "@odata.type": "#microsoft.graph.user",
                    "id": guid(2),
                    "@removed": {"reason": "deleted"},
                },
                {"@odata.type": "#microsoft.graph.user", "id": guid(20)},
            ],
        },
    }


def test_without_members_selected_membership_changes_do_not_show(
    tenant: EmuTenant, get: Get
) -> None:
    items, _, delta_link = read_round(get, "groups/delta?$select=displayName")
    assert not any("members@delta" in i for i in items)
    tenant.add_member(EMPTY, guid(3))
    assert read_round(get, delta_link)[0] == []

    tenant.update_group(EMPTY, display_name="Not empty")

    assert read_round(get, delta_link)[0] == [{"displayName": "Not empty", "id": EMPTY}]


def test_only_permanently_deleted_users_leave_their_groups_in_members_delta(
    tenant: EmuTenant, get: Get
) -> None:
    _, _, delta_link = read_round(get, "groups/delta?$select=members")
    tenant.soft_delete_user(guid(1))  # "temporary deleted keep their group memberships"
    assert read_round(get, delta_link)[0] == []

    tenant.remove_user(guid(1))

    items = by_id(read_round(get, delta_link)[0])
    assert set(items) == {SALES, EVERYONE, DEVICES}
    removed = {
        "@odata.type": "#microsoft.graph.user",
        "id": guid(1),
        "@removed": {"reason": "deleted"},
    }
    assert all(i["members@delta"] == [removed] for i in items.values())


def test_deleted_groups_are_removed_changed_if_restorable_else_deleted(
    tenant: EmuTenant, get: Get
) -> None:
    _, _, delta_link = read_round(get, "groups/delta?$select=displayName,members")
    assert tenant.delete_group(MARKETING) is True  # Microsoft 365: into deleted items
    assert tenant.delete_group(SALES_EMEA) is False  # security: gone

    items = by_id(read_round(get, delta_link)[0])

    assert items[MARKETING] == {"id": MARKETING, "@removed": {"reason": "changed"}}
    assert items[SALES_EMEA] == {"id": SALES_EMEA, "@removed": {"reason": "deleted"}}
    assert items[SALES]["members@delta"] == [
        {
            "@odata.type": "#microsoft.graph.group",
            "id": SALES_EMEA,
            "@removed": {"reason": "deleted"},
        }
    ]
    _, _, after_delete = read_round(get, delta_link)
    initial = by_id(read_round(get, "groups/delta")[0])
    assert initial[MARKETING] == {"id": MARKETING, "@removed": {"reason": "changed"}}

    tenant.restore_group(MARKETING)

    restored = by_id(read_round(get, after_delete)[0])[MARKETING]
    assert restored["displayName"] == "Marketing" and "@removed" not in restored
    assert {m["id"] for m in restored["members@delta"]} == {guid(i) for i in range(16, 21)}


def test_a_group_created_after_the_round_comes_with_all_its_members(
    tenant: EmuTenant, get: Get
) -> None:
    _, _, delta_link = read_round(get, "groups/delta?$select=displayName,members")
    tenant.add_group(EmuGroup(guid(150), "New"))
    tenant.add_member(guid(150), guid(1))
    tenant.add_member(guid(150), guid(2))

    items = read_round(get, delta_link)[0]

    assert items == [
        {
            "displayName": "New",
            "id": guid(150),
            "members@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": guid(1)},
                {"@odata.type": "#microsoft.graph.user", "id": guid(2)},
            ],
        }
    ]


@pytest.mark.parametrize("collection", ["users", "groups"])
def test_an_empty_round_still_gives_a_delta_link(get: Get, collection: str) -> None:
    _, _, delta_link = read_round(get, f"{collection}/delta")

    body = get(delta_link).json()

    assert body["value"] == [] and body["@odata.deltaLink"].startswith(
        f"{GRAPH_URL}/v1.0/{collection}/delta?$deltatoken="
    )
