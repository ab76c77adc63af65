"""End to end with a client certificate instead of the secret: the real settings, MSAL (which
signs the client assertion), the Graph client and the commands, against the emulator."""

from __future__ import annotations

import functools
import io
import time
from pathlib import Path
from typing import Any

import msal
import pytest
import responses
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django.fixtures import Settings

from directories.graph import GraphUnauthorized, forget_cached_tokens
from directories.models import Directory, SyncRun
from directories.services.graph import graph_client_for
from entra_emulator import Emulator, EmuTenant
from tests.certificates import SelfSigned, make_certificate
from tests.conftest import CLIENT_ID, LOGIN_URL

from .conftest import EmulatorClock
from .test_sync_via_emulator import add_and_verify, assert_matches_tenant, sync_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock() -> EmulatorClock:
    """The emulator's time is the real time: MSAL dates its assertions with the real clock."""
    clock = EmulatorClock()
    clock.now = time.time()
    return clock


@pytest.fixture
def certificate(tmp_path: Path, settings: Settings) -> SelfSigned:
    """The Directory Sync app's certificate, configured as an operator would (no secret)."""
    certificate = make_certificate()
    settings.ENTRA_CLIENT_SECRET = ""
    settings.ENTRA_CLIENT_CERTIFICATE_PATH = str(
        certificate.write(tmp_path / "entra-sync.pem", password="pem-password")
    )
    settings.ENTRA_CLIENT_CERTIFICATE_PASSWORD = "pem-password"
    return certificate


@pytest.fixture
def registered(emulator: Emulator, certificate: SelfSigned) -> SelfSigned:
    """The certificate uploaded to the app registration (its public part)."""
    emulator.apps[CLIENT_ID].add_certificate(certificate.certificate_pem)
    return certificate


def token_requests(http: responses.RequestsMock) -> list[str]:
    bodies = []
    for call in http.calls:
        if call.request.url and call.request.url.endswith("/oauth2/v2.0/token"):
            body: Any = call.request.body
            bodies.append(body.decode() if isinstance(body, bytes) else str(body))
    return bodies


def refusal(tenant: EmuTenant) -> GraphUnauthorized:
    forget_cached_tokens()
    with pytest.raises(GraphUnauthorized) as caught:
        graph_client_for(tenant_id=tenant.tenant_id).organization()
    return caught.value


# --- it works ---------------------------------------------------------------------------------


def test_a_sync_with_a_client_certificate_copies_the_tenant(
    tenant: EmuTenant, registered: SelfSigned, graph_http: responses.RequestsMock
) -> None:
    directory = add_and_verify(tenant, "assigned")

    summary = sync_json()

    assert summary["status"] == "succeeded"
    assert_matches_tenant(directory, tenant, assigned_only=True)
    tokens = token_requests(graph_http)
    assert tokens and all("client_assertion=" in body for body in tokens)
    assert all(
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
        in body
        for body in tokens
    )
    assert not any("client_secret" in body for body in tokens)


def test_the_certificate_is_used_even_when_a_secret_is_set_too(
    tenant: EmuTenant, registered: SelfSigned, settings: Settings
) -> None:
    settings.ENTRA_CLIENT_SECRET = "an-old-secret-microsoft-would-refuse"
    assert graph_client_for(tenant_id=tenant.tenant_id).organization().display_name == "Contoso"


# --- refused with a clear message -------------------------------------------------------------


def test_an_unregistered_certificate_is_refused_with_what_to_upload(
    tenant: EmuTenant, certificate: SelfSigned
) -> None:
    error = refusal(tenant)

    assert error.message.startswith(
        "Microsoft did not accept the Directory Sync application's certificate (AADSTS700027: "
        "The certificate with identifier used to sign the client assertion is not registered"
    )
    assert "Trace ID" not in error.message
    assert "ENTRA_CLIENT_CERTIFICATE_PATH" in error.remediation
    assert "Certificates & secrets" in error.remediation


def test_a_certificate_removed_from_the_app_fails_the_sync_and_changes_nothing(
    tenant: EmuTenant, emulator: Emulator, registered: SelfSigned
) -> None:
    directory = add_and_verify(tenant, "all")
    sync_json()
    emulator.apps[CLIENT_ID].remove_certificate(registered.sha1_thumbprint)
    forget_cached_tokens()

    with pytest.raises(CommandError, match="did not accept the Directory Sync application's"):
        call_command("sync_directory", "Contoso", stdout=io.StringIO())

    run = SyncRun.objects.filter(directory=directory).first()
    assert run is not None and run.error_class == "unauthorized"
    assert "AADSTS700027" in run.error_message
    assert_matches_tenant(directory, tenant, assigned_only=False)


def test_an_expired_assertion_is_refused_and_points_at_the_clock(
    tenant: EmuTenant, registered: SelfSigned, clock: EmulatorClock
) -> None:
    clock.now += 3600  # Microsoft's clock an hour ahead of ours: the assertion expired

    error = refusal(tenant)

    assert error.message.startswith(
        "Microsoft found the certificate's signed assertion outside its valid time range "
        "(AADSTS700024: Client assertion is not within its valid time range."
    )
    assert "clock" in error.remediation


def test_an_assertion_for_another_audience_is_refused_and_names_the_login_url(
    tenant: EmuTenant, registered: SelfSigned, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a login URL of another cloud, or a proxy that rewrites it, would make MSAL sign it.
    monkeypatch.setattr(
        msal,
        "ConfidentialClientApplication",
        functools.partial(
            msal.ConfidentialClientApplication,
            client_claims={"aud": f"{LOGIN_URL}/common/oauth2/v2.0/token"},
        ),
    )

    error = refusal(tenant)

    assert error.message.startswith(
        "Microsoft refused the certificate's signed assertion: it names another login service "
        "as its audience (AADSTS700023: Client assertion audience claim does not match Realm "
        "issuer."
    )
    assert "ENTRA_LOGIN_URL" in error.remediation


def test_an_unreadable_certificate_file_fails_the_command_in_one_line(
    tenant: EmuTenant, registered: SelfSigned, settings: Settings, tmp_path: Path
) -> None:
    add_and_verify(tenant, "all")
    settings.ENTRA_CLIENT_CERTIFICATE_PASSWORD = "not-the-password"

    with pytest.raises(CommandError) as caught:
        call_command("sync_directory", "Contoso", stdout=io.StringIO(), stderr=io.StringIO())

    message = str(caught.value)
    assert message.startswith(
        "Contoso: ENTRA_CLIENT_CERTIFICATE_PASSWORD does not decrypt the private key in "
        f"{tmp_path / 'entra-sync.pem'}."
    )
    assert "\n" not in message and "not-the-password" not in message
    assert "PRIVATE KEY" not in message
    assert Directory.objects.get().is_verified
