"""Ready-made set-ups for the tools that run the emulator: the benchmark and `graph_emulator`.

- `tenants_to_serve`: a generated tenant and/or tenants saved as JSON, checked for clashes.
- `single_tenant_emulator`: one tenant and one Directory Sync app, ready for
  `transport.serve_in_process`.
- `day_of_changes`: renames, leavers and new hires, as a day in a real tenant might bring.

Plain Python like the rest of the package: callers turn `ValueError` into their own errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .core import Emulator
from .tenant import EmuTenant, EmuUser, generate_tenant

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
    """An emulator serving `tenant` to one Directory Sync app consented in it."""
    emulator = Emulator(graph_url=graph_url)
    emulator.add_app(client_id, client_secret)
    emulator.add_tenant(tenant)
    emulator.graph.latency = latency_ms / 1000
    return emulator


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
