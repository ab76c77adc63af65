"""A directory that needs attention: its schedule syncs nothing, a person still can, and every
page says so."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from directories.graph import GraphUnauthorized
from directories.models import Directory, SyncRun
from directories.services.schedules import schedule_name
from directories.services.verify import TenantProbe, directory_mark_verified
from directories.sync import directory_sync
from directories.sync.engine import directory_record_outcome
from directories.tasks import run_directory_sync
from tests.factories import SyncRunFactory

from ..sync.fakes import FakeGraph
from .conftest import verified_long_ago

pytestmark = pytest.mark.django_db


def needing_attention(graph: FakeGraph, name: str = "Contoso") -> Directory:
    """A directory whose credentials Microsoft refused; Graph works again afterwards."""
    directory = verified_long_ago(name=name)
    graph.fail_with = GraphUnauthorized(
        "Microsoft rejected the client secret.", request_id="req-401"
    )
    directory_sync(directory=directory, trigger=SyncRun.Trigger.SCHEDULE)
    graph.fail_with = None
    directory.refresh_from_db()
    assert directory.needs_attention
    return directory


def test_a_scheduled_sync_of_a_directory_that_needs_attention_syncs_and_records_nothing(
    graph: FakeGraph,
) -> None:
    directory = needing_attention(graph)
    requests = graph.stats.requests

    result = run_directory_sync(directory.pk, str(SyncRun.Trigger.SCHEDULE))

    assert result["status"] == "paused"
    assert result["directory"] == "Contoso"
    assert result["message"].startswith("paused: needs attention since ")
    assert "Microsoft rejected the client secret." in result["message"]
    assert graph.stats.requests == requests  # Graph was not asked
    assert SyncRun.objects.filter(directory=directory).count() == 1  # only the first failure
    directory.refresh_from_db()
    assert directory.consecutive_failures == 1


def test_the_schedule_is_kept_while_paused_so_that_reminders_go_out(graph: FakeGraph) -> None:
    directory = needing_attention(graph)

    run_directory_sync(directory.pk, str(SyncRun.Trigger.SCHEDULE))

    assert Schedule.objects.filter(name=schedule_name(directory.pk)).count() == 1


def test_a_scheduled_sync_of_a_healthy_directory_runs(graph: FakeGraph) -> None:
    directory = verified_long_ago()

    result = run_directory_sync(directory.pk, str(SyncRun.Trigger.SCHEDULE))

    assert result["status"] == SyncRun.Status.SUCCEEDED
    assert SyncRun.objects.filter(directory=directory).count() == 1


def test_sync_now_still_runs_and_its_success_resumes_the_schedule(graph: FakeGraph) -> None:
    directory = needing_attention(graph)

    result = run_directory_sync(directory.pk, str(SyncRun.Trigger.MANUAL))

    assert result["status"] == SyncRun.Status.SUCCEEDED
    directory.refresh_from_db()
    assert not directory.needs_attention and directory.attention_reason == ""
    scheduled = run_directory_sync(directory.pk, str(SyncRun.Trigger.SCHEDULE))
    assert scheduled["status"] == SyncRun.Status.SUCCEEDED


def test_a_failed_sync_now_keeps_it_paused(graph: FakeGraph) -> None:
    directory = needing_attention(graph)
    graph.fail_with = GraphUnauthorized("Still the old secret.")

    result = run_directory_sync(directory.pk, str(SyncRun.Trigger.MANUAL))

    assert result["status"] == SyncRun.Status.FAILED
    directory.refresh_from_db()
    assert directory.needs_attention
    assert "Still the old secret." in directory.attention_reason


def test_verifying_again_resumes_the_schedule(graph: FakeGraph) -> None:
    directory = needing_attention(graph)

    directory_mark_verified(
        directory=directory,
        probe=TenantProbe(directory.tenant_id, "Contoso", "contoso.com", assigned_groups=None),
    )

    directory.refresh_from_db()
    assert not directory.needs_attention and directory.attention_reason == ""
    assert Schedule.objects.filter(name=schedule_name(directory.pk)).exists()
    result = run_directory_sync(directory.pk, str(SyncRun.Trigger.SCHEDULE))
    assert result["status"] == SyncRun.Status.SUCCEEDED


def test_a_run_held_for_approval_ends_it_too(graph: FakeGraph) -> None:
    directory = needing_attention(graph)
    held = SyncRunFactory(directory=directory, status=SyncRun.Status.NEEDS_APPROVAL)

    directory_record_outcome(directory, held)

    directory.refresh_from_db()
    assert not directory.needs_attention


# --- the commands ---------------------------------------------------------------------------


def sync_command(*args: str) -> tuple[int, str, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("sync_directory", *args, stdout=out, stderr=err)
    except CommandError as error:
        return error.returncode, out.getvalue(), [*err.getvalue().splitlines(), str(error)]
    return 0, out.getvalue(), err.getvalue().splitlines()


def test_sync_directory_by_name_still_syncs_it(graph: FakeGraph) -> None:
    directory = needing_attention(graph)

    status, out, err = sync_command("Contoso")

    assert (status, err) == (0, [])
    assert out.startswith("Contoso: succeeded")
    directory.refresh_from_db()
    assert not directory.needs_attention


def test_sync_directory_all_skips_it_with_a_line_and_counts_it_as_not_synced(
    graph: FakeGraph,
) -> None:
    directory = needing_attention(graph, name="Paused")
    verified_long_ago(name="Fine")
    runs = SyncRun.objects.filter(directory=directory).count()

    status, out, err = sync_command("--all", "--json")

    assert status == 1
    assert [summary["directory"] for summary in json.loads(out)] == ["Fine"]
    (line,) = err
    assert line.startswith("Paused: paused: needs attention since ")
    assert "sync_directory Paused" in line
    assert SyncRun.objects.filter(directory=directory).count() == runs


# --- what people see ------------------------------------------------------------------------


def test_the_list_shows_needs_attention_with_the_reason_and_a_paused_schedule(
    admin_client: Client, graph: FakeGraph
) -> None:
    needing_attention(graph)

    page = admin_client.get(reverse("admin:directories_directory_changelist")).content.decode()

    assert 'class="badge badge-needs_attention"' in page
    assert ">Needs attention<" in page
    assert "Microsoft refused entra-sync&#x27;s credentials for this tenant." in page
    assert "Paused: needs attention" in page


def test_the_change_page_says_why_since_when_and_what_resumes_it(
    admin_client: Client, graph: FakeGraph
) -> None:
    directory = needing_attention(graph)

    page = admin_client.get(
        reverse("admin:directories_directory_change", args=[directory.pk])
    ).content.decode()

    since = timezone.localtime(directory.attention_since).strftime("%Y-%m-%d %H:%M")
    assert f"Needs attention since {since}" in page
    assert "What failed: Microsoft rejected the client secret.<br>" in page
    assert "Scheduled syncs of this directory are paused." in page


def test_the_status_endpoint_reports_the_badge(admin_client: Client, graph: FakeGraph) -> None:
    directory = needing_attention(graph)

    data = admin_client.get(
        reverse("admin:directories_directory_status", args=[directory.pk])
    ).json()

    assert data["state"] == "idle"  # nothing is on its way: the page stops polling
    assert data["badge"] == {"state": "needs_attention", "label": "Needs attention"}


def test_the_troubleshooting_page_lists_it_before_the_failures(
    admin_client: Client, graph: FakeGraph
) -> None:
    needing_attention(graph)

    page = admin_client.get(reverse("admin:troubleshooting")).content.decode()

    assert page.index('id="needs-attention"') < page.index("Failures: ")
    section = page[page.index('id="needs-attention"') : page.index("Failures: ")]
    assert ">Contoso</a>" in section
    assert "Microsoft refused entra-sync&#x27;s credentials for this tenant." in section
