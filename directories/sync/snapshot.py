"""What a read found: the synced scope as Graph reported it, before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from directories.graph import GraphGroup, GraphUser


@dataclass(frozen=True)
class Snapshot:
    """Everything in scope, as Graph reported it during this run."""

    groups: dict[str, GraphGroup]
    users: dict[str, GraphUser]
    memberships: frozenset[tuple[str, str]]  # (group id, user id)


@dataclass(frozen=True)
class FetchProgress:
    groups_total: int
    groups_done: int
    users_seen: int


ProgressCallback = Callable[[FetchProgress], None]
