"""What the sync engine needs from Microsoft Graph, as a Protocol.

`directories.graph.GraphClient` implements it; so do the engine's test fakes, which mypy
checks against it, so a fake cannot drift from the client it stands in for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

from directories.graph import (
    AppRoleAssignment,
    DeltaRound,
    GraphGroup,
    GraphUser,
    GroupChange,
    MemberRef,
    RequestStats,
    UserChange,
)


class ScopeReader(Protocol):
    """The one read the scope needs: who is assigned to the Authentication app."""

    def app_role_assignments(self, app_id: str) -> list[AppRoleAssignment]: ...


class DirectoryReader(ScopeReader, Protocol):
    """The reads a sync makes: the scope, full listings, delta rounds and direct members."""

    @property
    def stats(self) -> RequestStats: ...

    def users(self) -> Iterable[GraphUser]: ...

    def groups(self) -> Iterable[GraphGroup]: ...

    def latest_delta_link(self, resource: Literal["users", "groups"]) -> str: ...

    def users_delta(self, delta_link: str | None = None) -> DeltaRound[UserChange]: ...

    def groups_delta(self, delta_link: str | None = None) -> DeltaRound[GroupChange]: ...

    def group_members(self, group_ids: Sequence[str]) -> dict[str, list[MemberRef]]: ...

    def users_member_of(self, user_ids: Sequence[str]) -> dict[str, list[MemberRef]]: ...
