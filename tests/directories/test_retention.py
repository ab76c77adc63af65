"""Retention: old runs and long-removed objects go; present objects and needed runs stay."""

from __future__ import annotations

import runpy
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django.fixtures import Settings

from directories.models import Directory, SyncRun
from directories.services.retention import history_prune
from identities.models import Membership, SyncedGroup, SyncedUser
from tests.factories import (
    DirectoryFactory,
    MembershipFactory,
    SyncedGroupFactory,
    SyncedUserFactory,
    SyncRunFactory,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()
# Just past and just short of the 90-day retention the fixture below sets.
OLD = NOW - timedelta(days=90, seconds=1)
RECENT = NOW - timedelta(days=90) + timedelta(seconds=1)
SETTINGS_FILE = Path(__file__).resolve().parents[2] / "config" / "settings.py"


@pytest.fixture(autouse=True)
def retention(settings: Settings) -> None:
    settings.SYNC_RUN_RETENTION_DAYS = 90
    settings.REMOVED_OBJECT_RETENTION_DAYS = 90


def exists(*objs: Model) -> bool:
    """Whether every one of them is still in the database."""
    return all(type(obj)._default_manager.filter(pk=obj.pk).exists() for obj in objs)


def gone(*objs: Model) -> bool:
    return not any(exists(obj) for obj in objs)


def test_runs_started_before_the_retention_are_pruned_and_later_ones_kept() -> None:
    directory = DirectoryFactory()
    old = SyncRunFactory(directory=directory, started_at=OLD)
    at_cutoff = SyncRunFactory(directory=directory, started_at=NOW - timedelta(days=90))
    recent = SyncRunFactory(directory=directory, started_at=RECENT)
    SyncRunFactory(directory=directory, started_at=NOW)

    result = history_prune(now=NOW)

    assert result.pruned["sync_runs"] == 1
    assert gone(old)
    assert exists(at_cutoff, recent)


def test_a_directorys_latest_run_is_kept_however_old() -> None:
    directory, other = DirectoryFactory(), DirectoryFactory()
    older = SyncRunFactory(directory=directory, started_at=OLD - timedelta(days=30))
    latest = SyncRunFactory(directory=directory, started_at=OLD)
    failed_latest = SyncRunFactory(
        directory=other, started_at=OLD, status=SyncRun.Status.FAILED, error_class="forbidden"
    )

    history_prune(now=NOW)

    assert gone(older)
    assert exists(latest, failed_latest)


@pytest.mark.parametrize("status", [SyncRun.Status.RUNNING, SyncRun.Status.NEEDS_APPROVAL])
def test_running_and_held_runs_are_kept_however_old(status: str) -> None:
    directory = DirectoryFactory()
    kept = SyncRunFactory(directory=directory, started_at=OLD, status=status, finished_at=None)
    SyncRunFactory(directory=directory, started_at=NOW)

    result = history_prune(now=NOW)

    assert result.pruned["sync_runs"] == 0
    assert exists(kept)


def test_objects_removed_before_the_retention_are_pruned_and_later_ones_kept() -> None:
    directory = DirectoryFactory()
    group = SyncedGroupFactory(directory=directory)
    old_user = SyncedUserFactory(directory=directory, removed_at=OLD)
    recent_user = SyncedUserFactory(directory=directory, removed_at=RECENT)
    old_group = SyncedGroupFactory(directory=directory, removed_at=OLD)
    recent_group = SyncedGroupFactory(directory=directory, removed_at=RECENT)
    old_membership = MembershipFactory(directory=directory, group=group, removed_at=OLD)
    recent_membership = MembershipFactory(directory=directory, group=group, removed_at=RECENT)

    result = history_prune(now=NOW)

    assert result.pruned == {"sync_runs": 0, "memberships": 1, "users": 1, "groups": 1}
    assert gone(old_user, old_group, old_membership)
    assert exists(recent_user, recent_group, recent_membership, group)


def test_present_objects_are_never_pruned() -> None:
    long_ago = NOW - timedelta(days=3650)
    membership = MembershipFactory(first_synced_at=long_ago)
    SyncedUser.objects.update(first_synced_at=long_ago, changed_at=long_ago)
    SyncedGroup.objects.update(first_synced_at=long_ago, changed_at=long_ago)

    history_prune(now=NOW)

    assert exists(membership, membership.user, membership.group)


def test_a_removed_user_or_group_goes_with_its_removed_memberships() -> None:
    directory = DirectoryFactory()
    user = SyncedUserFactory(directory=directory, removed_at=OLD)
    group = SyncedGroupFactory(directory=directory, removed_at=OLD)
    present_user = SyncedUserFactory(directory=directory)
    MembershipFactory(directory=directory, user=user, removed_at=OLD)
    MembershipFactory(directory=directory, group=group, user=present_user, removed_at=OLD)

    result = history_prune(now=NOW)

    assert result.pruned["users"] == 1 and result.pruned["groups"] == 1
    assert not Membership.objects.filter(user=user.pk).exists()
    assert not Membership.objects.filter(group=group.pk).exists()
    assert exists(present_user)


def test_a_removed_user_or_group_waits_for_a_membership_still_kept() -> None:
    """The foreign key cascades: deleting them now would delete a membership still kept."""
    directory = DirectoryFactory()
    user = SyncedUserFactory(directory=directory, removed_at=OLD)
    group = SyncedGroupFactory(directory=directory, removed_at=OLD)
    recently_removed = MembershipFactory(directory=directory, user=user, removed_at=RECENT)
    present = MembershipFactory(directory=directory, group=group)

    result = history_prune(now=NOW)

    assert result.pruned["users"] == result.pruned["groups"] == 0
    assert exists(user, group, recently_removed, present)


@pytest.mark.parametrize(
    ("run_days", "removed_days", "pruned"),
    [
        (0, 90, {"sync_runs": 0, "memberships": 1, "users": 1, "groups": 1}),
        (90, 0, {"sync_runs": 1, "memberships": 0, "users": 0, "groups": 0}),
        (0, 0, {"sync_runs": 0, "memberships": 0, "users": 0, "groups": 0}),
    ],
)
def test_zero_days_keeps_forever(
    settings: Settings, run_days: int, removed_days: int, pruned: dict[str, int]
) -> None:
    settings.SYNC_RUN_RETENTION_DAYS = run_days
    settings.REMOVED_OBJECT_RETENTION_DAYS = removed_days
    directory = DirectoryFactory()
    ancient = NOW - timedelta(days=36500)
    SyncRunFactory(directory=directory, started_at=ancient)
    SyncRunFactory(directory=directory, started_at=NOW)
    SyncedUserFactory(directory=directory, removed_at=ancient)
    SyncedGroupFactory(directory=directory, removed_at=ancient)
    MembershipFactory(directory=directory, removed_at=ancient)

    assert history_prune(now=NOW).pruned == pruned


def test_rows_are_deleted_in_chunks() -> None:
    directory = DirectoryFactory()
    group = SyncedGroupFactory(directory=directory)
    MembershipFactory.create_batch(5, directory=directory, group=group, removed_at=OLD)
    SyncedUser.objects.filter(memberships__isnull=False).update(removed_at=OLD)
    SyncRunFactory.create_batch(3, directory=directory, started_at=OLD)
    SyncRunFactory(directory=directory, started_at=NOW)

    with CaptureQueriesContext(connection) as queries:
        result = history_prune(now=NOW, chunk_size=2)

    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]

    def chunks_of(table: str) -> int:
        """DELETEs of chosen rows by id (not the cascade's no-op DELETE by user_id)."""
        return sum(
            sql.startswith(f'DELETE FROM "{table}"') and f'"{table}"."id" IN (' in sql
            for sql in deletes
        )

    assert chunks_of("identities_membership") == 3
    assert chunks_of("identities_synceduser") == 3
    assert chunks_of("directories_syncrun") == 2
    assert result.pruned == {"sync_runs": 3, "memberships": 5, "users": 5, "groups": 0}
    assert not Membership.objects.exists()
    assert list(SyncedGroup.objects.all()) == [group]


def test_a_dry_run_counts_what_a_prune_deletes_and_deletes_nothing() -> None:
    directory = DirectoryFactory()
    user = SyncedUserFactory(directory=directory, removed_at=OLD)
    MembershipFactory.create_batch(2, directory=directory, user=user, removed_at=OLD)
    SyncedGroupFactory(directory=directory, removed_at=OLD)
    SyncRunFactory.create_batch(2, directory=directory, started_at=OLD)

    dry = history_prune(now=NOW, dry_run=True)
    assert Membership.objects.count() == 2 and SyncRun.objects.count() == 2

    real = history_prune(now=NOW)
    assert dry.dry_run and not real.dry_run
    assert dry.pruned == real.pruned == {"sync_runs": 1, "memberships": 2, "users": 1, "groups": 1}


def test_a_directory_whose_sync_is_running_keeps_its_removed_objects_until_next_time() -> None:
    busy, idle = DirectoryFactory(name="Busy"), DirectoryFactory(name="Idle")
    Directory.objects.filter(pk=busy.pk).update(
        sync_lock_token="sync", sync_lock_expires_at=timezone.now() + timedelta(minutes=5)
    )
    busy_user = SyncedUserFactory(directory=busy, removed_at=OLD)
    SyncedUserFactory(directory=idle, removed_at=OLD)
    SyncRunFactory.create_batch(2, directory=busy, started_at=OLD)

    result = history_prune(now=NOW)

    assert result.skipped_directories == ["Busy"]
    assert exists(busy_user)
    assert result.pruned == {"sync_runs": 1, "memberships": 0, "users": 1, "groups": 0}
    busy.refresh_from_db()
    assert busy.sync_lock_token == "sync"  # the sync's lock is left alone


def test_pruning_releases_the_directory_lock() -> None:
    directory = DirectoryFactory()
    SyncedUserFactory(directory=directory, removed_at=OLD)

    history_prune(now=NOW)

    directory.refresh_from_db()
    assert not directory.is_sync_running


# --- settings ---------------------------------------------------------------------------------


def settings_module(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, object]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_retention_defaults_to_90_days_when_unset_or_blank(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SYNC_RUN_RETENTION_DAYS", raising=False)

    module = settings_module(monkeypatch, REMOVED_OBJECT_RETENTION_DAYS=" ")

    assert module["SYNC_RUN_RETENTION_DAYS"] == module["REMOVED_OBJECT_RETENTION_DAYS"] == 90


def test_retention_days_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    module = settings_module(
        monkeypatch, SYNC_RUN_RETENTION_DAYS=" 30 ", REMOVED_OBJECT_RETENTION_DAYS="0"
    )

    assert (module["SYNC_RUN_RETENTION_DAYS"], module["REMOVED_OBJECT_RETENTION_DAYS"]) == (30, 0)


@pytest.mark.parametrize("value", ["ninety", "-1", "7.5", "36501", "²"])
@pytest.mark.parametrize("name", ["SYNC_RUN_RETENTION_DAYS", "REMOVED_OBJECT_RETENTION_DAYS"])
def test_a_bad_retention_value_is_refused_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    with pytest.raises(ImproperlyConfigured) as error:
        settings_module(monkeypatch, **{name: value})

    message = str(error.value)
    assert message.startswith(f"{name}={value!r} is ") and "days" in message
    assert "\n" not in message
