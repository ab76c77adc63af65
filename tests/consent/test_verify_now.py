"""Verify Now end to end: admin consent, sign-in, probe, confirmation, and every failure path.

Microsoft's side is the emulator (tests/consent/conftest.py); its pages are filled in through
`requests`, ours are driven with Django's test client and the redirects followed by hand.
"""

from __future__ import annotations

import time
from typing import Any

import msal
import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.test import Client
from django_q.models import Schedule

from directories.graph import GraphUnauthorized
from directories.models import Directory, SyncMode
from directories.services import consent
from directories.services.graph import graph_client_for
from directories.services.schedules import schedule_name
from entra_emulator import Emulator, EmuTenant
from tests.conftest import CLIENT_ID, CLIENT_SECRET, GRAPH_URL, LOGIN_URL

from .browser import (
    admin_login,
    all_messages,
    change_url,
    confirm_url,
    consent_and_return,
    error_messages,
    microsoft,
    query,
    redirect_location,
    start_url,
    verify_start,
)
from .conftest import CALLBACK_URL, FABRIKAM_ID

pytestmark = [
    pytest.mark.django_db,
    # We ask for response_mode=query on purpose (directories/consent.py says why).
    pytest.mark.filterwarnings("ignore:response_mode=.form_post. is recommended:UserWarning"),
]

UNVERIFIED = {"tenant_id": "", "tenant_name": "", "tenant_domain": "", "verified_at": None}


def unchanged(directory: Directory, before: dict[str, Any] | None = None) -> None:
    directory.refresh_from_db()
    expected = before or UNVERIFIED
    assert {k: getattr(directory, k) for k in expected} == expected
    assert not Schedule.objects.filter(name=schedule_name(directory.pk)).exists()


def only_error(response: Any, directory: Directory | None) -> str:
    """The one error message of a failure that ended on the directory's page."""
    target = change_url(directory) if directory else "/admin/directories/directory/"
    assert redirect_location(response) == target
    errors = error_messages(response)
    assert len(errors) == 1, errors
    return errors[0]


def sign_in_and_return(client: Client, sign_in_url: str, tenant: EmuTenant) -> Any:
    return client.get(redirect_location(microsoft(sign_in_url, login=admin_login(tenant))))


# --- the way it should go ---------------------------------------------------------------------


def test_it_verifies_the_directory_with_the_tenant_the_admin_signed_in_to(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    with pytest.raises(GraphUnauthorized, match="not present in tenant"):
        graph_client_for(tenant_id=contoso.tenant_id).organization()

    consent_page = verify_start(admin_client, directory)
    assert consent_page.startswith(f"{LOGIN_URL}/organizations/v2.0/adminconsent?")
    params = query(consent_page)
    assert params["client_id"] == CLIENT_ID
    assert params["scope"] == f"{GRAPH_URL}/.default"
    assert params["redirect_uri"] == CALLBACK_URL

    back = redirect_location(microsoft(consent_page, login=admin_login(contoso)))
    assert query(back)["admin_consent"] == "True"
    assert query(back)["tenant"] == contoso.tenant_id
    sign_in = redirect_location(admin_client.get(back))
    assert sign_in.startswith(f"{LOGIN_URL}/{contoso.tenant_id}/oauth2/v2.0/authorize?")
    sign_in_params = query(sign_in)
    assert sign_in_params["code_challenge_method"] == "S256"
    assert sign_in_params["prompt"] == "select_account"
    assert sign_in_params["redirect_uri"] == CALLBACK_URL

    response = sign_in_and_return(admin_client, sign_in, contoso)
    assert error_messages(response) == []
    assert redirect_location(response) == confirm_url(directory)
    unchanged(directory)  # nothing is saved before the admin has seen the tenant

    page = admin_client.get(confirm_url(directory))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Connected to <strong><em>Contoso</em></strong>" in html
    assert f"(tenant id <code>{contoso.tenant_id}</code>)" in html
    assert admin_login(contoso) in html
    assert 'value="Save"' in html
    assert "Django administration" in html or "site-name" in html  # the admin's own frame
    assert "access_token" not in str(dict(admin_client.session))
    assert "refresh_token" not in str(dict(admin_client.session))

    saved = admin_client.post(confirm_url(directory))
    assert redirect_location(saved) == change_url(directory)
    assert any(m.startswith("Verified") for m in all_messages(saved))
    directory.refresh_from_db()
    assert directory.tenant_id == contoso.tenant_id.lower()
    assert directory.tenant_name == "Contoso"
    assert directory.tenant_domain == "contoso.onmicrosoft.com"
    assert directory.verified_at is not None
    assert Schedule.objects.filter(name=schedule_name(directory.pk)).count() == 1
    assert graph_client_for(tenant_id=contoso.tenant_id).organization().display_name == "Contoso"


def test_it_shows_how_many_groups_are_assigned_and_none_in_all_groups_mode(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    Directory.objects.filter(pk=directory.pk).update(sync_mode=SyncMode.ALL)
    sign_in = consent_and_return(admin_client, directory, contoso)
    sign_in_and_return(admin_client, sign_in, contoso)
    html = admin_client.get(confirm_url(directory)).content.decode()
    assert "Groups assigned to the Authentication app" not in html
    admin_client.post(confirm_url(directory))
    directory.refresh_from_db()
    assert directory.is_verified


def test_verifying_again_keeps_the_same_tenant(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    for _ in range(2):
        sign_in = consent_and_return(admin_client, directory, contoso)
        sign_in_and_return(admin_client, sign_in, contoso)
        admin_client.post(confirm_url(directory))
    directory.refresh_from_db()
    assert directory.tenant_id == contoso.tenant_id.lower()


# --- consent ----------------------------------------------------------------------------------


def test_a_declined_consent_says_who_can_accept_and_changes_nothing(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    consent_page = verify_start(admin_client, directory)
    back = redirect_location(microsoft(consent_page, login=admin_login(contoso), consent="cancel"))
    assert query(back)["error"] == "access_denied"
    message = only_error(admin_client.get(back), directory)
    assert message.startswith("Verify Now stopped at admin consent: consent was declined")
    assert "AADSTS65004" in message
    assert "Global Administrator or Privileged Role Administrator" in message
    unchanged(directory)
    with pytest.raises(GraphUnauthorized):
        graph_client_for(tenant_id=contoso.tenant_id).organization()


def test_a_directory_connected_to_another_tenant_is_refused(
    admin_client: Client, directory: Directory, contoso: EmuTenant, fabrikam: EmuTenant
) -> None:
    Directory.objects.filter(pk=directory.pk).update(tenant_id=FABRIKAM_ID)
    back = redirect_location(
        microsoft(verify_start(admin_client, directory), login=admin_login(contoso))
    )
    message = only_error(admin_client.get(back), directory)
    assert f"connected to tenant {FABRIKAM_ID}, not {contoso.tenant_id}" in message
    assert "remove the directory and add it again" in message
    unchanged(directory, {"tenant_id": FABRIKAM_ID, "verified_at": None})


# --- sign-in ----------------------------------------------------------------------------------


def test_microsoft_refuses_an_account_of_another_tenant_at_sign_in(
    admin_client: Client, directory: Directory, contoso: EmuTenant, fabrikam: EmuTenant
) -> None:
    sign_in = consent_and_return(admin_client, directory, contoso)
    page = microsoft(sign_in, login=admin_login(fabrikam))
    assert page.status_code == 400
    assert "AADSTS50020" in page.text
    unchanged(directory)


def test_a_sign_in_to_another_tenant_than_the_consented_one_is_refused(
    admin_client: Client,
    directory: Directory,
    contoso: EmuTenant,
    fabrikam: EmuTenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Microsoft's tenant-specific authority should never return another `tid`; this is the
    # check that would catch it (or a hand-edited `tenant` in the consent answer).
    sign_in = consent_and_return(admin_client, directory, contoso)
    real = msal.ConfidentialClientApplication.acquire_token_by_auth_code_flow

    def other_tenant(self: Any, flow: dict[str, Any], response: dict[str, str]) -> Any:
        result = real(self, flow, response)
        result["id_token_claims"]["tid"] = fabrikam.tenant_id
        return result

    monkeypatch.setattr(
        msal.ConfidentialClientApplication, "acquire_token_by_auth_code_flow", other_tenant
    )
    message = only_error(sign_in_and_return(admin_client, sign_in, contoso), directory)
    assert message == (
        f"Verify Now stopped at sign-in: You signed in to tenant {fabrikam.tenant_id} but "
        f"consented for {contoso.tenant_id}. Nothing was changed. Sign in with an account of "
        "the tenant you are connecting: click Verify Now again."
    )
    unchanged(directory)


def test_an_error_in_the_sign_in_answer_is_reported(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    sign_in = consent_and_return(admin_client, directory, contoso)
    response = admin_client.get(
        "/admin/directories/directory/verify/callback/",
        {
            "error": "access_denied",
            "error_description": "AADSTS50105: The signed in user is not assigned to a role.\r\n"
            "Trace ID: x",
            "state": query(sign_in)["state"],
        },
    )
    message = only_error(response, directory)
    assert message.startswith("Verify Now stopped at sign-in: Microsoft answered with an error")
    assert "AADSTS50105: The signed in user is not assigned to a role." in message
    assert "Trace ID" not in message
    unchanged(directory)


def test_a_code_microsoft_refuses_to_redeem_is_reported(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    sign_in = consent_and_return(admin_client, directory, contoso)
    back = redirect_location(microsoft(sign_in, login=admin_login(contoso)))
    params = query(back)
    params["code"] = "1.Anot-a-code"
    message = only_error(
        admin_client.get("/admin/directories/directory/verify/callback/", params), directory
    )
    assert message.startswith("Verify Now stopped at sign-in: Microsoft refused the sign-in")
    assert "AADSTS" in message
    unchanged(directory)


# --- the probe --------------------------------------------------------------------------------


def test_a_missing_application_permission_says_which_to_grant(
    admin_client: Client, directory: Directory, emulator: Emulator, contoso: EmuTenant
) -> None:
    emulator.apps[CLIENT_ID].permissions = frozenset(
        {"User.Read.All", "GroupMember.Read.All", "Organization.Read.All"}
    )
    sign_in = consent_and_return(admin_client, directory, contoso)
    message = only_error(sign_in_and_return(admin_client, sign_in, contoso), directory)
    assert message.startswith("Verify Now stopped at the tenant check:")
    assert "Application.Read.All" in message
    assert "grant admin consent again" in message
    unchanged(directory)


def test_a_tenant_without_the_authentication_app_is_refused_in_assigned_mode(
    admin_client: Client, directory: Directory, emulator: Emulator, contoso: EmuTenant
) -> None:
    contoso.auth_app_id = "44444444-4444-4444-8444-444444444444"
    sign_in = consent_and_return(admin_client, directory, contoso)
    message = only_error(sign_in_and_return(admin_client, sign_in, contoso), directory)
    assert message.startswith("Verify Now stopped at the tenant check:")
    assert "Authentication application" in message
    assert "has no service principal in this tenant" in message
    unchanged(directory)


# --- the state --------------------------------------------------------------------------------


def test_a_forged_state_is_refused(admin_client: Client, directory: Directory) -> None:
    for state in ("forged", signing.dumps({"d": directory.pk, "n": "x", "s": "consent"})):
        response = admin_client.get(
            "/admin/directories/directory/verify/callback/",
            {"admin_consent": "True", "tenant": FABRIKAM_ID, "state": state},
        )
        message = only_error(response, None)
        assert "link is not valid: it was altered, or not issued by this site" in message
    unchanged(directory)


def test_a_tampered_state_is_refused(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    state = query(verify_start(admin_client, directory))["state"]
    tampered = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
    response = admin_client.get(
        "/admin/directories/directory/verify/callback/",
        {"admin_consent": "True", "tenant": contoso.tenant_id, "state": tampered},
    )
    assert "not valid" in only_error(response, None)
    unchanged(directory)


def test_a_state_is_single_use(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    back = redirect_location(
        microsoft(verify_start(admin_client, directory), login=admin_login(contoso))
    )
    assert admin_client.get(back).status_code == 302
    message = only_error(admin_client.get(back), directory)
    assert "link was already used, or it was started in another browser session" in message
    assert "Click Verify Now on the directory to start again" in message
    unchanged(directory)


def test_the_sign_in_state_is_single_use_too(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    sign_in = consent_and_return(admin_client, directory, contoso)
    back = redirect_location(microsoft(sign_in, login=admin_login(contoso)))
    assert redirect_location(admin_client.get(back)) == confirm_url(directory)
    assert "already used" in only_error(admin_client.get(back), directory)
    unchanged(directory)


def test_an_expired_state_is_refused(
    admin_client: Client,
    directory: Directory,
    contoso: EmuTenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    back = redirect_location(
        microsoft(verify_start(admin_client, directory), login=admin_login(contoso))
    )

    class Later:
        @staticmethod
        def time() -> float:
            return time.time() + consent.STATE_MAX_AGE + 1

    monkeypatch.setattr("django.core.signing.time", Later)
    message = only_error(admin_client.get(back), directory)
    assert "The Verify Now link expired (it lasts 10 minutes)" in message
    monkeypatch.undo()
    assert "already used" in only_error(admin_client.get(back), directory)  # and it is spent
    unchanged(directory)


def test_a_state_from_another_session_is_refused(
    admin_client: Client, directory: Directory, contoso: EmuTenant, admin_user: Any
) -> None:
    back = redirect_location(
        microsoft(verify_start(admin_client, directory), login=admin_login(contoso))
    )
    other = Client()
    other.force_login(admin_user)  # the same person, another browser
    message = only_error(other.get(back), directory)
    assert "started in another browser session" in message
    unchanged(directory)


def test_a_state_for_another_directory_does_not_cross_over(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    second = Directory.objects.create(name="Second", sync_mode=SyncMode.ALL)
    verify_start(admin_client, second)
    state = query(verify_start(admin_client, directory))["state"]
    response = admin_client.get(
        "/admin/directories/directory/verify/callback/",
        {"admin_consent": "True", "tenant": contoso.tenant_id, "state": state},
    )
    assert redirect_location(response).startswith(f"{LOGIN_URL}/{contoso.tenant_id}/")
    unchanged(second)


# --- confirmation -----------------------------------------------------------------------------


def test_there_is_nothing_to_confirm_without_a_finished_check(
    admin_client: Client, directory: Directory
) -> None:
    assert "no checked tenant to confirm" in only_error(
        admin_client.get(confirm_url(directory)), directory
    )
    assert "no checked tenant to save" in only_error(
        admin_client.post(confirm_url(directory)), directory
    )
    unchanged(directory)


def test_a_checked_tenant_is_saved_once_and_not_after_it_went_stale(
    admin_client: Client,
    directory: Directory,
    contoso: EmuTenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sign_in = consent_and_return(admin_client, directory, contoso)
    sign_in_and_return(admin_client, sign_in, contoso)
    now = time.time()
    monkeypatch.setattr(
        "directories.services.consent.time.time", lambda: now + consent.STATE_MAX_AGE + 1
    )
    assert "expired" in only_error(admin_client.post(confirm_url(directory)), directory)
    unchanged(directory)


def test_a_mode_changed_after_the_check_must_be_checked_again(
    admin_client: Client, directory: Directory, contoso: EmuTenant
) -> None:
    sign_in = consent_and_return(admin_client, directory, contoso)
    sign_in_and_return(admin_client, sign_in, contoso)
    Directory.objects.filter(pk=directory.pk).update(sync_mode=SyncMode.ALL)
    assert "mode changed" in only_error(admin_client.post(confirm_url(directory)), directory)
    unchanged(directory)


# --- who may ----------------------------------------------------------------------------------


def test_staff_without_the_verify_permission_cannot_start_or_finish(
    client: Client, directory: Directory
) -> None:
    staff = get_user_model().objects.create_user("viewer", password="x", is_staff=True)
    client.force_login(staff)
    assert client.post(start_url(directory)).status_code == 403
    assert (
        client.get("/admin/directories/directory/verify/callback/", {"state": "x"}).status_code
        == 403
    )
    assert client.get(confirm_url(directory)).status_code == 403


def test_the_callback_needs_a_signed_in_staff_member(client: Client) -> None:
    response = client.get("/admin/directories/directory/verify/callback/", {"state": "x"})
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_verify_now_is_a_post(admin_client: Client, directory: Directory) -> None:
    assert admin_client.get(start_url(directory)).status_code == 405
    assert (
        admin_client.post(start_url(directory).replace(str(directory.pk), "999")).status_code == 404
    )


def test_missing_credentials_are_reported_before_leaving_the_site(
    admin_client: Client, directory: Directory, settings: Any
) -> None:
    settings.ENTRA_CLIENT_SECRET = ""
    message = only_error(admin_client.post(start_url(directory)), directory)
    assert message.startswith("Verify Now stopped at the start: ENTRA_CLIENT_ID and")
    assert CLIENT_SECRET not in message
