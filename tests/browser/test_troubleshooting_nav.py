"""Troubleshooting can be found in a real browser: from the nav sidebar on a directory's page to
the failures, and from a failure group to its entry in the guide, at a laptop's and a tablet's
width, in light and dark colour schemes.

Screenshots go to test-results/browser/ (see SCREENSHOTS in conftest.py), named
3N-step-WIDTH-SCHEME.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from directories.services.troubleshooting import GUIDE_UNAUTHORIZED
from tests.factories import DirectoryFactory, SyncRunFactory

from .conftest import ADMIN_PASSWORD, ADMIN_USERNAME, missing_browser_tools

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.skipif(
    missing_browser_tools() is not None, reason=missing_browser_tools() or ""
)

if missing_browser_tools() is None:
    from playwright.sync_api import expect


def signed_in(browser: Browser, live_server: Any, *, width: int, scheme: str) -> Page:
    """A superuser signed in through the login page, in a window of the given width and scheme."""
    context = browser.new_context(
        base_url=live_server.url,
        viewport={"width": width, "height": 900},
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", ADMIN_USERNAME)
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    return page


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1366, 820])
def test_an_admin_finds_troubleshooting_from_the_sidebar_and_follows_a_guide_link(
    browser: Browser,
    live_server: Any,
    transactional_db: None,
    screenshots: Path,
    width: int,
    scheme: str,
) -> None:
    get_user_model().objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)
    directory = DirectoryFactory(name="Contoso HQ")
    SyncRunFactory(
        directory=directory,
        status="failed",
        error_class="forbidden",
        error_message="Insufficient privileges: it needs User.Read.All.",
    )
    page = signed_in(browser, live_server, width=width, scheme=scheme)

    def shot(name: str, *, full_page: bool = True) -> None:
        page.screenshot(path=screenshots / f"{name}-{width}-{scheme}.png", full_page=full_page)

    try:
        # The index lists it under Directories, with the app's models.
        entry = page.locator("#content-main .app-directories .model-troubleshooting")
        expect(entry.get_by_role("link", name="Troubleshooting")).to_be_visible()
        shot("30-index-troubleshooting")

        # The sidebar on a directory's page, and the directory's own link.
        page.goto(reverse("admin:directories_directory_change", args=[directory.pk]))
        expect(page.locator("#troubleshooting-link")).to_be_visible()
        sidebar = page.locator("#nav-sidebar .app-directories .model-troubleshooting")
        expect(sidebar).to_be_visible()
        shot("31-directory-sidebar-troubleshooting")
        sidebar.get_by_role("link", name="Troubleshooting").click()
        page.wait_for_url(f"**{reverse('admin:troubleshooting')}")
        expect(page.locator("#nav-sidebar .model-troubleshooting")).to_have_class(
            "model-troubleshooting current-model"
        )
        expect(page.locator("#class-forbidden tbody")).to_contain_text("Contoso HQ")
        shot("32-troubleshooting-from-sidebar")

        # A failure group's guide topic jumps to its entry in the guide.
        page.locator("#class-forbidden .guide-links").get_by_role(
            "link", name=GUIDE_UNAUTHORIZED
        ).click()
        page.wait_for_url("**#guide-unauthorized")
        expect(page.locator("#guide-unauthorized")).to_be_in_viewport()
        shot("33-troubleshooting-guide-entry", full_page=False)

        # The directory's link opens the page filtered to it.
        page.goto(reverse("admin:directories_directory_change", args=[directory.pk]))
        page.locator("#troubleshooting-link").click()
        page.wait_for_url(f"**{reverse('admin:troubleshooting')}?directory={directory.pk}")
        expect(page.locator("#id_directory")).to_have_value(str(directory.pk))
    finally:
        page.context.close()
