"""The mass-deletion guard: a run that would remove too much waits for a person."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from directories.models import SyncRun

from .plan import SyncPlan

LISTED_REMOVALS = 500  # enough to review; the counts are always complete


def mass_deletion_reason(
    plan: SyncPlan, *, ratio: float, floor: int, approved: HeldRemovals | None = None
) -> str | None:
    """Why this plan must be approved first, or None when it may be applied.

    A run that would leave no users, groups or memberships at all is always held, however
    small the directory: an empty answer from Graph must never silently wipe it. With an
    admin's approval of a held run, what that run would have removed is allowed, and only
    the removals beyond it are weighed, by the same rule: an approval of "108 of 288 users"
    never becomes a licence to remove all 288.
    """
    removed_users = set(_entra_ids(plan.users.remove))
    removed_groups = set(_entra_ids(plan.groups.remove))
    removed_memberships = len(plan.memberships_remove)
    if approved is not None:
        removed_users -= set(approved.users)
        removed_groups -= set(approved.groups)
        removed_memberships = max(0, removed_memberships - approved.memberships)
    reasons = []
    for kind, removed, before, after in (
        ("users", len(removed_users), plan.users.present_before, plan.users.seen),
        ("groups", len(removed_groups), plan.groups.present_before, plan.groups.seen),
        # An empty member list for a big group removes no user who is in another group,
        # but it is the same kind of bad answer.
        (
            "memberships",
            removed_memberships,
            plan.memberships_present_before,
            plan.memberships_seen,
        ),
    ):
        if not removed:
            continue
        share = removed / before if before else 1.0
        if after == 0 or (removed > floor and share > ratio):
            reasons.append(f"{removed} of {before} {kind} ({share:.0%})")
    if not reasons:
        return None
    if approved is not None:
        return (
            f"This run would remove {' and '.join(reasons)} more than the approved run "
            f"allowed, beyond the mass-deletion limit ({ratio:.0%} and at least {floor + 1} "
            "objects). Nothing was changed."
        )
    return (
        f"This run would remove {' and '.join(reasons)}, more than the mass-deletion limit "
        f"({ratio:.0%} and at least {floor + 1} objects). Nothing was changed."
    )


@dataclass(frozen=True)
class HeldRemovals:
    """Everything a held run would have removed: what an approval of it allows."""

    users: tuple[str, ...]
    groups: tuple[str, ...]
    memberships: int

    @classmethod
    def of_plan(cls, plan: SyncPlan) -> HeldRemovals:
        return cls(
            users=tuple(sorted(_entra_ids(plan.users.remove))),
            groups=tuple(sorted(_entra_ids(plan.groups.remove))),
            memberships=len(plan.memberships_remove),
        )

    @classmethod
    def of_run(cls, run: SyncRun) -> HeldRemovals:
        """From a held run; one held before every id was kept allows only what it listed."""
        held = run.held_removals or {}
        listed = run.planned_removals or {}
        return cls(
            users=tuple(held.get("users", [u["id"] for u in listed.get("users", [])])),
            groups=tuple(held.get("groups", [g["id"] for g in listed.get("groups", [])])),
            memberships=int(held.get("memberships", listed.get("memberships_count", 0))),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "users": list(self.users),
            "groups": list(self.groups),
            "memberships": self.memberships,
        }


def removals_beyond(plan: SyncPlan, approved: HeldRemovals) -> dict[str, Any]:
    """What a fresh plan removes that the approved run did not: shown when it is held again."""
    approved_users, approved_groups = set(approved.users), set(approved.groups)
    users = {pk: v for pk, v in plan.users.remove.items() if v[0] not in approved_users}
    groups = {pk: v for pk, v in plan.groups.remove.items() if v[0] not in approved_groups}
    return {
        "users": _listed(users),
        "groups": _listed(groups),
        "users_count": len(users),
        "groups_count": len(groups),
        "memberships_count": max(0, len(plan.memberships_remove) - approved.memberships),
    }


def _entra_ids(removals: dict[int, tuple[str, str]]) -> list[str]:
    return [entra_id for entra_id, _ in removals.values()]


def _listed(removals: dict[int, tuple[str, str]]) -> list[dict[str, str]]:
    return [
        {"id": entra_id, "name": name}
        for entra_id, name in sorted(removals.values(), key=lambda item: item[1])
    ][:LISTED_REMOVALS]


def planned_removals(plan: SyncPlan) -> dict[str, Any]:
    """What a held run would remove, for the person who approves it."""

    return {
        "users": _listed(plan.users.remove),
        "groups": _listed(plan.groups.remove),
        "users_count": len(plan.users.remove),
        "groups_count": len(plan.groups.remove),
        "memberships_count": len(plan.memberships_remove),
    }
