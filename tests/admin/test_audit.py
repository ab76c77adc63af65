"""Who did what: Verify Now, Sync Now and approvals in the admin log and on the runs they start."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from directories.models import Directory, SyncMode, SyncRun
from directories.services import consent
from directories.sync import directory_sync
from tests.factories import DirectoryFactory

from ..sync.fakes import FakeGraph, make_group, make_user

pytestmark = pytest.mark.django_db

TENANT = "6ec9d5f0-5a2b-4a6e-8b6a-0123456789ab"
LIST_URL = reverse("admin:directories_directory_changelist")


def action_url(name: str, directory: Directory) -> str:
    return reverse(f"admin:directories_directory_{name}", args=[directory.pk])


def history_page(client: Client, directory: Directory) -> str:
    url = reverse("admin:directories_directory_history", args=[directory.pk])
    return client.get(url).content.decode()


def logged(directory: Directory) -> list[tuple[str, int, str]]:
    """The directory's admin log: (username, action, message), oldest first."""
    entries = LogEntry.objects.filter(object_id=str(directory.pk)).order_by("action_time", "pk")
    return [(e.user.username, e.action_flag, e.get_change_message()) for e in entries]


@pytest.mark.usefixtures("sync_tasks")
def test_sync_now_records_the_admin_on_the_run_and_in_the_history(
    admin_client: Client, graph: FakeGraph
) -> None:
    directory = DirectoryFactory(name="Contoso")
    graph.add_group(make_group("Engineering"), [make_user("Ada")])

    admin_client.post(action_url("sync", directory))

    run = SyncRun.objects.get(directory=directory)
    assert run.triggered_by is not None and run.triggered_by.username == "admin"
    assert run.triggered_by_name == "admin"
    assert logged(directory) == [("admin", CHANGE, "Sync Now: queued a sync.")]
    assert "Sync Now: queued a sync." in history_page(admin_client, directory)


@pytest.mark.usefixtures("sync_tasks")
def test_the_list_action_records_the_admin_for_each_queued_directory(
    admin_client: Client, graph: FakeGraph
) -> None:
    ready = DirectoryFactory(name="Contoso")
    unverified = DirectoryFactory(name="Fabrikam", verified_at=None, tenant_id="")

    admin_client.post(
        LIST_URL, {"action": "sync_now", "_selected_action": [ready.pk, unverified.pk]}
    )

    assert SyncRun.objects.get(directory=ready).triggered_by_name == "admin"
    assert logged(ready) == [("admin", CHANGE, "Sync Now (list action): queued a sync.")]
    assert logged(unverified) == []


def test_a_refused_sync_now_logs_nothing(admin_client: Client) -> None:
    directory = DirectoryFactory(name="Contoso", verified_at=None, tenant_id="")

    admin_client.post(action_url("sync", directory))

    assert logged(directory) == []


@pytest.mark.usefixtures("sync_tasks")
def test_approving_records_the_approver_the_run_and_the_removals(
    admin_client: Client, graph: FakeGraph
) -> None:
    directory = DirectoryFactory(name="Contoso")
    group = graph.add_group(make_group("Everyone"), [make_user(f"U{i}") for i in range(5)])
    directory_sync(directory=directory, trigger=SyncRun.Trigger.COMMAND)
    graph.remove_group(group.id)
    held = directory_sync(directory=directory, trigger=SyncRun.Trigger.SCHEDULE).run
    assert held is not None and held.status == SyncRun.Status.NEEDS_APPROVAL
    assert held.triggered_by_name == "schedule"

    admin_client.post(action_url("approve", directory))

    latest = SyncRun.objects.filter(directory=directory).first()
    assert latest is not None and latest.trigger == SyncRun.Trigger.APPROVAL
    assert latest.approved_by is not None and latest.approved_by.username == "admin"
    assert latest.triggered_by == latest.approved_by
    assert latest.triggered_by_name == "admin"
    [(user, action, message)] = logged(directory)
    assert (user, action) == ("admin", CHANGE)
    assert message.startswith(f"Approved the mass deletion held by sync run {held.pk} (")
    assert "5 users, 1 group, 5 memberships to be removed" in message
    assert f"held by sync run {held.pk}" in history_page(admin_client, directory)


def test_verify_now_logs_the_connected_tenant(admin_client: Client) -> None:
    directory = DirectoryFactory(
        name="Contoso", sync_mode=SyncMode.ALL, verified_at=None, tenant_id="", tenant_name=""
    )
    session = admin_client.session
    session[f"{consent.RESULT_KEY_PREFIX}{directory.pk}"] = {
        "probe": {
            "tenant_id": TENANT,
            "tenant_name": "Contoso Ltd",
            "tenant_domain": "contoso.com",
            "assigned_groups": None,
        },
        "sync_mode": SyncMode.ALL,
        "signed_in_as": "admin@contoso.com",
        "probed_at": time.time(),
    }
    session.save()

    admin_client.post(action_url("verify_confirm", directory))

    directory.refresh_from_db()
    assert directory.is_verified
    message = f"Verified with Verify Now: connected to Contoso Ltd (tenant id {TENANT})."
    assert logged(directory) == [("admin", CHANGE, message)]
    assert message in history_page(admin_client, directory)


def test_a_failed_verify_now_logs_nothing(admin_client: Client) -> None:
    directory = DirectoryFactory(name="Contoso", verified_at=None, tenant_id="")

    admin_client.post(action_url("verify_confirm", directory))

    assert logged(directory) == []


@pytest.mark.usefixtures("sync_tasks")
def test_the_run_page_and_the_directory_page_name_the_person_after_they_are_deleted(
    admin_client: Client, graph: FakeGraph, staff_client: Callable[..., Client]
) -> None:
    directory = DirectoryFactory(name="Contoso")
    staff_client("sync_directory", "view_directory").post(action_url("sync", directory))
    User.objects.filter(username="staff").delete()

    run = SyncRun.objects.get(directory=directory)
    assert (run.triggered_by, run.triggered_by_name) == (None, "staff")
    run_page = admin_client.get(
        reverse("admin:directories_syncrun_change", args=[run.pk])
    ).content.decode()
    assert "Started by" in run_page and "staff" in run_page
    directory_page = admin_client.get(
        reverse("admin:directories_directory_change", args=[directory.pk])
    ).content.decode()
    assert "<td>staff</td>" in directory_page
