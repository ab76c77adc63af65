"""Ready-made set-ups for the tools that run the emulator: the benchmark and `graph_emulator`.

- `tenants_to_serve`: a generated tenant and/or tenants saved as JSON, checked for clashes.
- `single_tenant_emulator`: one tenant and one Directory Sync app, ready for
  `transport.serve_in_process`.
- `use_directory_sync_permissions`: the README's four permissions for a launched app
  (`demo`, `graph_emulator`).
- `day_of_changes`: renames, leavers and new hires, as a day in a real tenant might bring.
- `churn`: "1 % changes" of every kind a sync must follow, through the change-logged tenant
  methods (so delta queries see them), deterministic per seed.

Plain Python like the rest of the package: callers turn `ValueError` into their own errors.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .core import Emulator
from .tenant import (
    DIRECTORY_SYNC_PERMISSIONS,
    GUEST_DOMAINS,
    EmuGroup,
    EmuTenant,
    EmuUser,
    generate_tenant,
)

DEFAULT_USERS = 300


def tenants_to_serve(
    *,
    users: int | None,
    groups: int,
    seed: int,
    display_name: str,
    domain: str,
    auth_app_id: str,
    json_files: Sequence[str | Path] = (),
) -> list[EmuTenant]:
    """A generated tenant (unless only JSON files are given and `users` is None), then one
    tenant per JSON file (as `EmuTenant.to_json()` writes it). ValueError says what is wrong."""
    tenants: list[EmuTenant] = []
    if not json_files or users is not None:
        users = DEFAULT_USERS if users is None else users
        if users < 0 or groups < 0:
            raise ValueError("--users and --groups cannot be negative.")
        tenants.append(
            generate_tenant(
                users=users,
                groups=groups,
                seed=seed,
                display_name=display_name,
                domain=domain,
                auth_app_id=auth_app_id,
            )
        )
    for name in json_files:
        try:
            tenants.append(EmuTenant.from_json(Path(name).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"Cannot read a tenant from {name}: {exc}") from exc
    ids = [t.tenant_id.lower() for t in tenants]
    if len(set(ids)) != len(ids):
        raise ValueError("Two tenants have the same tenant_id.")
    return tenants


def single_tenant_emulator(
    tenant: EmuTenant,
    *,
    client_id: str,
    client_secret: str,
    graph_url: str,
    latency_ms: float = 0.0,
) -> Emulator:
    """An emulator serving `tenant` to one Directory Sync app consented in it, with the
    README's permissions (so a sync that needs more fails here as in a real tenant)."""
    emulator = Emulator(graph_url=graph_url)
    emulator.add_app(client_id, client_secret, permissions=DIRECTORY_SYNC_PERMISSIONS)
    emulator.add_tenant(tenant)
    emulator.graph.latency = latency_ms / 1000
    return emulator


def use_directory_sync_permissions(emulator: Emulator, client_id: str) -> None:
    """Give the registered Directory Sync app exactly the README's permissions, so its consent
    page asks for what an admin registered and its tokens carry only those roles."""
    emulator.apps[client_id].permissions = DIRECTORY_SYNC_PERMISSIONS


def day_of_changes(tenant: EmuTenant, *, share: float) -> str:
    """Rename `share` of the users, drop one direct user member from every tenth group and
    add `share` new users to the first group; return what changed, in words."""
    users = sorted(tenant.users)
    renamed = 0
    for user_id in users[:: max(1, int(1 / share))]:
        tenant.rename_user(user_id, display_name=tenant.users[user_id].display_name + " (new)")
        renamed += 1
    removed = 0
    for group_id in sorted(tenant.groups)[:: max(1, len(tenant.groups) // 10)]:
        members = tenant.members_of(group_id, transitive=False, kind="user")
        if members:
            tenant.remove_member(group_id, members[0])
            removed += 1
    target = min(tenant.groups)
    added = max(1, int(len(users) * share))
    for n in range(added):
        user = tenant.add_user(
            EmuUser(
                id=f"b0b0b0b0-0000-4000-8000-{n:012d}",
                user_principal_name=f"new.hire{n}@{tenant.default_domain}",
                mail=None,
                display_name=f"New Hire {n}",
                given_name="New",
                surname=f"Hire {n}",
                account_enabled=True,
                user_type="Member",
            )
        )
        tenant.add_member(target, user.id)
    return f"{renamed} users renamed, {removed} memberships removed, {added} users added"


@dataclass(frozen=True)
class ChurnSummary:
    """What `churn` changed, by kind."""

    users_renamed: int = 0
    users_disabled: int = 0
    users_enabled: int = 0
    guests_invited: int = 0
    users_soft_deleted: int = 0
    users_restored: int = 0
    users_purged: int = 0
    members_added: int = 0
    members_removed: int = 0
    nesting_added: int = 0
    nesting_removed: int = 0
    groups_renamed: int = 0
    groups_created: int = 0
    groups_soft_deleted: int = 0
    groups_restored: int = 0
    groups_deleted: int = 0
    assignments_added: int = 0
    assignments_removed: int = 0

    @property
    def total(self) -> int:
        return sum(asdict(self).values())

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __str__(self) -> str:
        parts = [f"{n} {k.replace('_', ' ')}" for k, n in asdict(self).items() if n]
        return ", ".join(parts) or "no changes"


def churn(tenant: EmuTenant, *, share: float = 0.01, seed: int = 1) -> ChurnSummary:
    """Apply about `share` of the tenant's users and groups worth of changes, as a day in a
    busy directory might: renames, disabled and re-enabled accounts, invited guests, leavers
    (soft deleted; earlier leavers restored or purged), members added to and removed from
    groups at any depth, nesting added and removed, groups renamed, created, deleted (a
    Microsoft 365 group soft, a security group for good) and restored, and groups assigned to
    and unassigned from the Authentication app. Same tenant, share and seed: same changes.

    Every change goes through the tenant's change-logged methods, so `/users/delta` and
    `/groups/delta` report it."""
    if not 0 < share <= 1:
        raise ValueError("share must be in (0, 1].")
    # Salted: `generate_tenant` draws its ids from Random(seed) too, and a new group must never
    # take the id of an existing user (object ids are unique across a tenant).
    rng = random.Random(f"churn-{seed}")
    counts: dict[str, int] = dict.fromkeys(ChurnSummary.__dataclass_fields__, 0)

    def guid() -> str:
        while True:
            candidate = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            if tenant.kind_of(candidate) is None and not tenant.is_deleted(candidate):
                return candidate

    def portion(total: int, fraction: float) -> int:
        return math.ceil(total * share * fraction) if total else 0

    people = sorted(u for u, user in tenant.users.items() if not user.is_admin)
    group_ids = sorted(tenant.groups)
    earlier_leavers = sorted(tenant.deleted_users)
    earlier_deleted_groups = sorted(tenant.deleted_groups)

    # Users: renames, disabled / enabled accounts.
    for user_id in rng.sample(people, min(len(people), portion(len(people), 0.3))):
        user = tenant.users[user_id]
        surname = f"{user.surname or 'User'}-{rng.randrange(100, 999)}"
        tenant.update_user(
            user_id,
            display_name=f"{user.given_name or user.display_name} {surname}",
            surname=surname,
        )
        counts["users_renamed"] += 1
    enabled = [u for u in people if tenant.users[u].account_enabled]
    disabled = [u for u in people if not tenant.users[u].account_enabled]
    for user_id in rng.sample(enabled, min(len(enabled), portion(len(people), 0.1))):
        tenant.update_user(user_id, account_enabled=False)
        counts["users_disabled"] += 1
    for user_id in rng.sample(disabled, min(len(disabled), portion(len(people), 0.05))):
        tenant.update_user(user_id, account_enabled=True)
        counts["users_enabled"] += 1

    # Guests invited into a group or two.
    member_groups = [g for g in group_ids if g in tenant.groups]
    for _ in range(portion(len(people), 0.1) if member_groups else 0):
        ext = rng.choice(GUEST_DOMAINS)
        local = f"guest.{rng.getrandbits(40):010x}"
        guest = tenant.add_user(
            EmuUser(
                id=guid(),
                user_principal_name=f"{local}_{ext}#EXT#@{tenant.default_domain}",
                mail=f"{local}@{ext}",
                display_name=f"Guest {local[-6:]}",
                given_name="Guest",
                surname=local[-6:],
                user_type="Guest",
            )
        )
        for group_id in rng.sample(member_groups, min(len(member_groups), rng.randint(1, 2))):
            tenant.add_member(group_id, guest.id)
        counts["guests_invited"] += 1

    # Memberships at any depth: any group, nested ones included.
    for _ in range(portion(len(people), 0.3) if member_groups and people else 0):
        group_id, user_id = rng.choice(member_groups), rng.choice(people)
        if user_id in tenant.users and user_id not in tenant.groups[group_id].member_ids:
            tenant.add_member(group_id, user_id)
            counts["members_added"] += 1
    for _ in range(portion(len(people), 0.3) if member_groups else 0):
        group_id = rng.choice(member_groups)
        members = tenant.members_of(group_id, transitive=False, kind="user")
        if members:
            tenant.remove_member(group_id, rng.choice(members))
            counts["members_removed"] += 1

    # Nesting: a security group into another (never a cycle), and one nesting undone.
    nestable = [g for g in member_groups if not tenant.groups[g].is_unified]
    for _ in range(max(1, portion(len(group_ids), 0.3)) if len(nestable) >= 2 else 0):
        parent, child = rng.sample(nestable, 2)
        if child in tenant.groups[parent].member_ids or parent in tenant.transitive_member_ids(
            child
        ):
            continue
        tenant.add_member(parent, child)
        counts["nesting_added"] += 1
    nested = [(g, m) for g in nestable for m in tenant.groups[g].member_ids if m in tenant.groups]
    if nested:
        parent, child = rng.choice(nested)
        tenant.remove_member(parent, child)
        counts["nesting_removed"] += 1

    # Leavers: soft deleted now; earlier leavers restored or purged.
    present = [u for u in people if u in tenant.users]
    for user_id in rng.sample(present, min(len(present), portion(len(people), 0.05))):
        tenant.soft_delete_user(user_id)
        counts["users_soft_deleted"] += 1
    for index, user_id in enumerate(earlier_leavers[: portion(len(people), 0.04)]):
        if index % 2 == 0:
            tenant.restore_user(user_id)
            counts["users_restored"] += 1
        else:
            tenant.remove_user(user_id)
            counts["users_purged"] += 1

    # Groups: renames, new groups, deletions and restores.
    for group_id in rng.sample(
        member_groups, min(len(member_groups), portion(len(group_ids), 0.5))
    ):
        group = tenant.groups[group_id]
        tenant.update_group(group_id, display_name=f"{group.display_name} ({rng.randrange(1000)})")
        counts["groups_renamed"] += 1
    new_groups: list[str] = []
    present = [u for u in people if u in tenant.users]
    for _ in range(portion(len(group_ids), 0.2)):
        group = tenant.add_group(
            EmuGroup(
                guid(),
                f"Project {rng.getrandbits(24):06x}",
                description="Created by churn",
                mail_nickname=f"project-{rng.getrandbits(24):06x}",
            )
        )
        for user_id in rng.sample(present, min(len(present), rng.randint(1, 20))):
            tenant.add_member(group.id, user_id)
        new_groups.append(group.id)
        counts["groups_created"] += 1
    unified = [g for g in member_groups if tenant.groups[g].is_unified]
    deleted_now = rng.sample(unified, min(len(unified), portion(len(group_ids), 0.1)))
    for group_id in deleted_now:
        tenant.soft_delete_group(group_id)
        counts["groups_soft_deleted"] += 1
    for group_id in [*earlier_deleted_groups, *deleted_now[: len(deleted_now) // 2]]:
        tenant.restore_group(group_id)
        counts["groups_restored"] += 1
    doomed = [g for g in nestable if g in tenant.groups and tenant.groups[g].member_ids]
    for group_id in rng.sample(doomed, min(len(doomed), portion(len(group_ids), 0.05))):
        tenant.remove_group(group_id)  # a security group: deleted permanently
        counts["groups_deleted"] += 1

    # Assignments to the Authentication app.
    assigned_set = {
        a.principal_id for a in tenant.assignments if a.principal_type == "Group"
    } & set(tenant.groups)
    assigned = sorted(assigned_set)
    unassigned = [g for g in sorted(tenant.groups) if g not in assigned_set]
    wanted = portion(len(group_ids), 0.3)
    for group_id in new_groups[: len(new_groups) // 2]:
        tenant.assign_group(group_id)
        counts["assignments_added"] += 1
    for group_id in rng.sample(unassigned, min(len(unassigned), wanted)):
        if group_id not in new_groups:
            tenant.assign_group(group_id)
            counts["assignments_added"] += 1
    for group_id in rng.sample(assigned, min(len(assigned), wanted)):
        tenant.unassign(group_id)
        counts["assignments_removed"] += 1
    return ChurnSummary(**counts)
