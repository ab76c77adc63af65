"""The one rule for what a directory syncs: which groups, and so which users.

- *Assigned groups only*: the groups assigned to the Authentication application's service
  principal (`principalType == "Group"`). Users and service principals assigned directly are
  not synced.
- *All groups*: every group in the tenant.
- In both modes a user is synced because it is a (transitive) member of a synced group.

The sync's fetch, the verify probe and "Why isn't this user syncing?" all read the scope
here, so the explanation can never disagree with what the engine does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from directories.graph import AppRoleAssignment, GraphGroup, GraphNotAssigned
from directories.models import Directory, SyncMode
from directories.services.graph import authentication_app_id

from .reader import ScopeReader

GROUP = "Group"
USER = "User"
NOT_ASSIGNED_REMEDIATION = (
    "Assign groups instead of users to the Authentication application (Enterprise "
    "applications > Users and groups; needs Entra ID P1/P2), or switch the directory to "
    "'All groups'."
)


@dataclass(frozen=True)
class SyncScope:
    """The groups a directory syncs, as read from Graph for one run.

    `group_ids` is None in "all groups" mode (every group is in scope); in assigned mode it
    holds the groups assigned to the Authentication app, in assignment order.
    """

    assigned_only: bool
    group_ids: tuple[str, ...] | None = None
    # Principals assigned to the Authentication app directly (not synced): (id, display name).
    direct_users: tuple[tuple[str, str], ...] = ()

    def includes_group(self, group_id: str) -> bool:
        return self.group_ids is None or group_id in self.group_ids

    def synced_groups(self, groups: Iterable[GraphGroup]) -> list[GraphGroup]:
        """Which of a user's (transitive) groups are synced: the user is synced through them."""
        return [group for group in groups if self.includes_group(group.id)]

    def is_assigned_directly(self, user_id: str) -> bool:
        return any(principal_id == user_id for principal_id, _ in self.direct_users)


def scope_from_assignments(assignments: Sequence[AppRoleAssignment]) -> SyncScope:
    """Assigned mode's scope: the groups among the Authentication app's assignments."""
    groups = dict.fromkeys(a.principal_id for a in assignments if a.principal_type == GROUP)
    direct = tuple(
        (a.principal_id, a.principal_display_name) for a in assignments if a.principal_type == USER
    )
    return SyncScope(assigned_only=True, group_ids=tuple(groups), direct_users=direct)


ALL_GROUPS = SyncScope(assigned_only=False)


def read_scope(
    reader: ScopeReader, *, directory: Directory, auth_app_id: str | None = None
) -> SyncScope:
    """A directory's scope now: one listing of assignments in assigned mode, nothing otherwise.

    `auth_app_id` defaults to ENTRA_AUTH_CLIENT_ID (the Authentication application).
    """
    if directory.sync_mode != SyncMode.ASSIGNED:
        return ALL_GROUPS
    return scope_from_assignments(
        reader.app_role_assignments(auth_app_id or authentication_app_id())
    )


def require_groups(scope: SyncScope) -> tuple[str, ...]:
    """The assigned groups to sync; an empty assignment list is explained, never synced.

    An empty list would otherwise plan the removal of everything: refuse it with what to do.
    """
    if scope.group_ids is None:
        raise ValueError("require_groups is for assigned mode; all-groups mode lists groups")
    if scope.group_ids:
        return scope.group_ids
    if scope.direct_users:
        names = [name for _, name in scope.direct_users]
        shown = ", ".join(names[:3]) + ("…" if len(names) > 3 else "")
        raise GraphNotAssigned(
            f"No groups are assigned to the Authentication application; only users are "
            f"({shown}). Users assigned directly are not synced.",
            remediation=NOT_ASSIGNED_REMEDIATION,
        )
    raise GraphNotAssigned(
        "No groups are assigned to the Authentication application, so there is nothing to "
        "sync. Nothing was removed."
    )
