"""Plan: the difference between a snapshot and what the database holds, before any write."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from directories.graph import GraphGroup, GraphUser
from directories.models import Directory, RunCounts
from identities.models import Membership, SyncedGroup, SyncedUser

from .snapshot import Snapshot

CHUNK = 5000  # rows fetched at a time: a large tenant's rows are streamed, not listed

# SyncedUser and SyncedGroup columns a sync writes, which MirroredUser and MirroredGroup share
# (not Graph's names: see graph.client's USER_FIELDS and GROUP_FIELDS for those).
USER_COLUMNS = (
    "user_principal_name",
    "mail",
    "display_name",
    "given_name",
    "surname",
    "account_enabled",
    "user_type",
)
GROUP_COLUMNS = (
    "display_name",
    "description",
    "mail",
    "mail_enabled",
    "security_enabled",
    "group_types",
)


def _clip(value: str | None, length: int) -> str:
    return (value or "")[:length]


def user_fields(user: GraphUser) -> dict[str, Any]:
    """A Graph user as the column values of SyncedUser (no mail is stored as '')."""
    return {
        "user_principal_name": _clip(user.user_principal_name, 320),
        "mail": _clip(user.mail, 320),
        "display_name": _clip(user.display_name, 256),
        "given_name": _clip(user.given_name, 128),
        "surname": _clip(user.surname, 128),
        "account_enabled": user.account_enabled,
        "user_type": _clip(user.user_type, 16),
    }


def group_fields(group: GraphGroup) -> dict[str, Any]:
    return {
        "display_name": _clip(group.display_name, 256),
        "description": group.description or "",
        "mail": _clip(group.mail, 320),
        "mail_enabled": group.mail_enabled,
        "security_enabled": group.security_enabled,
        "group_types": list(group.group_types),
    }


@dataclass
class ObjectChanges:
    """What happens to one kind of object (users or groups)."""

    create: dict[str, dict[str, Any]] = field(default_factory=dict)  # entra id -> fields
    update: dict[int, dict[str, Any]] = field(default_factory=dict)  # pk -> fields
    revive: dict[int, dict[str, Any]] = field(default_factory=dict)  # pk -> fields
    remove: dict[int, tuple[str, str]] = field(default_factory=dict)  # pk -> (entra id, name)
    present_before: int = 0
    seen: int = 0
    pk_by_entra_id: dict[str, int] = field(default_factory=dict)  # existing rows

    @property
    def created(self) -> int:
        """New and returning objects: both become present."""
        return len(self.create) + len(self.revive)


@dataclass
class SyncPlan:
    users: ObjectChanges
    groups: ObjectChanges
    memberships_create: dict[str, list[str]]  # group entra id -> user entra ids to add
    memberships_revive: list[int]
    memberships_remove: list[int]
    memberships_seen: int
    memberships_present_before: int = 0

    @property
    def is_empty(self) -> bool:
        return not (
            self.users.create
            or self.users.update
            or self.users.revive
            or self.users.remove
            or self.groups.create
            or self.groups.update
            or self.groups.revive
            or self.groups.remove
            or self.memberships_create
            or self.memberships_revive
            or self.memberships_remove
        )

    @property
    def memberships_created(self) -> int:
        added = sum(len(user_ids) for user_ids in self.memberships_create.values())
        return added + len(self.memberships_revive)

    def counts(self) -> RunCounts:
        """Seen, created, updated and removed per kind: what a run records if it applies."""
        return {
            "users": _object_counts(self.users),
            "groups": _object_counts(self.groups),
            "memberships": {
                "seen": self.memberships_seen,
                "created": self.memberships_created,
                "removed": len(self.memberships_remove),
            },
        }


def _object_counts(changes: ObjectChanges) -> dict[str, int]:
    return {
        "seen": changes.seen,
        "created": changes.created,
        "updated": len(changes.update),
        "removed": len(changes.remove),
    }


def _diff(
    existing: Iterable[dict[str, Any]],
    wanted: dict[str, dict[str, Any]],
    fields: tuple[str, ...],
    name_field: str,
) -> ObjectChanges:
    changes = ObjectChanges(seen=len(wanted))
    for row in existing:
        entra_id = row["entra_id"]
        changes.pk_by_entra_id[entra_id] = row["pk"]
        new = wanted.get(entra_id)
        if row["removed_at"] is None:
            changes.present_before += 1
            if new is None:
                changes.remove[row["pk"]] = (entra_id, row[name_field])
            elif any(row[f] != new[f] for f in fields):
                changes.update[row["pk"]] = new
        elif new is not None:
            changes.revive[row["pk"]] = new
    changes.create = {
        entra_id: values
        for entra_id, values in wanted.items()
        if entra_id not in changes.pk_by_entra_id
    }
    return changes


def plan_changes(*, directory: Directory, snapshot: Snapshot) -> SyncPlan:
    """Compare the snapshot with the stored directory; reads only."""
    users = _diff(
        SyncedUser.objects.filter(directory=directory)
        .values("pk", "entra_id", "removed_at", *USER_COLUMNS)
        .iterator(chunk_size=CHUNK),
        {u.id: user_fields(u) for u in snapshot.users.values()},
        USER_COLUMNS,
        "user_principal_name",
    )
    groups = _diff(
        SyncedGroup.objects.filter(directory=directory)
        .values("pk", "entra_id", "removed_at", *GROUP_COLUMNS)
        .iterator(chunk_size=CHUNK),
        {g.id: group_fields(g) for g in snapshot.groups.values()},
        GROUP_COLUMNS,
        "display_name",
    )
    entra_by_user_pk = {pk: entra for entra, pk in users.pk_by_entra_id.items()}
    entra_by_group_pk = {pk: entra for entra, pk in groups.pk_by_entra_id.items()}
    wanted = snapshot.members
    # Wanted users not stored yet, per group; a group's set is copied before its first
    # discard, so a first sync (nothing stored) plans without copying a million ids.
    missing: dict[str, set[str]] = dict(wanted)
    copied: set[str] = set()
    revive: list[int] = []
    remove: list[int] = []
    present_before = 0
    rows = Membership.objects.filter(directory=directory).values_list(
        "pk", "group_id", "user_id", "removed_at"
    )
    for pk, group_pk, user_pk, removed_at in rows.iterator(chunk_size=CHUNK):
        group_id, user_id = entra_by_group_pk[group_pk], entra_by_user_pk[user_pk]
        is_wanted = user_id in wanted.get(group_id, ())
        if is_wanted:
            if group_id not in copied:
                missing[group_id] = set(missing[group_id])
                copied.add(group_id)
            missing[group_id].discard(user_id)
        if removed_at is None:
            present_before += 1
            if not is_wanted:
                remove.append(pk)
        elif is_wanted:
            revive.append(pk)
    return SyncPlan(
        users=users,
        groups=groups,
        memberships_create={g: sorted(ids) for g, ids in sorted(missing.items()) if ids},
        memberships_revive=revive,
        memberships_remove=remove,
        memberships_seen=snapshot.membership_count,
        memberships_present_before=present_before,
    )


def plan_unchanged(*, directory: Directory) -> SyncPlan:
    """The plan of a run that read no change at all: nothing to do, with the present counts."""
    users = SyncedUser.objects.filter(directory=directory).present().count()
    groups = SyncedGroup.objects.filter(directory=directory).present().count()
    memberships = Membership.objects.filter(directory=directory).present().count()
    return SyncPlan(
        users=ObjectChanges(present_before=users, seen=users),
        groups=ObjectChanges(present_before=groups, seen=groups),
        memberships_create={},
        memberships_revive=[],
        memberships_remove=[],
        memberships_seen=memberships,
        memberships_present_before=memberships,
    )
