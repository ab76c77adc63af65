"""Certificate credentials at the emulated token endpoint: client assertions as Microsoft's
"certificate credentials" page describes them, and its refusals (AADSTS code and words)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest

from entra_emulator import Emulator, EmulatorControl, EmuResponse, EmuTenant
from entra_emulator.client_assertions import CLIENT_ASSERTION_TYPE, AppCertificate
from tests.certificates import SelfSigned, make_certificate

from .conftest import CLIENT_ID, GRAPH_URL, LOGIN_URL, SECRET, FakeClock
from .test_control import refused
from .test_login_api import aadsts

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def certificate(clock: FakeClock) -> SelfSigned:
    """Valid around the emulator's fake clock (2023)."""
    start = dt.datetime.fromtimestamp(clock.now, dt.UTC) - dt.timedelta(days=1)
    return make_certificate(valid_from=start)


@pytest.fixture
def registered(emulator: Emulator, certificate: SelfSigned) -> SelfSigned:
    emulator.apps[CLIENT_ID].add_certificate(certificate.certificate_pem)
    return certificate


def token_url(tenant: str) -> str:
    return f"{LOGIN_URL}/{tenant}/oauth2/v2.0/token"


def assertion(
    signer: SelfSigned,
    clock: FakeClock,
    *,
    audience: str,
    named: SelfSigned | None = None,
    algorithm: str = "PS256",
    claims: dict[str, Any] | None = None,
) -> str:
    """A client assertion as MSAL makes it; `named` is the certificate its header names."""
    named = named or signer
    uploaded = AppCertificate.parse(named.certificate_pem)
    header = {"x5t#S256": uploaded.x5t_s256} if algorithm == "PS256" else {"x5t": uploaded.x5t}
    payload: dict[str, Any] = {
        "aud": audience,
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "jti": "5b2e0c1e-0000-4000-8000-000000000001",
        "iat": clock.now,
        "exp": clock.now + 600,
    }
    payload.update(claims or {})
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, signer.key, algorithm=algorithm, headers=header)


def token_with(emulator: Emulator, tenant: str, client_assertion: str, **extra: str) -> EmuResponse:
    fields = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "scope": f"{GRAPH_URL}/.default",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": client_assertion,
        **extra,
    }
    return emulator.handle("POST", token_url(tenant), FORM, urlencode(fields))


def graph_answers(emulator: Emulator, response: EmuResponse) -> int:
    token = response.json()["access_token"]
    return emulator.handle(
        "GET", f"{GRAPH_URL}/v1.0/organization", {"Authorization": f"Bearer {token}"}
    ).status


# --- accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["PS256", "RS256"], ids=["x5t#S256", "x5t"])
def test_an_assertion_signed_with_a_registered_certificate_gets_a_token(
    emulator: Emulator,
    tenant: EmuTenant,
    registered: SelfSigned,
    clock: FakeClock,
    algorithm: str,
) -> None:
    signed = assertion(registered, clock, audience=token_url(tenant.tenant_id), algorithm=algorithm)

    response = token_with(emulator, tenant.tenant_id, signed)

    assert response.status == 200, response.text
    assert graph_answers(emulator, response) == 200


def test_a_padded_thumbprint_as_msal_python_sends_it_is_accepted(
    emulator: Emulator, tenant: EmuTenant, registered: SelfSigned, clock: FakeClock
) -> None:
    uploaded = AppCertificate.parse(registered.certificate_pem)
    padded = uploaded.x5t_s256 + "=" * (-len(uploaded.x5t_s256) % 4)
    assert padded != uploaded.x5t_s256
    signed = jwt.encode(
        {
            "aud": token_url(tenant.tenant_id),
            "iss": CLIENT_ID,
            "sub": CLIENT_ID,
            "exp": clock.now + 600,
        },
        registered.key,
        algorithm="PS256",
        headers={"x5t#S256": padded},
    )
    assert token_with(emulator, tenant.tenant_id, signed).status == 200


def test_the_audience_may_name_the_tenant_by_a_domain_and_nbf_may_be_given(
    emulator: Emulator, tenant: EmuTenant, registered: SelfSigned, clock: FakeClock
) -> None:
    signed = assertion(
        registered, clock, audience=token_url(tenant.default_domain), claims={"nbf": clock.now}
    )
    assert token_with(emulator, tenant.tenant_id, signed).status == 200


def test_the_secret_still_works_for_an_app_with_a_certificate(
    emulator: Emulator, tenant: EmuTenant, registered: SelfSigned
) -> None:
    response = emulator.handle(
        "POST",
        token_url(tenant.tenant_id),
        FORM,
        f"grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={SECRET}"
        f"&scope={GRAPH_URL}/.default",
    )
    assert response.status == 200


# --- refused, as Microsoft refuses them -------------------------------------------------------


def test_an_unregistered_certificate_is_aadsts700027(
    emulator: Emulator, tenant: EmuTenant, registered: SelfSigned, clock: FakeClock
) -> None:
    stranger = make_certificate(key=1, valid_from=registered.certificate.not_valid_before_utc)
    signed = assertion(stranger, clock, audience=token_url(tenant.tenant_id))

    body = aadsts(token_with(emulator, tenant.tenant_id, signed), "invalid_client", 700027, 401)

    stranger_sha256 = AppCertificate.parse(stranger.certificate_pem).sha256_thumbprint
    assert body["error_description"].startswith(
        "AADSTS700027: The certificate with identifier used to sign the client assertion is not "
        "registered on application. [Reason - The key was not found., Thumbprint of key used "
        f"by client: '{stranger_sha256}'"
    )
    assert f"configured keys for app Id '{CLIENT_ID}'" in body["error_description"]


def test_a_signature_by_another_key_is_aadsts700027(
    emulator: Emulator, tenant: EmuTenant, registered: SelfSigned, clock: FakeClock
) -> None:
    forger = make_certificate(key=1)
    signed = assertion(forger, clock, audience=token_url(tenant.tenant_id), named=registered)

    body = aadsts(token_with(emulator, tenant.tenant_id, signed), "invalid_client", 700027, 401)

    assert "Client assertion failed signature validation." in body["error_description"]


def test_an_expired_registered_certificate_is_aadsts700027(
    emulator: Emulator, tenant: EmuTenant, registered: SelfSigned, clock: FakeClock
) -> None:
    clock.now = registered.certificate.not_valid_after_utc.timestamp() + 1
    signed = assertion(registered, clock, audience=token_url(tenant.tenant_id))

    body = aadsts(token_with(emulator, tenant.tenant_id, signed), "invalid_client", 700027, 401)

    assert "[Reason - The key used is expired." in body["error_description"]


@pytest.mark.parametrize(
    "times",
    [
        {"iat": -3600, "exp": -600},  # expired ten minutes ago
        {"nbf": 900, "exp": 1500},  # not valid for another quarter of an hour
    ],
    ids=["expired", "not-yet-valid"],
)
def test_an_assertion_outside_its_valid_time_range_is_aadsts700024(
    emulator: Emulator,
    tenant: EmuTenant,
    registered: SelfSigned,
    clock: FakeClock,
    times: dict[str, int],
) -> None:
    claims = {name: clock.now + offset for name, offset in times.items()}
    signed = assertion(registered, clock, audience=token_url(tenant.tenant_id), claims=claims)

    body = aadsts(token_with(emulator, tenant.tenant_id, signed), "invalid_client", 700024, 401)

    assert body["error_description"].startswith(
        "AADSTS700024: Client assertion is not within its valid time range. Current time: "
        f"{dt.datetime.fromtimestamp(clock.now, dt.UTC):%Y-%m-%dT%H:%M:%S}.0000000Z, "
        "assertion valid from "
    )


def test_a_few_minutes_of_clock_skew_are_tolerated(
    emulator: Emulator, tenant: EmuTenant, registered: SelfSigned, clock: FakeClock
) -> None:
    signed = assertion(
        registered, clock, audience=token_url(tenant.tenant_id), claims={"exp": clock.now - 60}
    )
    assert token_with(emulator, tenant.tenant_id, signed).status == 200


@pytest.mark.parametrize(
    "audience",
    [
        f"{LOGIN_URL}/common/oauth2/v2.0/token",
        f"{LOGIN_URL}/33333333-3333-4333-8333-333333333333/oauth2/v2.0/token",
        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
    ],
    ids=["common", "another-tenant", "another-host"],
)
def test_a_wrong_audience_is_aadsts700023(
    emulator: Emulator,
    tenant: EmuTenant,
    registered: SelfSigned,
    clock: FakeClock,
    audience: str,
) -> None:
    signed = assertion(registered, clock, audience=audience.format(tenant=tenant.tenant_id))

    body = aadsts(token_with(emulator, tenant.tenant_id, signed), "invalid_client", 700023, 401)

    assert (
        "Client assertion audience claim does not match Realm issuer."
        in (body["error_description"])
    )


@pytest.mark.parametrize("claim", ["iss", "sub"])
def test_an_issuer_or_subject_other_than_the_client_is_aadsts700021(
    emulator: Emulator, tenant: EmuTenant, registered: SelfSigned, clock: FakeClock, claim: str
) -> None:
    signed = assertion(
        registered, clock, audience=token_url(tenant.tenant_id), claims={claim: "someone-else"}
    )
    aadsts(token_with(emulator, tenant.tenant_id, signed), "invalid_client", 700021, 401)


def test_a_malformed_assertion_or_one_naming_no_certificate_is_aadsts50027(
    emulator: Emulator, tenant: EmuTenant, registered: SelfSigned, clock: FakeClock
) -> None:
    aadsts(token_with(emulator, tenant.tenant_id, "not.a.jwt"), "invalid_client", 50027, 401)

    unnamed = jwt.encode(
        {"aud": token_url(tenant.tenant_id), "iss": CLIENT_ID, "sub": CLIENT_ID},
        registered.key,
        algorithm="PS256",
    )
    body = aadsts(token_with(emulator, tenant.tenant_id, unnamed), "invalid_client", 50027, 401)
    assert "No certificate thumbprint specified in token header" in body["error_description"]


def test_an_assertion_of_another_type_is_aadsts90014(
    emulator: Emulator, tenant: EmuTenant, registered: SelfSigned, clock: FakeClock
) -> None:
    signed = assertion(registered, clock, audience=token_url(tenant.tenant_id))
    response = token_with(
        emulator, tenant.tenant_id, signed, client_assertion_type="urn:example:saml"
    )
    aadsts(response, "invalid_request", 90014, 400)


# --- registering certificates -----------------------------------------------------------------


def test_certificates_are_uploaded_listed_and_removed_through_the_control_api(
    control: EmulatorControl,
    emulator: Emulator,
    tenant: EmuTenant,
    certificate: SelfSigned,
    clock: FakeClock,
) -> None:
    signed = assertion(certificate, clock, audience=token_url(tenant.tenant_id))
    assert token_with(emulator, tenant.tenant_id, signed).status == 401

    # The private key beside the certificate is ignored, never stored.
    uploaded = control.add_app_certificate(
        CLIENT_ID, certificate.key_pem() + certificate.certificate_pem
    )

    assert uploaded["thumbprint"] == certificate.sha1_thumbprint
    assert uploaded["subject"] == "CN=entra-sync Directory Sync"
    assert control.app_certificates(CLIENT_ID) == [uploaded]
    assert {a["client_id"]: a for a in control.apps()}[CLIENT_ID]["certificates"] == [uploaded]
    assert token_with(emulator, tenant.tenant_id, signed).status == 200

    control.delete_app_certificate(CLIENT_ID, certificate.sha1_thumbprint.lower())
    assert control.app_certificates(CLIENT_ID) == []
    aadsts(token_with(emulator, tenant.tenant_id, signed), "invalid_client", 700027, 401)

    refused(404, lambda: control.delete_app_certificate(CLIENT_ID, certificate.sha1_thumbprint))
    refused(400, lambda: control.add_app_certificate(CLIENT_ID, "not a certificate"))
    refused(404, lambda: control.add_app_certificate("no-such-app", certificate.certificate_pem))


def test_an_app_can_be_registered_with_its_certificates_in_python(
    emulator: Emulator, tenant: EmuTenant, certificate: SelfSigned, clock: FakeClock
) -> None:
    emulator.add_app(CLIENT_ID, SECRET, certificates=[certificate.certificate_pem])
    signed = assertion(certificate, clock, audience=token_url(tenant.tenant_id))
    assert token_with(emulator, tenant.tenant_id, signed).status == 200
