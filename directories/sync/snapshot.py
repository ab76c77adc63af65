"""Fetch: read the whole scope of a directory from Graph before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from directories.graph import (
    GraphClient,
    GraphGroup,
    GraphNotAssigned,
    GraphNotFound,
    GraphUser,
)


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


def assigned_group_ids(client: GraphClient, auth_app_id: str) -> list[str]:
    """Groups assigned to the Authentication app; refuses an empty list with an explanation."""
    assignments = client.app_role_assignments(auth_app_id)
    group_ids = list(
        dict.fromkeys(a.principal_id for a in assignments if a.principal_type == "Group")
    )
    if group_ids:
        return group_ids
    direct = [a.principal_display_name for a in assignments if a.principal_type == "User"]
    if direct:
        shown = ", ".join(direct[:3]) + ("…" if len(direct) > 3 else "")
        raise GraphNotAssigned(
            f"No groups are assigned to the Authentication application; only users are "
            f"({shown}). Users assigned directly are not synced.",
            remediation="Assign groups instead of users to the Authentication application "
            "(Enterprise applications > Users and groups; needs Entra ID P1/P2), or switch the "
            "directory to 'All groups'.",
        )
    raise GraphNotAssigned(
        "No groups are assigned to the Authentication application, so there is nothing to "
        "sync. Nothing was removed."
    )


def fetch_snapshot(
    *,
    client: GraphClient,
    assigned_only: bool,
    auth_app_id: str,
    progress: ProgressCallback | None = None,
    workers: int = 4,
) -> Snapshot:
    """Read the groups in scope and their transitive user members, a few groups at a time."""
    if assigned_only:
        group_ids = assigned_group_ids(client, auth_app_id)
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
