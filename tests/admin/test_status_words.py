"""Status words that say what is true: never synced, held, failed, in labels and one time format."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from directories.models import Directory, DirectoryStatus, SyncRun
from directories.templatetags.entra_time import moment_text
from tests.factories import DirectoryFactory, SyncRunFactory

pytestmark = pytest.mark.django_db

LIST_URL = reverse("admin:directories_directory_changelist")
RUNS_URL = reverse("admin:directories_syncrun_changelist")
# 21:40 UTC is 22:40 in Paris in November (CET): the zone shows which one a page means.
MOMENT = datetime(2026, 11, 29, 21, 40, tzinfo=UTC)
FINISHED = MOMENT + timedelta(seconds=12)
PLANNED = {
    "users": [{"id": "u1", "name": "Ada"}],
    "users_count": 30,
    "groups": [],
    "groups_count": 1,
    "memberships_count": 45,
}


def change_url(directory: Directory) -> str:
    return reverse("admin:directories_directory_change", args=[directory.pk])


def text(page: Any) -> str:
    """The page's words, without tags, the history chart's tooltips or repeated white space."""
    html = re.sub(r"<svg class=\"history-chart\".*?</svg>", " ", page.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def results(page: Any) -> str:
    """The words of the list itself, without its filters."""
    return text(page).split("Filter Show counts")[0]


def filter_panel(page: Any) -> str:
    match = re.search(r'<(?:nav|div) id="changelist-filter".*?</nav>', page.content.decode(), re.S)
    assert match is not None
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(0)))


def held_directory() -> tuple[Directory, SyncRun]:
    directory = DirectoryFactory(
        name="Contoso",
        last_sync_at=MOMENT,
        last_sync_status=SyncRun.Status.NEEDS_APPROVAL,
        error_class="needs_approval",
        last_sync_summary="Waiting for approval of a mass deletion",
    )
    run = SyncRunFactory(
        directory=directory,
        status=SyncRun.Status.NEEDS_APPROVAL,
        started_at=MOMENT,
        finished_at=FINISHED,
        error_class="needs_approval",
        error_message="This run would remove 30 of 40 users.",
        planned_removals=PLANNED,
        users_seen=10,
    )
    return directory, run


def failed_directory() -> tuple[Directory, SyncRun]:
    directory = DirectoryFactory(
        name="Fabrikam",
        last_sync_at=MOMENT,
        last_sync_status=SyncRun.Status.FAILED,
        error_class="unauthorized",
        error_message="Microsoft rejected the client secret.",
        last_sync_summary="Failed: Microsoft rejected the client secret.",
    )
    run = SyncRunFactory(
        directory=directory,
        status=SyncRun.Status.FAILED,
        started_at=MOMENT,
        finished_at=FINISHED,
        error_class="unauthorized",
        error_message="Microsoft rejected the client secret.",
    )
    return directory, run


# --- never synced, not verified ---------------------------------------------------------------


def test_a_verified_directory_without_a_run_is_never_synced_not_healthy(
    admin_client: Client,
) -> None:
    directory = DirectoryFactory(name="Contoso")

    assert directory.status() == DirectoryStatus.NEVER_SYNCED
    page = text(admin_client.get(LIST_URL))
    assert "Never synced" in page
    assert "Healthy" not in page
    assert "Never synced" in text(admin_client.get(change_url(directory)))


def test_a_directory_becomes_healthy_after_its_first_successful_run() -> None:
    directory = DirectoryFactory(last_sync_at=MOMENT, last_sync_status=SyncRun.Status.SUCCEEDED)

    assert directory.status() == DirectoryStatus.HEALTHY


def test_an_unverified_directory_says_not_verified(admin_client: Client) -> None:
    DirectoryFactory(name="New", verified_at=None, tenant_id="")

    page = results(admin_client.get(LIST_URL))

    assert "Not verified" in page
    assert "Never synced" not in page


def test_a_queued_first_sync_outranks_never_synced() -> None:
    directory = DirectoryFactory(sync_requested_at=datetime.now(tz=UTC))

    assert directory.status() == DirectoryStatus.QUEUED


# --- held and failed runs say what happened ------------------------------------------------------


def test_a_held_runs_summary_says_what_it_would_remove() -> None:
    _, run = held_directory()

    assert run.summary() == "Held: would remove 30 users, 1 group, 45 memberships"


def test_a_failed_runs_summary_names_the_error_in_plain_words() -> None:
    _, run = failed_directory()

    assert run.summary() == "Failed: credentials refused"


def test_a_successful_runs_summary_still_counts_its_changes() -> None:
    run = SyncRunFactory(users_created=3, memberships_removed=2)

    assert run.summary() == "+3 users, -2 memberships"
    assert SyncRunFactory().summary() == "no changes"


def test_the_run_list_shows_held_and_failed_runs_results_not_no_changes(
    admin_client: Client,
) -> None:
    held_directory()
    failed_directory()

    page = text(admin_client.get(RUNS_URL))

    assert "Held: would remove 30 users, 1 group, 45 memberships" in page
    assert "Failed: credentials refused" in page
    assert "no changes" not in page


def test_the_directory_cards_say_held_and_failed_in_the_runs_words(admin_client: Client) -> None:
    held_directory()
    failed_directory()

    page = text(admin_client.get(LIST_URL))

    assert "Held: would remove 30 users, 1 group, 45 memberships" in page
    assert "Failed: credentials refused" in page


def test_the_change_page_status_box_and_history_say_what_the_held_run_would_do(
    admin_client: Client,
) -> None:
    directory, _ = held_directory()

    page = text(admin_client.get(change_url(directory)))

    status_box = page.split("Recent syncs")[0]
    assert "Held: would remove 30 users, 1 group, 45 memberships" in status_box
    history = page.split("Recent syncs")[1]
    assert "Held: would remove 30 users, 1 group, 45 memberships" in history
    assert "no changes" not in page


def test_the_status_endpoint_sums_up_a_failed_run_in_words(admin_client: Client) -> None:
    directory, _ = failed_directory()

    data = admin_client.get(
        reverse("admin:directories_directory_status", args=[directory.pk])
    ).json()

    assert data["last"]["summary"] == "Failed: credentials refused"
    assert data["badge"]["label"] == "Failing"


# --- filters in words ----------------------------------------------------------------------------


def test_the_directory_filters_use_words_not_stored_values(admin_client: Client) -> None:
    held_directory()

    panel = filter_panel(admin_client.get(LIST_URL))

    assert "By mode" in panel and "Assigned groups only" in panel
    assert "By state" in panel and "Enabled" in panel and "Disabled" in panel
    assert "By last sync" in panel
    assert "Held: needs approval" in panel and "Never synced" in panel
    for raw in ("needs_approval", "By is enabled", "last sync status"):
        assert raw not in panel


def test_the_last_sync_filter_finds_directories_that_never_synced(admin_client: Client) -> None:
    held_directory()
    DirectoryFactory(name="Litware", tenant_name="Litware Inc")

    never = results(admin_client.get(LIST_URL, {"last_sync_status__exact": "none"}))
    held = results(admin_client.get(LIST_URL, {"last_sync_status__exact": "needs_approval"}))

    assert "Litware" in never and "Contoso" not in never
    assert "Contoso" in held and "Litware" not in held


def test_the_run_list_filters_errors_by_their_plain_words(admin_client: Client) -> None:
    held_directory()
    failed_directory()

    panel = filter_panel(admin_client.get(RUNS_URL))
    unauthorized = text(admin_client.get(RUNS_URL, {"error_class__exact": "unauthorized"}))

    assert "By error" in panel
    assert "Credentials refused" in panel and "Held by the mass-deletion guard" in panel
    assert "Needs approval" in panel  # the status filter's label
    assert "needs_approval" not in panel and "unauthorized" not in panel
    assert "Failed: credentials refused" in unauthorized
    assert "Held: would remove" not in unauthorized


# --- one time format, with its zone --------------------------------------------------------------


def test_moments_read_in_the_active_time_zone_with_its_abbreviation(settings: Any) -> None:
    assert moment_text(MOMENT) == "2026-11-29 21:40 UTC"
    settings.TIME_ZONE = "Europe/Paris"
    assert moment_text(MOMENT) == "2026-11-29 22:40 CET"


@pytest.mark.parametrize(("zone", "shown"), [("UTC", "21:40 UTC"), ("Europe/Paris", "22:40 CET")])
def test_every_page_shows_times_in_one_format_with_the_zone(
    admin_client: Client, settings: Any, zone: str, shown: str
) -> None:
    settings.TIME_ZONE = zone
    directory, _ = failed_directory()
    when = f"2026-11-29 {shown}"

    cards = results(admin_client.get(LIST_URL))
    change_page = text(admin_client.get(change_url(directory)))
    status_box = change_page.split("History", 1)[1].split("Name:", 1)[0]
    history = change_page.split("Recent syncs", 1)[1]
    runs = results(admin_client.get(RUNS_URL))

    assert status_box.strip() == f"Failing Last sync {when}: Failed: credentials refused"
    assert history.count(when) == 1
    assert when in cards  # the last sync; the next one is scheduled later today
    assert when in runs
    for part in (cards, status_box, history, runs):
        assert not re.search(r"\d:\d\d(?!:\d\d)(?! (UTC|CET))", part.replace(when, "")), part
