"""Status words in a real browser: directories that never synced or are not verified, held and
failed runs that say what happened, filters in words and times with their zone, at a laptop's
and a tablet's width, in light and dark colour schemes.

Screenshots go to test-results/browser/ (see SCREENSHOTS in conftest.py), named
4N-status-words-step-WIDTH-SCHEME.png.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from directories.models import Directory, SyncRun
from tests.factories import DirectoryFactory, SyncRunFactory

from .conftest import ADMIN_PASSWORD, ADMIN_USERNAME, missing_browser_tools
from .test_troubleshooting_nav import signed_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.skipif(
    missing_browser_tools() is not None, reason=missing_browser_tools() or ""
)

if missing_browser_tools() is None:
    from playwright.sync_api import expect

HELD = "Held: would remove 30 users, 1 group, 45 memberships"
FAILED = "Failed: credentials refused"
# "2026-11-29 21:40 UTC": the test settings' time zone, named on every time shown.
MOMENT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")


def directories_in_every_state() -> Directory:
    """Four directories, one per word this page must get right; returns the held one."""
    now = timezone.now().replace(second=0, microsecond=0)
    earlier = now - timedelta(hours=2)
    held = DirectoryFactory(
        name="Contoso HQ",
        tenant_name="Contoso",
        last_sync_at=now,
        last_sync_status=SyncRun.Status.NEEDS_APPROVAL,
        error_class="needs_approval",
        last_sync_summary="Waiting for approval of a mass deletion",
    )
    SyncRunFactory(
        directory=held,
        started_at=earlier,
        finished_at=earlier + timedelta(seconds=41),
        users_created=60,
        groups_created=2,
        memberships_created=75,
    )
    SyncRunFactory(
        directory=held,
        trigger=SyncRun.Trigger.SCHEDULE,
        status=SyncRun.Status.NEEDS_APPROVAL,
        started_at=now,
        finished_at=now + timedelta(seconds=12),
        error_class="needs_approval",
        error_message="This run would remove 30 of 60 users, more than the guard allows.",
        error_remediation="Review the planned removals, then approve them.",
        planned_removals={
            "users": [{"id": f"u{i}", "name": f"User {i}"} for i in range(3)],
            "users_count": 30,
            "groups": [{"id": "g1", "name": "Sales"}],
            "groups_count": 1,
            "memberships_count": 45,
        },
    )
    failed = DirectoryFactory(
        name="Fabrikam",
        tenant_name="Fabrikam Inc",
        last_sync_at=now,
        last_sync_status=SyncRun.Status.FAILED,
        error_class="unauthorized",
        error_message="Microsoft rejected the client secret.",
        last_sync_summary="Failed: Microsoft rejected the client secret.",
    )
    SyncRunFactory(
        directory=failed,
        status=SyncRun.Status.FAILED,
        started_at=now - timedelta(minutes=5),
        finished_at=now - timedelta(minutes=5) + timedelta(seconds=2),
        error_class="unauthorized",
        error_message="Microsoft rejected the client secret.",
    )
    DirectoryFactory(name="Litware", tenant_name="Litware Ltd")
    DirectoryFactory(name="Northwind", tenant_id="", tenant_name="", verified_at=None)
    return held


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1366, 820])
def test_the_console_says_what_is_true_of_each_directory_and_run(
    browser: Browser,
    live_server: Any,
    transactional_db: None,
    screenshots: Path,
    width: int,
    scheme: str,
) -> None:
    get_user_model().objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)
    held = directories_in_every_state()
    page = signed_in(browser, live_server, width=width, scheme=scheme)

    def shot(name: str) -> None:
        page.screenshot(path=screenshots / f"{name}-{width}-{scheme}.png", full_page=True)

    def row(name: str) -> Any:
        return page.locator("#result_list tbody tr").filter(has_text=name)

    try:
        # The cards: never synced is not healthy, held and failed say what happened.
        page.goto(reverse("admin:directories_directory_changelist"))
        expect(row("Litware").locator(".badge")).to_have_text("Never synced")
        expect(row("Northwind").locator(".badge")).to_have_text("Not verified")
        expect(row("Contoso HQ").locator(".badge")).to_have_text("Needs approval")
        expect(row("Contoso HQ")).to_contain_text(HELD)
        expect(row("Fabrikam").locator(".badge")).to_have_text("Failing")
        expect(row("Fabrikam")).to_contain_text(FAILED)
        expect(row("Contoso HQ").locator(".field-card_last_sync time")).to_have_text(MOMENT)
        expect(page.locator("body")).not_to_contain_text("Healthy")
        filters = page.locator("#changelist-filter")
        expect(filters).to_contain_text("By last sync")
        expect(filters).to_contain_text("Held: needs approval")
        expect(filters).not_to_contain_text("needs_approval")
        shot("40-status-words-directories")

        # The last-sync filter in words finds the directories that never synced (verified or not).
        filters.get_by_role("link", name="Never synced").click()
        expect(page.locator("#result_list tbody tr")).to_have_count(2)
        expect(row("Litware")).to_be_visible()
        expect(row("Northwind")).to_be_visible()

        # A held directory's page: the status box and the history say what it would remove.
        page.goto(reverse("admin:directories_directory_change", args=[held.pk]))
        expect(page.locator("#sync-badge")).to_have_text("Needs approval")
        expect(page.locator("#sync-text")).to_have_text(re.compile(rf"Last sync {MOMENT.pattern}"))
        expect(page.locator("#sync-text")).to_contain_text(HELD)
        history = page.locator("#sync-history tbody tr")
        expect(history.first).to_contain_text(HELD)
        expect(history.first.locator("td").first).to_have_text(MOMENT)
        expect(history.nth(1)).to_contain_text("+60 users, +2 groups, +75 memberships")
        expect(page.locator("#sync-history")).not_to_contain_text("no changes")
        shot("41-status-words-held-directory")

        # The run list: results in words, errors filtered by their plain words.
        page.goto(reverse("admin:directories_syncrun_changelist"))
        runs = page.locator("#result_list tbody")
        expect(runs).to_contain_text(HELD)
        expect(runs).to_contain_text(FAILED)
        expect(runs).not_to_contain_text("no changes")
        expect(runs.locator(".field-started time").first).to_have_text(MOMENT)
        shot("42-status-words-runs")
        page.locator("#changelist-filter").get_by_role("link", name="Credentials refused").click()
        expect(page.locator("#result_list tbody tr")).to_have_count(1)
        expect(page.locator("#result_list tbody")).to_contain_text(FAILED)
        shot("43-status-words-runs-filtered")
    finally:
        page.context.close()
