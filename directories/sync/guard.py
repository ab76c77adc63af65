"""The mass-deletion guard: a run that would remove too much waits for a person."""

from __future__ import annotations

from typing import Any

from .plan import SyncPlan

LISTED_REMOVALS = 500  # enough to review; the counts are always complete


def mass_deletion_reason(plan: SyncPlan, *, ratio: float, floor: int) -> str | None:
    """Why this plan must be approved first, or None when it may be applied.

    A run that would leave no users, groups or memberships at all is always held, however
    small the directory: an empty answer from Graph must never silently wipe it.
    """
    reasons = []
    for kind, removed, before, after in (
        ("users", len(plan.users.remove), plan.users.present_before, plan.users.seen),
        ("groups", len(plan.groups.remove), plan.groups.present_before, plan.groups.seen),
        # An empty member list for a big group removes no user who is in another group,
        # but it is the same kind of bad answer.
        (
            "memberships",
            len(plan.memberships_remove),
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
    return (
        f"This run would remove {' and '.join(reasons)}, more than the mass-deletion limit "
        f"({ratio:.0%} and at least {floor + 1} objects). Nothing was changed."
    )


def planned_removals(plan: SyncPlan) -> dict[str, Any]:
    """What a held run would remove, for the person who approves it."""

    def listed(removals: dict[int, tuple[str, str]]) -> list[dict[str, str]]:
        return [
            {"id": entra_id, "name": name}
            for entra_id, name in sorted(removals.values(), key=lambda item: item[1])
        ][:LISTED_REMOVALS]

    return {
        "users": listed(plan.users.remove),
        "groups": listed(plan.groups.remove),
        "users_count": len(plan.users.remove),
        "groups_count": len(plan.groups.remove),
        "memberships_count": len(plan.memberships_remove),
    }
