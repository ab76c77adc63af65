"""What the sync engine needs from Microsoft Graph, as a Protocol.

`directories.graph.GraphClient` implements it; so do the engine's test fakes, which mypy
checks against it, so a fake cannot drift from the client it stands in for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from directories.graph import AppRoleAssignment, GraphGroup, GraphUser, RequestStats


class DirectoryReader(Protocol):
    """The reads a sync makes: scope, groups and their transitive user members."""

    @property
    def stats(self) -> RequestStats: ...

    def app_role_assignments(self, app_id: str) -> list[AppRoleAssignment]: ...

    def groups(self) -> Iterable[GraphGroup]: ...

    def group(self, group_id: str) -> GraphGroup: ...

    def group_transitive_users(self, group_id: str) -> list[GraphUser]: ...
