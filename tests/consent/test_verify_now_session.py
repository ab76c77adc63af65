"""What Verify Now keeps in the admin's session, and for how long.

After consent the session holds MSAL's auth-code flow: the PKCE verifier and the ID token
nonce. A session lives two weeks; these must leave it when the flow finishes, whatever the
outcome, or once it has expired, while flows started in other tabs keep working until then.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client

from directories.models import Directory, SyncMode
from directories.services import consent
from entra_emulator import EmuTenant
from tests.conftest import LOGIN_URL

from .browser import (
    admin_login,
    confirm_url,
    consent_and_return,
    error_messages,
    microsoft,
    query,
    redirect_location,
    verify_start,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:response_mode=.form_post. is recommended:UserWarning"),
]

CALLBACK = "/admin/directories/directory/verify/callback/"


def session_text(client: Client) -> str:
    return json.dumps(dict(client.session.items()))


def flows(client: Client) -> dict[str, dict[str, Any]]:
    stored: dict[str, dict[str, Any]] = client.session.get(consent.FLOWS_KEY, {})
    return stored


def sign_in_secrets(client: Client) -> list[str]:
    """The PKCE verifiers and nonces of the sign-ins waiting in the session."""
    return [
        secret
        for entry in flows(client).values()
        if "flow" in entry
        for secret in (entry["flow"]["code_verifier"], entry["flow"]["nonce"])
    ]


def finish_sign_in(client: Client, sign_in_url: str, tenant: EmuTenant) -> Any:
    return client.get(redirect_location(microsoft(sign_in_url, login=admin_login(tenant))))


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move this process's clock (the state's signature and the session's flows) forward."""
    now = time.time()
    monkeypatch.setattr("directories.services.consent.time.time", lambda: now + seconds)


# --- finished flows ---------------------------------------------------------------------------


def test_a_finished_verify_now_leaves_no_verifier_or_nonce_in_the_session(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    sign_in = consent_and_return(admin_client, directory, contoso)
    secrets = sign_in_secrets(admin_client)
    assert len(secrets) == 2 and all(s in session_text(admin_client) for s in secrets)

    response = finish_sign_in(admin_client, sign_in, contoso)

    assert redirect_location(response) == confirm_url(directory)
    assert consent.FLOWS_KEY not in admin_client.session
    text = session_text(admin_client)
    assert not any(secret in text for secret in secrets)
    assert "code_verifier" not in text


def test_a_failed_sign_in_leaves_no_verifier_or_nonce_in_the_session(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    sign_in = consent_and_return(admin_client, directory, contoso)
    secrets = sign_in_secrets(admin_client)
    assert secrets

    response = admin_client.get(
        CALLBACK, {"error": "access_denied", "state": query(sign_in)["state"]}
    )

    assert error_messages(response)
    assert consent.FLOWS_KEY not in admin_client.session
    assert not any(secret in session_text(admin_client) for secret in secrets)


def test_a_declined_consent_leaves_nothing_in_the_session(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    back = redirect_location(
        microsoft(
            verify_start(admin_client, directory), login=admin_login(contoso), consent="cancel"
        )
    )
    assert error_messages(admin_client.get(back))
    assert consent.FLOWS_KEY not in admin_client.session


# --- abandoned flows --------------------------------------------------------------------------


def test_an_abandoned_flow_is_dropped_at_the_next_start_after_it_expired(
    admin_client: Client, directory: Directory, contoso: EmuTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    consent_and_return(admin_client, directory, contoso)  # and never signs in
    secrets = sign_in_secrets(admin_client)
    assert secrets

    later(monkeypatch, consent.STATE_MAX_AGE + 1)
    other = Directory.objects.create(name="Other", sync_mode=SyncMode.ALL)
    verify_start(admin_client, other)

    assert not any(secret in session_text(admin_client) for secret in secrets)
    assert [entry["directory"] for entry in flows(admin_client).values()] == [other.pk]


def test_an_abandoned_flow_is_dropped_at_the_next_callback_after_it_expired(
    admin_client: Client, directory: Directory, contoso: EmuTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    consent_and_return(admin_client, directory, contoso)
    secrets = sign_in_secrets(admin_client)
    assert secrets

    later(monkeypatch, consent.STATE_MAX_AGE + 1)
    # Any callback, even one whose state is not ours, is an access to the verify state.
    assert error_messages(admin_client.get(CALLBACK, {"state": "not-a-state"}))

    assert consent.FLOWS_KEY not in admin_client.session
    assert not any(secret in session_text(admin_client) for secret in secrets)


def test_an_unfinished_flow_stays_until_it_expires(
    admin_client: Client, directory: Directory, contoso: EmuTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    consent_and_return(admin_client, directory, contoso)
    secrets = sign_in_secrets(admin_client)
    assert secrets

    later(monkeypatch, consent.STATE_MAX_AGE - 30)
    verify_start(admin_client, Directory.objects.create(name="Other", sync_mode=SyncMode.ALL))

    assert all(secret in session_text(admin_client) for secret in secrets)


def test_a_flow_from_before_flows_expired_is_dropped(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    session = admin_client.session
    session[f"{consent.LEGACY_FLOW_KEY_PREFIX}{directory.pk}"] = {
        "nonce": "n",
        "step": consent.STEP_SIGN_IN,
        "flow": {"code_verifier": "old-verifier", "nonce": "old-nonce"},
    }
    session.save()

    verify_start(admin_client, directory)

    assert "old-verifier" not in session_text(admin_client)


# --- several tabs -----------------------------------------------------------------------------


def test_two_tabs_can_verify_the_same_directory_at_once(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    first_consent = verify_start(admin_client, directory)
    second_consent = verify_start(admin_client, directory)
    second = redirect_location(
        admin_client.get(redirect_location(microsoft(second_consent, login=admin_login(contoso))))
    )
    first = redirect_location(
        admin_client.get(redirect_location(microsoft(first_consent, login=admin_login(contoso))))
    )
    assert len(flows(admin_client)) == 2

    for sign_in in (first, second):
        response = finish_sign_in(admin_client, sign_in, contoso)
        assert error_messages(response) == []
        assert redirect_location(response) == confirm_url(directory)

    assert consent.FLOWS_KEY not in admin_client.session
    admin_client.post(confirm_url(directory))
    directory.refresh_from_db()
    assert directory.tenant_id == contoso.tenant_id.lower()


def test_tabs_for_two_directories_work_up_to_their_expiry(
    admin_client: Client,
    directory: Directory,
    contoso: EmuTenant,
    fabrikam: EmuTenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    second = Directory.objects.create(name="Fabrikam", sync_mode=SyncMode.ALL)
    contoso_sign_in = consent_and_return(admin_client, directory, contoso)
    fabrikam_sign_in = consent_and_return(admin_client, second, fabrikam)

    later(monkeypatch, consent.STATE_MAX_AGE - 30)
    response = finish_sign_in(admin_client, fabrikam_sign_in, fabrikam)
    assert redirect_location(response) == confirm_url(second)
    assert error_messages(response) == []

    later(monkeypatch, consent.STATE_MAX_AGE + 1)
    response = finish_sign_in(admin_client, contoso_sign_in, contoso)
    assert "The Verify Now link expired" in error_messages(response)[0]
    assert consent.FLOWS_KEY not in admin_client.session


def test_past_the_limit_of_open_tabs_the_oldest_flow_is_dropped(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    consent_pages = [verify_start(admin_client, directory) for _ in range(consent.MAX_FLOWS + 1)]
    assert len(flows(admin_client)) == consent.MAX_FLOWS

    oldest = admin_client.get(
        redirect_location(microsoft(consent_pages[0], login=admin_login(contoso)))
    )
    assert "already used" in error_messages(oldest)[0]
    newest = admin_client.get(
        redirect_location(microsoft(consent_pages[-1], login=admin_login(contoso)))
    )
    assert redirect_location(newest).startswith(f"{LOGIN_URL}/{contoso.tenant_id}/oauth2/")
