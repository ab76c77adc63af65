"""The directory's own rules: may it sync, and what its status is."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from directories.models import Directory, DirectoryPermission, DirectoryStatus, SyncState
from tests.factories import DirectoryFactory

pytestmark = pytest.mark.django_db


def test_the_syncable_queryset_and_sync_refusal_agree_on_every_combination() -> None:
    for n, (tenant, verified, enabled) in enumerate(
        itertools.product(
            ["", "0c5e1b4e-0000-4000-8000-000000000001"], [True, False], [True, False]
        )
    ):
        DirectoryFactory(
            name=f"d{n}",
            tenant_id=tenant,
            verified_at=timezone.now() if verified else None,
            is_enabled=enabled,
        )

    syncable = set(Directory.objects.syncable().values_list("name", flat=True))

    assert syncable == {d.name for d in Directory.objects.all() if d.sync_refusal() is None}
    assert len(syncable) == 1


def test_sync_refusal_says_what_to_do() -> None:
    unverified = DirectoryFactory(name="New", verified_at=None)
    disabled = DirectoryFactory(name="Off", is_enabled=False)

    assert "use Verify Now" in (unverified.sync_refusal() or "")
    assert disabled.sync_refusal() == "Off is disabled: enable it to sync."


def test_status_puts_the_most_urgent_state_first() -> None:
    now = timezone.now()
    directory = DirectoryFactory(last_sync_status="failed", error_class="unauthorized")
    assert directory.status() == DirectoryStatus.FAILING

    directory.sync_requested_at = now
    assert directory.status() == DirectoryStatus.QUEUED
    assert directory.sync_state() == SyncState.QUEUED

    directory.sync_lock_token, directory.sync_lock_expires_at = "t", now + timedelta(minutes=1)
    assert directory.status() == DirectoryStatus.SYNCING
    assert directory.sync_state() == SyncState.RUNNING

    directory.verified_at = None
    assert directory.status() == DirectoryStatus.UNVERIFIED

    directory.is_enabled = False
    assert directory.status() == DirectoryStatus.DISABLED


def test_an_expired_lock_or_a_stale_queue_marker_is_not_a_sync_on_its_way() -> None:
    long_ago = timezone.now() - timedelta(hours=2)
    directory = DirectoryFactory(
        sync_lock_token="dead-worker",
        sync_lock_expires_at=long_ago,
        sync_requested_at=long_ago,
        last_sync_status="needs_approval",
    )

    assert directory.sync_state() == SyncState.IDLE
    assert directory.status() == DirectoryStatus.NEEDS_APPROVAL


def test_every_directory_permission_exists_and_names_itself_for_has_perm() -> None:
    codenames = set(
        Permission.objects.filter(content_type__app_label="directories").values_list(
            "codename", flat=True
        )
    )

    assert {p.value for p in DirectoryPermission} <= codenames
    assert DirectoryPermission.VIEW_TROUBLESHOOTING.perm == "directories.view_troubleshooting"
