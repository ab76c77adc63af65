"""A stand-in for GraphClient that serves a directory held in memory (engine unit tests)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from directories.graph import (
    AppRoleAssignment,
    DeltaRound,
    GraphBadResponse,
    GraphDeltaExpired,
    GraphError,
    GraphGroup,
    GraphUser,
    GroupChange,
    MemberRef,
    RequestStats,
    UserChange,
)
from directories.models import Directory, SyncRun
from directories.sync import directory_sync
from directories.sync.reader import DirectoryReader


def make_user(name: str, **fields: object) -> GraphUser:
    values: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "user_principal_name": f"{name.lower()}@contoso.onmicrosoft.com",
        "mail": f"{name.lower()}@contoso.com",
        "display_name": name,
        "given_name": name,
        "surname": None,
        "account_enabled": True,
        "user_type": "Member",
    }
    values.update(fields)
    return GraphUser(**values)  # type: ignore[arg-type]


def make_group(name: str, **fields: object) -> GraphGroup:
    values: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "display_name": name,
        "description": None,
        "mail": None,
        "mail_enabled": False,
        "security_enabled": True,
        "group_types": (),
    }
    values.update(fields)
    return GraphGroup(**values)  # type: ignore[arg-type]


_State = tuple[dict[str, GraphUser], dict[str, GraphGroup], set[tuple[str, str, str]]]


class FakeGraph:
    """A tenant held in memory: groups with their users (and nested groups), assignments, and
    delta links that replay what changed since they were issued (engine unit tests)."""

    def __init__(self) -> None:
        self.groups_by_id: dict[str, GraphGroup] = {}
        self.members: dict[str, list[GraphUser]] = {}  # group -> its direct users
        self.nested: dict[str, set[str]] = {}  # group -> its direct nested groups
        self.loose_users: dict[str, GraphUser] = {}  # users in no group
        self.assigned: list[AppRoleAssignment] = []
        self.stats = RequestStats()
        self.fail_with: GraphError | None = None
        self.fail_after_groups: int | None = None
        self._member_reads = 0
        self._snapshots: dict[int, _State] = {}
        self._version = 0

    # --- changing the tenant ---------------------------------------------------------------

    def add_group(
        self, group: GraphGroup, users: list[GraphUser], *, assigned: bool = True
    ) -> GraphGroup:
        self.groups_by_id[group.id] = group
        self.members[group.id] = list(users)
        self.nested.setdefault(group.id, set())
        if assigned:
            self.assign(group.id, "Group", group.display_name)
        return group

    def nest(self, parent_id: str, child_id: str) -> None:
        self.nested.setdefault(parent_id, set()).add(child_id)

    def assign(self, principal_id: str, principal_type: str, name: str) -> None:
        self.assigned.append(
            AppRoleAssignment(str(uuid.uuid4()), principal_id, principal_type, name)
        )

    def remove_group(self, group_id: str) -> None:
        self.groups_by_id.pop(group_id)
        self.members.pop(group_id)
        self.nested.pop(group_id, None)
        for children in self.nested.values():
            children.discard(group_id)
        self.assigned = [a for a in self.assigned if a.principal_id != group_id]

    def set_members(self, group_id: str, users: list[GraphUser]) -> None:
        self.members[group_id] = list(users)

    def replace_user(self, old: GraphUser, **changes: object) -> GraphUser:
        new = replace(old, **changes)  # type: ignore[arg-type]
        for group_id, users in self.members.items():
            self.members[group_id] = [new if u.id == old.id else u for u in users]
        if old.id in self.loose_users:
            self.loose_users[old.id] = new
        return new

    def expire_delta_links(self) -> None:
        """Every delta link issued so far is unknown to Graph from now on (410)."""
        self._snapshots.clear()

    # --- the reads the engine makes --------------------------------------------------------

    def _request(self) -> None:
        self.stats.requests += 1
        if self.fail_with is not None and self.fail_after_groups is None:
            raise self.fail_with

    def _users_now(self) -> dict[str, GraphUser]:
        users = dict(self.loose_users)
        for members in self.members.values():
            users.update((u.id, u) for u in members)
        return users

    def _edges_now(self) -> set[tuple[str, str, str]]:
        edges = {(g, u.id, "user") for g, users in self.members.items() for u in users}
        edges |= {(g, c, "group") for g, children in self.nested.items() for c in children}
        return edges

    def app_role_assignments(self, app_id: str) -> list[AppRoleAssignment]:
        self._request()
        return list(self.assigned)

    def users(self) -> list[GraphUser]:
        self._request()
        return list(self._users_now().values())

    def groups(self) -> list[GraphGroup]:
        self._request()
        return list(self.groups_by_id.values())

    def group_members(self, group_ids: Sequence[str]) -> dict[str, list[MemberRef]]:
        self._request()
        found: dict[str, list[MemberRef]] = {}
        for group_id in group_ids:
            self._member_reads += 1
            if self.fail_after_groups is not None and self._member_reads > self.fail_after_groups:
                raise self.fail_with or GraphBadResponse("broken page")
            if group_id not in self.groups_by_id:
                continue  # 404: gone
            found[group_id] = [MemberRef(u.id, "user") for u in self.members[group_id]] + [
                MemberRef(c, "group") for c in sorted(self.nested.get(group_id, ()))
            ]
        return found

    def users_member_of(self, user_ids: Sequence[str]) -> dict[str, list[MemberRef]]:
        self._request()
        users = self._users_now()
        return {
            user_id: [
                MemberRef(g, "group")
                for g, members in self.members.items()
                if any(u.id == user_id for u in members)
            ]
            for user_id in user_ids
            if user_id in users
        }

    def _link(self, resource: str) -> str:
        self._version += 1
        version = self._version
        self._snapshots[version] = (
            self._users_now(),
            dict(self.groups_by_id),
            self._edges_now(),
        )
        return f"https://graph.fake/v1.0/{resource}/delta?$deltatoken={version}"

    def _since(self, link: str | None) -> _State:
        if link is None:
            return {}, {}, set()
        version = int(link.rsplit("=", 1)[1])
        if version not in self._snapshots:
            raise GraphDeltaExpired("The delta token expired (syncStateNotFound).", status=410)
        return self._snapshots[version]

    def latest_delta_link(self, resource: str) -> str:
        self._request()
        return self._link(resource)

    def users_delta(self, delta_link: str | None = None) -> DeltaRound[UserChange]:
        self._request()
        before, _, _ = self._since(delta_link)
        now = self._users_now()
        changes = [
            UserChange(u.id, False, _fields(u)) for u in now.values() if before.get(u.id) != u
        ]
        changes += [UserChange(i, True, {}) for i in before if i not in now]
        return DeltaRound(tuple(changes), self._link("users"))

    def groups_delta(self, delta_link: str | None = None) -> DeltaRound[GroupChange]:
        self._request()
        _, before, old_edges = self._since(delta_link)
        now, edges = self.groups_by_id, self._edges_now()
        added: dict[str, list[MemberRef]] = {}
        removed: dict[str, list[str]] = {}
        for g, m, kind in edges - old_edges:
            added.setdefault(g, []).append(MemberRef(m, kind))  # type: ignore[arg-type]
        for g, m, _kind in old_edges - edges:
            removed.setdefault(g, []).append(m)
        ids = {g for g in now if before.get(g) != now[g]} | set(added) | set(removed)
        changes = [
            GroupChange(
                g,
                False,
                _fields(now[g]) if before.get(g) != now[g] else {},
                tuple(added.get(g, ())),
                tuple(removed.get(g, ())),
            )
            for g in ids
            if g in now
        ]
        changes += [GroupChange(g, True, {}, (), ()) for g in before if g not in now]
        return DeltaRound(tuple(changes), self._link("groups"))


def _fields(obj: GraphUser | GraphGroup) -> dict[str, object]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name != "id"}


def as_reader(fake: FakeGraph) -> DirectoryReader:
    """mypy checks here that FakeGraph offers everything the engine reads from Graph."""
    return fake


def sync_with(directory: Directory, graph: FakeGraph, **options: Any) -> SyncRun:
    """One real (not dry) sync of `directory` reading from a FakeGraph; returns its run."""
    directory.refresh_from_db()
    outcome = directory_sync(
        directory=directory, trigger=SyncRun.Trigger.COMMAND, client=graph, **options
    )
    assert outcome.run is not None
    return outcome.run
