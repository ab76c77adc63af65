"""The console in a real browser: what an admin does on a first day, from adding a directory to
approving a held mass deletion, with Microsoft's pages played by the emulator over HTTPS.

Each step saves a screenshot to test-results/browser/ (see SCREENSHOTS in conftest.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.urls import reverse

from directories.graph import forget_cached_tokens
from directories.models import Directory, SyncMode, SyncRun
from entra_emulator import DEFAULT_ADMIN_PASSWORD, EmulatorControl, EmuTenant
from entra_emulator.expected import expected_directory
from entra_emulator.server import EmulatorLaunch
from identities.models import SyncedUser

from .conftest import missing_browser_tools, run_worker

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [
    pytest.mark.skipif(missing_browser_tools() is not None, reason=missing_browser_tools() or ""),
    # Verify Now asks for response_mode=query on purpose (see directories/consent.py).
    pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning"),
]
STATUS_URL = re.compile(r"/admin/directories/directory/\d+/status/$")
# A successful run's result is its changes ("Finished: +60 users, …").
SUCCEEDED = re.compile(r"Finished: [+~-]\d")

if missing_browser_tools() is None:
    from playwright.sync_api import expect


class Steps:
    """Screenshots named after the step they show: test-results/browser/NN-step-name.png."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page, self.folder = page, folder

    def shot(self, name: str) -> None:
        self.page.screenshot(path=self.folder / f"{name}.png", full_page=True)


def sign_in_to_microsoft(page: Page, login: str) -> None:
    """The emulated sign-in page, filled in as a person would."""
    expect(page.locator("#passwd")).to_be_visible()
    page.fill("#login", login)
    page.fill("#passwd", DEFAULT_ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def queued_sync_runs(
    page: Page, button: Locator, *, queued: Callable[[], None] | None = None
) -> None:
    """Click a button that queues a sync, see it queued, let a worker run it, and see the
    result the page polls for, without a reload.

    Status polls are held in the browser while the worker runs in this thread (Playwright
    only answers the route once the test calls it again), so the live server and the worker
    never use the database at the same moment.
    """
    page.route(STATUS_URL, lambda route: route.continue_())
    button.click()
    expect(page.locator("#sync-badge")).to_have_text("Queued")
    expect(page.locator("#sync-text")).to_contain_text("Sync queued")
    if queued is not None:
        queued()
    with page.expect_response(STATUS_URL):  # the next poll is 2 s away
        pass
    assert run_worker() == 1
    expect(page.locator("#sync-text")).to_contain_text("Finished:")
    page.unroute(STATUS_URL)


def sync_now(page: Page, *, queued: Callable[[], None] | None = None) -> None:
    queued_sync_runs(page, page.get_by_role("button", name="Sync Now"), queued=queued)


def present_users(page: Page) -> None:
    page.goto(reverse("admin:identities_synceduser_changelist"))


def test_an_admin_connects_syncs_troubleshoots_and_approves_a_mass_deletion(
    page: Page,
    screenshots: Path,
    launch: EmulatorLaunch,
    control: EmulatorControl,
    tenant: EmuTenant,
) -> None:
    steps = Steps(page, screenshots)
    login = f"admin@{tenant.default_domain}"

    # 1. Add a directory through the admin's add form.
    page.goto(reverse("admin:directories_directory_add"))
    page.fill("#id_name", "Contoso HQ")
    page.get_by_label("Assigned groups only (recommended)").check()
    expect(page.locator(".field-sync_mode")).to_contain_text("Needs Entra ID P1 or P2")
    expect(page.get_by_label("Assigned groups only (recommended)")).to_be_checked()
    steps.shot("01-add-directory-form")
    page.get_by_role("button", name="Save and continue editing").click()
    directory = Directory.objects.get(name="Contoso HQ")
    page.wait_for_url(f"**{reverse('admin:directories_directory_change', args=[directory.pk])}")
    expect(page.locator("#sync-badge")).to_have_text("Not verified")
    steps.shot("02-directory-unverified")

    # 2. Verify Now: admin consent, then a sign-in to the tenant, then our confirm page.
    page.get_by_role("button", name="Verify Now").click()
    page.wait_for_url(f"{launch.server.localhost_url}/**")
    steps.shot("03-microsoft-admin-consent-sign-in")
    sign_in_to_microsoft(page, login)
    expect(page.get_by_role("button", name="Accept")).to_be_visible()
    steps.shot("04-microsoft-admin-consent")
    page.get_by_role("button", name="Accept").click()
    expect(page.locator("#passwd")).to_be_visible()
    steps.shot("05-microsoft-sign-in")
    sign_in_to_microsoft(page, login)
    page.wait_for_url(
        f"**{reverse('admin:directories_directory_verify_confirm', args=[directory.pk])}"
    )
    expect(page.locator(".verify-connected")).to_have_text(
        f"Connected to Contoso (tenant id {tenant.tenant_id})"
    )
    steps.shot("06-verify-confirm")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messagelist .success")).to_contain_text(
        f"Verified: Contoso HQ is connected to Contoso (tenant id {tenant.tenant_id})"
    )
    expect(page.locator("#sync-badge")).to_have_text("Never synced")
    steps.shot("07-directory-verified")

    # 3. Sync Now: queued, then finished (polled without a reload); the users are listed.
    expected = expected_directory(tenant, assigned_only=True)
    sync_now(page, queued=lambda: steps.shot("08-sync-queued"))
    expect(page.locator("#sync-text")).to_contain_text(SUCCEEDED)
    expect(page.locator("#sync-badge")).to_have_text("Healthy")
    steps.shot("09-sync-finished")
    present_users(page)
    expect(page.locator(".paginator")).to_contain_text(f"{len(expected.user_ids)} synced users")
    steps.shot("10-synced-users")
    assert SyncedUser.objects.filter(removed_at__isnull=True).count() == len(expected.user_ids)

    # 4. The client secret expires: the sync fails, and troubleshooting says what to do.
    control.add_app(
        launch.env["ENTRA_CLIENT_ID"], launch.env["ENTRA_CLIENT_SECRET"], secret_expired=True
    )
    forget_cached_tokens()
    page.goto(reverse("admin:directories_directory_change", args=[directory.pk]))
    sync_now(page)
    expect(page.locator("#sync-text")).to_contain_text("Finished: Failed: credentials refused")
    # A refused secret will not fix itself: the directory needs attention at once.
    expect(page.locator("#sync-badge")).to_have_text("Needs attention")
    steps.shot("11-sync-failing")
    page.goto(reverse("admin:troubleshooting"))
    unauthorized = page.locator("#class-unauthorized")
    expect(unauthorized.locator("h2")).to_contain_text("Unauthorized")
    expect(unauthorized.locator(".remediation")).to_contain_text("ENTRA_CLIENT_SECRET")
    expect(unauthorized.locator("tbody tr")).to_have_count(1)
    expect(unauthorized.locator("tbody")).to_contain_text("Contoso HQ")
    steps.shot("12-troubleshooting-unauthorized")

    # 5. A new secret; then most groups are unassigned, so the next sync is held for approval.
    control.add_app(launch.env["ENTRA_CLIENT_ID"], launch.env["ENTRA_CLIENT_SECRET"])
    forget_cached_tokens()
    assigned = sorted(expected.group_ids, key=lambda g: len(tenant.members_of(g, transitive=True)))
    for group_id in assigned[1:]:
        control.unassign(tenant.tenant_id, group_id)
    remaining = expected_directory(tenant, assigned_only=True)
    removed = len(expected.user_ids) - len(remaining.user_ids)
    assert removed > 0.2 * len(expected.user_ids)
    page.goto(reverse("admin:directories_directory_change", args=[directory.pk]))
    sync_now(page)
    expect(page.locator("#sync-text")).to_contain_text("Finished: Held: would remove")
    page.reload()
    expect(page.locator("#sync-badge")).to_have_text("Needs approval")
    held = page.locator("#held-run")
    expect(held).to_contain_text(f"{removed} users")
    expect(held.locator(".planned li").first).to_be_visible()
    steps.shot("13-mass-deletion-held")
    assert SyncedUser.objects.filter(removed_at__isnull=True).count() == len(expected.user_ids)

    queued_sync_runs(page, held.get_by_role("button", name="Approve mass deletion"))
    expect(page.locator(".messagelist .success")).to_contain_text("Approved")
    expect(page.locator("#sync-text")).to_contain_text(SUCCEEDED)
    expect(page.locator("#sync-badge")).to_have_text("Healthy")
    steps.shot("14-mass-deletion-approved")
    present_users(page)
    expect(page.locator(".paginator")).to_contain_text(f"{len(remaining.user_ids)} synced users")
    steps.shot("15-synced-users-after-approval")
    assert SyncedUser.objects.filter(removed_at__isnull=True).count() == len(remaining.user_ids)
    assert directory.sync_runs.filter(trigger=SyncRun.Trigger.APPROVAL).count() == 1


def test_declining_consent_leaves_the_directory_unverified(
    page: Page, screenshots: Path, launch: EmulatorLaunch, tenant: EmuTenant
) -> None:
    steps = Steps(page, screenshots)
    directory = Directory.objects.create(name="Contoso HQ", sync_mode=SyncMode.ASSIGNED)
    change_url = reverse("admin:directories_directory_change", args=[directory.pk])
    page.goto(change_url)

    page.get_by_role("button", name="Verify Now").click()
    sign_in_to_microsoft(page, f"admin@{tenant.default_domain}")
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    steps.shot("20-microsoft-admin-consent-cancel")
    page.get_by_role("button", name="Cancel").click()

    page.wait_for_url(f"**{change_url}")
    expect(page.locator(".messagelist .error")).to_contain_text("consent was declined")
    expect(page.locator("#sync-badge")).to_have_text("Not verified")
    steps.shot("21-consent-declined")
    directory.refresh_from_db()
    assert not directory.is_verified
    assert directory.tenant_id in ("", None)
