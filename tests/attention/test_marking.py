"""Which failures make a directory need attention, and when: at once for what will not fix
itself, after SYNC_ATTENTION_AFTER_HOURS of nothing but failures for the rest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings

from directories.graph import (
    GraphError,
    GraphForbidden,
    GraphNotAssigned,
    GraphUnauthorized,
    GraphWrongTenant,
)
from directories.models import Directory, DirectoryStatus, SyncRun
from directories.services.attention import attention_reason, directory_failing_since
from directories.sync import directory_sync
from directories.sync.engine import directory_record_outcome
from tests.factories import SyncRunFactory

from ..sync.fakes import FakeGraph
from .conftest import past_failures, verified_long_ago

pytestmark = pytest.mark.django_db

PERSISTENT = [
    (GraphUnauthorized, "Microsoft refused entra-sync's credentials for this tenant."),
    (GraphForbidden, "Microsoft Graph denied a permission entra-sync needs."),
    (GraphNotAssigned, "No groups can be read in 'Assigned groups only' mode."),
    (GraphWrongTenant, "The tenant answering is not the one this directory is connected to."),
]
PASSING = ["throttled", "transient", "bad_response", "internal", "interrupted"]


def fail_once(directory: Directory, error_class: str) -> SyncRun:
    """A run that just failed, recorded as the engine records every finished run."""
    run: SyncRun = SyncRunFactory(
        directory=directory,
        trigger=SyncRun.Trigger.SCHEDULE,
        status=SyncRun.Status.FAILED,
        error_class=error_class,
        error_message=f"The last run failed ({error_class}).",
        error_remediation="Nothing was changed; the next scheduled sync retries.",
    )
    directory_record_outcome(directory, run)
    return run


@pytest.mark.parametrize(("error", "cause"), PERSISTENT)
def test_a_failure_that_will_not_fix_itself_marks_the_directory_at_once(
    graph: FakeGraph, error: type[GraphError], cause: str
) -> None:
    directory = verified_long_ago(name="Contoso")
    graph.fail_with = error("What Microsoft said.", remediation="What to do about it.")

    directory_sync(directory=directory, trigger=SyncRun.Trigger.SCHEDULE)

    directory.refresh_from_db()
    assert directory.needs_attention
    assert directory.consecutive_failures == 1
    assert directory.attention_reason.splitlines() == [
        cause,
        "What failed: What Microsoft said.",
        "What to do: What to do about it.",
    ]
    assert directory.status() == DirectoryStatus.NEEDS_ATTENTION


@pytest.mark.parametrize("error_class", PASSING)
def test_a_passing_failure_does_not_mark_the_directory_within_the_hours(error_class: str) -> None:
    directory = verified_long_ago()
    past_failures(directory, since=timedelta(hours=23), error_class=error_class)

    fail_once(directory, error_class)

    directory.refresh_from_db()
    assert not directory.needs_attention
    assert directory.status() == DirectoryStatus.FAILING


@pytest.mark.parametrize("error_class", PASSING)
def test_a_passing_failure_marks_the_directory_once_it_lasted_the_hours(error_class: str) -> None:
    directory = verified_long_ago()
    past_failures(directory, since=timedelta(hours=25), error_class=error_class)

    run = fail_once(directory, error_class)

    directory.refresh_from_db()
    assert directory.attention_since == run.finished_at
    reason = directory.attention_reason.splitlines()
    assert reason[0] == "No sync has read the directory for 25 hours: every run failed."
    assert reason[1] == f"What failed: The last run failed ({error_class})."


def test_a_success_within_the_hours_means_the_failures_did_not_last() -> None:
    directory = verified_long_ago()
    past_failures(directory, since=timedelta(hours=30))
    SyncRunFactory(directory=directory, started_at=timezone.now() - timedelta(hours=10))

    fail_once(directory, "transient")

    directory.refresh_from_db()
    assert not directory.needs_attention


def test_a_run_held_for_approval_counts_as_reading_the_directory() -> None:
    directory = verified_long_ago()
    past_failures(directory, since=timedelta(hours=30))
    SyncRunFactory(
        directory=directory,
        status=SyncRun.Status.NEEDS_APPROVAL,
        started_at=timezone.now() - timedelta(hours=10),
    )

    fail_once(directory, "throttled")

    directory.refresh_from_db()
    assert not directory.needs_attention


def test_a_verification_within_the_hours_starts_the_count_again() -> None:
    directory = verified_long_ago()
    past_failures(directory, since=timedelta(hours=30))
    Directory.objects.filter(pk=directory.pk).update(
        verified_at=timezone.now() - timedelta(hours=3)
    )
    directory.refresh_from_db()

    fail_once(directory, "transient")

    directory.refresh_from_db()
    assert not directory.needs_attention


def test_the_hours_come_from_the_setting(settings: Settings) -> None:
    settings.SYNC_ATTENTION_AFTER_HOURS = 2
    directory = verified_long_ago()
    past_failures(directory, since=timedelta(hours=3))

    fail_once(directory, "transient")

    directory.refresh_from_db()
    assert directory.needs_attention


def test_the_hours_are_counted_from_the_first_failure_on_a_set_clock() -> None:
    directory = verified_long_ago()
    past_failures(directory, since=timedelta(hours=6))
    run = SyncRunFactory(directory=directory, status=SyncRun.Status.FAILED, error_class="transient")
    first = directory_failing_since(directory=directory)
    assert first is not None

    just_before = attention_reason(
        directory=directory, run=run, now=first + timedelta(hours=24) - timedelta(seconds=1)
    )
    on_the_hour = attention_reason(directory=directory, run=run, now=first + timedelta(hours=24))

    assert just_before is None
    assert on_the_hour is not None and on_the_hour.startswith("No sync has read the directory")


def test_a_passing_failure_while_marked_keeps_the_reason_and_since(graph: FakeGraph) -> None:
    directory = verified_long_ago()
    graph.fail_with = GraphUnauthorized("The client secret expired.")
    directory_sync(directory=directory, trigger=SyncRun.Trigger.MANUAL)
    directory.refresh_from_db()
    since, reason = directory.attention_since, directory.attention_reason

    fail_once(directory, "transient")

    directory.refresh_from_db()
    assert (directory.attention_since, directory.attention_reason) == (since, reason)
    assert "The client secret expired." in reason


def test_a_new_reason_while_marked_replaces_the_old_one_but_not_the_since(
    graph: FakeGraph,
) -> None:
    directory = verified_long_ago()
    graph.fail_with = GraphUnauthorized("The client secret expired.")
    directory_sync(directory=directory, trigger=SyncRun.Trigger.MANUAL)
    directory.refresh_from_db()
    since = directory.attention_since

    graph.fail_with = GraphForbidden("User.Read.All is missing.")
    directory_sync(directory=directory, trigger=SyncRun.Trigger.MANUAL)

    directory.refresh_from_db()
    assert directory.attention_since == since
    assert "User.Read.All is missing." in directory.attention_reason
