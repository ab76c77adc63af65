"""The identity platform side: OpenID configuration and client-credentials tokens."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from entra_emulator import Emulator, EmuResponse, EmuTenant

from .conftest import CLIENT_ID, GRAPH_URL, LOGIN_URL, SECRET, FakeClock, guid

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def token_request(
    emulator: Emulator,
    tenant: str,
    *,
    client_id: str = CLIENT_ID,
    secret: str | None = SECRET,
    scope: str = f"{GRAPH_URL}/.default",
    grant_type: str = "client_credentials",
    headers: dict[str, str] | None = None,
) -> EmuResponse:
    fields = {"grant_type": grant_type, "client_id": client_id, "scope": scope}
    if secret is not None:
        fields["client_secret"] = secret
    body = "&".join(f"{k}={v}" for k, v in fields.items() if v)
    return emulator.handle(
        "POST", f"{LOGIN_URL}/{tenant}/oauth2/v2.0/token", {**FORM, **(headers or {})}, body
    )


def aadsts(response: EmuResponse, error: str, code: int, status: int) -> dict[str, Any]:
    """Check Microsoft's token-error shape and return the body."""
    assert response.status == status, response.text
    body = response.json()
    assert set(body) == {
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
    }
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert f"\r\nTrace ID: {body['trace_id']}\r\nCorrelation ID: " in body["error_description"]
    assert body["error_uri"] == f"{LOGIN_URL}/error?code={code}"
    return dict(body)


@pytest.mark.parametrize("key", ["guid", "domain", "DOMAIN"])
def test_openid_configuration_for_a_tenant_uses_its_guid(
    emulator: Emulator, tenant: EmuTenant, key: str
) -> None:
    name = {"guid": tenant.tenant_id, "domain": "contoso.onmicrosoft.com"}.get(
        key, "CONTOSO.onmicrosoft.com"
    )
    response = emulator.handle("GET", f"{LOGIN_URL}/{name}/v2.0/.well-known/openid-configuration")

    config = response.json()
    assert response.status == 200
    assert config["token_endpoint"] == f"{LOGIN_URL}/{tenant.tenant_id}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == (
        f"{LOGIN_URL}/{tenant.tenant_id}/oauth2/v2.0/authorize"
    )
    assert config["issuer"] == f"{LOGIN_URL}/{tenant.tenant_id}/v2.0"
    assert config["jwks_uri"] == f"{LOGIN_URL}/{tenant.tenant_id}/discovery/v2.0/keys"
    assert config["msgraph_host"] == "graph.emulator.test"


@pytest.mark.parametrize("name", ["organizations", "common"])
def test_openid_configuration_for_multi_tenant_authorities(emulator: Emulator, name: str) -> None:
    config = emulator.handle(
        "GET", f"{LOGIN_URL}/{name}/v2.0/.well-known/openid-configuration"
    ).json()

    assert config["token_endpoint"] == f"{LOGIN_URL}/{name}/oauth2/v2.0/token"
    assert config["issuer"] == f"{LOGIN_URL}/{{tenantid}}/v2.0"


def test_an_unknown_tenant_is_aadsts90002(emulator: Emulator, tenant: EmuTenant) -> None:
    missing = guid(9999)
    response = emulator.handle(
        "GET", f"{LOGIN_URL}/{missing}/v2.0/.well-known/openid-configuration"
    )

    body = aadsts(response, "invalid_tenant", 90002, 400)
    assert body["error_description"].startswith(f"AADSTS90002: Tenant '{missing}' not found.")
    token = token_request(emulator, "nowhere.example.com")
    aadsts(token, "invalid_tenant", 90002, 400)


def test_a_malformed_tenant_name_is_aadsts900023(emulator: Emulator) -> None:
    response = emulator.handle(
        "GET", f"{LOGIN_URL}/not_a_tenant/v2.0/.well-known/openid-configuration"
    )

    aadsts(response, "invalid_request", 900023, 400)


def test_client_credentials_give_a_bearer_token(
    emulator: Emulator, tenant: EmuTenant, clock: FakeClock
) -> None:
    response = token_request(emulator, tenant.tenant_id, headers={"client-request-id": "abc"})

    body = response.json()
    assert response.status == 200
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    info = emulator.tokens.lookup(body["access_token"])
    assert info is not None
    assert (info.tenant_id, info.client_id) == (tenant.tenant_id, CLIENT_ID)
    assert info.expires_at == clock.now + 3599
    assert response.headers["client-request-id"] == "abc"
    assert emulator.login.counters["tokens_issued"] == 1


def test_the_secret_may_come_as_http_basic_like_msal_sends_it(
    emulator: Emulator, tenant: EmuTenant
) -> None:
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    response = token_request(
        emulator, tenant.tenant_id, secret=None, headers={"Authorization": f"Basic {basic}"}
    )

    assert response.status == 200


def test_a_wrong_secret_is_aadsts7000215(emulator: Emulator, tenant: EmuTenant) -> None:
    body = aadsts(
        token_request(emulator, tenant.tenant_id, secret="wrong"), "invalid_client", 7000215, 401
    )

    assert (
        "Ensure the secret being sent in the request is the client secret value, not the "
        f"client secret ID, for a secret added to app '{CLIENT_ID}'." in body["error_description"]
    )


def test_an_expired_secret_is_aadsts7000222(emulator: Emulator, tenant: EmuTenant) -> None:
    emulator.apps[CLIENT_ID].secret_expired = True

    body = aadsts(token_request(emulator, tenant.tenant_id), "invalid_client", 7000222, 401)

    assert (
        f"The provided client secret keys for app '{CLIENT_ID}' are expired."
        in (body["error_description"])
    )


def test_a_missing_secret_is_aadsts7000218(emulator: Emulator, tenant: EmuTenant) -> None:
    aadsts(token_request(emulator, tenant.tenant_id, secret=None), "invalid_client", 7000218, 401)


def test_an_unknown_client_is_aadsts700016(emulator: Emulator, tenant: EmuTenant) -> None:
    stranger = guid(4040)
    body = aadsts(
        token_request(emulator, tenant.tenant_id, client_id=stranger),
        "unauthorized_client",
        700016,
        400,
    )

    assert (
        f"Application with identifier '{stranger}' was not found in the directory "
        "'Contoso'." in body["error_description"]
    )


def test_an_app_without_consent_in_a_tenant_is_aadsts700016_there(
    emulator: Emulator, tenant: EmuTenant
) -> None:
    emulator.add_app(guid(77), SECRET, tenant_ids={guid(1)})

    aadsts(
        token_request(emulator, tenant.tenant_id, client_id=guid(77)),
        "unauthorized_client",
        700016,
        400,
    )


def test_client_credentials_need_a_default_scope_on_graph(
    emulator: Emulator, tenant: EmuTenant
) -> None:
    aadsts(
        token_request(emulator, tenant.tenant_id, scope="User.Read"), "invalid_scope", 1002012, 400
    )
    aadsts(
        token_request(emulator, tenant.tenant_id, scope="https://vault.azure.net/.default"),
        "invalid_resource",
        500011,
        400,
    )
    assert (
        token_request(
            emulator, tenant.tenant_id, scope="https://graph.microsoft.com/.default"
        ).status
        == 200
    )


def test_client_credentials_on_common_have_no_tenant(emulator: Emulator, tenant: EmuTenant) -> None:
    aadsts(token_request(emulator, "organizations"), "invalid_request", 50059, 400)


def test_other_grant_types_are_unsupported_for_now(emulator: Emulator, tenant: EmuTenant) -> None:
    response = token_request(emulator, tenant.tenant_id, grant_type="password")

    aadsts(response, "unsupported_grant_type", 70003, 400)


def test_token_lifetime_is_configurable_and_graph_honours_expiry(
    emulator: Emulator, tenant: EmuTenant, clock: FakeClock
) -> None:
    emulator.login.token_lifetime = 60
    token = token_request(emulator, tenant.tenant_id).json()
    assert token["expires_in"] == 60
    headers = {"Authorization": f"Bearer {token['access_token']}"}

    assert emulator.handle("GET", f"{GRAPH_URL}/v1.0/users", headers).status == 200
    clock.advance(60)
    assert emulator.handle("GET", f"{GRAPH_URL}/v1.0/users", headers).status == 401


def test_expire_tokens_makes_graph_reject_tokens_still_within_their_lifetime(
    emulator: Emulator, tenant: EmuTenant
) -> None:
    token = token_request(emulator, tenant.tenant_id).json()["access_token"]
    emulator.expire_tokens()

    response = emulator.handle(
        "GET", f"{GRAPH_URL}/v1.0/users", {"Authorization": f"Bearer {token}"}
    )

    assert response.json()["error"]["message"] == "Access token has expired or is not yet valid."


def test_login_failures_can_be_injected(emulator: Emulator, tenant: EmuTenant) -> None:
    emulator.login.fail_next(503, path_contains="/token", retry_after=3)

    failed = token_request(emulator, tenant.tenant_id)

    assert failed.status == 503
    assert failed.headers["Retry-After"] == "3"
    assert failed.json()["error"] == "temporarily_unavailable"
    assert token_request(emulator, tenant.tenant_id).status == 200
