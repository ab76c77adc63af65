"""The browser flows: sign-in pages, authorization code + PKCE, ID tokens, JWKS, admin consent.

Shapes follow Microsoft Learn: "Microsoft identity platform and OAuth 2.0 authorization code
flow", "Admin consent on the Microsoft identity platform", "ID token claims reference" and
"Microsoft Entra authentication and authorization error codes".
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import stat
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import msal
import pytest
import requests
import responses

from entra_emulator import Emulator, EmuResponse, EmuTenant, EmuUser, generate_tenant

from .conftest import CLIENT_ID, GRAPH_URL, LOGIN_URL, SECRET, FakeClock, guid

REDIRECT = "http://localhost:8000/cb"
PASSWORD = "correct horse battery staple"
VERIFIER = "v" * 20 + "-verifier-that-is-long-enough-for-pkce"
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).decode()[:-1]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ADMIN_UPN = "admin@contoso.onmicrosoft.com"
MEMBER_UPN = "user00@contoso.onmicrosoft.com"


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


@pytest.fixture
def member(tenant: EmuTenant) -> EmuUser:
    user = tenant.users[guid(1)]
    user.password = PASSWORD
    return user


@pytest.fixture
def fabrikam(emulator: Emulator) -> EmuTenant:
    """A second tenant whose generated admin is admin@fabrikam.onmicrosoft.com."""
    return emulator.add_tenant(
        generate_tenant(
            users=5,
            groups=2,
            seed=3,
            tenant_id=guid(3000),
            display_name="Fabrikam",
            domain="fabrikam.onmicrosoft.com",
        )
    )


# --- helpers ----------------------------------------------------------------------------------


def authorize_url(authority: str = "organizations", **overrides: Any) -> str:
    params: dict[str, str | None] = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "User.Read openid profile offline_access",
        "state": "s1",
        "nonce": "n1",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{LOGIN_URL}/{authority}/oauth2/v2.0/authorize?{query}"


def consent_url(authority: str = "organizations", **overrides: str | None) -> str:
    params: dict[str, str | None] = {
        "client_id": CLIENT_ID,
        "scope": f"{GRAPH_URL}/.default",
        "redirect_uri": REDIRECT,
        "state": "st",
    }
    params.update(overrides)
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{LOGIN_URL}/{authority}/v2.0/adminconsent?{query}"


def field_value(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, page
    return html.unescape(found.group(1))


def post_back(emulator: Emulator, page: EmuResponse, **fields: str) -> EmuResponse:
    """Submit a page's form as a browser would: to its action, with its `ctx`."""
    text = page.text
    action = re.search(r'<form method="post" action="([^"]+)"', text)
    assert action, text
    body = urlencode({"ctx": field_value(text, "ctx"), **fields})
    return emulator.handle("POST", html.unescape(action.group(1)), FORM, body)


def sign_in(
    emulator: Emulator, url: str, login: str = ADMIN_UPN, password: str = PASSWORD
) -> EmuResponse:
    page = emulator.handle("GET", url)
    assert page.status == 200, page.text
    return post_back(emulator, page, login=login, passwd=password)


def redirected(response: EmuResponse, to: str = REDIRECT) -> dict[str, str]:
    assert response.status == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(f"{to}?"), location
    return dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))


def code_for(emulator: Emulator, **overrides: Any) -> str:
    """Sign the admin in and return the code (query parameters as `overrides`)."""
    return redirected(sign_in(emulator, authorize_url(**overrides)))["code"]


def redeem(
    emulator: Emulator, code: str, authority: str = "organizations", **overrides: str
) -> EmuResponse:
    fields = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
        "scope": "User.Read openid profile offline_access",
        **overrides,
    }
    body = urlencode({k: v for k, v in fields.items() if v})
    return emulator.handle("POST", f"{LOGIN_URL}/{authority}/oauth2/v2.0/token", FORM, body)


def token_error(response: EmuResponse, error: str, code: int) -> str:
    assert response.status in (400, 401), response.text
    body = response.json()
    assert body["error"] == error, body
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    return str(body["error_description"])


def error_page(response: EmuResponse, code: int) -> str:
    assert response.status == 400, response.text
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    assert f"AADSTS{code}: " in response.text
    return response.text


def client_credentials(
    emulator: Emulator, tenant_id: str, client_id: str = CLIENT_ID
) -> EmuResponse:
    body = urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": SECRET,
            "scope": f"{GRAPH_URL}/.default",
        }
    )
    return emulator.handle("POST", f"{LOGIN_URL}/{tenant_id}/oauth2/v2.0/token", FORM, body)


def verified_claims(emulator: Emulator, id_token: str, tenant_id: str) -> dict[str, Any]:
    """Check the signature against the published JWKS, as a relying party would."""
    jwks = emulator.handle("GET", f"{LOGIN_URL}/{tenant_id}/discovery/v2.0/keys").json()
    header = jwt.get_unverified_header(id_token)
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key.key,
        algorithms=["RS256"],
        audience=CLIENT_ID,
        issuer=f"{LOGIN_URL}/{tenant_id}/v2.0",
    )
    return claims


# --- the sign-in page -------------------------------------------------------------------------


def test_authorize_shows_a_plain_accessible_sign_in_form(
    emulator: Emulator, tenant: EmuTenant
) -> None:
    response = emulator.handle("GET", authorize_url(login_hint="someone@contoso.com"))

    page = response.text
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Signing in to entra-sync Directory Sync — emulated Microsoft sign-in" in page
    assert '<label for="login">' in page and 'id="login" name="login"' in page
    assert '<label for="passwd">' in page and 'id="passwd" name="passwd"' in page
    assert 'type="password"' in page
    assert '<button type="submit" class="primary">Sign in</button>' in page
    assert field_value(page, "login") == "someone@contoso.com"
    assert len(field_value(page, "ctx")) >= 40
    assert "<script" not in page and "src=" not in page and "<link" not in page


def test_every_value_on_the_page_is_escaped(emulator: Emulator, tenant: EmuTenant) -> None:
    emulator.apps[CLIENT_ID].display_name = '<script>alert("x")</script> & Co'

    page = emulator.handle("GET", authorize_url(login_hint='"><b>hi</b>')).text

    assert "<script>alert" not in page and "<b>hi</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in page
    assert field_value(page, "login") == '"><b>hi</b>'


@pytest.mark.parametrize(
    "authority", ["guid", "contoso.onmicrosoft.com", "organizations", "common"]
)
def test_signing_in_redirects_with_code_state_and_session_state(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser, authority: str
) -> None:
    key = tenant.tenant_id if authority == "guid" else authority

    response = sign_in(emulator, authorize_url(key))

    params = redirected(response)
    assert list(params) == ["code", "state", "session_state"]
    assert params["state"] == "s1"
    assert re.fullmatch(r"[0-9a-f-]{36}", params["session_state"])
    assert emulator.login.counters["sign_ins"] == 1


def test_a_generated_admin_signs_in_with_the_default_password_and_gets_its_tenant_id(
    emulator: Emulator, tenant: EmuTenant, fabrikam: EmuTenant
) -> None:
    response = sign_in(
        emulator,
        authorize_url("fabrikam.onmicrosoft.com"),
        login="ADMIN@fabrikam.onmicrosoft.com",
        password="entra-sync-demo",
    )

    claims = jwt.decode(
        redeem(emulator, redirected(response)["code"]).json()["id_token"],
        options={"verify_signature": False},
    )
    assert claims["tid"] == fabrikam.tenant_id
    assert claims["preferred_username"] == "admin@fabrikam.onmicrosoft.com"


def test_a_wrong_password_shows_the_page_again_with_aadsts50126(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    first = emulator.handle("GET", authorize_url())
    failed = post_back(emulator, first, login=ADMIN_UPN, passwd="wrong")

    assert failed.status == 200
    assert 'role="alert"' in failed.text and 'aria-invalid="true"' in failed.text
    assert "Your account or password is incorrect." in failed.text
    assert (
        "AADSTS50126: Error validating credentials due to invalid username or password."
        in failed.text
    )
    assert field_value(failed.text, "login") == ADMIN_UPN
    assert emulator.login.counters["sign_in_failures"] == 1
    retried = post_back(emulator, failed, login=ADMIN_UPN, passwd=PASSWORD)
    assert redirected(retried)["state"] == "s1"


@pytest.mark.parametrize(
    ("login", "code", "shown"),
    [
        ("nobody@contoso.onmicrosoft.com", 50034, "This username may be incorrect."),
        ("user01@contoso.onmicrosoft.com", 50056, "Your account or password is incorrect."),
        ("user03@contoso.onmicrosoft.com", 50057, "Your account has been locked."),
        ("", None, "Enter a valid email address"),
    ],
)
def test_accounts_that_cannot_sign_in_see_microsofts_message(
    emulator: Emulator, tenant: EmuTenant, login: str, code: int | None, shown: str
) -> None:
    tenant.users[guid(4)].password = PASSWORD  # user03 is disabled

    response = sign_in(emulator, authorize_url(), login=login)

    assert response.status == 200
    assert shown in response.text
    if code is not None:
        assert f"AADSTS{code}: " in response.text
    assert "Location" not in response.headers


def test_a_user_from_another_tenant_gets_aadsts50020_on_a_tenant_authority(
    emulator: Emulator, tenant: EmuTenant, fabrikam: EmuTenant
) -> None:
    response = sign_in(
        emulator,
        authorize_url(tenant.tenant_id),
        login="admin@fabrikam.onmicrosoft.com",
        password="entra-sync-demo",
    )

    page = error_page(response, 50020)
    assert (
        f"from identity provider &#x27;https://sts.windows.net/{fabrikam.tenant_id}/&#x27; does "
        "not exist in tenant &#x27;Contoso&#x27;" in page
    )


# --- errors before and after the redirect URI is trusted --------------------------------------


def test_an_unknown_client_or_tenant_is_an_error_page_never_a_redirect(
    emulator: Emulator, tenant: EmuTenant
) -> None:
    error_page(emulator.handle("GET", authorize_url(client_id=guid(4040))), 700016)
    error_page(emulator.handle("GET", authorize_url(client_id=None)), 900144)
    error_page(emulator.handle("GET", authorize_url(guid(9999))), 90002)
    error_page(emulator.handle("GET", authorize_url(redirect_uri=None)), 900971)


def test_an_unregistered_redirect_uri_is_aadsts50011_on_a_page(
    emulator: Emulator, tenant: EmuTenant
) -> None:
    page = error_page(
        emulator.handle("GET", authorize_url(redirect_uri="https://evil.example.com/cb")), 50011
    )

    assert (
        "The redirect URI &#x27;https://evil.example.com/cb&#x27; specified in the request" in page
    )
    assert "Sorry, but we&rsquo;re having trouble signing you in." in page
    assert "Correlation Id" in page


def test_registered_redirect_uris_match_exactly_and_loopback_ignores_the_port(
    emulator: Emulator, tenant: EmuTenant
) -> None:
    app = emulator.apps[CLIENT_ID]
    app.redirect_uris = ["https://app.example.com/entra/callback", "http://localhost/cb"]

    def status(uri: str) -> int:
        return emulator.handle("GET", authorize_url(redirect_uri=uri)).status

    assert status("https://app.example.com/entra/callback") == 200
    assert status("http://localhost:8765/cb") == 200
    assert status("http://127.0.0.1:8000/cb") == 400
    assert status("https://app.example.com/entra/callback/") == 400
    assert status("https://APP.example.com/entra/Callback") == 400
    app.redirect_uris = []
    assert status("http://127.0.0.1:9/cb") == 200
    assert status("https://[::1]/cb") == 200
    assert status("https://app.example.com/entra/callback") == 400


@pytest.mark.parametrize(
    ("overrides", "error", "code"),
    [
        ({"response_type": None}, "invalid_request", 900144),
        ({"response_type": "token"}, "unsupported_response_type", 700051),
        ({"response_type": "code id_token"}, "unsupported_response_type", 700054),
        ({"response_type": "foo"}, "unsupported_response_type", 70005),
        ({"scope": None}, "invalid_request", 900144),
        ({"scope": "openid https://vault.azure.net/user_impersonation"}, "invalid_scope", 70011),
        ({"scope": "openid User.Fly"}, "invalid_scope", 70011),
        ({"scope": f"{GRAPH_URL}/.default User.Read"}, "invalid_scope", 70011),
        ({"code_challenge_method": "S512"}, "invalid_request", 50149),
        ({"code_challenge": "short"}, "invalid_request", 501491),
        ({"code_challenge": None}, "invalid_request", 900144),
        ({"prompt": "none"}, "login_required", 50058),
        ({"response_mode": "bogus"}, "invalid_request", 70007),
    ],
)
def test_protocol_errors_are_redirected_with_error_description_and_state(
    emulator: Emulator, tenant: EmuTenant, overrides: dict[str, Any], error: str, code: int
) -> None:
    response = emulator.handle("GET", authorize_url(**overrides))

    params = redirected(response)
    assert list(params) == ["error", "error_description", "error_uri", "state"]
    assert params["error"] == error
    assert params["error_description"].startswith(f"AADSTS{code}: ")
    assert "\r\nTrace ID: " in params["error_description"]
    assert params["error_uri"] == f"{LOGIN_URL}/error?code={code}"
    assert params["state"] == "s1"


def test_an_abandoned_or_forged_transaction_is_aadsts50089(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser, clock: FakeClock
) -> None:
    forged = emulator.handle(
        "POST",
        f"{LOGIN_URL}/organizations/oauth2/v2.0/authorize",
        FORM,
        urlencode({"ctx": "made-up", "login": ADMIN_UPN, "passwd": PASSWORD}),
    )
    error_page(forged, 50089)

    page = emulator.handle("GET", authorize_url())
    clock.advance(1801)
    error_page(post_back(emulator, page, login=ADMIN_UPN, passwd=PASSWORD), 50089)


# --- response modes and MSAL's client_info -----------------------------------------------------


def test_form_post_hands_the_code_back_in_a_self_submitting_form(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    response = sign_in(emulator, authorize_url(response_mode="form_post"))

    page = response.text
    assert response.status == 200
    assert f'<form method="post" action="{REDIRECT}"' in page
    assert field_value(page, "state") == "s1"
    assert field_value(page, "code").startswith("1.A")
    assert field_value(page, "session_state")
    assert ">Continue</button>" in page  # works without JavaScript too


def test_fragment_mode_puts_the_response_after_a_hash(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    location = sign_in(emulator, authorize_url(response_mode="fragment")).headers["Location"]

    assert location.startswith(f"{REDIRECT}#code=")
    assert dict(parse_qsl(urlsplit(location).fragment))["state"] == "s1"


def test_client_info_comes_back_when_msal_asks_for_it(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    params = redirected(sign_in(emulator, authorize_url(client_info="1")))
    body = redeem(emulator, params["code"], client_info="1").json()

    for value in (params["client_info"], body["client_info"]):
        padded = value + "=" * (-len(value) % 4)
        assert base64.urlsafe_b64decode(padded) == (
            f'{{"uid": "{admin.id}", "utid": "{tenant.tenant_id}"}}'.encode()
        )


# --- consent on sign-in -----------------------------------------------------------------------


def test_an_app_without_consent_in_the_tenant_asks_the_user_first(
    emulator: Emulator, tenant: EmuTenant, member: EmuUser
) -> None:
    emulator.apps[CLIENT_ID].tenant_ids = set()

    consent = sign_in(emulator, authorize_url(), login=MEMBER_UPN)

    assert consent.status == 200
    assert "<h1>Permissions requested</h1>" in consent.text
    assert "Sign in and read user profile" in consent.text
    assert "Maintain access to data you have given it access to" in consent.text
    assert 'value="accept" class="primary">Accept</button>' in consent.text
    assert 'value="cancel" class="secondary">Cancel</button>' in consent.text
    accepted = post_back(emulator, consent, consent="accept")
    assert "code" in redirected(accepted)
    again = sign_in(emulator, authorize_url(), login=MEMBER_UPN)
    assert "code" in redirected(again)
    # A user's consent to sign-in scopes is not admin consent to app permissions.
    token_error(client_credentials(emulator, tenant.tenant_id), "unauthorized_client", 700016)


def test_declining_consent_on_sign_in_is_access_denied_aadsts65004(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    consent = sign_in(emulator, authorize_url(prompt="consent"))

    params = redirected(post_back(emulator, consent, consent="cancel"))

    assert params["error"] == "access_denied"
    assert params["error_description"].startswith(
        "AADSTS65004: User declined to consent to access the app."
    )
    assert params["state"] == "s1"
    assert "admin_consent" not in params


# --- the token endpoint -----------------------------------------------------------------------


def test_a_code_is_redeemed_for_tokens_and_a_signed_v2_id_token(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser, clock: FakeClock
) -> None:
    clock.now = time.time()  # PyJWT checks exp against the real clock
    params = redirected(sign_in(emulator, authorize_url()))

    response = redeem(emulator, params["code"])

    body = response.json()
    assert response.status == 200, body
    assert list(body) == [
        "token_type",
        "scope",
        "expires_in",
        "ext_expires_in",
        "access_token",
        "refresh_token",
        "id_token",
    ]
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "User.Read openid profile"
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    claims = verified_claims(emulator, body["id_token"], tenant.tenant_id)
    assert claims["aud"] == CLIENT_ID
    assert claims["iss"] == f"{LOGIN_URL}/{tenant.tenant_id}/v2.0"
    assert claims["tid"] == tenant.tenant_id
    assert claims["oid"] == admin.id
    assert claims["name"] == "Contoso Admin"
    assert claims["preferred_username"] == ADMIN_UPN
    assert claims["nonce"] == "n1"
    assert claims["ver"] == "2.0"
    assert claims["sid"] == params["session_state"]
    assert claims["nbf"] == claims["iat"] == int(clock.now)
    assert claims["exp"] == claims["iat"] + 3600
    assert len(claims["sub"]) == 43 and claims["sub"] != admin.id
    assert all(isinstance(claims[k], str) and claims[k] for k in ("uti", "rh", "aio"))
    info = emulator.tokens.lookup(body["access_token"])
    assert info is not None
    assert (info.tenant_id, info.client_id, info.user_id) == (tenant.tenant_id, CLIENT_ID, admin.id)
    assert info.scopes == ("User.Read", "openid", "profile") and info.roles == ()
    assert emulator.login.counters["id_tokens_issued"] == 1


def test_sub_is_pairwise_per_app_while_oid_is_the_user(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    other = emulator.add_app(guid(78), SECRET)
    first = redeem(emulator, code_for(emulator)).json()["id_token"]
    code = code_for(emulator, client_id=other.client_id)
    second = redeem(emulator, code, client_id=other.client_id).json()["id_token"]

    a, b = (jwt.decode(t, options={"verify_signature": False}) for t in (first, second))
    assert a["oid"] == b["oid"] == admin.id
    assert a["sub"] != b["sub"]


def test_scopes_decide_the_refresh_token_the_id_token_and_its_profile_claims(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    plain = redeem(emulator, code_for(emulator, scope="openid User.Read")).json()
    assert "refresh_token" not in plain
    claims = jwt.decode(plain["id_token"], options={"verify_signature": False})
    assert {"tid", "sub", "aud", "iss"} <= set(claims)
    assert not {"name", "oid", "preferred_username"} & set(claims)

    no_openid = redeem(emulator, code_for(emulator, scope="User.Read")).json()
    assert "id_token" not in no_openid and no_openid["scope"] == "User.Read"

    mail = redeem(emulator, code_for(emulator, scope="openid email")).json()
    assert jwt.decode(mail["id_token"], options={"verify_signature": False})["email"] == ADMIN_UPN


def test_a_code_works_once_aadsts54005(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    code = code_for(emulator)
    assert redeem(emulator, code).status == 200

    token_error(redeem(emulator, code), "invalid_grant", 54005)


def test_a_code_expires_after_ten_minutes_aadsts70008(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser, clock: FakeClock
) -> None:
    code = code_for(emulator)
    clock.advance(600)

    token_error(redeem(emulator, code), "invalid_grant", 70008)


def test_the_code_verifier_must_match_the_s256_challenge_aadsts501481(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    code = code_for(emulator)

    message = token_error(redeem(emulator, code, code_verifier="x" * 43), "invalid_grant", 501481)
    token_error(redeem(emulator, code, code_verifier=""), "invalid_grant", 501481)
    assert message.startswith(
        "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the "
        "authorization request."
    )
    assert redeem(emulator, code).status == 200  # a failed attempt does not use the code up


def test_plain_pkce_and_no_pkce_are_accepted_as_microsoft_documents(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    plain = code_for(emulator, code_challenge=VERIFIER, code_challenge_method=None)
    assert redeem(emulator, plain).status == 200
    none = code_for(emulator, code_challenge=None, code_challenge_method=None)
    assert redeem(emulator, none, code_verifier="").status == 200


def test_a_code_is_bound_to_its_redirect_uri_client_and_tenant(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser, fabrikam: EmuTenant
) -> None:
    code = code_for(emulator)
    emulator.add_app(guid(78), SECRET)

    message = token_error(
        redeem(emulator, code, redirect_uri="http://localhost:8000/other"),
        "invalid_client",
        500112,
    )
    assert "The reply address 'http://localhost:8000/other' does not match" in message
    token_error(redeem(emulator, code, client_id=guid(78)), "invalid_grant", 70000)
    token_error(redeem(emulator, code, fabrikam.tenant_id), "invalid_grant", 700005)
    token_error(redeem(emulator, "not-a-code"), "invalid_grant", 9002313)
    token_error(redeem(emulator, code, redirect_uri=""), "invalid_request", 900144)
    assert redeem(emulator, code, tenant.tenant_id).status == 200


def test_redeeming_a_code_needs_the_client_secret(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    code = code_for(emulator)

    token_error(redeem(emulator, code, client_secret=""), "invalid_client", 7000218)
    token_error(redeem(emulator, code, client_secret="wrong"), "invalid_client", 7000215)
    token_error(redeem(emulator, code, client_id=guid(4040)), "unauthorized_client", 700016)
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    body = urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER,
        }
    )
    response = emulator.handle(
        "POST",
        f"{LOGIN_URL}/organizations/oauth2/v2.0/token",
        {**FORM, "Authorization": f"Basic {basic}"},
        body,
    )
    assert response.status == 200, response.text


def test_refresh_tokens_renew_and_expire_after_ninety_idle_days(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser, clock: FakeClock
) -> None:
    first = redeem(emulator, code_for(emulator)).json()

    def refresh(token: str) -> EmuResponse:
        body = urlencode(
            {
                "grant_type": "refresh_token",
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "refresh_token": token,
                "scope": "User.Read openid profile offline_access",
            }
        )
        return emulator.handle("POST", f"{LOGIN_URL}/organizations/oauth2/v2.0/token", FORM, body)

    clock.advance(89 * 86400)
    renewed = refresh(first["refresh_token"]).json()
    assert renewed["access_token"] != first["access_token"]
    assert renewed["refresh_token"] != first["refresh_token"]
    claims = jwt.decode(renewed["id_token"], options={"verify_signature": False})
    assert claims["oid"] == admin.id and "nonce" not in claims
    token_error(refresh("garbage"), "invalid_grant", 9002313)
    clock.advance(90 * 86400)
    message = token_error(refresh(first["refresh_token"]), "invalid_grant", 700082)
    assert "was inactive for 90.00:00:00." in message


# --- keys -------------------------------------------------------------------------------------


def test_the_jwks_publishes_the_signing_key_for_every_authority(
    emulator: Emulator, tenant: EmuTenant
) -> None:
    common = emulator.handle("GET", f"{LOGIN_URL}/common/discovery/v2.0/keys").json()
    own = emulator.handle("GET", f"{LOGIN_URL}/{tenant.tenant_id}/discovery/v2.0/keys").json()
    config = emulator.handle(
        "GET", f"{LOGIN_URL}/common/v2.0/.well-known/openid-configuration"
    ).json()

    key = common["keys"][0]
    assert set(key) == {"kty", "use", "kid", "x5t", "n", "e", "x5c", "issuer"}
    assert (key["kty"], key["use"], key["e"]) == ("RSA", "sig", "AQAB")
    assert key["kid"] == key["x5t"] == emulator.login.signing_key.kid
    assert key["issuer"] == f"{LOGIN_URL}/{{tenantid}}/v2.0"
    assert own["keys"][0]["issuer"] == f"{LOGIN_URL}/{tenant.tenant_id}/v2.0"
    assert own["keys"][0]["n"] == key["n"]
    assert config["jwks_uri"] == f"{LOGIN_URL}/common/discovery/v2.0/keys"
    assert config["issuer"] == f"{LOGIN_URL}/{{tenantid}}/v2.0"
    der = base64.b64decode(key["x5c"][0])
    thumbprint = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).decode().rstrip("=")
    assert thumbprint == key["kid"]


def test_a_key_file_keeps_the_key_id_across_restarts(
    tmp_path: Path, clock: FakeClock, tenant: EmuTenant, admin: EmuUser, emulator: Emulator
) -> None:
    path = tmp_path / "keys" / "signing.pem"
    first = emulator.login.use_signing_key_file(path)
    clock.now = time.time()
    id_token = redeem(emulator, code_for(emulator)).json()["id_token"]

    restarted = Emulator(clock=clock, graph_url=GRAPH_URL)
    restarted.add_tenant(tenant)
    again = restarted.login.use_signing_key_file(path)

    assert again.kid == first.kid
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert verified_claims(restarted, id_token, tenant.tenant_id)["oid"] == admin.id
    assert Emulator().login.signing_key.kid != first.kid  # no file: a fresh in-memory key


# --- admin consent ----------------------------------------------------------------------------


def test_admin_consent_signs_in_an_admin_then_lists_the_apps_permissions(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    emulator.apps[CLIENT_ID].permissions = frozenset({"User.Read.All", "GroupMember.Read.All"})
    start = emulator.handle("GET", consent_url())
    assert start.status == 200
    assert "Signing in to entra-sync Directory Sync" in start.text

    page = post_back(emulator, start, login=ADMIN_UPN, passwd=PASSWORD)

    text = page.text
    assert page.status == 200
    assert "Permissions requested — Accept for your organization" in text
    assert "Read all users&#x27; full profiles" in text and "(User.Read.All)" in text
    assert "Read all group memberships" in text
    assert "Application.Read.All" not in text
    assert "for <strong>all users</strong> in <strong>Contoso</strong>" in text
    assert ">Accept</button>" in text and ">Cancel</button>" in text


def test_accepting_admin_consent_consents_the_app_in_that_tenant(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    app = emulator.add_app(guid(77), SECRET, tenant_ids={guid(9)})
    token_error(
        client_credentials(emulator, tenant.tenant_id, app.client_id), "unauthorized_client", 700016
    )
    page = sign_in(emulator, consent_url(client_id=app.client_id))

    response = post_back(emulator, page, consent="accept")

    assert response.headers["Location"] == (
        f"{REDIRECT}?admin_consent=True&tenant={tenant.tenant_id}"
        f"&scope=https%3A%2F%2Fgraph.emulator.test%2F.default&state=st"
    )
    assert app.tenant_ids == {guid(9), tenant.tenant_id}
    assert client_credentials(emulator, tenant.tenant_id, app.client_id).status == 200
    assert emulator.login.counters["admin_consents"] == 1


def test_admin_consent_only_consents_the_admins_own_tenant(
    emulator: Emulator, tenant: EmuTenant, fabrikam: EmuTenant
) -> None:
    app = emulator.add_app(guid(77), SECRET, tenant_ids=set())
    page = sign_in(
        emulator,
        consent_url(client_id=app.client_id),
        login="admin@fabrikam.onmicrosoft.com",
        password="entra-sync-demo",
    )

    params = redirected(post_back(emulator, page, consent="accept"))

    assert params["tenant"] == fabrikam.tenant_id
    assert client_credentials(emulator, fabrikam.tenant_id, app.client_id).status == 200
    token_error(
        client_credentials(emulator, tenant.tenant_id, app.client_id), "unauthorized_client", 700016
    )


def test_cancelling_admin_consent_is_access_denied_aadsts65004(
    emulator: Emulator, tenant: EmuTenant, admin: EmuUser
) -> None:
    app = emulator.add_app(guid(77), SECRET, tenant_ids=set())
    page = sign_in(emulator, consent_url(client_id=app.client_id))

    params = redirected(post_back(emulator, page, consent="cancel"))

    assert list(params) == ["error", "error_description", "error_uri", "admin_consent", "state"]
    assert params["error"] == "access_denied"
    assert params["error_description"].startswith(
        "AADSTS65004: User declined to consent to access the app.\r\nTrace ID: "
    )
    assert params["error_uri"] == f"{LOGIN_URL}/error?code=65004"
    assert (params["admin_consent"], params["state"]) == ("True", "st")
    assert app.tenant_ids == set()


def test_a_non_admin_is_told_admin_approval_is_needed_aadsts90094(
    emulator: Emulator, tenant: EmuTenant, member: EmuUser
) -> None:
    app = emulator.add_app(guid(77), SECRET, tenant_ids=set())

    response = sign_in(emulator, consent_url(client_id=app.client_id), login=MEMBER_UPN)

    page = response.text
    assert response.status == 200 and "Location" not in response.headers
    assert "<h1>Need admin approval</h1>" in page
    assert "AADSTS90094: " in page
    back = re.search(r'<a href="([^"]+)">Return to the application without granting consent', page)
    assert back, page
    params = dict(parse_qsl(urlsplit(html.unescape(back.group(1))).query))
    assert (params["error"], params["admin_consent"], params["state"]) == (
        "access_denied",
        "True",
        "st",
    )
    assert "Have an admin account? Sign in with that account" in page
    assert app.tenant_ids == set()


def test_admin_consent_at_a_tenant_refuses_another_tenants_admin_aadsts50020(
    emulator: Emulator, tenant: EmuTenant, fabrikam: EmuTenant
) -> None:
    response = sign_in(
        emulator,
        consent_url(tenant.tenant_id),
        login="admin@fabrikam.onmicrosoft.com",
        password="entra-sync-demo",
    )

    params = redirected(response)
    assert params["error"] == "access_denied"
    assert params["error_description"].startswith("AADSTS50020: User account '{EmailHidden}'")
    assert (params["admin_consent"], params["state"]) == ("True", "st")


def test_admin_consent_errors_before_the_redirect_uri_is_trusted_are_pages(
    emulator: Emulator, tenant: EmuTenant
) -> None:
    error_page(emulator.handle("GET", consent_url(client_id=guid(4040))), 700016)
    error_page(emulator.handle("GET", consent_url(redirect_uri="https://evil.example.com/")), 50011)
    error_page(emulator.handle("GET", consent_url(redirect_uri=None)), 900971)


@pytest.mark.parametrize(
    ("scope", "error", "code"),
    [
        (None, "invalid_request", 900144),
        ("https://vault.azure.net/.default", "invalid_scope", 70011),
    ],
)
def test_admin_consent_scope_errors_are_redirected(
    emulator: Emulator, tenant: EmuTenant, scope: str | None, error: str, code: int
) -> None:
    params = redirected(emulator.handle("GET", consent_url(scope=scope)))

    assert params["error"] == error
    assert params["error_description"].startswith(f"AADSTS{code}: ")
    assert (params["admin_consent"], params["state"]) == ("True", "st")


# --- MSAL Python, end to end ------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
@pytest.mark.parametrize("response_mode", ["query", "form_post"])
def test_msal_completes_the_auth_code_flow_with_pkce_and_nonce(
    emulator: Emulator,
    tenant: EmuTenant,
    admin: EmuUser,
    clock: FakeClock,
    rsps: responses.RequestsMock,
    response_mode: str,
) -> None:
    clock.now = time.time()
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=SECRET,
        authority=f"{LOGIN_URL}/organizations",
        instance_discovery=False,
    )
    flow = app.initiate_auth_code_flow(
        scopes=["User.Read"],
        redirect_uri=REDIRECT,
        response_mode=None if response_mode == "query" else response_mode,
    )
    sent = dict(parse_qsl(urlsplit(flow["auth_uri"]).query))
    assert sent["code_challenge_method"] == "S256" and sent["nonce"]

    page = requests.get(flow["auth_uri"], allow_redirects=False, timeout=5)
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert page.status_code == 200 and action
    answer = requests.post(
        html.unescape(action.group(1)),
        data={"ctx": field_value(page.text, "ctx"), "login": ADMIN_UPN, "passwd": PASSWORD},
        allow_redirects=False,
        timeout=5,
    )
    if response_mode == "query":
        assert answer.status_code == 302
        auth_response = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    else:  # the browser would POST these fields to the redirect URI
        assert answer.status_code == 200
        auth_response = {
            html.unescape(k): html.unescape(v)
            for k, v in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', answer.text)
        }
        assert f'action="{REDIRECT}"' in answer.text

    result = app.acquire_token_by_auth_code_flow(flow, auth_response)

    assert "access_token" in result, result
    assert result["id_token_claims"]["tid"] == tenant.tenant_id
    assert result["id_token_claims"]["preferred_username"] == ADMIN_UPN
    jwks = requests.get(f"{LOGIN_URL}/organizations/discovery/v2.0/keys", timeout=5).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(result["id_token"])["kid"]]
    claims = jwt.decode(
        result["id_token"],
        key.key,
        algorithms=["RS256"],
        audience=CLIENT_ID,
        issuer=f"{LOGIN_URL}/{tenant.tenant_id}/v2.0",
    )
    assert claims["nonce"] == sent["nonce"]
    (account,) = app.get_accounts()
    assert account["username"] == ADMIN_UPN
    assert account["home_account_id"] == f"{admin.id}.{tenant.tenant_id}"
    refreshed = app.acquire_token_silent(["User.Read"], account, force_refresh=True)
    assert refreshed is not None and refreshed["access_token"] != result["access_token"]


def test_signing_keys_are_made_lazily_and_quickly(emulator: Emulator) -> None:
    """A guard for the suite's speed: an emulator makes its key only when something signs."""
    started = time.perf_counter()
    kids = {Emulator().login.signing_key.kid for _ in range(3)}
    assert len(kids) == 3
    assert time.perf_counter() - started < 1.5
    assert emulator.login._signing_key is None  # never made until something signs
