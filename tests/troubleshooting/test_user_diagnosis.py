"""'Why isn't this user syncing?' against the emulated tenant, after a real sync of it."""

from __future__ import annotations

import pytest

from directories.models import SyncMode
from directories.services.troubleshooting import user_sync_diagnosis
from directories.sync import directory_sync
from entra_emulator import Emulator, EmuTenant
from entra_emulator.expected import expected_directory

from .conftest import make_directory, new_user, synced

pytestmark = pytest.mark.django_db


def in_scope(tenant: EmuTenant) -> list[str]:
    return sorted(expected_directory(tenant, assigned_only=True).user_ids)


def assigned_group_ids(tenant: EmuTenant) -> set[str]:
    return {a.principal_id for a in tenant.assignments if a.principal_type == "Group"}


def test_a_synced_user_is_reported_synced_since_its_first_sync_with_its_groups(
    tenant: EmuTenant,
) -> None:
    user = tenant.users[next(u for u in in_scope(tenant) if tenant.users[u].account_enabled)]
    directory = synced(tenant)

    diagnosis = user_sync_diagnosis(directory=directory, query=user.user_principal_name.upper())

    assert diagnosis.verdict == "Synced"
    assert diagnosis.synced
    assert diagnosis.local.startswith("Synced since ")
    assert ", in groups '" in diagnosis.local
    assert "which is synced" in diagnosis.explanation or "which are synced" in diagnosis.explanation
    assert diagnosis.remediation == "Nothing to do."


def test_a_user_can_be_looked_up_by_object_id_or_by_mail(tenant: EmuTenant) -> None:
    user = tenant.users[next(u for u in in_scope(tenant) if tenant.users[u].mail)]
    directory = synced(tenant)

    by_id = user_sync_diagnosis(directory=directory, query=user.id)
    by_mail = user_sync_diagnosis(directory=directory, query=f"  {user.mail}  ")

    assert by_id.synced and by_mail.synced


def test_a_user_not_in_the_tenant_is_said_to_be_not_in_the_tenant(tenant: EmuTenant) -> None:
    directory = synced(tenant)

    diagnosis = user_sync_diagnosis(directory=directory, query="nobody@example.com")

    assert diagnosis.verdict == "Not in the tenant"
    assert "no user with the object id or user principal name 'nobody@example.com'" in (
        diagnosis.explanation
    )
    assert diagnosis.local == "Not in entra-sync's copy of this directory."
    assert not diagnosis.synced


def test_a_user_deleted_in_entra_shows_when_its_copy_was_removed(tenant: EmuTenant) -> None:
    user = tenant.users[in_scope(tenant)[0]]
    directory = synced(tenant)
    tenant.remove_user(user.id)
    directory_sync(directory=directory, trigger="command")  # marks its copy removed

    diagnosis = user_sync_diagnosis(directory=directory, query=user.user_principal_name)

    assert diagnosis.verdict == "Not in the tenant"
    assert diagnosis.local.startswith("Was synced, and removed at ")
    assert "already marked removed" in diagnosis.explanation


def test_a_user_in_no_group_is_in_no_synced_group(tenant: EmuTenant) -> None:
    lonely = new_user(tenant, 1)
    directory = synced(tenant)

    diagnosis = user_sync_diagnosis(directory=directory, query=lonely.user_principal_name)

    assert diagnosis.verdict == "In no synced group"
    assert "member of no group at all" in diagnosis.explanation
    assert "assigned to the Authentication application" in diagnosis.remediation


def test_a_user_whose_group_is_not_assigned_is_told_which_group_to_assign(
    tenant: EmuTenant,
) -> None:
    unassigned = next(
        g
        for g in tenant.groups.values()
        if g.id not in assigned_group_ids(tenant) and not g.is_unified
    )
    lonely = new_user(tenant, 2)
    tenant.add_member(unassigned.id, lonely.id)
    directory = synced(tenant)

    diagnosis = user_sync_diagnosis(directory=directory, query=lonely.id)

    assert diagnosis.verdict == "In no synced group"
    assert f"'{unassigned.display_name}'" in diagnosis.explanation
    assert diagnosis.remediation.startswith(
        f"Group '{unassigned.display_name}' is not assigned to the Authentication app "
        "(assign it in Enterprise applications > Users and groups)"
    )


def test_a_user_assigned_directly_is_told_to_assign_a_group_instead(tenant: EmuTenant) -> None:
    lonely = new_user(tenant, 3)
    tenant.assign_user(lonely.id)
    directory = synced(tenant)

    diagnosis = user_sync_diagnosis(directory=directory, query=lonely.user_principal_name)

    assert diagnosis.verdict == "Assigned directly instead of through a group"
    assert "users assigned directly are not" in diagnosis.explanation
    assert "assign a group the user is in instead" in diagnosis.remediation


def test_a_disabled_user_is_kept_and_marked_disabled(tenant: EmuTenant) -> None:
    disabled = next(u for u in in_scope(tenant) if not tenant.users[u].account_enabled)
    directory = synced(tenant)

    diagnosis = user_sync_diagnosis(directory=directory, query=disabled)

    assert diagnosis.verdict == "Synced, marked disabled"
    assert diagnosis.synced
    assert any("kept and marked disabled" in note for note in diagnosis.notes)


def test_a_guest_is_synced_and_noted_as_a_guest(tenant: EmuTenant) -> None:
    guest = next(u for u in in_scope(tenant) if tenant.users[u].user_type == "Guest")
    directory = synced(tenant)

    diagnosis = user_sync_diagnosis(directory=directory, query=guest)

    assert diagnosis.synced
    assert any("guest account" in note for note in diagnosis.notes)


def test_a_user_in_scope_but_not_synced_yet_waits_for_the_next_sync(tenant: EmuTenant) -> None:
    group = next(iter(assigned_group_ids(tenant)))
    directory = synced(tenant)
    newcomer = new_user(tenant, 4)
    tenant.add_member(group, newcomer.id)

    diagnosis = user_sync_diagnosis(directory=directory, query=newcomer.user_principal_name)

    assert diagnosis.verdict == "Not synced yet"
    assert "next sync adds it" in diagnosis.remediation


def test_in_all_groups_mode_a_user_in_no_group_is_in_no_group(tenant: EmuTenant) -> None:
    lonely = new_user(tenant, 5)
    directory = synced(tenant, SyncMode.ALL)

    diagnosis = user_sync_diagnosis(directory=directory, query=lonely.id)

    assert diagnosis.verdict == "In no group"
    assert "Add the user to a group" in diagnosis.remediation


def test_a_graph_error_becomes_its_message_and_remediation(
    tenant: EmuTenant, emulator: Emulator
) -> None:
    directory = synced(tenant)
    emulator.fail_next(403, path_contains="transitiveMemberOf")

    diagnosis = user_sync_diagnosis(directory=directory, query=in_scope(tenant)[0])

    assert diagnosis.verdict == "Could not ask Microsoft Graph"
    assert diagnosis.error_class == "forbidden"
    assert "User.Read.All" in diagnosis.explanation + diagnosis.remediation
    assert diagnosis.request_id


def test_an_unverified_directory_is_asked_to_verify_first(tenant: EmuTenant) -> None:
    directory = make_directory(tenant)
    directory.verified_at = None
    directory.save()

    diagnosis = user_sync_diagnosis(directory=directory, query="anyone@example.com")

    assert diagnosis.verdict == "The directory is not connected yet"
    assert "Verify Now" in diagnosis.remediation
