"""The tenant's change log, deleted items, the control API that drives them, and `churn`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from entra_emulator import (
    Emulator,
    EmulatorControl,
    EmulatorControlError,
    EmuResponse,
    EmuTenant,
    EmuUser,
    generate_tenant,
)
from entra_emulator.scenarios import churn
from entra_emulator.tenant import Change

from .conftest import GRAPH_URL, guid, token_for

Get = Callable[..., EmuResponse]
SALES, MARKETING, EVERYONE = guid(101), guid(103), guid(105)


def ops(tenant: EmuTenant, since: int) -> list[tuple[str, str, str]]:
    return [(c.kind, c.object_id, c.op) for c in tenant.changes[since:]]


def ids(get: Get, path: str) -> set[str]:
    response = get(f"{path}{'&' if '?' in path else '?'}$top=999")
    assert response.status == 200, response.text
    return {item["id"] for item in response.json()["value"]}


# --- the log ----------------------------------------------------------------------------------


def test_every_change_method_logs_what_it_did(tenant: EmuTenant) -> None:
    start = tenant.change_seq

    tenant.add_user(EmuUser(guid(60), "x@contoso.onmicrosoft.com", None, "X", None, None))
    tenant.rename_user(guid(60), display_name="Y", mail="y@contoso.com")
    tenant.update_user(guid(60), account_enabled=False)
    tenant.update_user(guid(60), account_enabled=False)  # no change: nothing logged
    tenant.add_member(SALES, guid(60))
    tenant.remove_member(SALES, guid(60))
    tenant.update_group(SALES, description="Sellers")
    tenant.assign_group(EVERYONE)
    tenant.unassign(EVERYONE)

    assert ops(tenant, start) == [
        ("user", guid(60), "created"),
        ("user", guid(60), "updated"),
        ("user", guid(60), "updated"),
        ("member", SALES, "added"),
        ("member", SALES, "removed"),
        ("group", SALES, "updated"),
        ("assignment", EVERYONE, "added"),
        ("assignment", EVERYONE, "removed"),
    ]
    renamed, disabled = tenant.changes[start + 1 : start + 3]
    assert renamed.props == {"displayName", "mail", "proxyAddresses"}
    assert disabled.props == {"accountEnabled"}
    assert tenant.changes[start + 3].member_type == "#microsoft.graph.user"


def test_a_soft_deleted_user_is_hidden_keeps_its_groups_and_comes_back(
    tenant: EmuTenant, get: Get
) -> None:
    start = tenant.change_seq
    tenant.soft_delete_user(guid(2))

    assert guid(2) not in ids(get, "users")
    assert guid(2) not in ids(get, f"groups/{SALES}/members")
    assert guid(2) in tenant.groups[SALES].member_ids
    assert get(f"users/{guid(2)}").status == 404

    tenant.restore_user(guid(2))

    assert guid(2) in ids(get, f"groups/{SALES}/members")
    assert ops(tenant, start) == [("user", guid(2), "removed"), ("user", guid(2), "created")]
    assert [c.reason for c in tenant.changes[start:]] == ["changed", None]


def test_a_permanently_deleted_user_leaves_every_group(tenant: EmuTenant) -> None:
    start = tenant.change_seq
    tenant.soft_delete_user(guid(1))

    tenant.remove_user(guid(1))  # from deleted items

    assert guid(1) not in tenant.deleted_users
    assert not any(guid(1) in g.member_ids for g in tenant.groups.values())
    assert tenant.changes[start + 1] == Change("user", guid(1), "removed", reason="deleted")
    removals = {c.object_id for c in tenant.changes[start + 2 :] if c.op == "removed"}
    assert removals == {SALES, EVERYONE, guid(106)}


def test_an_assigned_group_in_deleted_items_hides_its_assignment(
    tenant: EmuTenant, get: Get
) -> None:
    path = f"servicePrincipals/{tenant.auth_sp_id}/appRoleAssignedTo"
    assert MARKETING in {a["principalId"] for a in get(path).json()["value"]}

    tenant.soft_delete_group(MARKETING)

    assert MARKETING not in {a["principalId"] for a in get(path).json()["value"]}
    with pytest.raises(ValueError):
        tenant.soft_delete_group(SALES)  # a security group is deleted permanently


def test_deleted_items_survive_a_json_round_trip(tenant: EmuTenant) -> None:
    tenant.soft_delete_user(guid(3))
    tenant.soft_delete_group(MARKETING)

    again = EmuTenant.from_json(tenant.to_json())

    assert set(again.deleted_users) == {guid(3)} and set(again.deleted_groups) == {MARKETING}
    assert again.changes == []  # a loaded tenant starts a new log
    assert again.log_id != tenant.log_id


# --- the control API --------------------------------------------------------------------------


def test_the_control_api_soft_deletes_restores_and_purges(
    control: EmulatorControl, tenant: EmuTenant
) -> None:
    tid = tenant.tenant_id
    assert control.delete_user(tid, guid(4), soft=True)["restorable"] is True
    assert control.delete_group(tid, MARKETING, soft=True)["restorable"] is True
    with pytest.raises(EmulatorControlError) as refused:
        control.delete_group(tid, SALES, soft=True)
    assert refused.value.status == 400

    items = control.deleted_items(tid)
    assert [u["id"] for u in items["users"]] == [guid(4)]
    assert [g["id"] for g in items["groups"]] == [MARKETING]

    assert control.restore(tid, guid(4))["id"] == guid(4)
    assert control.purge(tid, MARKETING) == {"deleted": MARKETING}
    assert control.deleted_items(tid) == {"users": [], "groups": []}
    with pytest.raises(EmulatorControlError):
        control.restore(tid, MARKETING)


def test_control_updates_are_change_logged(control: EmulatorControl, tenant: EmuTenant) -> None:
    seq = tenant.change_seq

    control.update_user(tenant.tenant_id, guid(5), displayName="Zoë", accountEnabled=False)
    control.update_group(tenant.tenant_id, SALES, displayName="Sales & Co")
    control.add_members(tenant.tenant_id, SALES, guid(25))

    log = control.changes(tenant.tenant_id, since=seq)
    assert log["seq"] == seq + 3
    assert log["changes"] == [
        {
            "seq": seq + 1,
            "kind": "user",
            "object_id": guid(5),
            "op": "updated",
            "props": ["accountEnabled", "displayName"],
        },
        {
            "seq": seq + 2,
            "kind": "group",
            "object_id": SALES,
            "op": "updated",
            "props": ["displayName"],
        },
        {
            "seq": seq + 3,
            "kind": "member",
            "object_id": SALES,
            "op": "added",
            "member_id": guid(25),
            "member_type": "#microsoft.graph.user",
        },
    ]


def test_the_control_api_runs_churn(control: EmulatorControl, tenant: EmuTenant) -> None:
    seq = tenant.change_seq

    result = control.churn(tenant.tenant_id, share=0.2, seed=4)

    assert result["total"] > 0 and result["summary"]["users_renamed"] == 2
    assert control.changes(tenant.tenant_id, since=seq)["seq"] > seq
    with pytest.raises(EmulatorControlError):
        control.churn(tenant.tenant_id, share=2)


# --- churn ------------------------------------------------------------------------------------


def test_churn_is_the_same_for_the_same_seed_and_touches_about_one_percent() -> None:
    first, again = (generate_tenant(users=2_000, groups=200, seed=3) for _ in range(2))

    summary = churn(first, share=0.01, seed=8)
    assert churn(again, share=0.01, seed=8) == summary

    # The same changes (assignment ids aside: Entra makes those up).
    assert ops(first, 0) == ops(again, 0)
    user_changes = (
        summary.users_renamed
        + summary.users_disabled
        + summary.users_enabled
        + summary.guests_invited
        + summary.users_soft_deleted
        + summary.members_added
        + summary.members_removed
    )
    assert 20 <= user_changes <= 30  # 1 % of 2,000 users, give or take
    for kind in (
        "users_renamed",
        "users_disabled",
        "guests_invited",
        "users_soft_deleted",
        "members_added",
        "members_removed",
        "nesting_added",
        "groups_renamed",
        "groups_created",
        "groups_soft_deleted",
        "assignments_added",
        "assignments_removed",
    ):
        assert getattr(summary, kind) > 0, kind
    other = generate_tenant(users=2_000, groups=200, seed=3)
    assert churn(other, share=0.01, seed=9) != summary or other.changes != first.changes


def test_a_second_churn_restores_or_purges_earlier_leavers() -> None:
    tenant = generate_tenant(users=2_000, groups=200, seed=3)
    churn(tenant, share=0.01, seed=1)
    leavers = set(tenant.deleted_users)

    summary = churn(tenant, share=0.01, seed=2)

    assert summary.users_restored + summary.users_purged > 0
    assert summary.groups_restored > 0
    assert not leavers <= set(tenant.deleted_users)


def test_churn_shows_in_a_delta_round(emulator: Emulator) -> None:
    tenant = emulator.add_tenant(generate_tenant(users=600, groups=60, seed=5))
    token = token_for(emulator, tenant.tenant_id)

    def read(url: str) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        while True:
            body = emulator.handle("GET", url, {"Authorization": f"Bearer {token}"}).json()
            items.extend(body["value"])
            if "@odata.deltaLink" in body:
                return items, body["@odata.deltaLink"]
            url = body["@odata.nextLink"]

    _, users_link = read(f"{GRAPH_URL}/v1.0/users/delta?$select=displayName,accountEnabled")
    _, groups_link = read(f"{GRAPH_URL}/v1.0/groups/delta?$select=displayName,members")
    summary = churn(tenant, share=0.05, seed=2)

    users, _ = read(users_link)
    groups, _ = read(groups_link)

    removed_users = [u for u in users if "@removed" in u]
    assert len(removed_users) == summary.users_soft_deleted
    assert sum(1 for u in users if u.get("displayName", "").startswith("Guest ")) == (
        summary.guests_invited
    )
    removed_groups = [g for g in groups if "@removed" in g]
    assert len(removed_groups) == summary.groups_soft_deleted - summary.groups_restored + (
        summary.groups_deleted
    )
    assert any("members@delta" in g for g in groups)


@pytest.mark.slow
def test_a_100k_user_tenant_is_read_by_delta_in_seconds(emulator: Emulator) -> None:
    started = time.perf_counter()
    tenant = emulator.add_tenant(generate_tenant(users=100_000, groups=10_000, seed=1))
    token = token_for(emulator, tenant.tenant_id)
    counts = {}
    for path in ("users/delta?$select=displayName,accountEnabled", "groups/delta?$select=members"):
        url: str | None = f"{GRAPH_URL}/v1.0/{path}"
        seen = 0
        while url:
            body = emulator.handle("GET", url, {"Authorization": f"Bearer {token}"}).json()
            seen += len(body["value"])
            url = body.get("@odata.nextLink")
        counts[path.split("/")[0]] = seen
    elapsed = time.perf_counter() - started

    assert counts["users"] == len(tenant.users)
    assert counts["groups"] >= len(tenant.groups)  # big groups come back on later pages
    assert elapsed < 30


def test_churn_never_reuses_an_object_id_even_with_the_tenants_own_seed() -> None:
    # generate_tenant and churn both take a seed: the same seed must not give a new group the
    # id of an existing user.
    from entra_emulator import generate_tenant
    from entra_emulator.scenarios import churn

    tenant = generate_tenant(users=80, groups=12, seed=1)
    before = set(tenant.users) | set(tenant.groups)
    users_before = set(tenant.users)

    churn(tenant, share=0.2, seed=1)

    new_groups = set(tenant.groups) - before
    assert new_groups and not new_groups & users_before
    assert not set(tenant.users) & set(tenant.groups)
