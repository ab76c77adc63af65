"""MSAL Python's authorization-code flow (PKCE, nonce) and Microsoft's admin-consent flow against
the emulator's REAL HTTPS sign-in pages, driven like a browser: GET the page, parse its form
with the standard library's html.parser, post it back, and stop at the 302 to the app.

MSAL's `verify=` is only its requests.Session default, which REQUESTS_CA_BUNDLE and
CURL_CA_BUNDLE override; `trust_emulator_env` points both at a bundle that includes the
emulator's CA (these machines set them to one that does not).
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import msal
import pytest
import requests

from entra_emulator import DEFAULT_ADMIN_PASSWORD, Emulator, EmuTenant

REDIRECT_URI = "http://localhost:8765/callback"
APP_SECRET = "conformance-browser-app-secret"


# --- a very small browser ---------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)  # inputs: name -> value
    buttons: list[tuple[str, str]] = field(default_factory=list)  # named submit buttons


class FormParser(HTMLParser):
    """The forms of a page, their inputs and named submit buttons (values unescaped)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(
                Form(attributes.get("action", ""), attributes.get("method", "get").lower())
            )
        elif tag == "input" and self.forms and "name" in attributes:
            self.forms[-1].fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "button" and self.forms and "name" in attributes:
            self.forms[-1].buttons.append((attributes["name"], attributes.get("value", "")))
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def parse_page(html: str) -> FormParser:
    parser = FormParser()
    parser.feed(html)
    parser.close()
    return parser


@dataclass
class Visit:
    """What reached the app (a 302's Location, or a form_post page's fields for the redirect
    URI) and the titles of the pages on the way."""

    titles: list[str]
    location: str = ""
    posted: dict[str, str] | None = None

    @property
    def params(self) -> dict[str, str]:
        if self.posted is not None:
            return dict(self.posted)
        return dict(parse_qsl(urlsplit(self.location).query, keep_blank_values=True))


def sign_in_through_pages(
    browser: requests.Session, start: str, login: str, password: str, *, consent: str = "accept"
) -> Visit:
    """Open `start`, fill the sign-in form, press `consent` on a consent page if one comes,
    and return what the app would receive, without following the redirect (or the post)."""
    titles: list[str] = []
    response = browser.get(start, allow_redirects=False, timeout=10)
    for _ in range(5):
        if response.status_code == 302:
            return Visit(titles, location=response.headers["Location"])
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/html")
        page = parse_page(response.text)
        titles.append(page.title)
        (form,) = page.forms
        assert form.method == "post", form
        if form.action == REDIRECT_URI:  # response_mode=form_post: the browser posts these
            return Visit(titles, posted=form.fields)
        assert form.action.startswith("https://"), form
        data = dict(form.fields)
        if "passwd" in data:
            data.update(login=login, passwd=password)
        else:
            buttons = dict(form.buttons)
            assert buttons.get("consent") is not None, page.title
            assert consent in {value for name, value in form.buttons if name == "consent"}
            data["consent"] = consent
        response = browser.post(form.action, data=data, allow_redirects=False, timeout=10)
    raise AssertionError(f"No redirect to the app after the pages {titles}")


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def browser(trust_emulator_env: Path, ca: str) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.verify = ca
        yield session


@pytest.fixture
def admin_upn(tenant: EmuTenant) -> str:
    return f"admin@{tenant.default_domain}"


@pytest.fixture
def new_app(emulator: Emulator) -> str:
    """A fresh app registration with no consent anywhere yet (so its consent page shows)."""
    client_id = str(uuid.uuid4())
    emulator.add_app(client_id, APP_SECRET, tenant_ids=set(), display_name="Conformance Web App")
    return client_id


def ssl_context(ca: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)


# --- MSAL: authorization code with PKCE -------------------------------------------------------


# MSAL warns that form_post is safer than the default query response mode; both are tested.
@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
@pytest.mark.parametrize("response_mode", ["query", "form_post"])
def test_msal_completes_the_auth_code_flow_with_pkce_over_the_real_sign_in_pages(
    trust_emulator_env: Path,
    browser: requests.Session,
    url: str,
    ca: str,
    tenant: EmuTenant,
    new_app: str,
    admin_upn: str,
    response_mode: str,
) -> None:
    app = msal.ConfidentialClientApplication(
        new_app,
        client_credential=APP_SECRET,
        authority=f"{url}/organizations",
        instance_discovery=False,
        verify=ca,
    )
    flow = app.initiate_auth_code_flow(
        scopes=["User.Read"],
        redirect_uri=REDIRECT_URI,
        response_mode=None if response_mode == "query" else response_mode,
    )
    auth_uri = flow["auth_uri"]
    sent = dict(parse_qsl(urlsplit(auth_uri).query))
    assert auth_uri.startswith(f"{url}/organizations/oauth2/v2.0/authorize?")
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"] and sent["nonce"]

    visit = sign_in_through_pages(browser, auth_uri, admin_upn, DEFAULT_ADMIN_PASSWORD)

    # The app had no consent in the tenant: the sign-in page, then the consent page.
    if response_mode == "query":
        assert visit.titles == ["Sign in to your account", "Permissions requested"]
        assert visit.location.startswith(f"{REDIRECT_URI}?")
    else:
        assert visit.titles == ["Sign in to your account", "Permissions requested", "Working..."]
        assert visit.posted is not None
    assert visit.params["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, visit.params)
    assert "access_token" in result, result
    claims = result["id_token_claims"]
    assert claims["tid"] == tenant.tenant_id
    assert claims["preferred_username"] == admin_upn
    assert claims["aud"] == new_app
    assert claims["nonce"] == sent["nonce"]

    # A relying party's check of the ID token: the key from the published JWKS, RS256.
    config = browser.get(f"{url}/organizations/v2.0/.well-known/openid-configuration").json()
    assert config["jwks_uri"].startswith(f"{url}/")
    signing_key = jwt.PyJWKClient(config["jwks_uri"], ssl_context=ssl_context(ca))
    key = signing_key.get_signing_key_from_jwt(result["id_token"])
    verified: dict[str, Any] = jwt.decode(
        result["id_token"],
        key.key,
        algorithms=config["id_token_signing_alg_values_supported"],
        audience=new_app,
        issuer=config["issuer"].replace("{tenantid}", tenant.tenant_id),
    )
    assert jwt.get_unverified_header(result["id_token"])["alg"] == "RS256"
    assert verified["oid"] == next(
        u.id for u in tenant.users.values() if u.user_principal_name == admin_upn
    )

    # MSAL cached the account; its refresh token works over the wire too.
    (account,) = app.get_accounts()
    assert account["username"] == admin_upn
    refreshed = app.acquire_token_silent(["User.Read"], account, force_refresh=True)
    assert refreshed is not None and "access_token" in refreshed, refreshed
    assert refreshed["access_token"] != result["access_token"]


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_a_second_sign_in_to_a_consented_app_skips_the_consent_page(
    browser: requests.Session,
    url: str,
    ca: str,
    tenant: EmuTenant,
    new_app: str,
    admin_upn: str,
) -> None:
    app = msal.ConfidentialClientApplication(
        new_app,
        client_credential=APP_SECRET,
        authority=f"{url}/{tenant.tenant_id}",
        instance_discovery=False,
        verify=ca,
    )
    titles = []
    for _ in range(2):
        flow = app.initiate_auth_code_flow(scopes=["User.Read"], redirect_uri=REDIRECT_URI)
        visit = sign_in_through_pages(browser, flow["auth_uri"], admin_upn, DEFAULT_ADMIN_PASSWORD)
        result = app.acquire_token_by_auth_code_flow(flow, visit.params)
        assert result.get("id_token_claims", {}).get("tid") == tenant.tenant_id, result
        titles.append(visit.titles)

    assert titles == [
        ["Sign in to your account", "Permissions requested"],
        ["Sign in to your account"],
    ]


# --- admin consent ----------------------------------------------------------------------------


def admin_consent_url(url: str, client_id: str, state: str = "xyz") -> str:
    query = urlencode(
        {
            "client_id": client_id,
            "scope": f"{url}/.default",
            "redirect_uri": REDIRECT_URI,
            "state": state,
        }
    )
    return f"{url}/organizations/v2.0/adminconsent?{query}"


def client_credentials(url: str, ca: str, tenant: EmuTenant, client_id: str) -> dict[str, Any]:
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=APP_SECRET,
        authority=f"{url}/{tenant.tenant_id}",
        instance_discovery=False,
        verify=ca,
    )
    result: dict[str, Any] = app.acquire_token_for_client(scopes=[f"{url}/.default"])
    return result


def test_accepting_admin_consent_redirects_with_the_tenant_and_consents_the_app(
    browser: requests.Session,
    url: str,
    ca: str,
    tenant: EmuTenant,
    new_app: str,
    admin_upn: str,
) -> None:
    before = client_credentials(url, ca, tenant, new_app)
    assert before.get("error") == "unauthorized_client", before
    assert 700016 in before["error_codes"]

    visit = sign_in_through_pages(
        browser, admin_consent_url(url, new_app), admin_upn, DEFAULT_ADMIN_PASSWORD
    )

    assert visit.titles == ["Sign in to your account", "Permissions requested"]
    assert visit.location.startswith(f"{REDIRECT_URI}?")
    assert visit.params == {
        "admin_consent": "True",
        "tenant": tenant.tenant_id,
        "scope": f"{url}/.default",
        "state": "xyz",
    }
    after = client_credentials(url, ca, tenant, new_app)
    assert "access_token" in after, after


def test_cancelling_admin_consent_redirects_with_access_denied(
    browser: requests.Session,
    url: str,
    ca: str,
    tenant: EmuTenant,
    new_app: str,
    admin_upn: str,
) -> None:
    visit = sign_in_through_pages(
        browser,
        admin_consent_url(url, new_app),
        admin_upn,
        DEFAULT_ADMIN_PASSWORD,
        consent="cancel",
    )

    params = visit.params
    assert visit.location.startswith(f"{REDIRECT_URI}?")
    assert params["error"] == "access_denied"
    assert params["error_description"].startswith("AADSTS65004: ")
    assert (params["admin_consent"], params["state"]) == ("True", "xyz")
    assert "tenant" not in params
    still = client_credentials(url, ca, tenant, new_app)
    assert still.get("error") == "unauthorized_client", still
