"""Reads over synced identities."""

from __future__ import annotations

from dataclasses import dataclass

from directories.models import Directory

from .models import Membership, SyncedGroup, SyncedUser


@dataclass(frozen=True)
class PresentState:
    """The present objects of a directory by Entra object id (for checks and comparisons)."""

    user_ids: frozenset[str]
    group_ids: frozenset[str]
    memberships: frozenset[tuple[str, str]]  # (group id, user id)


def directory_present_state(*, directory: Directory) -> PresentState:
    return PresentState(
        user_ids=frozenset(
            SyncedUser.objects.present()
            .filter(directory=directory)
            .values_list("entra_id", flat=True)
        ),
        group_ids=frozenset(
            SyncedGroup.objects.present()
            .filter(directory=directory)
            .values_list("entra_id", flat=True)
        ),
        memberships=frozenset(
            Membership.objects.present()
            .filter(directory=directory)
            .values_list("group__entra_id", "user__entra_id")
        ),
    )
