"""What entra-sync should hold for an emulated tenant: the reference the tests and the benchmark
compare the database with, written straight from DESIGN.md's sync semantics."""

from __future__ import annotations

from dataclasses import dataclass

from .tenant import EmuTenant


@dataclass(frozen=True)
class ExpectedDirectory:
    user_ids: frozenset[str]
    group_ids: frozenset[str]
    memberships: frozenset[tuple[str, str]]  # (group id, user id)


def expected_directory(tenant: EmuTenant, *, assigned_only: bool) -> ExpectedDirectory:
    """Groups in scope and their transitive user members; nothing else."""
    if assigned_only:
        group_ids = {
            a.principal_id
            for a in tenant.assignments
            if a.principal_type == "Group" and a.principal_id in tenant.groups
        }
    else:
        group_ids = set(tenant.groups)
    memberships = {
        (group_id, user_id)
        for group_id in group_ids
        for user_id in tenant.members_of(group_id, transitive=True, kind="user")
    }
    return ExpectedDirectory(
        user_ids=frozenset(user_id for _, user_id in memberships),
        group_ids=frozenset(group_ids),
        memberships=frozenset(memberships),
    )
