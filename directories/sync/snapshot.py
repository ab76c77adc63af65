"""Fetch: read the whole scope of a directory from Graph before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from directories.graph import GraphGroup, GraphNotFound, GraphUser

from .reader import DirectoryReader
from .scope import SyncScope, require_groups


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


def fetch_snapshot(
    *,
    client: DirectoryReader,
    scope: SyncScope,
    progress: ProgressCallback | None = None,
    workers: int = 4,
) -> Snapshot:
    """Read the groups in scope and their transitive user members, a few groups at a time."""
    if scope.assigned_only:
        group_ids = list(require_groups(scope))
        known: dict[str, GraphGroup] = {}
    else:
        known = {group.id: group for group in client.groups()}
        group_ids = list(known)

    def load(group_id: str) -> tuple[GraphGroup, list[GraphUser]] | None:
        try:
            group = known.get(group_id) or client.group(group_id)
            return group, client.group_transitive_users(group_id)
        except GraphNotFound:
            return None  # deleted while we were reading: it is simply out of scope

    groups: dict[str, GraphGroup] = {}
    users: dict[str, GraphUser] = {}
    memberships: set[tuple[str, str]] = set()
    if progress:
        progress(FetchProgress(len(group_ids), 0, 0))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: set[Future[tuple[GraphGroup, list[GraphUser]] | None]] = {
            pool.submit(load, group_id) for group_id in group_ids
        }
        done_count = 0
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    loaded = future.result()  # re-raises the first failure
                    done_count += 1
                    if loaded is None:
                        continue
                    group, members = loaded
                    groups[group.id] = group
                    for user in members:
                        users[user.id] = user
                        memberships.add((group.id, user.id))
                if progress:
                    progress(FetchProgress(len(group_ids), done_count, len(users)))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return Snapshot(groups=groups, users=users, memberships=frozenset(memberships))
