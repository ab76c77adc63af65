"""SignIn (authorization code + PKCE through MSAL) against the emulator, served through `responses`.

The emulator's sign-in pages are plain HTML forms; `sign_in_through_pages` fills them in as a
person would and stops at the redirect back to us. See "Microsoft identity platform and OAuth
2.0 authorization code flow" for the parameters checked here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
import responses

from directories.graph import (
    ErrorClass,
    GraphSettings,
    GraphSignInFailed,
    GraphSignInRefused,
    GraphTransient,
    GraphWrongTenant,
    SignedIn,
    SignIn,
    SignInStart,
)
from entra_emulator import DEFAULT_ADMIN_PASSWORD, Emulator, EmuTenant, generate_tenant
from entra_emulator.responses_adapter import install
from tests.conftest import CLIENT_ID, CLIENT_SECRET, GRAPH_URL, LOGIN_URL

REDIRECT_URI = "https://entra-sync.example.test/admin/directories/directory/verify/callback/"
STATE = "our-signed-state"
SCOPES = ["User.Read"]
UNKNOWN_TENANT_ID = "99999999-9999-4999-8999-999999999999"

# We ask for response_mode=query on purpose (signin.py says why, and silences MSAL's advice;
# pytest puts its own warning filters in front of that one).
pytestmark = pytest.mark.filterwarnings(
    "ignore:response_mode=.form_post. is recommended:UserWarning"
)


@pytest.fixture
def emulator() -> Emulator:
    emu = Emulator(graph_url=GRAPH_URL)
    emu.add_app(CLIENT_ID, CLIENT_SECRET, redirect_uris=[REDIRECT_URI])
    return emu


@pytest.fixture
def login_http(emulator: Emulator) -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        install(rsps, emulator, login_url=LOGIN_URL, graph_url=GRAPH_URL)
        yield rsps


@pytest.fixture
def tenant(emulator: Emulator, login_http: responses.RequestsMock) -> EmuTenant:
    return emulator.add_tenant(generate_tenant(users=3, groups=1, seed=3))


@pytest.fixture
def sign_in() -> SignIn:
    return SignIn(
        GraphSettings(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, login_url=LOGIN_URL, timeout=7.5
        )
    )


def start(sign_in: SignIn, tenant_id: str) -> SignInStart:
    return sign_in.start(
        tenant_id, redirect_uri=REDIRECT_URI, state=STATE, scopes=SCOPES, prompt="select_account"
    )


class FormParser(HTMLParser):
    """The first form of a page: its action and its inputs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = attr.get("action", "")
        elif tag == "input" and "name" in attr:
            self.fields[attr["name"]] = attr.get("value", "")
        elif tag == "button" and "name" in attr:
            self.buttons.append(attr["name"])


def sign_in_through_pages(auth_uri: str, login: str) -> dict[str, str]:
    """Sign in on Microsoft's pages (accepting consent if asked): the redirect's query."""
    browser = requests.Session()
    response = browser.get(auth_uri, allow_redirects=False)
    for _ in range(5):
        if response.status_code == 302:
            location = response.headers["Location"]
            assert location.startswith(REDIRECT_URI), location
            return query(location)
        assert response.status_code == 200, response.text
        form = FormParser()
        form.feed(response.text)
        assert form.action is not None, response.text
        data = dict(form.fields)
        if "passwd" in data:
            data.update(login=login, passwd=DEFAULT_ADMIN_PASSWORD)
        elif form.buttons:
            data[form.buttons[0]] = "accept"
        response = browser.post(urljoin(auth_uri, form.action), data=data, allow_redirects=False)
    raise AssertionError("Microsoft's pages never redirected back")


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def admin_login(tenant: EmuTenant) -> str:
    return f"admin@{tenant.default_domain}"


# --- the way it should go ---------------------------------------------------------------------


def test_start_returns_the_tenants_authorize_url_with_pkce_and_our_state(
    sign_in: SignIn, tenant: EmuTenant
) -> None:
    started = start(sign_in, tenant.tenant_id)

    assert started.auth_uri.startswith(f"{LOGIN_URL}/{tenant.tenant_id}/oauth2/v2.0/authorize?")
    params = query(started.auth_uri)
    assert params["client_id"] == CLIENT_ID
    assert params["response_type"] == "code"
    assert params["redirect_uri"] == REDIRECT_URI
    assert params["state"] == STATE
    assert params["prompt"] == "select_account"
    assert params["response_mode"] == "query"  # a form_post would arrive without our session
    assert params["code_challenge_method"] == "S256"
    assert params["code_challenge"]
    assert set(params["scope"].split()) >= {"User.Read", "openid", "profile", "offline_access"}
    assert started.flow["state"] == STATE
    assert started.flow["code_verifier"] not in started.auth_uri  # only its hash is sent
    assert started.flow["code_verifier"] not in repr(started)


def test_finish_returns_the_tenant_and_the_account_that_signed_in(
    sign_in: SignIn, tenant: EmuTenant, login_http: responses.RequestsMock
) -> None:
    started = start(sign_in, tenant.tenant_id)
    answer = sign_in_through_pages(started.auth_uri, admin_login(tenant))

    signed_in = sign_in.finish(tenant.tenant_id, flow=started.flow, params=answer)

    assert signed_in == SignedIn(tenant_id=tenant.tenant_id.lower(), username=admin_login(tenant))
    # Instance discovery is for Microsoft's own hosts: nothing else was asked.
    assert {urlsplit(c.request.url).netloc for c in login_http.calls} == {
        urlsplit(LOGIN_URL).netloc
    }


def test_no_token_leaves_the_sign_in(
    sign_in: SignIn, tenant: EmuTenant, login_http: responses.RequestsMock
) -> None:
    started = start(sign_in, tenant.tenant_id)
    answer = sign_in_through_pages(started.auth_uri, admin_login(tenant))
    signed_in = sign_in.finish(tenant.tenant_id, flow=started.flow, params=answer)

    (token_call,) = [
        c for c in login_http.calls if str(c.request.url).endswith("/oauth2/v2.0/token")
    ]
    assert isinstance(token_call.response, requests.Response)
    issued = json.loads(token_call.response.text)
    tokens = [issued[name] for name in ("access_token", "refresh_token", "id_token")]
    assert all(tokens)
    assert [f.name for f in dataclasses.fields(signed_in)] == ["tenant_id", "username"]
    shown = repr(signed_in) + str(vars(signed_in))
    assert not [token for token in tokens if token in shown or token[:40] in shown]


# --- failures ---------------------------------------------------------------------------------


def test_an_answer_for_another_state_is_refused_by_msal(sign_in: SignIn, tenant: EmuTenant) -> None:
    started = start(sign_in, tenant.tenant_id)
    answer = sign_in_through_pages(started.auth_uri, admin_login(tenant))

    with pytest.raises(GraphSignInFailed) as caught:
        sign_in.finish(tenant.tenant_id, flow=started.flow, params={**answer, "state": "forged"})

    assert type(caught.value) is GraphSignInFailed  # checked, not refused by Microsoft
    assert caught.value.error_class == ErrorClass.UNAUTHORIZED
    assert caught.value.message.startswith(
        "The sign-in answer could not be checked (state mismatch"
    )
    assert caught.value.detail.startswith("state mismatch")


def test_an_id_token_for_another_sign_in_is_refused_by_msal(
    sign_in: SignIn, tenant: EmuTenant
) -> None:
    started = start(sign_in, tenant.tenant_id)
    answer = sign_in_through_pages(started.auth_uri, admin_login(tenant))
    other_flow = {**started.flow, "nonce": "the nonce of another sign-in"}

    with pytest.raises(GraphSignInFailed, match=r"could not be checked \(The nonce in id token"):
        sign_in.finish(tenant.tenant_id, flow=other_flow, params=answer)


def test_an_error_answer_is_a_refused_sign_in(sign_in: SignIn, tenant: EmuTenant) -> None:
    started = start(sign_in, tenant.tenant_id)
    answer = {
        "error": "access_denied",
        "error_description": "AADSTS50105: The signed in user is not assigned to a role.\r\n"
        "Trace ID: x",
        "state": STATE,
    }

    with pytest.raises(GraphSignInRefused) as caught:
        sign_in.finish(tenant.tenant_id, flow=started.flow, params=answer)

    assert caught.value.error_class == ErrorClass.UNAUTHORIZED
    assert caught.value.code == "access_denied"
    first_line = "AADSTS50105: The signed in user is not assigned to a role."
    assert caught.value.message == f"Microsoft refused the sign-in ({first_line})."
    assert caught.value.detail == first_line


def test_a_code_microsoft_will_not_redeem_is_a_refused_sign_in(
    sign_in: SignIn, tenant: EmuTenant
) -> None:
    started = start(sign_in, tenant.tenant_id)
    answer = sign_in_through_pages(started.auth_uri, admin_login(tenant))

    with pytest.raises(GraphSignInRefused, match=r"^Microsoft refused the sign-in \(AADSTS"):
        sign_in.finish(tenant.tenant_id, flow=started.flow, params={**answer, "code": "1.Anot"})


def test_an_unreachable_login_service_is_transient(sign_in: SignIn) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(
            f"{LOGIN_URL}/{UNKNOWN_TENANT_ID}/v2.0/.well-known/openid-configuration",
            body=requests.ConnectionError("connection refused"),
        )
        with pytest.raises(GraphTransient) as caught:
            start(sign_in, UNKNOWN_TENANT_ID)

    assert caught.value.error_class == ErrorClass.TRANSIENT
    assert caught.value.message == (
        f"The Microsoft sign-in service for tenant {UNKNOWN_TENANT_ID} could not be reached "
        "(connection refused)."
    )
    assert caught.value.detail == "connection refused"


def test_a_login_service_failing_at_the_token_endpoint_is_transient(
    sign_in: SignIn, tenant: EmuTenant, emulator: Emulator
) -> None:
    started = start(sign_in, tenant.tenant_id)
    answer = sign_in_through_pages(started.auth_uri, admin_login(tenant))
    emulator.login.fail_next(503, path_contains="/oauth2/v2.0/token")

    with pytest.raises(GraphTransient) as caught:
        sign_in.finish(tenant.tenant_id, flow=started.flow, params=answer)

    assert caught.value.message == (
        f"The Microsoft sign-in service for tenant {tenant.tenant_id} failed (HTTP Error: 503)."
    )


def test_an_unknown_tenant_is_the_wrong_tenant(
    sign_in: SignIn, login_http: responses.RequestsMock
) -> None:
    with pytest.raises(GraphWrongTenant) as caught:
        start(sign_in, UNKNOWN_TENANT_ID)

    assert caught.value.message.startswith(
        f"Tenant {UNKNOWN_TENANT_ID} was not found in Microsoft Entra ID"
    )
    assert f"{LOGIN_URL}/{UNKNOWN_TENANT_ID}" in caught.value.detail  # MSAL's own words
