"""A stand-in for GraphClient that serves a directory held in memory (engine unit tests)."""

from __future__ import annotations

import uuid
from dataclasses import replace

from directories.graph import (
    AppRoleAssignment,
    GraphBadResponse,
    GraphError,
    GraphGroup,
    GraphNotFound,
    GraphUser,
    RequestStats,
)
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


class FakeGraph:
    """Groups with their transitive user members, plus Authentication-app assignments."""

    def __init__(self) -> None:
        self.groups_by_id: dict[str, GraphGroup] = {}
        self.members: dict[str, list[GraphUser]] = {}
        self.assigned: list[AppRoleAssignment] = []
        self.stats = RequestStats()
        self.fail_with: GraphError | None = None
        self.fail_after_groups: int | None = None
        self._member_reads = 0

    def add_group(
        self, group: GraphGroup, users: list[GraphUser], *, assigned: bool = True
    ) -> GraphGroup:
        self.groups_by_id[group.id] = group
        self.members[group.id] = list(users)
        if assigned:
            self.assign(group.id, "Group", group.display_name)
        return group

    def assign(self, principal_id: str, principal_type: str, name: str) -> None:
        self.assigned.append(
            AppRoleAssignment(str(uuid.uuid4()), principal_id, principal_type, name)
        )

    def remove_group(self, group_id: str) -> None:
        self.groups_by_id.pop(group_id)
        self.members.pop(group_id)
        self.assigned = [a for a in self.assigned if a.principal_id != group_id]

    def set_members(self, group_id: str, users: list[GraphUser]) -> None:
        self.members[group_id] = list(users)

    def replace_user(self, old: GraphUser, **changes: object) -> GraphUser:
        new = replace(old, **changes)  # type: ignore[arg-type]
        for group_id, users in self.members.items():
            self.members[group_id] = [new if u.id == old.id else u for u in users]
        return new

    # --- the GraphClient methods the engine calls ---------------------------------------------

    def _request(self) -> None:
        self.stats.requests += 1
        if self.fail_with is not None and self.fail_after_groups is None:
            raise self.fail_with

    def app_role_assignments(self, app_id: str) -> list[AppRoleAssignment]:
        self._request()
        return list(self.assigned)

    def groups(self) -> list[GraphGroup]:
        self._request()
        return list(self.groups_by_id.values())

    def group(self, group_id: str) -> GraphGroup:
        self._request()
        if group_id not in self.groups_by_id:
            raise GraphNotFound("gone")
        return self.groups_by_id[group_id]

    def group_transitive_users(self, group_id: str) -> list[GraphUser]:
        self._request()
        self._member_reads += 1
        if self.fail_after_groups is not None and self._member_reads > self.fail_after_groups:
            raise self.fail_with or GraphBadResponse("broken page")
        if group_id not in self.members:
            raise GraphNotFound("gone")
        return list(self.members[group_id])


def as_reader(fake: FakeGraph) -> DirectoryReader:
    """mypy checks here that FakeGraph offers everything the engine reads from Graph."""
    return fake
