"""Fetch progress is written to the running SyncRun so a page can show it without a reload."""

from __future__ import annotations

import pytest

from directories.models import SyncRun
from directories.sync import directory_sync
from directories.sync.snapshot import FetchProgress
from tests.factories import DirectoryFactory

from ..sync.fakes import FakeGraph, make_group, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def five_groups(graph: FakeGraph) -> FakeGraph:
    for n in range(5):
        graph.add_group(make_group(f"Team {n}"), [make_user(f"User{n}a"), make_user(f"User{n}b")])
    return graph


def sync_watching_progress(graph: FakeGraph) -> list[tuple[FetchProgress, tuple[int, ...]]]:
    """Sync; after each progress report, read what another process would see in the run row."""
    directory = DirectoryFactory()
    seen: list[tuple[FetchProgress, tuple[int, ...]]] = []

    def spy(state: FetchProgress) -> None:
        row = SyncRun.objects.filter(directory=directory).values_list(
            "groups_total", "groups_done", "users_seen"
        )
        seen.append((state, row.get()))

    directory_sync(directory=directory, trigger=SyncRun.Trigger.MANUAL, client=graph, progress=spy)
    return seen


def test_progress_reaches_the_run_row_during_the_fetch(
    five_groups: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("directories.sync.engine.PROGRESS_INTERVAL_SECONDS", 0)

    seen = sync_watching_progress(five_groups)

    assert len(seen) >= 2
    for state, row in seen:
        assert row == (state.groups_total, state.groups_done, state.users_seen)
    run = SyncRun.objects.get()
    assert (run.groups_total, run.groups_done, run.users_seen) == (5, 5, 10)
    assert run.progress_at is not None
    assert run.status == SyncRun.Status.SUCCEEDED


def test_progress_is_written_at_most_once_an_interval_and_at_the_end(
    five_groups: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("directories.sync.engine.PROGRESS_INTERVAL_SECONDS", 3600)

    seen = sync_watching_progress(five_groups)

    first, *middle, last = seen
    # The first report is written: the page learns the total (users are read before members).
    assert first[1] == (5, 0, 10)
    assert all(row == (5, 0, 10) for _, row in middle)  # throttled
    assert last[1] == (5, 5, 10)  # the end of the fetch is always written
