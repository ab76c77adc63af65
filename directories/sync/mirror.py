"""The tenant as last read: every user, every group and each group's DIRECT members.

Delta rounds (`/users/delta`, `/groups/delta` with `members@delta`) report changes to objects
and to direct membership. Kept here, they let a sync compute transitive membership locally
(nesting included, cycles tolerated) instead of asking Graph for every group's transitive
members on every run. Plain Python: loading and saving it is `mirror_store`'s job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from directories.graph import GraphGroup, GraphUser, GroupChange, MemberRef, UserChange

from .scope import SyncScope
from .snapshot import Snapshot


@dataclass
class MirrorJournal:
    """What changed in a mirror since it was loaded, so only that is written back."""

    users_upserted: set[str] = field(default_factory=set)
    users_removed: set[str] = field(default_factory=set)
    groups_upserted: set[str] = field(default_factory=set)
    groups_removed: set[str] = field(default_factory=set)
    edges_added: dict[tuple[str, str], str] = field(default_factory=dict)  # (group, member): kind
    edges_removed: set[tuple[str, str]] = field(default_factory=set)  # group, member

    def __bool__(self) -> bool:
        return any(dataclasses.astuple(self))


@dataclass
class Mirror:
    """What Graph said last, per object id. Groups in `members_known` have complete edges."""

    users: dict[str, GraphUser] = field(default_factory=dict)
    groups: dict[str, GraphGroup] = field(default_factory=dict)
    user_members: dict[str, set[str]] = field(default_factory=dict)  # group -> direct users
    group_members: dict[str, set[str]] = field(default_factory=dict)  # group -> direct groups
    members_known: set[str] = field(default_factory=set)
    journal: MirrorJournal = field(default_factory=MirrorJournal)
    # A full read is written whole (`mirror_replace`): journaling its million edges would
    # only cost memory.
    journaling: bool = True

    def set_members(self, group_id: str, members: Iterable[MemberRef]) -> None:
        """A group's complete direct member list (a full read of it)."""
        users, groups = _split(members)
        if not self.journaling:
            self.user_members[group_id] = users
            self.group_members[group_id] = groups
            self.members_known.add(group_id)
            return
        old_users = self.user_members.get(group_id, set())
        old_groups = self.group_members.get(group_id, set())
        journal = self.journal
        for member_id in (old_users - users) | (old_groups - groups):
            journal.edges_removed.add((group_id, member_id))
            journal.edges_added.pop((group_id, member_id), None)
        for kind, added in (("user", users - old_users), ("group", groups - old_groups)):
            for member_id in added:
                journal.edges_added[(group_id, member_id)] = kind
                journal.edges_removed.discard((group_id, member_id))
        self.user_members[group_id] = users
        self.group_members[group_id] = groups
        if group_id not in self.members_known:
            self.members_known.add(group_id)
            self.journal.groups_upserted.add(group_id)

    def add_user_member(self, group_id: str, user_id: str) -> bool:
        """One more direct user member of a group whose members we keep; False if known."""
        if group_id not in self.members_known:
            return False
        users = self.user_members.setdefault(group_id, set())
        if user_id in users:
            return False
        users.add(user_id)
        if self.journaling:
            self.journal.edges_added[(group_id, user_id)] = "user"
            self.journal.edges_removed.discard((group_id, user_id))
        return True

    def closure_groups(self, roots: Iterable[str]) -> set[str]:
        """The roots and every group nested in them, however deep; cycles tolerated."""
        seen: set[str] = set()
        stack = [root for root in roots if root in self.groups]
        while stack:
            group_id = stack.pop()
            if group_id in seen:
                continue
            seen.add(group_id)
            stack.extend(
                g
                for g in self.group_members.get(group_id, ())
                if g in self.groups and g not in seen
            )
        return seen

    def transitive_users(self, group_id: str) -> set[str]:
        """Users in a group directly or through any depth of nesting (present users only).

        Do not change the set returned: for a group without nested groups whose users are all
        present, it is the mirror's own set (most groups; a copy of each would cost as much
        as the mirror's edges).
        """
        direct = self.user_members.get(group_id, set())
        if not self.group_members.get(group_id) and direct <= self.users.keys():
            return direct
        users: set[str] = set()
        for nested in self.closure_groups([group_id]):
            users.update(u for u in self.user_members.get(nested, ()) if u in self.users)
        return users


def _split(members: Iterable[MemberRef]) -> tuple[set[str], set[str]]:
    users = {m.id for m in members if m.kind == "user"}
    groups = {m.id for m in members if m.kind == "group"}
    return users, groups


def scope_roots(mirror: Mirror, scope: SyncScope) -> list[str]:
    """The groups a scope names: the assigned ones (that exist), or every group."""
    if scope.group_ids is None:
        return list(mirror.groups)
    return [g for g in scope.group_ids if g in mirror.groups]


def groups_missing_members(mirror: Mirror, scope: SyncScope) -> set[str]:
    """Groups in the scope's closure whose direct members were never read.

    In assigned mode only the closure of the assigned groups is read at first; a group that
    enters the scope later (a new assignment, a new nesting) has its members read then.
    """
    missing: set[str] = set()
    frontier = scope_roots(mirror, scope)
    seen: set[str] = set()
    while frontier:
        group_id = frontier.pop()
        if group_id in seen:
            continue
        seen.add(group_id)
        if group_id not in mirror.members_known:
            missing.add(group_id)
            continue
        frontier.extend(g for g in mirror.group_members.get(group_id, ()) if g in mirror.groups)
    return missing


def snapshot_from(mirror: Mirror, scope: SyncScope) -> Snapshot:
    """The synced scope, computed locally: each scoped group and its transitive users.

    Every group of the closure is synced in "all groups" mode (all groups are roots); in
    assigned mode only the assigned groups are, with their nested groups' users flattened in,
    exactly as `/transitiveMembers/microsoft.graph.user` would give them.
    """
    groups: dict[str, GraphGroup] = {}
    users: dict[str, GraphUser] = {}
    members: dict[str, set[str]] = {}
    for group_id in scope_roots(mirror, scope):
        groups[group_id] = mirror.groups[group_id]
        members[group_id] = user_ids = mirror.transitive_users(group_id)
        for user_id in user_ids:
            if user_id not in users:
                users[user_id] = mirror.users[user_id]
    return Snapshot(groups=groups, users=users, members=members)


def apply_user_changes(mirror: Mirror, changes: Iterable[UserChange]) -> int:
    """Fold a users delta round in; returns how many users changed. Replays are harmless."""
    changed = 0
    journal = mirror.journal
    for change in changes:
        if change.removed:
            if mirror.users.pop(change.id, None) is not None:
                changed += 1
                journal.users_removed.add(change.id)
                journal.users_upserted.discard(change.id)
            continue
        before = mirror.users.get(change.id)
        after = _merged_user(change.id, before, change.fields)
        if after != before:
            mirror.users[change.id] = after
            changed += 1
            journal.users_upserted.add(change.id)
            journal.users_removed.discard(change.id)
    return changed


def apply_group_changes(mirror: Mirror, changes: Iterable[GroupChange]) -> int:
    """Fold a groups delta round in (properties and direct members); returns changes seen."""
    changed = 0
    journal = mirror.journal
    for change in changes:
        if change.removed:
            if mirror.groups.pop(change.id, None) is not None:
                changed += 1
                journal.groups_removed.add(change.id)
                journal.groups_upserted.discard(change.id)
            gone = mirror.user_members.pop(change.id, set()) | mirror.group_members.pop(
                change.id, set()
            )
            for member_id in gone:
                journal.edges_removed.add((change.id, member_id))
                journal.edges_added.pop((change.id, member_id), None)
            mirror.members_known.discard(change.id)
            continue
        before = mirror.groups.get(change.id)
        after = _merged_group(change.id, before, change.fields)
        if after != before:
            mirror.groups[change.id] = after
            changed += 1
            journal.groups_upserted.add(change.id)
            journal.groups_removed.discard(change.id)
        if before is None and change.id not in mirror.members_known:
            # A group new to us: its members@delta in this round are its whole member list.
            mirror.user_members.setdefault(change.id, set())
            mirror.group_members.setdefault(change.id, set())
            mirror.members_known.add(change.id)
            journal.groups_upserted.add(change.id)
        changed += _apply_member_changes(mirror, change)
    return changed


def _apply_member_changes(mirror: Mirror, change: GroupChange) -> int:
    if change.id not in mirror.members_known:
        return 0  # never read: read in full when it enters the scope
    users = mirror.user_members.setdefault(change.id, set())
    groups = mirror.group_members.setdefault(change.id, set())
    journal = mirror.journal
    changed = 0
    for member in change.members_added:
        target = users if member.kind == "user" else groups if member.kind == "group" else None
        if target is not None and member.id not in target:
            # A member is a user or a group, never both: a kind reported anew replaces it.
            (groups if target is users else users).discard(member.id)
            target.add(member.id)
            changed += 1
            journal.edges_added[(change.id, member.id)] = member.kind
            journal.edges_removed.discard((change.id, member.id))
    for member_id in change.members_removed:
        if member_id in users or member_id in groups:
            users.discard(member_id)
            groups.discard(member_id)
            changed += 1
            journal.edges_removed.add((change.id, member_id))
            journal.edges_added.pop((change.id, member_id), None)
    return changed


_USER_DEFAULTS = GraphUser(
    id="",
    user_principal_name="",
    mail=None,
    display_name="",
    given_name=None,
    surname=None,
    account_enabled=True,
    user_type="Member",
)
_GROUP_DEFAULTS = GraphGroup(
    id="",
    display_name="",
    description=None,
    mail=None,
    mail_enabled=False,
    security_enabled=False,
    group_types=(),
)


def _merged_user(user_id: str, before: GraphUser | None, fields: Mapping[str, object]) -> GraphUser:
    """The user with the properties a delta item carried; the others as they were."""
    base = before or dataclasses.replace(_USER_DEFAULTS, id=user_id)
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def _merged_group(
    group_id: str, before: GraphGroup | None, fields: Mapping[str, object]
) -> GraphGroup:
    base = before or dataclasses.replace(_GROUP_DEFAULTS, id=group_id)
    values = dict(fields)
    if "group_types" in values:
        values["group_types"] = tuple(values["group_types"])  # type: ignore[arg-type]
    return dataclasses.replace(base, **values)  # type: ignore[arg-type]
