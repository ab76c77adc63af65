"""The directory console: cards, buttons, live status, history, approvals and permissions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from directories.models import Directory, SyncRun
from directories.services.sync_now import directory_sync_enqueue
from directories.sync import directory_sync
from directories.sync.lock import DirectoryLock
from identities.models import SyncedUser
from tests.factories import (
    DirectoryFactory,
    SyncedGroupFactory,
    SyncedUserFactory,
    SyncRunFactory,
)

from ..sync.fakes import FakeGraph, make_group, make_user
from .conftest import VIEW_ONLY

pytestmark = pytest.mark.django_db

LIST_URL = reverse("admin:directories_directory_changelist")


def change_url(directory: Directory) -> str:
    return reverse("admin:directories_directory_change", args=[directory.pk])


def action_url(name: str, directory: Directory) -> str:
    return reverse(f"admin:directories_directory_{name}", args=[directory.pk])


def message_texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- the list -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "badge"),
    [
        ({"verified_at": None, "tenant_id": ""}, "badge-unverified"),
        ({"last_sync_status": "succeeded"}, "badge-healthy"),
        (
            {"sync_lock_token": "x", "sync_lock_expires_at": timezone.now() + timedelta(hours=1)},
            "badge-syncing",
        ),
        ({"last_sync_status": "failed", "error_class": "unauthorized"}, "badge-failing"),
        ({"last_sync_status": "needs_approval"}, "badge-needs_approval"),
        ({"is_enabled": False}, "badge-disabled"),
    ],
)
def test_the_list_shows_each_directorys_status_badge(
    admin_client: Client, fields: dict[str, Any], badge: str
) -> None:
    DirectoryFactory(name="Contoso", **fields)

    page = admin_client.get(LIST_URL).content.decode()

    assert f'class="badge {badge}"' in page


def test_the_list_counts_present_users_and_groups_and_shows_the_tenant(
    admin_client: Client,
) -> None:
    directory = DirectoryFactory(tenant_name="Contoso Ltd")
    SyncedUserFactory.create_batch(2, directory=directory)
    SyncedUserFactory(directory=directory, removed_at=timezone.now())
    SyncedGroupFactory(directory=directory)

    page = admin_client.get(LIST_URL).content.decode()

    assert '<span class="count">2</span> users' in page
    assert '<span class="count">1</span> groups' in page
    assert "Contoso Ltd" in page and directory.tenant_id in page


def test_the_list_needs_a_fixed_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    for _ in range(5):
        SyncedUserFactory(directory=DirectoryFactory())
    with django_assert_max_num_queries(12):
        assert admin_client.get(LIST_URL).status_code == 200


def test_the_list_shows_the_next_scheduled_sync(admin_client: Client) -> None:
    directory = DirectoryFactory()
    next_run = Schedule.objects.get(name=f"sync-directory-{directory.pk}").next_run

    page = admin_client.get(LIST_URL).content.decode()

    assert timezone.localtime(next_run).strftime("%Y-%m-%d %H:%M") in page


def test_the_list_says_an_unverified_directory_is_not_scheduled(admin_client: Client) -> None:
    DirectoryFactory(verified_at=None, tenant_id="")

    assert "Not scheduled" in admin_client.get(LIST_URL).content.decode()


# --- the add form -------------------------------------------------------------------------


def test_the_add_form_explains_both_modes_in_plain_words(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:directories_directory_add")).content.decode()

    assert "Assigned groups only" in page and "(recommended)" in page
    assert "Entra ID P1 or P2" in page
    assert "<strong>Authentication</strong> application" in page
    assert "not to the Directory Sync one" in page
    assert "Entra ID Free" in page
    assert "unverified" in page
    assert 'name="tenant_id"' not in page


def test_an_added_directory_is_unverified(admin_client: Client) -> None:
    admin_client.post(
        reverse("admin:directories_directory_add"),
        {"name": "Fabrikam", "sync_mode": "assigned", "is_enabled": "on"},
    )

    directory = Directory.objects.get(name="Fabrikam")
    assert not directory.is_verified


def test_tenant_fields_are_read_only_on_the_change_page(admin_client: Client) -> None:
    directory = DirectoryFactory()

    page = admin_client.get(change_url(directory)).content.decode()

    assert directory.tenant_id in page
    assert 'name="tenant_id"' not in page


# --- Sync Now -----------------------------------------------------------------------------


def test_the_change_page_has_the_buttons_as_post_forms(admin_client: Client) -> None:
    directory = DirectoryFactory()

    page = admin_client.get(change_url(directory)).content.decode()

    for name in ("verify", "sync"):
        assert f'method="post" action="{action_url(name, directory)}"' in page
    assert "Approve mass deletion" not in page


@pytest.mark.usefixtures("sync_tasks")
def test_sync_now_runs_a_sync_and_says_so(admin_client: Client, graph: FakeGraph) -> None:
    directory = DirectoryFactory(name="Contoso")
    graph.add_group(make_group("Engineering"), [make_user("Ada")])

    response = admin_client.post(action_url("sync", directory))

    assert response.status_code == 302 and response["Location"] == change_url(directory)
    assert message_texts(response) == [
        "A sync of Contoso is queued; its progress shows on this page."
    ]
    run = SyncRun.objects.get(directory=directory)
    assert (run.trigger, run.status) == (SyncRun.Trigger.MANUAL, SyncRun.Status.SUCCEEDED)


def test_a_second_sync_now_is_refused_politely(admin_client: Client, graph: FakeGraph) -> None:
    directory = DirectoryFactory(name="Contoso")
    admin_client.post(action_url("sync", directory))

    response = admin_client.post(action_url("sync", directory))

    assert response.status_code == 302
    assert message_texts(response)[-1] == (
        "A sync of Contoso is already queued; it starts as soon as a worker is free."
    )
    assert SyncRun.objects.filter(directory=directory).count() == 0


def test_sync_now_while_a_sync_runs_is_refused(admin_client: Client, graph: FakeGraph) -> None:
    directory = DirectoryFactory(name="Contoso")
    DirectoryLock(directory.pk, 600).acquire()

    response = admin_client.post(action_url("sync", directory))

    assert "already running" in message_texts(response)[0]


def test_sync_now_of_an_unverified_directory_is_refused(admin_client: Client) -> None:
    directory = DirectoryFactory(name="Contoso", verified_at=None, tenant_id="")

    response = admin_client.post(action_url("sync", directory))

    assert "not verified yet" in message_texts(response)[0]


@pytest.mark.usefixtures("sync_tasks")
def test_the_list_action_queues_each_directory_and_names_the_refused(
    admin_client: Client, graph: FakeGraph
) -> None:
    ready = DirectoryFactory(name="Contoso")
    unverified = DirectoryFactory(name="Fabrikam", verified_at=None, tenant_id="")

    response = admin_client.post(
        LIST_URL, {"action": "sync_now", "_selected_action": [ready.pk, unverified.pk]}
    )

    texts = message_texts(response)
    assert texts[0] == "Queued a sync of 1 directory: Contoso."
    assert texts[1].startswith("Not queued (1): Fabrikam: Fabrikam is not verified yet")
    assert SyncRun.objects.filter(directory=ready).count() == 1


@pytest.mark.parametrize("name", ["verify", "sync", "approve"])
def test_the_buttons_refuse_get(admin_client: Client, name: str) -> None:
    directory = DirectoryFactory()

    assert admin_client.get(action_url(name, directory)).status_code == 405


def test_verify_now_sends_the_admin_to_microsoft_admin_consent(admin_client: Client) -> None:
    from urllib.parse import parse_qs, urlsplit

    directory = DirectoryFactory(name="Contoso", verified_at=None, tenant_id="")

    response = admin_client.post(action_url("verify", directory))

    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == "/organizations/v2.0/adminconsent"
    query = parse_qs(target.query)
    assert query["redirect_uri"] == [
        "http://testserver/admin/directories/directory/verify/callback/"
    ]
    assert query["state"][0]


def test_the_verify_confirmation_page_is_an_admin_url(admin_client: Client) -> None:
    directory = DirectoryFactory(name="Contoso")

    response = admin_client.get(
        reverse("admin:directories_directory_verify_confirm", args=[directory.pk])
    )

    # Nothing was checked in this session: back to the directory with a message.
    assert response.status_code == 302 and response["Location"] == change_url(directory)


# --- status JSON --------------------------------------------------------------------------


def test_status_of_an_idle_directory_has_the_last_result(admin_client: Client) -> None:
    run = SyncRunFactory(users_created=3)

    data = admin_client.get(action_url("status", run.directory)).json()

    assert data["state"] == "idle"
    assert data["run"]["id"] == run.pk
    assert data["last"]["run_id"] == run.pk
    assert data["last"]["summary"] == "+3 users"


def test_status_of_a_queued_sync(admin_client: Client, graph: FakeGraph) -> None:
    directory = DirectoryFactory()
    directory_sync_enqueue(directory=directory)

    data = admin_client.get(action_url("status", directory)).json()

    assert data["state"] == "queued"
    assert data["badge"]["label"] == "Queued"


def test_status_of_a_running_sync_has_its_progress(admin_client: Client) -> None:
    directory = DirectoryFactory()
    DirectoryLock(directory.pk, 600).acquire()
    run = SyncRunFactory(
        directory=directory,
        status=SyncRun.Status.RUNNING,
        finished_at=None,
        groups_done=2,
        groups_total=5,
        users_seen=40,
    )

    data = admin_client.get(action_url("status", directory)).json()

    assert data["state"] == "running"
    assert data["run"] == {
        "id": run.pk,
        "status": "running",
        "groups_done": 2,
        "groups_total": 5,
        "users_seen": 40,
        "started_at": run.started_at.isoformat(),
    }


def test_the_change_page_polls_the_status_while_busy(admin_client: Client) -> None:
    directory = DirectoryFactory()
    DirectoryLock(directory.pk, 600).acquire()

    page = admin_client.get(change_url(directory)).content.decode()

    assert f'data-status-url="{action_url("status", directory)}"' in page
    assert 'data-state="running"' in page
    assert "setTimeout(poll, 2000)" in page


# --- history and approval -----------------------------------------------------------------


def test_the_change_page_shows_recent_runs_and_a_chart(admin_client: Client) -> None:
    directory = DirectoryFactory()
    now = timezone.now()
    for minutes in range(25):
        SyncRunFactory(
            directory=directory,
            started_at=now - timedelta(minutes=minutes, seconds=30),
            finished_at=now - timedelta(minutes=minutes),
            users_created=minutes,
        )
    SyncRunFactory(
        directory=directory,
        status=SyncRun.Status.FAILED,
        error_class="forbidden",
        error_message="Authorization_RequestDenied",
        started_at=now,
    )

    page = admin_client.get(change_url(directory)).content.decode()

    assert 'id="sync-history"' in page
    # One row per run, linked to its page: the latest 20 of 26.
    assert page.count('<td><a href="/admin/directories/syncrun/') == 20
    assert "Authorization_RequestDenied" in page
    assert '<svg class="history-chart"' in page
    assert page.count('class="bar status-') == 20


def held_directory(graph: FakeGraph) -> Directory:
    """A directory with five synced users whose next run would remove them all."""
    directory = DirectoryFactory(name="Contoso")
    group = graph.add_group(make_group("Everyone"), [make_user(f"U{i}") for i in range(5)])
    directory_sync(directory=directory, trigger=SyncRun.Trigger.COMMAND)
    graph.remove_group(group.id)
    outcome = directory_sync(directory=directory, trigger=SyncRun.Trigger.SCHEDULE)
    assert outcome.status == SyncRun.Status.NEEDS_APPROVAL
    return directory


def test_a_held_run_shows_its_planned_removals_and_the_approve_button(
    admin_client: Client, graph: FakeGraph
) -> None:
    directory = held_directory(graph)

    page = admin_client.get(change_url(directory)).content.decode()

    assert 'id="held-run"' in page
    assert "<strong>5 users</strong> would be removed" in page
    assert "u0@contoso.onmicrosoft.com" in page and "Everyone" in page
    assert f'action="{action_url("approve", directory)}"' in page


@pytest.mark.usefixtures("sync_tasks")
def test_approving_applies_the_held_removals(admin_client: Client, graph: FakeGraph) -> None:
    directory = held_directory(graph)

    response = admin_client.post(action_url("approve", directory))

    assert message_texts(response) == [
        "Approved: a sync that applies the planned removals of Contoso is queued."
    ]
    latest = SyncRun.objects.filter(directory=directory).first()
    assert latest is not None
    assert (latest.trigger, latest.status) == (SyncRun.Trigger.APPROVAL, SyncRun.Status.SUCCEEDED)
    assert latest.users_removed == 5
    assert not SyncedUser.objects.filter(directory=directory, removed_at__isnull=True).exists()
    assert latest.approved_by is not None and latest.approved_by.username == "admin"
    assert latest.approved_run is not None and latest.approved_run.approved_at is not None


def test_approve_without_a_held_run_changes_nothing(admin_client: Client) -> None:
    directory = DirectoryFactory()
    SyncRunFactory(directory=directory)

    response = admin_client.post(action_url("approve", directory))

    assert "no held run to approve" in message_texts(response)[0]
    assert SyncRun.objects.filter(directory=directory).count() == 1


# --- permissions --------------------------------------------------------------------------


def test_view_only_staff_see_the_pages_but_no_buttons(
    staff_client: Callable[..., Client], graph: FakeGraph
) -> None:
    directory = held_directory(graph)
    client = staff_client(*VIEW_ONLY)

    assert client.get(LIST_URL).status_code == 200
    page = client.get(change_url(directory))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="held-run"' in html and 'id="sync-history"' in html
    for name in ("verify", "sync", "approve"):
        assert action_url(name, directory) not in html
    assert client.get(action_url("status", directory)).status_code == 200
    run = SyncRun.objects.filter(directory=directory).first()
    assert run is not None
    assert client.get(reverse("admin:directories_syncrun_change", args=[run.pk])).status_code == 200


@pytest.mark.parametrize("name", ["verify", "sync", "approve"])
def test_view_only_staff_get_403_from_every_button(
    staff_client: Callable[..., Client], graph: FakeGraph, name: str
) -> None:
    directory = held_directory(graph)
    client = staff_client(*VIEW_ONLY)
    runs = SyncRun.objects.count()

    assert client.post(action_url(name, directory)).status_code == 403
    assert SyncRun.objects.count() == runs
    assert not Directory.objects.get(pk=directory.pk).sync_requested_at


def test_view_only_staff_cannot_use_the_list_action(
    staff_client: Callable[..., Client], graph: FakeGraph
) -> None:
    directory = DirectoryFactory()
    client = staff_client(*VIEW_ONLY)

    page = client.get(LIST_URL).content.decode()
    assert "sync_now" not in page
    client.post(LIST_URL, {"action": "sync_now", "_selected_action": [directory.pk]})
    assert not Directory.objects.get(pk=directory.pk).sync_requested_at


def test_staff_without_view_permission_get_no_status(
    staff_client: Callable[..., Client],
) -> None:
    directory = DirectoryFactory()

    assert staff_client().get(action_url("status", directory)).status_code == 403


@pytest.mark.usefixtures("sync_tasks")
def test_a_syncer_can_sync_but_not_approve(
    staff_client: Callable[..., Client], graph: FakeGraph
) -> None:
    directory = held_directory(graph)
    client = staff_client(*VIEW_ONLY, "sync_directory")

    html = client.get(change_url(directory)).content.decode()
    assert action_url("sync", directory) in html
    assert action_url("approve", directory) not in html
    assert action_url("verify", directory) not in html

    assert client.post(action_url("approve", directory)).status_code == 403
    assert client.post(action_url("sync", directory)).status_code == 302
    latest = SyncRun.objects.filter(directory=directory).first()
    assert latest is not None
    # The guard still holds a plain Sync Now; only an approval lifts it.
    assert (latest.trigger, latest.status) == ("manual", SyncRun.Status.NEEDS_APPROVAL)


def test_deleting_a_directory_deletes_its_history_and_synced_data(admin_client: Client) -> None:
    run = SyncRunFactory()
    SyncedUserFactory(directory=run.directory)
    url = reverse("admin:directories_directory_delete", args=[run.directory.pk])

    response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not Directory.objects.filter(pk=run.directory.pk).exists()
    assert not SyncRun.objects.exists() and not SyncedUser.objects.exists()


def test_saving_a_new_directory_lands_on_its_page_with_verify_now(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:directories_directory_add"),
        {"name": "Fabrikam", "sync_mode": "all", "is_enabled": "on"},
    )

    directory = Directory.objects.get(name="Fabrikam")
    assert response.status_code == 302 and response["Location"] == change_url(directory)
    assert "Click Verify Now" in message_texts(response)[0]


def test_a_held_run_counts_its_removals_in_good_english(admin_client: Client) -> None:
    run = SyncRunFactory(
        status=SyncRun.Status.NEEDS_APPROVAL,
        error_class="needs_approval",
        planned_removals={
            "users": [],
            "groups": [],
            "users_count": 12,
            "groups_count": 1,
            "memberships_count": 1,
        },
    )

    page = admin_client.get(change_url(run.directory)).content.decode()

    assert "12 users</strong>" in page and "1 group</strong>" in page
    assert "1 membership would be removed" in page
