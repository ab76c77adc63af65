"""Reading the Directory Sync app's client certificate: what MSAL gets, and one clear sentence
for every way the PEM file can be unusable (never a traceback, never the key)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pytest_django.fixtures import Settings

from directories.graph import (
    GraphSettings,
    GraphUnauthorized,
    load_client_certificate,
)
from directories.graph.certificate import MSAL_SIGNS_WITH_SHA256_THUMBPRINT
from directories.services.graph import graph_settings
from tests.certificates import SelfSigned, make_certificate


@pytest.fixture
def certificate() -> SelfSigned:
    return make_certificate()


def refusal(path: Path | str, password: str = "") -> GraphUnauthorized:
    with pytest.raises(GraphUnauthorized) as caught:
        load_client_certificate(str(path), password)
    # No library exception chained to it: its text could quote the file.
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return caught.value


def assert_no_key_in(error: GraphUnauthorized, certificate: SelfSigned) -> None:
    body = certificate.key_pem().splitlines()[1]
    assert body not in str(error) and "PRIVATE KEY" not in str(error)


# --- what works -------------------------------------------------------------------------------


def test_it_reads_the_key_and_certificate_and_computes_the_thumbprints(
    tmp_path: Path, certificate: SelfSigned
) -> None:
    loaded = load_client_certificate(str(certificate.write(tmp_path / "app.pem")))

    assert loaded.sha1_thumbprint == certificate.sha1_thumbprint
    assert len(loaded.sha256_thumbprint) == 64
    assert loaded.subject == "CN=entra-sync Directory Sync"
    assert loaded.certificate_pem == certificate.certificate_pem
    assert "PRIVATE KEY" not in repr(loaded)


def test_an_encrypted_key_is_read_with_its_password(
    tmp_path: Path, certificate: SelfSigned
) -> None:
    path = certificate.write(tmp_path / "app.pem", password="s3cret")

    loaded = load_client_certificate(str(path), "s3cret")

    assert loaded.sha1_thumbprint == certificate.sha1_thumbprint
    assert "ENCRYPTED" not in loaded.private_key_pem  # MSAL gets a key it can use as is


def test_the_certificate_may_come_first_and_a_chain_may_follow(
    tmp_path: Path, certificate: SelfSigned
) -> None:
    issuer = make_certificate(key=1, common_name="Some CA")
    path = tmp_path / "app.pem"
    path.write_text(issuer.certificate_pem + certificate.certificate_pem + certificate.key_pem())

    assert load_client_certificate(str(path)).sha1_thumbprint == certificate.sha1_thumbprint


def test_msal_gets_the_certificate_so_it_signs_with_the_sha256_thumbprint(
    tmp_path: Path, certificate: SelfSigned
) -> None:
    loaded = load_client_certificate(str(certificate.write(tmp_path / "app.pem")))

    assert MSAL_SIGNS_WITH_SHA256_THUMBPRINT  # msal 1.39 is pinned
    assert loaded.msal_credential() == {
        "private_key": loaded.private_key_pem,
        "public_certificate": certificate.certificate_pem,
    }


# --- one sentence for each way the file can be wrong ------------------------------------------


def test_a_missing_file_says_which_setting_to_fix(tmp_path: Path) -> None:
    error = refusal(tmp_path / "nope.pem")
    assert error.message == (
        f"The client certificate file {tmp_path / 'nope.pem'} could not be read "
        "(No such file or directory)."
    )
    assert "ENTRA_CLIENT_CERTIFICATE_PATH" in error.remediation


def test_a_directory_is_not_a_certificate_file(tmp_path: Path) -> None:
    assert "could not be read (Is a directory)" in refusal(tmp_path).message


def test_a_pfx_file_is_explained_with_the_conversion(tmp_path: Path) -> None:
    path = tmp_path / "app.pfx"
    path.write_bytes(b"\x30\x82\x0a\x00binary")
    error = refusal(path)
    assert "is not a PEM file" in error.message
    assert "openssl pkcs12" in error.remediation


def test_a_certificate_without_its_key_says_to_put_both_in_one_file(
    tmp_path: Path, certificate: SelfSigned
) -> None:
    path = tmp_path / "app.crt"
    path.write_text(certificate.certificate_pem)
    error = refusal(path)
    assert error.message.endswith("holds no RSA private key.")
    assert "cat entra-sync.key entra-sync.crt > entra-sync.pem" in error.remediation


def test_a_key_without_its_certificate_says_to_put_both_in_one_file(
    tmp_path: Path, certificate: SelfSigned
) -> None:
    path = tmp_path / "app.key"
    path.write_text(certificate.key_pem())
    error = refusal(path)
    assert error.message.endswith("holds a private key but no certificate.")
    assert_no_key_in(error, certificate)


def test_an_encrypted_key_without_a_password_names_the_password_setting(
    tmp_path: Path, certificate: SelfSigned
) -> None:
    error = refusal(certificate.write(tmp_path / "app.pem", password="s3cret"))
    assert "is encrypted and ENTRA_CLIENT_CERTIFICATE_PASSWORD is not set" in error.message
    assert_no_key_in(error, certificate)


def test_a_wrong_password_is_named_without_the_key_or_the_password(
    tmp_path: Path, certificate: SelfSigned
) -> None:
    error = refusal(certificate.write(tmp_path / "app.pem", password="s3cret"), "wrong-one")
    assert error.message.startswith("ENTRA_CLIENT_CERTIFICATE_PASSWORD does not decrypt")
    assert "wrong-one" not in str(error) and "s3cret" not in str(error)
    assert_no_key_in(error, certificate)


def test_a_password_for_a_key_that_has_none_is_harmless(
    tmp_path: Path, certificate: SelfSigned
) -> None:
    path = certificate.write(tmp_path / "app.pem")
    assert load_client_certificate(str(path), "unneeded").sha1_thumbprint


def test_a_key_and_a_certificate_that_do_not_belong_together_are_refused(
    tmp_path: Path, certificate: SelfSigned
) -> None:
    other = make_certificate(key=1)
    path = tmp_path / "app.pem"
    path.write_text(certificate.key_pem() + other.certificate_pem)
    assert refusal(path).message == f"No certificate in {path} belongs to its private key."


def test_an_expired_certificate_is_refused_before_microsoft_is_asked(tmp_path: Path) -> None:
    old = make_certificate(valid_from=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), valid_days=365)
    error = refusal(old.write(tmp_path / "app.pem"))
    assert error.message == (
        f"The client certificate in {tmp_path / 'app.pem'} (thumbprint {old.sha1_thumbprint}) "
        "expired on 2020-12-31."
    )
    assert "Create a new certificate" in error.remediation


def test_a_key_that_is_not_rsa_is_refused(tmp_path: Path, certificate: SelfSigned) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "app.pem"
    path.write_text(pem + certificate.certificate_pem)
    assert refusal(path).message == f"The private key in {path} is not an RSA key."


def test_a_damaged_key_is_refused_without_its_content(
    tmp_path: Path, certificate: SelfSigned
) -> None:
    lines = certificate.key_pem().splitlines()
    lines[3] = lines[3][::-1]
    path = tmp_path / "app.pem"
    path.write_text("\n".join(lines) + "\n" + certificate.certificate_pem)
    error = refusal(path)
    assert "could not be read" in error.message
    assert lines[3] not in str(error)


# --- the settings entra-sync builds from the environment --------------------------------------


def test_the_certificate_is_used_instead_of_the_secret(
    tmp_path: Path, certificate: SelfSigned, settings: Settings
) -> None:
    settings.ENTRA_CLIENT_CERTIFICATE_PATH = str(certificate.write(tmp_path / "app.pem"))
    settings.ENTRA_CLIENT_CERTIFICATE_PASSWORD = ""

    graph = graph_settings()

    assert graph.client_certificate is not None
    assert graph.client_secret == ""
    assert isinstance(graph.client_credential(), dict)
    assert graph.credential_digest == f"certificate:{graph.client_certificate.sha256_thumbprint}"
    assert "PRIVATE KEY" not in repr(graph)


def test_a_certificate_alone_is_enough(
    tmp_path: Path, certificate: SelfSigned, settings: Settings
) -> None:
    settings.ENTRA_CLIENT_SECRET = ""
    settings.ENTRA_CLIENT_CERTIFICATE_PATH = str(certificate.write(tmp_path / "app.pem"))
    assert graph_settings().client_certificate is not None


def test_an_unusable_certificate_file_stops_before_any_request(
    tmp_path: Path, settings: Settings
) -> None:
    settings.ENTRA_CLIENT_CERTIFICATE_PATH = str(tmp_path / "missing.pem")
    with pytest.raises(GraphUnauthorized, match="could not be read"):
        graph_settings()


def test_without_a_certificate_the_secret_is_used(settings: Settings) -> None:
    settings.ENTRA_CLIENT_CERTIFICATE_PATH = ""
    graph = graph_settings()
    assert graph.client_certificate is None
    assert graph.client_credential() == settings.ENTRA_CLIENT_SECRET
    assert graph.credential_digest.startswith("secret:")
    assert GraphSettings(client_id="a", client_secret="b").client_credential() == "b"
