"""Delta sync end to end: the real Graph client, MSAL and engine against the emulator's delta
rounds and `$batch`, with the tenant changed between runs the way a real one changes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from directories.models import Directory, SyncMode, SyncRun
from directories.sync import directory_sync
from entra_emulator import Emulator, EmuTenant, generate_tenant
from entra_emulator.expected import expected_directory
from entra_emulator.scenarios import churn
from identities.selectors import directory_present_state
from tests.conftest import AUTH_CLIENT_ID
from tests.factories import DirectoryFactory

pytestmark = pytest.mark.django_db


def sync(directory: Directory) -> SyncRun:
    directory.refresh_from_db()
    outcome = directory_sync(
        directory=directory, trigger=SyncRun.Trigger.COMMAND, allow_mass_delete=True
    )
    assert outcome.run is not None
    assert outcome.run.status == SyncRun.Status.SUCCEEDED, outcome.run.error_message
    return outcome.run


def connected(tenant: EmuTenant, mode: str) -> Directory:
    directory: Directory = DirectoryFactory(
        sync_mode=mode, tenant_id=tenant.tenant_id, tenant_name=tenant.display_name
    )
    return directory


def assert_matches(directory: Directory, tenant: EmuTenant, mode: str) -> None:
    expected = expected_directory(tenant, assigned_only=mode == SyncMode.ASSIGNED)
    state = directory_present_state(directory=directory)
    assert state.group_ids == expected.group_ids
    assert state.user_ids == expected.user_ids
    assert state.memberships == expected.memberships


@pytest.mark.parametrize("mode", [SyncMode.ALL, SyncMode.ASSIGNED])
def test_a_day_of_changes_is_read_as_a_delta_and_matches_the_tenant(
    tenant: EmuTenant, emulator: Emulator, mode: str
) -> None:
    directory = connected(tenant, mode)
    first = sync(directory)
    assert first.read_mode == SyncRun.ReadMode.FULL
    assert_matches(directory, tenant, mode)

    churn(tenant, share=0.05, seed=3)
    run = sync(directory)

    assert run.read_mode == SyncRun.ReadMode.DELTA
    assert run.summary() != "no changes"
    assert_matches(directory, tenant, mode)


@pytest.mark.parametrize(("mode", "requests"), [(SyncMode.ALL, 2), (SyncMode.ASSIGNED, 3)])
def test_a_no_change_resync_costs_a_handful_of_requests(
    tenant: EmuTenant, mode: str, requests: int
) -> None:
    directory = connected(tenant, mode)
    sync(directory)

    run = sync(directory)

    assert (run.read_mode, run.summary(), run.graph_requests) == (
        SyncRun.ReadMode.DELTA,
        "no changes",
        requests,
    )


@pytest.mark.parametrize("status", [400, 410])
def test_an_expired_delta_token_falls_back_to_a_full_read(
    tenant: EmuTenant, emulator: Emulator, status: int
) -> None:
    directory = connected(tenant, SyncMode.ALL)
    sync(directory)
    churn(tenant, share=0.05, seed=4)
    emulator.graph.delta.expire(tenant.tenant_id, status=status)

    run = sync(directory)

    assert run.read_mode == SyncRun.ReadMode.FULL_EXPIRED
    assert_matches(directory, tenant, SyncMode.ALL)
    assert sync(directory).read_mode == SyncRun.ReadMode.DELTA


@pytest.mark.parametrize("mode", [SyncMode.ALL, SyncMode.ASSIGNED])
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    days=st.lists(
        st.tuples(st.sampled_from([0.01, 0.05, 0.2]), st.integers(min_value=1, max_value=10**6)),
        min_size=1,
        max_size=4,
    )
)
def test_after_any_days_of_changes_the_delta_synced_copy_equals_a_fresh_full_sync(
    emulator: Emulator, graph_http: object, mode: str, days: list[tuple[float, int]]
) -> None:
    tenant = emulator.add_tenant(
        generate_tenant(users=80, groups=12, seed=days[0][1] % 97, auth_app_id=AUTH_CLIENT_ID)
    )
    directory = connected(tenant, mode)
    sync(directory)

    for share, seed in days:
        churn(tenant, share=share, seed=seed)
        if (
            mode == SyncMode.ASSIGNED
            and not expected_directory(tenant, assigned_only=True).group_ids
        ):
            tenant.assign_group(sorted(tenant.groups)[0])  # else: not_assigned, by design
        assert sync(directory).read_mode == SyncRun.ReadMode.DELTA

    fresh = connected(tenant, mode)
    assert sync(fresh).read_mode == SyncRun.ReadMode.FULL
    assert directory_present_state(directory=directory) == directory_present_state(directory=fresh)
    assert_matches(directory, tenant, mode)
