"""Verify Now when the Directory Sync app authenticates with a client certificate: the sign-in's
code is redeemed, and the tenant probed, with client assertions instead of the secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from directories.models import Directory
from entra_emulator import Emulator, EmuTenant
from tests.certificates import make_certificate
from tests.conftest import CLIENT_ID

from .browser import (
    admin_login,
    confirm_url,
    consent_and_return,
    error_messages,
    microsoft,
    redirect_location,
    start_url,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:response_mode=.form_post. is recommended:UserWarning"),
]


@pytest.fixture
def certificate_file(tmp_path: Path, settings: Settings) -> Path:
    path = make_certificate().write(tmp_path / "entra-sync.pem")
    settings.ENTRA_CLIENT_SECRET = ""
    settings.ENTRA_CLIENT_CERTIFICATE_PATH = str(path)
    return path


def test_verify_now_works_with_a_client_certificate(
    admin_client: Client,
    directory: Directory,
    contoso: EmuTenant,
    emulator: Emulator,
    certificate_file: Path,
) -> None:
    emulator.apps[CLIENT_ID].add_certificate(certificate_file.read_text())

    sign_in = consent_and_return(admin_client, directory, contoso)
    back = redirect_location(microsoft(sign_in, login=admin_login(contoso)))
    response = admin_client.get(back)

    assert error_messages(response) == []
    assert redirect_location(response) == confirm_url(directory)
    admin_client.post(confirm_url(directory))
    directory.refresh_from_db()
    assert directory.tenant_id == contoso.tenant_id.lower()


def test_verify_now_says_when_the_certificate_is_not_uploaded(
    admin_client: Client, directory: Directory, contoso: EmuTenant, certificate_file: Path
) -> None:
    sign_in = consent_and_return(admin_client, directory, contoso)
    response = admin_client.get(redirect_location(microsoft(sign_in, login=admin_login(contoso))))

    (message,) = error_messages(response)
    assert message.startswith(
        "Verify Now stopped at sign-in: Microsoft did not accept the Directory Sync "
        "application's certificate (AADSTS700027: "
    )
    assert "Upload the certificate of ENTRA_CLIENT_CERTIFICATE_PATH" in message


def test_an_unusable_certificate_file_stops_verify_now_before_leaving_the_site(
    admin_client: Client, directory: Directory, settings: Settings, tmp_path: Path
) -> None:
    settings.ENTRA_CLIENT_CERTIFICATE_PATH = str(tmp_path / "missing.pem")

    (message,) = error_messages(admin_client.post(start_url(directory)))

    assert message.startswith(
        "Verify Now stopped at the start: The client certificate file "
        f"{tmp_path / 'missing.pem'} could not be read (No such file or directory)."
    )
    assert "ENTRA_CLIENT_CERTIFICATE_PATH" in message
