"""The in-memory tenant: generation, flattening of nested groups, changes, JSON."""

from __future__ import annotations

import statistics
import time

from entra_emulator import (
    ODATA_SERVICE_PRINCIPAL,
    EmuGroup,
    EmuTenant,
    EmuUser,
    generate_tenant,
)

from .conftest import guid


def make_tenant(groups: dict[int, list[int]], users: int = 6) -> EmuTenant:
    tenant = EmuTenant(tenant_id=guid(1), display_name="T", default_domain="t.onmicrosoft.com")
    for i in range(1, users + 1):
        tenant.add_user(EmuUser(guid(i), f"u{i}@t", None, f"U{i}", None, None))
    for gid, members in groups.items():
        tenant.add_group(EmuGroup(guid(gid), f"G{gid}", member_ids=[guid(m) for m in members]))
    return tenant


def test_the_same_seed_gives_the_same_tenant_and_another_seed_does_not() -> None:
    first = generate_tenant(users=300, groups=30, seed=5)
    again = generate_tenant(users=300, groups=30, seed=5)
    other = generate_tenant(users=300, groups=30, seed=6)

    assert first.to_json() == again.to_json()
    assert first.to_json() != other.to_json()
    assert first.tenant_id == again.tenant_id


def test_a_10000_user_tenant_is_generated_in_well_under_two_seconds() -> None:
    started = time.perf_counter()
    tenant = generate_tenant(users=10_000, groups=500)
    elapsed = time.perf_counter() - started

    assert elapsed < 2.0
    assert len(tenant.users) == 10_000 + 1  # and the admin account
    assert len(tenant.groups) == 500


def test_the_generated_tenant_looks_like_a_real_directory() -> None:
    tenant = generate_tenant(users=10_000, groups=500, seed=3)
    users = [u for u in tenant.users.values() if not u.is_admin]
    groups = list(tenant.groups.values())
    everyone = next(g for g in groups if g.display_name == "All staff")
    others_than_everyone = [g for g in groups if g is not everyone]

    assert set(everyone.member_ids) == {u.id for u in users}
    in_some_group = set().union(*(g.member_ids for g in others_than_everyone))
    assert {u.id for u in users} <= in_some_group
    sizes = [len(g.member_ids) for g in others_than_everyone]
    assert 20 <= statistics.median(sizes) <= 200
    assert max(sizes) >= 3000  # a few big groups

    guests = [u for u in users if u.user_type == "Guest"]
    assert 300 < len(guests) < 700
    assert all("#EXT#@contoso.onmicrosoft.com" in u.user_principal_name for u in guests)
    assert any(u.mail is None for u in users)
    assert any(not u.account_enabled for u in users)
    assert any(not u.display_name.isascii() for u in users)
    assert len({u.user_principal_name.lower() for u in users}) == len(users)

    unified = [g for g in groups if g.is_unified]
    assert unified and all(g.mail for g in unified)
    assert not any(m in tenant.groups for g in unified for m in g.member_ids)
    assert any(m in tenant.groups for g in groups for m in g.member_ids)  # nesting
    assert any(m in tenant.others for g in groups for m in g.member_ids)  # devices etc.

    kinds = [a.principal_type for a in tenant.assignments]
    assert kinds.count("Group") == (500 - 1) // 3
    assert kinds.count("User") == 2 and kinds.count("ServicePrincipal") == 1
    principal = next(a for a in tenant.assignments if a.principal_type == "ServicePrincipal")
    assert tenant.others[principal.principal_id].odata_type == ODATA_SERVICE_PRINCIPAL


def test_nested_groups_are_flattened_and_listed_themselves() -> None:
    tenant = make_tenant({10: [1, 11], 11: [2, 12], 12: [3, 1]})

    assert tenant.transitive_member_ids(guid(10)) == [
        guid(1),
        guid(11),
        guid(2),
        guid(12),
        guid(3),
    ]
    assert tenant.members_of(guid(10), transitive=True, kind="user") == (guid(1), guid(2), guid(3))
    assert tenant.members_of(guid(10), transitive=False) == (guid(1), guid(11))


def test_a_membership_cycle_ends_and_never_lists_the_group_itself() -> None:
    tenant = make_tenant({10: [1, 11], 11: [2, 12], 12: [3, 10]})

    assert tenant.transitive_member_ids(guid(10)) == [
        guid(1),
        guid(11),
        guid(2),
        guid(12),
        guid(3),
    ]
    assert guid(11) in tenant.transitive_member_ids(guid(12))
    assert set(tenant.members_of(guid(12), transitive=True, kind="user")) == {
        guid(1),
        guid(2),
        guid(3),
    }


def test_cached_flattening_follows_membership_changes() -> None:
    tenant = make_tenant({10: [1, 11], 11: [2]})
    assert tenant.members_of(guid(10), transitive=True, kind="user") == (guid(1), guid(2))

    tenant.add_member(guid(11), guid(4))
    assert guid(4) in tenant.members_of(guid(10), transitive=True, kind="user")

    tenant.remove_member(guid(10), guid(11))
    assert tenant.members_of(guid(10), transitive=True, kind="user") == (guid(1),)

    tenant.groups[guid(10)].member_ids.append(guid(5))  # edited behind the tenant's back
    assert guid(5) in tenant.transitive_member_ids(guid(10))


def test_removing_a_user_removes_their_memberships_and_assignments() -> None:
    tenant = make_tenant({10: [1, 2]})
    tenant.assign_user(guid(2))

    tenant.remove_user(guid(2))

    assert tenant.transitive_member_ids(guid(10)) == [guid(1)]
    assert tenant.assignments == []


def test_renaming_a_user_changes_the_lookup_by_upn() -> None:
    tenant = make_tenant({})
    assert tenant.user_by_key("U1@T") is tenant.users[guid(1)]

    tenant.rename_user(guid(1), user_principal_name="new@t", display_name="New", mail=None)

    assert tenant.user_by_key("u1@t") is None
    assert tenant.user_by_key("NEW@t") is tenant.users[guid(1)]
    assert tenant.user_by_key(guid(1).upper()) is tenant.users[guid(1)]


def test_every_generated_tenant_has_an_admin_who_is_in_no_group_and_not_assigned() -> None:
    tenant = generate_tenant(users=50, groups=12, seed=9, domain="fabrikam.onmicrosoft.com")

    admins = [u for u in tenant.users.values() if u.is_admin]

    assert len(admins) == 1
    admin = admins[0]
    assert admin.user_principal_name == "admin@fabrikam.onmicrosoft.com"
    assert admin.display_name == "Contoso Admin"
    assert admin.password == "entra-sync-demo"
    assert admin.directory_roles == ["Global Administrator"]
    assert not any(admin.id in g.member_ids for g in tenant.groups.values())
    assert not any(a.principal_id == admin.id for a in tenant.assignments)
    assert all(u.password is None for u in tenant.users.values() if u is not admin)
    locked = generate_tenant(users=5, groups=2, admin_password=None)
    assert [u.password for u in locked.users.values() if u.is_admin] == [None]


def test_the_admin_account_does_not_change_the_rest_of_the_generated_tenant() -> None:
    tenant = generate_tenant(users=50, groups=12, seed=9)
    other = generate_tenant(users=50, groups=12, seed=9, admin_password="another")

    assert list(tenant.groups) == list(other.groups)
    assert list(tenant.users) == list(other.users)
    assert next(reversed(tenant.users.values())).is_admin  # added last


def test_a_tenant_survives_a_json_round_trip() -> None:
    tenant = generate_tenant(users=50, groups=12, seed=9)

    copy = EmuTenant.from_json(tenant.to_json())

    assert copy == tenant
    assert copy.to_json() == tenant.to_json()
    assert any(u.password and u.is_admin for u in copy.users.values())
    assert copy.transitive_member_ids(next(iter(copy.groups))) == tenant.transitive_member_ids(
        next(iter(tenant.groups))
    )
