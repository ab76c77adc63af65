"""End to end: the real commands, MSAL's token path and the Graph client against the emulator.

Nothing of the project is mocked; only the network is (`responses` hands requests to the
emulator in-process).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from directories.models import Directory, SyncRun
from entra_emulator import Emulator, EmuTenant, EmuUser
from entra_emulator.expected import expected_directory
from identities.models import SyncedGroup, SyncedUser
from identities.selectors import directory_present_state
from tests.conftest import CLIENT_ID, CLIENT_SECRET, GRAPH_REQUEST_CHECKER

from .conftest import EmulatorClock

pytestmark = pytest.mark.django_db
CHECKER = GRAPH_REQUEST_CHECKER


def command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def add_and_verify(tenant: EmuTenant, mode: str) -> Directory:
    command("add_directory", "--name", "Contoso", "--mode", mode)
    output = command("verify_directory", "Contoso", "--tenant-id", tenant.tenant_id)
    assert output.startswith(f"Connected to {tenant.display_name} (tenant id {tenant.tenant_id}")
    return Directory.objects.get(name="Contoso")


def sync_json(*args: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(command("sync_directory", "Contoso", "--json", *args))
    return summary


def assert_matches_tenant(directory: Directory, tenant: EmuTenant, *, assigned_only: bool) -> None:
    expected = expected_directory(tenant, assigned_only=assigned_only)
    state = directory_present_state(directory=directory)
    assert state.group_ids == expected.group_ids
    assert state.user_ids == expected.user_ids
    assert state.memberships == expected.memberships


def test_all_groups_mode_copies_the_whole_tenant(tenant: EmuTenant) -> None:
    directory = add_and_verify(tenant, "all")

    summary = sync_json()

    assert summary["status"] == "succeeded"
    assert summary["groups"]["created"] == len(tenant.groups)
    assert_matches_tenant(directory, tenant, assigned_only=False)
    guests = [u for u in tenant.users.values() if u.user_type == "Guest"]
    disabled = [u for u in tenant.users.values() if not u.account_enabled]
    assert SyncedUser.objects.filter(user_type="Guest").count() == len(guests) > 0
    assert SyncedUser.objects.filter(account_enabled=False).count() == len(disabled) > 0
    assert SyncedUser.objects.filter(mail="").exists()


@pytest.mark.parametrize("strict", [True, False], ids=["as-documented", "lenient-tenant"])
@pytest.mark.parametrize("mode", ["all", "assigned"])
def test_a_sync_succeeds_whether_the_tenant_enforces_the_advanced_query_rule_or_not(
    tenant: EmuTenant, emulator: Emulator, strict: bool, mode: str
) -> None:
    # Every member listing is an OData cast: against a tenant that enforces Microsoft's rule
    # as written, a sync without ConsistencyLevel + $count would fail on the first group.
    emulator.graph.advanced_query_strict = strict
    directory = add_and_verify(tenant, mode)

    assert sync_json()["status"] == "succeeded"
    assert_matches_tenant(directory, tenant, assigned_only=mode == "assigned")


def test_assigned_mode_copies_only_assigned_groups_with_nested_members(
    tenant: EmuTenant,
) -> None:
    directory = add_and_verify(tenant, "assigned")
    parent = next(g for g in tenant.groups if tenant.members_of(g, transitive=False, kind="group"))
    if not any(a.principal_id == parent for a in tenant.assignments):
        tenant.assign_group(parent)
    nested = tenant.members_of(parent, transitive=False, kind="group")[0]
    nested_only = [
        u
        for u in tenant.members_of(nested, transitive=True, kind="user")
        if u not in tenant.members_of(parent, transitive=False, kind="user")
    ]

    sync_json()

    assert_matches_tenant(directory, tenant, assigned_only=True)
    assert len(SyncedGroup.objects.all()) < len(tenant.groups)
    parent_members = set(
        SyncedGroup.objects.get(entra_id=parent)
        .memberships.present()
        .values_list("user__entra_id", flat=True)
    )
    assert nested_only and set(nested_only) <= parent_members


def test_changes_between_syncs_are_applied(tenant: EmuTenant) -> None:
    directory = add_and_verify(tenant, "all")
    sync_json()
    user = next(u for u in tenant.users.values() if u.user_type == "Member")
    tenant.rename_user(user.id, display_name="Renamed Person")
    group_id, member = next(
        (g, m)
        for g in tenant.groups
        for m in tenant.members_of(g, transitive=False, kind="user")
        if m != user.id
    )
    tenant.remove_member(group_id, member)
    newcomer = tenant.add_user(
        EmuUser(
            id="7e57aaaa-0000-4000-8000-000000000001",
            user_principal_name="newcomer@contoso.onmicrosoft.com",
            mail=None,
            display_name="Newcomer",
            given_name=None,
            surname=None,
            account_enabled=True,
            user_type="Member",
        )
    )
    tenant.add_member(group_id, newcomer.id)

    summary = sync_json()

    assert summary["users"]["updated"] >= 1
    assert summary["users"]["created"] == 1
    assert summary["memberships"]["removed"] >= 1
    assert SyncedUser.objects.get(entra_id=user.id).display_name == "Renamed Person"
    assert_matches_tenant(directory, tenant, assigned_only=False)

    assert sync_json()["users"] == {
        "seen": summary["users"]["seen"],
        "created": 0,
        "updated": 0,
        "removed": 0,
    }


def test_throttling_is_survived(
    tenant: EmuTenant, emulator: Emulator, no_real_sleep: list[float]
) -> None:
    directory = add_and_verify(tenant, "all")
    emulator.graph.throttle_limit = 5  # requests per 10 s window, then 429 + Retry-After

    summary = sync_json()

    assert summary["status"] == "succeeded"
    assert summary["retries"] > 0
    assert emulator.graph.counters["throttled"] > 0
    assert no_real_sleep and all(wait > 0 for wait in no_real_sleep)
    assert_matches_tenant(directory, tenant, assigned_only=False)


def test_transient_failures_are_retried(tenant: EmuTenant, emulator: Emulator) -> None:
    add_and_verify(tenant, "all")
    emulator.fail_next(503, count=2)

    summary = sync_json()

    assert summary["status"] == "succeeded"
    assert summary["retries"] == 2


def test_an_expired_token_is_replaced_mid_run(tenant: EmuTenant, emulator: Emulator) -> None:
    add_and_verify(tenant, "all")
    sync_json()
    emulator.expire_tokens()  # MSAL still holds the token in its cache; Graph now says 401

    summary = sync_json()

    assert summary["status"] == "succeeded"
    assert summary["retries"] == 1


def test_an_expired_client_secret_is_reported_clearly(
    tenant: EmuTenant, emulator: Emulator
) -> None:
    directory = add_and_verify(tenant, "all")
    sync_json()
    users_before = SyncedUser.objects.present().count()
    emulator.add_app(CLIENT_ID, CLIENT_SECRET, secret_expired=True)
    from directories.graph import forget_cached_tokens

    forget_cached_tokens()

    with pytest.raises(
        CommandError, match="client secret of the Directory Sync application has expired"
    ):
        call_command("sync_directory", "Contoso", stdout=io.StringIO())

    run = SyncRun.objects.filter(directory=directory).first()
    assert run is not None and run.error_class == "unauthorized"
    assert "ENTRA_CLIENT_SECRET" in run.error_remediation
    assert SyncedUser.objects.present().count() == users_before


def test_a_missing_user_permission_names_it(tenant: EmuTenant, emulator: Emulator) -> None:
    emulator.add_app(
        CLIENT_ID,
        CLIENT_SECRET,
        permissions={"GroupMember.Read.All", "Application.Read.All", "Organization.Read.All"},
    )
    add_and_verify(tenant, "all")

    with pytest.raises(CommandError, match=r"needs the User\.Read\.All"):
        call_command("sync_directory", "Contoso", stdout=io.StringIO())
    assert SyncRun.objects.get().error_class == "forbidden"


def test_verify_explains_a_missing_authentication_app(tenant: EmuTenant) -> None:
    tenant.auth_sp_id = None
    command("add_directory", "--name", "Contoso", "--mode", "assigned")

    with pytest.raises(CommandError, match="has no service principal in this tenant"):
        call_command("verify_directory", "Contoso", "--tenant-id", tenant.tenant_id)
    assert not Directory.objects.get().is_verified


def test_verify_explains_an_unknown_tenant(tenant: EmuTenant) -> None:
    command("add_directory", "--name", "Contoso", "--mode", "all")

    with pytest.raises(CommandError, match=r"Tenant 0bad0bad-.* was not found in Microsoft Entra"):
        call_command(
            "verify_directory", "Contoso", "--tenant-id", "0bad0bad-0000-4000-8000-000000000000"
        )


def test_scheduled_work_asks_graph_for_low_priority(tenant: EmuTenant, emulator: Emulator) -> None:
    from directories.sync import directory_sync

    directory = add_and_verify(tenant, "all")

    directory_sync(directory=directory, trigger=SyncRun.Trigger.SCHEDULE)

    assert emulator.graph.counters["priority.low"] > 0


@pytest.mark.skipif(not CHECKER.exists(), reason="shared/tools/graph_request_check.py not found")
def test_every_request_the_sync_makes_matches_microsofts_openapi_description(
    tenant: EmuTenant, emulator: Emulator, tmp_path: Path
) -> None:
    add_and_verify(tenant, "assigned")
    sync_json()
    # The OpenAPI subset has no `$batch` path: the POST is left out, its parts (logged after
    # it as the GETs they stand for) are checked like any other request.
    sent = [(m, u) for m, u in emulator.requests_seen if not u.endswith("/$batch")]
    assert len(sent) < len(emulator.requests_seen), "the sync sent no $batch"
    assert any("/members" in u for _, u in sent)
    requests_file = tmp_path / "requests.txt"
    requests_file.write_text("\n".join(f"{m} {u}" for m, u in sent))

    result = subprocess.run(
        [sys.executable, str(CHECKER), str(requests_file)], capture_output=True, text=True
    )

    assert result.returncode == 0, result.stdout
    assert ", 0 problems" in result.stdout


def test_clock_fixture_is_shared(clock: EmulatorClock, emulator: Emulator) -> None:
    assert emulator.clock is clock
