"""E-mail while a directory needs attention: one alert, reminders that back off, one recovery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.mail import EmailMessage

from directories.graph import GraphForbidden, GraphUnauthorized
from directories.models import Directory, SyncRun
from directories.services.notifications import directory_notify_attention, reminder_due_at
from directories.services.verify import TenantProbe, directory_mark_verified
from directories.sync import directory_sync
from directories.sync.engine import directory_record_outcome
from directories.tasks import run_directory_sync
from tests.factories import SyncRunFactory

from ..sync.fakes import FakeGraph
from .conftest import Clock, past_failures, verified_long_ago

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def refused(
    directory: Directory, graph: FakeGraph, trigger: str = SyncRun.Trigger.SCHEDULE
) -> None:
    graph.fail_with = GraphForbidden(
        "Insufficient privileges: it needs User.Read.All.",
        remediation="Grant User.Read.All, then grant admin consent again.",
        request_id="req-403",
    )
    directory_sync(directory=directory, trigger=trigger)
    directory.refresh_from_db()


def test_coming_to_need_attention_mails_the_admins_once_with_what_to_do(
    graph: FakeGraph, mailoutbox: list[EmailMessage]
) -> None:
    directory = verified_long_ago(name="Contoso")

    refused(directory, graph)

    (mail,) = mailoutbox
    assert mail.to == ["boss@example.com"]
    assert mail.subject == "entra-sync: Contoso is failing to sync and needs attention"
    body = mail.body.splitlines()
    assert body[0] == "Contoso needs attention: its scheduled syncs are paused until it is fixed."
    assert "What failed: Insufficient privileges: it needs User.Read.All." in body
    assert "What to do: Grant User.Read.All, then grant admin consent again." in body
    assert "Error class: forbidden" in body
    assert "Graph request-id (for Microsoft support): req-403" in body
    assert "manage.py verify_directory Contoso" in mail.body
    assert directory.alerted_at is not None


def test_more_failures_by_hand_within_the_hour_send_nothing_more(
    graph: FakeGraph, mailoutbox: list[EmailMessage]
) -> None:
    directory = verified_long_ago()
    refused(directory, graph)

    refused(directory, graph, trigger=SyncRun.Trigger.MANUAL)
    refused(directory, graph, trigger=SyncRun.Trigger.MANUAL)

    assert len(mailoutbox) == 1


def test_reminders_back_off_1_4_and_24_hours_then_daily(
    graph: FakeGraph, mailoutbox: list[EmailMessage], clock: Clock
) -> None:
    """The paused schedule comes round every half hour here; mails go out only as due."""
    directory = verified_long_ago(name="Contoso")
    refused(directory, graph)
    start = directory.attention_since
    assert start is not None
    clock.now = start
    sent_at = []

    for _ in range(4 * 24 * 2):
        clock.advance(HOUR / 2)
        before = len(mailoutbox)
        result = run_directory_sync(directory.pk, str(SyncRun.Trigger.SCHEDULE))
        assert result["status"] == "paused"
        if len(mailoutbox) > before:
            sent_at.append((clock.now - start) / HOUR)

    assert sent_at == [1, 5, 29, 53, 77]
    assert [m.subject for m in mailoutbox[1:]] == ["entra-sync: Contoso still needs attention"] * 5
    assert "paused since" in mailoutbox[1].body
    assert "Error class: forbidden" in mailoutbox[1].body  # from the latest failed run
    assert SyncRun.objects.filter(directory=directory).count() == 1


def test_a_late_reminder_keeps_the_rhythm_from_the_start() -> None:
    start = verified_long_ago().verified_at
    assert start is not None

    assert reminder_due_at(attention_since=start, alerted_at=start) == start + HOUR
    assert reminder_due_at(attention_since=start, alerted_at=start + 2 * HOUR) == start + 5 * HOUR
    assert reminder_due_at(attention_since=start, alerted_at=start + 6 * HOUR) == start + 29 * HOUR
    assert reminder_due_at(attention_since=start, alerted_at=start + 29 * HOUR) == start + 53 * HOUR


def test_two_processes_due_at_once_send_one_reminder(
    graph: FakeGraph, mailoutbox: list[EmailMessage]
) -> None:
    directory = verified_long_ago()
    refused(directory, graph)
    assert directory.attention_since is not None
    later = directory.attention_since + 2 * HOUR
    stale = Directory.objects.get(pk=directory.pk)

    assert directory_notify_attention(directory=directory, now=later)
    assert not directory_notify_attention(directory=stale, now=later)
    assert len(mailoutbox) == 2  # the first alert and one reminder


def test_recovery_is_mailed_once(graph: FakeGraph, mailoutbox: list[EmailMessage]) -> None:
    directory = verified_long_ago(name="Contoso")
    refused(directory, graph)
    graph.fail_with = None

    directory_sync(directory=directory, trigger=SyncRun.Trigger.MANUAL)
    directory_sync(directory=directory, trigger=SyncRun.Trigger.MANUAL)

    assert [m.subject for m in mailoutbox] == [
        "entra-sync: Contoso is failing to sync and needs attention",
        "entra-sync: Contoso syncs again",
    ]
    assert "after 1 failed run." in mailoutbox[1].body
    directory.refresh_from_db()
    assert directory.alerted_at is None


def test_after_a_verification_the_next_success_is_the_recovery(
    graph: FakeGraph, mailoutbox: list[EmailMessage]
) -> None:
    directory = verified_long_ago(name="Contoso")
    refused(directory, graph)
    directory_mark_verified(
        directory=directory,
        probe=TenantProbe(directory.tenant_id, "Contoso", "contoso.com", assigned_groups=None),
    )
    graph.fail_with = None

    directory_sync(directory=directory, trigger=SyncRun.Trigger.SCHEDULE)

    assert [m.subject for m in mailoutbox][-1] == "entra-sync: Contoso syncs again"


def test_coming_back_after_a_verification_alerts_again(
    graph: FakeGraph, mailoutbox: list[EmailMessage]
) -> None:
    directory = verified_long_ago(name="Contoso")
    refused(directory, graph)
    directory_mark_verified(
        directory=directory,
        probe=TenantProbe(directory.tenant_id, "Contoso", "contoso.com", assigned_groups=None),
    )

    graph.fail_with = GraphUnauthorized("The secret expired after all.")
    directory_sync(directory=directory, trigger=SyncRun.Trigger.SCHEDULE)

    assert [m.subject for m in mailoutbox] == [
        "entra-sync: Contoso is failing to sync and needs attention"
    ] * 2


def test_passing_failures_alert_at_the_threshold_then_again_when_paused(
    mailoutbox: list[EmailMessage],
) -> None:
    directory = verified_long_ago(name="Contoso")
    past_failures(directory, since=timedelta(hours=4), every=2 * HOUR)  # two failures
    third = SyncRunFactory(
        directory=directory, status=SyncRun.Status.FAILED, error_class="transient"
    )
    directory_record_outcome(directory, third)
    assert [m.subject for m in mailoutbox] == ["entra-sync: Contoso is failing to sync"]

    past_failures(directory, since=timedelta(hours=25))
    last = SyncRunFactory(
        directory=directory, status=SyncRun.Status.FAILED, error_class="transient"
    )
    directory_record_outcome(directory, last)

    assert [m.subject for m in mailoutbox][1:] == [
        "entra-sync: Contoso is failing to sync and needs attention"
    ]
    assert "No sync has read the directory for 25 hours" in mailoutbox[1].body
