"""Recent failures grouped by error class, with remediation, and the pages that show them."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from directories.models import SyncRun
from directories.services.troubleshooting import (
    ERROR_KINDS,
    GUIDE_GROUPS_ASSIGNED,
    GUIDE_UNAUTHORIZED,
    GUIDE_USERS,
    GUIDE_WRONG_TENANT,
    error_kind,
    sync_failures_recent,
)
from entra_emulator import EmuTenant
from tests.factories import DirectoryFactory, SyncRunFactory

from .conftest import synced

FAILED = SyncRun.Status.FAILED

pytestmark = [pytest.mark.django_db]


def week_ago() -> datetime:
    return timezone.now() - timedelta(days=7)


def test_failures_are_grouped_by_error_class_in_a_stable_order() -> None:
    SyncRunFactory(status=FAILED, error_class="transient", graph_request_id="r-1")
    SyncRunFactory(status=FAILED, error_class="unauthorized")
    SyncRunFactory(status=FAILED, error_class="throttled")
    SyncRunFactory(status=SyncRun.Status.NEEDS_APPROVAL)
    SyncRunFactory(status=FAILED)  # an exception with no class recorded
    SyncRunFactory(status=SyncRun.Status.SUCCEEDED)

    groups = sync_failures_recent(since=week_ago())

    assert [g.kind.key for g in groups] == [
        "unauthorized",
        "throttled_transient",
        "needs_approval",
        "internal",
    ]
    assert len(groups[1].entries) == 2
    assert {e.request_id for e in groups[1].entries} == {"r-1", ""}


def test_failures_are_filtered_by_directory_and_period() -> None:
    mine, other = DirectoryFactory(), DirectoryFactory()
    SyncRunFactory(directory=mine, status=FAILED, error_class="forbidden")
    SyncRunFactory(directory=other, status=FAILED, error_class="forbidden")
    old = SyncRunFactory(directory=mine, status=FAILED, error_class="wrong_tenant")
    SyncRun.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(days=30))

    groups = sync_failures_recent(since=week_ago(), directory=mine)

    assert [(g.kind.key, len(g.entries)) for g in groups] == [("forbidden", 1)]
    assert groups[0].entries[0].run.directory == mine


@pytest.mark.parametrize(
    ("error_class", "words"),
    [
        ("unauthorized", ["ENTRA_CLIENT_SECRET", "Secret ID", "admin consent", "Verify Now"]),
        ("forbidden", ["User.Read.All", "GroupMember.Read.All", "grant admin consent"]),
        ("not_assigned", ["Authentication application", "P1 or P2", "'All groups'", "directly"]),
        ("wrong_tenant", ["tenant id", "remove the directory and add it again"]),
        ("throttled", ["retries these automatically", "nothing was changed"]),
        ("transient", ["retries these automatically", "service health"]),
        ("needs_approval", ["planned removals", "approve"]),
        ("bad_response", ["Nothing was changed", "request id"]),
        ("internal", ["Nothing was changed", "logs"]),
    ],
)
def test_each_error_class_has_a_plain_words_remediation(error_class: str, words: list[str]) -> None:
    remediation = error_kind(error_class).remediation

    for word in words:
        assert word in remediation


def test_every_entry_of_the_troubleshooting_guide_is_covered() -> None:
    topics = {topic for kind in ERROR_KINDS for topic in kind.guide_topics}

    assert topics == {GUIDE_UNAUTHORIZED, GUIDE_GROUPS_ASSIGNED, GUIDE_USERS, GUIDE_WRONG_TENANT}
    assert {c for kind in ERROR_KINDS for c in kind.classes} == {
        "unauthorized",
        "forbidden",
        "not_assigned",
        "wrong_tenant",
        "throttled",
        "transient",
        "needs_approval",
        "bad_response",
        "internal",
        "interrupted",
    }


# --- the pages ---------------------------------------------------------------------------------


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def test_the_page_shows_failures_with_links_request_ids_and_remediation(staff: Client) -> None:
    run = SyncRunFactory(
        status=FAILED,
        error_class="forbidden",
        error_message="Insufficient privileges: it needs User.Read.All.",
        graph_request_id="8f2c1d8e-request-id",
    )

    page = staff.get(reverse("admin:troubleshooting"))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Access denied: a Graph permission is missing" in html
    assert "Insufficient privileges: it needs User.Read.All." in html
    assert "8f2c1d8e-request-id" in html
    assert reverse("admin:directories_syncrun_change", args=[run.pk]) in html
    assert reverse("admin:directories_directory_change", args=[run.directory.pk]) in html
    assert GUIDE_UNAUTHORIZED in html
    assert 'id="site-name"' in html  # the admin's own chrome: each_context was used


def test_the_page_filters_by_directory(staff: Client) -> None:
    mine, other = DirectoryFactory(name="Mine"), DirectoryFactory(name="Other")
    SyncRunFactory(directory=mine, status=FAILED, error_class="forbidden", error_message="mine")
    SyncRunFactory(directory=other, status=FAILED, error_class="forbidden", error_message="other")

    html = staff.get(reverse("admin:troubleshooting"), {"directory": mine.pk, "days": 1}).content

    assert b"mine" in html
    assert b">other<" not in html.replace(b"\n", b"")
    assert b"Last 24 hours" in html


def test_the_page_says_so_when_nothing_failed(staff: Client) -> None:
    assert b"No failed runs in this period." in staff.get(reverse("admin:troubleshooting")).content


@pytest.mark.parametrize("name", ["admin:troubleshooting", "admin:troubleshooting_user"])
def test_anonymous_visitors_are_sent_to_the_login_page(client: Client, name: str) -> None:
    response = client.get(reverse(name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_non_staff_users_are_sent_to_the_login_page(client: Client) -> None:
    client.force_login(User.objects.create_user("someone", password="pw"))

    response = client.get(reverse("admin:troubleshooting"))

    assert response.status_code == 302


def test_the_user_form_shows_the_diagnosis(staff: Client, tenant: EmuTenant) -> None:
    directory = synced(tenant)

    page = staff.get(
        reverse("admin:troubleshooting_user"),
        {"directory": str(directory.pk), "query": "ghost@example.com"},
    )

    assert page.status_code == 200
    assert b"Not in the tenant" in page.content
    assert b"What to do:" in page.content


def test_the_user_form_without_input_shows_just_the_form(staff: Client) -> None:
    page = staff.get(reverse("admin:troubleshooting_user"))

    assert page.status_code == 200
    assert b"Why isn&#x27;t this user syncing?" in page.content
    assert b'class="module diagnosis"' not in page.content


def test_interrupted_runs_have_their_own_group_and_advice() -> None:
    kind = error_kind("interrupted")

    assert kind.title == "Interrupted: the worker stopped mid-sync"
    assert "memory" in kind.remediation and "nothing was changed" in kind.remediation
