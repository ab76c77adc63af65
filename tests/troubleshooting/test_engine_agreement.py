"""The explanation and the sync engine agree on every user of an emulated tenant.

"Why isn't this user syncing?" reads the scope with `read_scope` and tests it with
`SyncScope.synced_groups`, as the engine does; this checks the promise end to end: after a real
sync, a user is reported synced exactly when the local copy holds it.
"""

from __future__ import annotations

import pytest

from directories.models import SyncMode
from directories.services.troubleshooting import user_sync_diagnosis
from entra_emulator import EmuTenant
from entra_emulator.expected import expected_directory
from identities.models import SyncedUser

from .conftest import new_user, synced

pytestmark = pytest.mark.django_db


def assigned_groups(tenant: EmuTenant) -> set[str]:
    return {a.principal_id for a in tenant.assignments if a.principal_type == "Group"}


def add_hard_cases(tenant: EmuTenant) -> None:
    """A member reached only through a nested group, and users assigned directly to the app."""
    parent, child = next(
        (group.id, member)
        for group in tenant.groups.values()
        for member in group.member_ids
        if member in tenant.groups
    )
    if parent not in assigned_groups(tenant):
        tenant.assign_group(parent)
    tenant.unassign(child)
    nested = new_user(tenant, 11, display_name="Nested Only")
    tenant.add_member(child, nested.id)

    tenant.assign_user(new_user(tenant, 12, display_name="Assigned, in no group").id)
    outside = next(
        g.id
        for g in tenant.groups.values()
        if g.id not in assigned_groups(tenant) and g.id != child
    )
    in_group = new_user(tenant, 13, display_name="Assigned, in an unassigned group")
    tenant.add_member(outside, in_group.id)
    tenant.assign_user(in_group.id)


def nested_only(tenant: EmuTenant) -> set[str]:
    """Users synced in assigned mode only through a group nested in an assigned group."""
    direct = {m for g in assigned_groups(tenant) for m in tenant.groups[g].member_ids}
    return set(expected_directory(tenant, assigned_only=True).user_ids) - direct


@pytest.mark.parametrize("mode", [SyncMode.ASSIGNED, SyncMode.ALL])
def test_every_user_is_explained_as_synced_exactly_when_the_engine_synced_it(
    tenant: EmuTenant, mode: str
) -> None:
    add_hard_cases(tenant)
    users = tenant.users.values()
    categories = {
        "nested only": nested_only(tenant),
        "guest": {u.id for u in users if u.user_type == "Guest"},
        "disabled": {u.id for u in users if not u.account_enabled},
        "assigned directly": {
            a.principal_id for a in tenant.assignments if a.principal_type == "User"
        },
    }
    assert all(categories.values()), categories  # so the agreement below is not vacuous
    directory = synced(tenant, mode)
    present = set(
        SyncedUser.objects.filter(directory=directory).present().values_list("entra_id", flat=True)
    )

    answers = {u.id: user_sync_diagnosis(directory=directory, query=u.id) for u in users}

    disagreements = {
        user_id: diagnosis.verdict
        for user_id, diagnosis in answers.items()
        if diagnosis.synced != (user_id in present)
    }
    assert disagreements == {}
    assert set().union(*categories.values()) <= set(answers)
    assert present and set(answers) - present  # some users synced, some not
