"""A real browser on the admin: Debian's Chromium driven by Playwright, against the live server
and the emulator's HTTPS pages, which Chromium trusts through the emulator's CA in its NSS db.

Tasks are queued in the real broker and run in-process by a django-q2 worker (as a qcluster
would) while the page polls, so the console is seen going from queued to finished.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth import get_user_model
from django_q.brokers import get_broker

from directories.graph import forget_cached_tokens
from entra_emulator import EmulatorControl, EmuTenant, generate_tenant
from entra_emulator.server import EmulatorLaunch, emulator_launch
from entra_emulator.tls import trust_in_browsers
from tests.conftest import AUTH_CLIENT_ID
from tests.tasks.conftest import run_queued_tasks

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "browser"
TENANT_SEED = 41
ADMIN_USERNAME = "console-admin"
ADMIN_PASSWORD = "a-long-browser-test-password"


def missing_browser_tools() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.is_file():
        return f"needs Debian's chromium at {CHROMIUM} (make test installs it with apt)"
    if shutil.which("certutil") is None:
        return "needs certutil (libnss3-tools) to trust the emulator's CA in Chromium"
    if importlib.util.find_spec("playwright") is None:
        return "needs the playwright package (pip install -r requirements-dev.txt)"
    return None


def contoso() -> EmuTenant:
    """60 users in 8 groups; two groups are assigned to the Authentication application."""
    return generate_tenant(users=60, groups=8, seed=TENANT_SEED, auth_app_id=AUTH_CLIENT_ID)


@pytest.fixture(scope="session")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorLaunch]:
    started = emulator_launch(
        tenants=[contoso()],
        state_dir=tmp_path_factory.mktemp("emulator"),
        port=0,
        auth_client_id=AUTH_CLIENT_ID,
    )
    yield started
    started.server.stop()


@pytest.fixture(scope="session")
def browser_home(launch: EmulatorLaunch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose NSS database trusts the emulator's CA, as `make demo` sets up."""
    home = tmp_path_factory.mktemp("browser-home")
    trusted, message = trust_in_browsers(launch.server.ca_pem, home=home)
    assert trusted, message
    return home


@pytest.fixture(scope="module")
def browser(browser_home: Path, django_db_setup: None) -> Iterator[Browser]:
    """Chromium, for this module's tests.

    Playwright's sync API leaves an event loop marked as running in this thread, which makes
    Django refuse ORM calls from the test itself (and the in-process worker); they are still
    synchronous, so the check is lifted while the browser is open.
    """
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            env={**os.environ, "HOME": str(browser_home)},
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def control(launch: EmulatorLaunch) -> Iterator[EmulatorControl]:
    """The emulator's control API; each test starts from a fresh Contoso and no consent."""
    launch.server.emulator.add_tenant(contoso())
    client = EmulatorControl(launch.env["GRAPH_URL"], verify=str(launch.ca_bundle))
    client.add_app(launch.env["ENTRA_CLIENT_ID"], launch.env["ENTRA_CLIENT_SECRET"], tenant_ids=[])
    client.clear_faults()
    yield client
    client.close()


@pytest.fixture
def tenant(launch: EmulatorLaunch, control: EmulatorControl) -> EmuTenant:
    return next(iter(launch.server.emulator.tenants.values()))


@pytest.fixture(autouse=True)
def pointed_at_the_emulator(
    entra_settings: None, launch: EmulatorLaunch, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings `emulator.env` gives; the server side trusts the emulator's CA too."""
    for name in ("ENTRA_LOGIN_URL", "GRAPH_URL", "ENTRA_CLIENT_ID", "ENTRA_CLIENT_SECRET"):
        setattr(settings, name, launch.env[name])
    settings.ENTRA_AUTH_CLIENT_ID = AUTH_CLIENT_ID
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", launch.env["REQUESTS_CA_BUNDLE"])
    settings.GRAPH_CA_BUNDLE = launch.env["REQUESTS_CA_BUNDLE"]  # what settings.py reads from it
    forget_cached_tokens()


@pytest.fixture
def page(browser: Browser, live_server: Any, transactional_db: None) -> Iterator[Page]:
    """A superuser signed in through the admin's login page."""
    get_user_model().objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.goto("/admin/login/?next=/admin/")
    tab.fill("#id_username", ADMIN_USERNAME)
    tab.fill("#id_password", ADMIN_PASSWORD)
    tab.click("input[type=submit]")
    tab.wait_for_url("**/admin/")
    yield tab
    context.close()


def run_worker() -> int:
    """What a qcluster does with the queued tasks: run them and save their results."""
    return run_queued_tasks(get_broker())
