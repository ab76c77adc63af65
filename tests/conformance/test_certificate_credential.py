"""azure-identity's CertificateCredential against the emulator over real HTTPS: a client we did
not write builds the client assertion (RS256 with the SHA-1 `x5t`, where MSAL Python sends
PS256 with `x5t#S256`), and the emulator accepts or refuses it as Microsoft would."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from entra_emulator import Emulator, EmuTenant
from tests.certificates import make_certificate

azure_identity = pytest.importorskip("azure.identity")
azure_exceptions = pytest.importorskip("azure.core.exceptions")


def credential(url: str, ca: str, tenant: EmuTenant, client_id: str, pem: bytes) -> Any:
    return azure_identity.CertificateCredential(
        tenant.tenant_id,
        client_id,
        certificate_data=pem,
        authority=url,
        disable_instance_discovery=True,
        connection_verify=ca,
    )


def test_a_certificate_uploaded_to_the_app_gets_a_token(
    emulator: Emulator, tenant: EmuTenant, url: str, ca: str
) -> None:
    client_id = str(uuid.uuid4())
    certificate = make_certificate()
    emulator.add_app(client_id, "unused-secret", certificates=[certificate.certificate_pem])
    pem = (certificate.key_pem() + certificate.certificate_pem).encode()

    with credential(url, ca, tenant, client_id, pem) as cred:
        token = cred.get_token(f"{url}/.default")

    info = emulator.tokens.lookup(token.token)
    assert info is not None and info.client_id == client_id


def test_a_certificate_not_uploaded_is_aadsts700027(
    emulator: Emulator, tenant: EmuTenant, url: str, ca: str
) -> None:
    client_id = str(uuid.uuid4())
    emulator.add_app(client_id, "unused-secret", certificates=[make_certificate().certificate_pem])
    stranger = make_certificate(key=1)
    pem = (stranger.key_pem() + stranger.certificate_pem).encode()

    with (
        credential(url, ca, tenant, client_id, pem) as cred,
        pytest.raises(azure_exceptions.ClientAuthenticationError) as raised,
    ):
        cred.get_token(f"{url}/.default")

    assert "AADSTS700027" in str(raised.value)
    assert stranger.sha1_thumbprint in str(raised.value)
