"""prune_history: what it prints (only its output on stdout), --dry-run and --json."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from pytest_django.fixtures import Settings

from directories.models import Directory, SyncRun
from identities.models import SyncedUser
from tests.factories import DirectoryFactory, MembershipFactory, SyncedUserFactory, SyncRunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def old_history(settings: Settings) -> Directory:
    """One old run to prune (and the latest, kept), and a user removed long ago."""
    settings.SYNC_RUN_RETENTION_DAYS = 90
    settings.REMOVED_OBJECT_RETENTION_DAYS = 30
    directory = DirectoryFactory(name="Contoso")
    long_ago = timezone.now() - timedelta(days=100)
    SyncRunFactory(directory=directory, started_at=long_ago)
    SyncRunFactory(directory=directory)
    user = SyncedUserFactory(directory=directory, removed_at=long_ago)
    MembershipFactory.create_batch(2, directory=directory, user=user, removed_at=long_ago)
    return directory


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("prune_history", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_prints_what_it_pruned_per_kind() -> None:
    out, err = run()

    assert out.splitlines() == [
        "1 sync run pruned (started more than 90 days ago)",
        "2 memberships pruned (removed more than 30 days ago)",
        "1 user pruned (removed more than 30 days ago)",
        "0 groups pruned (removed more than 30 days ago)",
    ]
    assert err == ""
    assert SyncRun.objects.count() == 1 and not SyncedUser.objects.exists()


def test_a_dry_run_prints_what_would_be_pruned_and_deletes_nothing() -> None:
    out, _err = run("--dry-run")

    assert out.splitlines()[:2] == [
        "1 sync run would be pruned (started more than 90 days ago)",
        "2 memberships would be pruned (removed more than 30 days ago)",
    ]
    assert SyncRun.objects.count() == 2 and SyncedUser.objects.count() == 1


def test_a_retention_of_zero_says_kept_forever(settings: Settings) -> None:
    settings.SYNC_RUN_RETENTION_DAYS = 0

    out, _err = run()

    assert out.splitlines()[0] == "sync runs: kept forever (SYNC_RUN_RETENTION_DAYS=0)"
    assert SyncRun.objects.count() == 2


@pytest.mark.parametrize("dry_run", [False, True])
def test_json_is_the_only_output(dry_run: bool) -> None:
    out, err = run("--json", *(["--dry-run"] if dry_run else []))

    assert json.loads(out) == {
        "dry_run": dry_run,
        "retention_days": {"sync_runs": 90, "removed_objects": 30},
        "pruned": {"sync_runs": 1, "memberships": 2, "users": 1, "groups": 0},
        "skipped_directories": [],
    }
    assert err == ""


def test_a_directory_whose_sync_is_running_is_named_on_stderr(old_history: Directory) -> None:
    Directory.objects.filter(pk=old_history.pk).update(
        sync_lock_token="sync", sync_lock_expires_at=timezone.now() + timedelta(minutes=5)
    )

    out, err = run()

    assert "0 users pruned (removed more than 30 days ago)" in out.splitlines()
    assert err.strip() == (
        "Contoso: a sync is running, so its removed objects are left for the next prune."
    )
    assert json.loads(run("--json")[0])["skipped_directories"] == ["Contoso"]
