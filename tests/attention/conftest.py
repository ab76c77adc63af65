"""Directories verified long ago, failure histories and a clock the tests set."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from directories.models import Directory, SyncRun
from tests.factories import DirectoryFactory, SyncRunFactory

from ..sync.fakes import FakeGraph, make_group, make_user


@pytest.fixture(autouse=True)
def admin_with_email(db: None) -> None:
    get_user_model().objects.create_superuser("boss", "boss@example.com", "x")


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> FakeGraph:
    """FakeGraph, with one small group, behind every sync the engine starts."""
    fake = FakeGraph()
    fake.add_group(make_group("Everyone"), [make_user("Ada"), make_user("Bob")])
    monkeypatch.setattr("directories.sync.engine.graph_client_for", lambda **kwargs: fake)
    return fake


def verified_long_ago(**fields: Any) -> Directory:
    """A directory verified a month ago: its failures are not cut short by the verification."""
    directory: Directory = DirectoryFactory(
        verified_at=timezone.now() - timedelta(days=30), **fields
    )
    return directory


def past_failures(
    directory: Directory,
    *,
    since: timedelta,
    error_class: str = "transient",
    every: timedelta = timedelta(hours=2),
) -> int:
    """Failed runs from `since` ago until just now, as the schedule leaves them; counted on the
    directory as the engine counts them. Returns how many."""
    now = timezone.now()
    moment, count = now - since, 0
    while moment < now - timedelta(minutes=1):
        SyncRunFactory(
            directory=directory,
            trigger=SyncRun.Trigger.SCHEDULE,
            status=SyncRun.Status.FAILED,
            error_class=error_class,
            error_message="Microsoft Graph kept failing.",
            error_remediation="Nothing was changed; the next scheduled sync retries.",
            started_at=moment,
            finished_at=moment + timedelta(seconds=5),
        )
        moment, count = moment + every, count + 1
    Directory.objects.filter(pk=directory.pk).update(
        consecutive_failures=count, last_sync_status=SyncRun.Status.FAILED
    )
    directory.refresh_from_db()
    return count


class Clock:
    """`timezone.now()` for the code under test, moved by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, span: timedelta) -> None:
        self.now += span


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(timezone.now())
    monkeypatch.setattr("django.utils.timezone.now", clock)
    return clock
