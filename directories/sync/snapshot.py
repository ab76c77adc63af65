"""What a read found: the synced scope as Graph reported it, before anything is written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from directories.graph import GraphGroup, GraphUser


@dataclass(frozen=True)
class Snapshot:
    """Everything in scope, as Graph reported it during this run.

    Memberships are kept per group (group id -> its transitive user ids), not as a set of
    (group, user) pairs: at a million memberships, a tuple per pair costs several times the
    ids themselves.
    """

    groups: dict[str, GraphGroup]
    users: dict[str, GraphUser]
    members: dict[str, set[str]]  # group id -> user ids

    @property
    def membership_count(self) -> int:
        return sum(len(user_ids) for user_ids in self.members.values())

    def memberships(self) -> Iterator[tuple[str, str]]:
        """Every (group id, user id) pair."""
        for group_id, user_ids in self.members.items():
            for user_id in user_ids:
                yield group_id, user_id


@dataclass(frozen=True)
class FetchProgress:
    groups_total: int
    groups_done: int
    users_seen: int


ProgressCallback = Callable[[FetchProgress], None]
