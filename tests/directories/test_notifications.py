"""Admins hear about persistent failures once, and about the recovery."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage

from directories.models import SyncRun
from directories.services.notifications import directory_notify_run
from tests.factories import DirectoryFactory, SyncRunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def admin_with_email() -> None:
    get_user_model().objects.create_superuser("boss", "boss@example.com", "x")


def failed_run(directory: object) -> SyncRun:
    return SyncRunFactory(
        directory=directory,
        status=SyncRun.Status.FAILED,
        error_class="forbidden",
        error_message="Microsoft Graph denied access.",
        error_remediation="Grant User.Read.All.",
        graph_request_id="req-9",
    )


def test_the_third_failure_in_a_row_mails_the_admins(mailoutbox: list[EmailMessage]) -> None:
    directory = DirectoryFactory(name="Contoso", consecutive_failures=3)

    assert directory_notify_run(directory=directory, run=failed_run(directory), failures_before=2)

    (mail,) = mailoutbox
    assert mail.to == ["boss@example.com"]
    assert mail.subject == "entra-sync: Contoso is failing to sync"
    assert "Grant User.Read.All." in mail.body and "req-9" in mail.body


@pytest.mark.parametrize("failures", [1, 2, 4])
def test_other_failures_send_nothing(mailoutbox: list[EmailMessage], failures: int) -> None:
    directory = DirectoryFactory(consecutive_failures=failures)

    assert not directory_notify_run(
        directory=directory, run=failed_run(directory), failures_before=failures - 1
    )
    assert mailoutbox == []


def test_a_success_after_persistent_failures_mails_the_recovery(
    mailoutbox: list[EmailMessage],
) -> None:
    directory = DirectoryFactory(name="Contoso", consecutive_failures=0)
    run = SyncRunFactory(directory=directory, users_created=2)

    assert directory_notify_run(directory=directory, run=run, failures_before=5)

    assert mailoutbox[0].subject == "entra-sync: Contoso syncs again"
    assert "after 5 failed runs" in mailoutbox[0].body


def test_a_success_after_a_passing_failure_sends_nothing(mailoutbox: list[EmailMessage]) -> None:
    directory = DirectoryFactory()

    assert not directory_notify_run(
        directory=directory, run=SyncRunFactory(directory=directory), failures_before=1
    )
    assert mailoutbox == []
