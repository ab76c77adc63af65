"""The sync history in the admin: read-only, filterable, and complete on each run's page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from directories.models import SyncRun
from tests.factories import SyncRunFactory

pytestmark = pytest.mark.django_db


def test_runs_cannot_be_added_changed_or_deleted(admin_client: Client) -> None:
    run = SyncRunFactory()

    assert admin_client.get(reverse("admin:directories_syncrun_add")).status_code == 403
    page = admin_client.get(reverse("admin:directories_syncrun_change", args=[run.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    delete = reverse("admin:directories_syncrun_delete", args=[run.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert SyncRun.objects.filter(pk=run.pk).exists()


def test_a_failed_runs_page_shows_the_remediation_and_request_id(admin_client: Client) -> None:
    run = SyncRunFactory(
        status=SyncRun.Status.FAILED,
        error_class="forbidden",
        error_message="Insufficient privileges",
        error_remediation="Grant GroupMember.Read.All and consent again.",
        graph_request_id="req-1234",
    )

    page = admin_client.get(reverse("admin:directories_syncrun_change", args=[run.pk]))

    assert b"Grant GroupMember.Read.All and consent again." in page.content
    assert b"req-1234" in page.content


def test_a_held_runs_page_lists_its_planned_removals(admin_client: Client) -> None:
    run = SyncRunFactory(
        status=SyncRun.Status.NEEDS_APPROVAL,
        planned_removals={
            "users": [{"id": "u-1", "name": "Ada"}],
            "groups": [],
            "users_count": 3,
            "groups_count": 0,
            "memberships_count": 4,
        },
    )

    page = admin_client.get(reverse("admin:directories_syncrun_change", args=[run.pk]))

    assert b"<strong>3 users</strong>" in page.content
    assert b"Ada <code>u-1</code>" in page.content
    assert b"and 2 more" in page.content


def test_runs_are_searchable_by_request_id_and_filterable(admin_client: Client) -> None:
    SyncRunFactory(graph_request_id="req-found", error_message="boom")
    SyncRunFactory(graph_request_id="req-other")
    url = reverse("admin:directories_syncrun_changelist")

    found = admin_client.get(url, {"q": "req-found"})
    filtered = admin_client.get(url, {"status__exact": "failed", "trigger__exact": "schedule"})

    assert found.context["cl"].result_count == 1
    assert filtered.status_code == 200 and filtered.context["cl"].result_count == 0


def test_a_run_held_again_after_approval_shows_the_removals_beyond_it(
    admin_client: Client,
) -> None:
    beyond = {"users": [{"id": "u-9", "name": "late@contoso.example"}], "users_count": 1}
    run = SyncRunFactory(
        status=SyncRun.Status.NEEDS_APPROVAL,
        planned_removals={"users": [], "users_count": 31, "beyond_approval": beyond},
    )

    page = admin_client.get(reverse("admin:directories_syncrun_change", args=[run.pk]))

    assert b"Beyond what was approved" in page.content
    assert b"late@contoso.example" in page.content


def test_a_runs_warnings_are_shown_escaped(admin_client: Client) -> None:
    run = SyncRunFactory(warnings=["Skipped a user with the id '<script>'"])

    page = admin_client.get(reverse("admin:directories_syncrun_change", args=[run.pk]))

    assert b"Skipped a user with the id &#x27;&lt;script&gt;&#x27;" in page.content
