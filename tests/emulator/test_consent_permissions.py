"""The admin-consent page asks for exactly the permissions an app is registered with.

The demo's Directory Sync app (and `graph_emulator`'s) is registered as README's "Registering
the two Entra applications" tells an admin to: four read-only Microsoft Graph application
permissions, which are all that a sync, Verify Now and the troubleshooting lookup need.
"""

from __future__ import annotations

import html
import importlib
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings

from entra_emulator import DEFAULT_ADMIN_PASSWORD, Emulator, EmuResponse, EmuTenant, EmuUser
from entra_emulator.scenarios import single_tenant_emulator, use_directory_sync_permissions
from entra_emulator.server import EmulatorLaunch
from entra_emulator.tenant import DIRECTORY_SYNC_PERMISSIONS

from .conftest import CLIENT_ID, GRAPH_URL, LOGIN_URL, SECRET, guid

README = Path(__file__).resolve().parents[2] / "README.md"
REDIRECT = "http://localhost:8000/cb"
PASSWORD = "correct horse battery staple"
ADMIN_UPN = "admin@contoso.onmicrosoft.com"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
README_FOUR = [
    "Application.Read.All",
    "GroupMember.Read.All",
    "Organization.Read.All",
    "User.Read.All",
]
# Microsoft Graph's display strings of these application permissions (permissions reference).
DISPLAY_NAMES = {
    "User.Read.All": "Read all users' full profiles",
    "GroupMember.Read.All": "Read all group memberships",
    "Application.Read.All": "Read all applications",
    "Organization.Read.All": "Read organization information",
    "Directory.Read.All": "Read directory data",
    "Group.Read.All": "Read all groups",
    "User.ReadWrite.All": "Read and write all users' full profiles",
}


@pytest.fixture
def admin(tenant: EmuTenant) -> EmuUser:
    return tenant.add_user(
        EmuUser(
            id=guid(500),
            user_principal_name=ADMIN_UPN,
            mail=ADMIN_UPN,
            display_name="Contoso Admin",
            given_name="Contoso",
            surname="Admin",
            password=PASSWORD,
            directory_roles=["Global Administrator"],
        )
    )


def consent_page(
    emulator: Emulator,
    client_id: str = CLIENT_ID,
    *,
    login_url: str = LOGIN_URL,
    graph_url: str = GRAPH_URL,
    password: str = PASSWORD,
) -> EmuResponse:
    """Start admin consent as Verify Now does and sign the admin in: the permissions page."""
    query = urlencode(
        {
            "client_id": client_id,
            "scope": f"{graph_url}/.default",
            "redirect_uri": REDIRECT,
            "state": "st",
        }
    )
    start = emulator.handle("GET", f"{login_url}/organizations/v2.0/adminconsent?{query}")
    assert start.status == 200, start.text
    page = post_back(emulator, start, login=ADMIN_UPN, passwd=password)
    assert page.status == 200, page.text
    assert "Permissions requested — Accept for your organization" in page.text
    return page


def post_back(emulator: Emulator, page: EmuResponse, **fields: str) -> EmuResponse:
    """Submit a page's form as a browser would: to its action, with its `ctx`."""
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    ctx = re.search(r'name="ctx" value="([^"]*)"', page.text)
    assert action and ctx, page.text
    body = urlencode({"ctx": html.unescape(ctx.group(1)), **fields})
    return emulator.handle("POST", html.unescape(action.group(1)), FORM, body)


def listed(page: EmuResponse) -> dict[str, str]:
    """The permissions the page asks for: name -> the display string shown for it."""
    found = re.search(r'<ul id="permissions">(.*?)</ul>', page.text, re.S)
    assert found, page.text
    items = re.findall(
        r'<li><strong>([^<]*)</strong> <span class="code">\(([^)]*)\)</span></li>', found[1]
    )
    return {html.unescape(name): html.unescape(title) for title, name in items}


def roles_of(token: str) -> list[str]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return list(claims.get("roles", []))


def client_credentials_token(
    emulator: Emulator,
    tenant_id: str,
    client_id: str,
    *,
    secret: str = SECRET,
    login_url: str = LOGIN_URL,
    graph_url: str = GRAPH_URL,
) -> str:
    body = urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": f"{graph_url}/.default",
        }
    )
    response = emulator.handle("POST", f"{login_url}/{tenant_id}/oauth2/v2.0/token", FORM, body)
    assert response.status == 200, response.text
    return str(response.json()["access_token"])


def assert_asks_for_the_readme_four(launch: EmulatorLaunch) -> None:
    """A launched emulator's Directory Sync app: its consent page lists the README's four
    permissions and nothing else, and its tokens after consent carry exactly those roles."""
    env, emulator = launch.env, launch.server.emulator
    urls = {"login_url": env["ENTRA_LOGIN_URL"], "graph_url": env["GRAPH_URL"]}
    page = consent_page(emulator, env["ENTRA_CLIENT_ID"], password=DEFAULT_ADMIN_PASSWORD, **urls)
    assert listed(page) == {name: DISPLAY_NAMES[name] for name in README_FOUR}
    assert "ReadWrite" not in page.text
    assert post_back(emulator, page, consent="accept").status == 302

    token = client_credentials_token(
        emulator,
        env["EMULATOR_TENANT_ID"],
        env["ENTRA_CLIENT_ID"],
        secret=env["ENTRA_CLIENT_SECRET"],
        **urls,
    )
    assert roles_of(token) == README_FOUR


def test_the_directory_sync_permissions_are_the_ones_readme_tells_an_admin_to_add() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Registering the two Entra applications", 1)[1].split("\n## ", 1)[0]
    api = section.split("Application permissions*, add:", 1)[1].split("*Grant admin consent*")[0]

    assert sorted(re.findall(r"^\s+- `([A-Za-z.]+)`", api, re.M)) == README_FOUR
    assert sorted(DIRECTORY_SYNC_PERMISSIONS) == README_FOUR


def test_the_demo_apps_consent_page_asks_for_the_four_read_only_permissions(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    use_directory_sync_permissions(emulator, CLIENT_ID)

    page = consent_page(emulator)

    assert listed(page) == {name: DISPLAY_NAMES[name] for name in README_FOUR}
    assert "ReadWrite" not in page.text and "Read and write" not in page.text


@pytest.mark.parametrize(
    "permissions",
    [{"Directory.Read.All"}, {"Group.Read.All", "User.ReadWrite.All"}],
    ids=["directory", "group-and-user-write"],
)
def test_an_app_registered_with_other_permissions_asks_for_those(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser, permissions: set[str]
) -> None:
    app = emulator.add_app(guid(77), SECRET, tenant_ids=set(), permissions=permissions)

    page = consent_page(emulator, app.client_id)

    assert listed(page) == {name: DISPLAY_NAMES[name] for name in permissions}


@pytest.mark.parametrize(
    "permissions",
    [DIRECTORY_SYNC_PERMISSIONS, frozenset({"Directory.Read.All"})],
    ids=["readme", "directory"],
)
def test_a_token_after_consent_carries_exactly_the_consented_roles(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser, permissions: frozenset[str]
) -> None:
    app = emulator.add_app(guid(77), SECRET, tenant_ids=set(), permissions=permissions)
    accepted = post_back(emulator, consent_page(emulator, app.client_id), consent="accept")
    assert accepted.status == 302, accepted.text
    params = dict(parse_qsl(urlsplit(accepted.headers["Location"]).query))
    assert params["admin_consent"] == "True" and params["tenant"] == tenant.tenant_id

    token = client_credentials_token(emulator, tenant.tenant_id, app.client_id)

    assert roles_of(token) == sorted(permissions)


def test_the_four_permissions_read_everything_a_sync_and_verify_now_read(
    emulator: Emulator, tenant: EmuTenant
) -> None:
    use_directory_sync_permissions(emulator, CLIENT_ID)
    token = client_credentials_token(emulator, tenant.tenant_id, CLIENT_ID)
    auth = {"Authorization": f"Bearer {token}", "ConsistencyLevel": "eventual"}
    paths = [
        "organization",
        "users?$select=id,displayName",
        "groups?$select=id,displayName",
        f"groups/{guid(101)}/transitiveMembers/microsoft.graph.user?$count=true",
        f"servicePrincipals(appId='{tenant.auth_app_id}')/appRoleAssignedTo",
        f"servicePrincipals?$filter=appId eq '{tenant.auth_app_id}'",
    ]

    for path in paths:
        response = emulator.handle("GET", f"{GRAPH_URL}/v1.0/{path}", auth)
        assert response.status == 200, (path, response.text)
    members = emulator.handle(
        "GET", f"{GRAPH_URL}/v1.0/groups/{guid(101)}/members?$select=id,displayName", auth
    ).json()["value"]
    users = [m for m in members if m["@odata.type"] == "#microsoft.graph.user"]
    assert users and all(m["displayName"] for m in users)  # not the id-only shape of a 403


def test_the_benchmarks_emulator_registers_the_app_with_the_four(tenant: EmuTenant) -> None:
    emulator = single_tenant_emulator(
        tenant, client_id=CLIENT_ID, client_secret=SECRET, graph_url=GRAPH_URL
    )

    assert emulator.apps[CLIENT_ID].permissions == DIRECTORY_SYNC_PERMISSIONS


def capture_launches(monkeypatch: pytest.MonkeyPatch, module: str) -> list[EmulatorLaunch]:
    """Record what a command's `emulator_launch` started, to look at once it stopped."""
    launches: list[EmulatorLaunch] = []
    original: Callable[..., EmulatorLaunch] = importlib.import_module(module).emulator_launch

    def launch(**kwargs: Any) -> EmulatorLaunch:
        launches.append(original(**kwargs))
        return launches[-1]

    monkeypatch.setattr(f"{module}.emulator_launch", launch)
    return launches


def test_graph_emulators_default_app_asks_for_the_readmes_four(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path
) -> None:
    settings.ENTRA_CLIENT_ID = settings.ENTRA_CLIENT_SECRET = settings.ENTRA_AUTH_CLIENT_ID = ""
    launches = capture_launches(monkeypatch, "directories.management.commands.graph_emulator")
    call_command(
        "graph_emulator",
        "--check",
        "--port",
        "0",
        "--state-dir",
        str(tmp_path / "state"),
        "--users",
        "5",
        "--groups",
        "2",
        stdout=io.StringIO(),
    )

    [launch] = launches
    assert_asks_for_the_readme_four(launch)
