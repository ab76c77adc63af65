"""A client certificate for the Directory Sync application, read from one PEM file.

Microsoft recommends certificates over client secrets ("Microsoft identity platform
application authentication certificate credentials"): MSAL signs a short-lived JWT, the client
assertion, with the private key, and Entra ID checks it against the certificate uploaded to the
app registration. The secret never travels; the key never leaves this process.

The file holds the private key (encrypted or not) and its certificate, in either order, as
`openssl req -x509 -newkey rsa:2048 ... -keyout - -out -` writes them. Whatever is wrong with
it becomes one GraphUnauthorized that says what to fix; no message contains the key.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import msal
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from .errors import GraphUnauthorized

PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)
KEY_LABELS = frozenset({b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"RSA PRIVATE KEY"})


def _msal_version(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


# MSAL 1.35 and later derive the SHA-256 thumbprint from `public_certificate` and sign PS256
# with `x5t#S256`, which Microsoft's page now asks for; older ones need the SHA-1 `thumbprint`
# (RS256 with `x5t`), which Entra ID still accepts.
MSAL_SIGNS_WITH_SHA256_THUMBPRINT = _msal_version(msal.__version__) >= (1, 35)

FIX_PATH = (
    "Set ENTRA_CLIENT_CERTIFICATE_PATH to the PEM file holding the Directory Sync "
    "application's private key and certificate, readable by the user entra-sync runs as, then "
    "restart entra-sync."
)
BOTH_IN_ONE_FILE = (
    "Put the private key and its certificate in one PEM file (for example "
    "`cat entra-sync.key entra-sync.crt > entra-sync.pem`), point ENTRA_CLIENT_CERTIFICATE_PATH "
    "at it and restart entra-sync."
)
NEW_CERTIFICATE = (
    "Create a new certificate (the README's openssl command), upload its .crt to the Directory "
    "Sync app registration under Certificates & secrets, point ENTRA_CLIENT_CERTIFICATE_PATH at "
    "the new PEM file and restart entra-sync."
)


@dataclass(frozen=True)
class ClientCertificate:
    """The private key (unencrypted PEM, in memory only) and the certificate it belongs to."""

    private_key_pem: str = field(repr=False)
    certificate_pem: str = field(repr=False)
    sha1_thumbprint: str  # upper-case hex, as the app registration's Certificates list shows it
    sha256_thumbprint: str
    subject: str
    not_after: dt.datetime

    def msal_credential(self) -> dict[str, str]:
        """MSAL's `client_credential` for this certificate (its "X.509 (.pem)" form)."""
        if MSAL_SIGNS_WITH_SHA256_THUMBPRINT:
            return {"private_key": self.private_key_pem, "public_certificate": self.certificate_pem}
        return {"private_key": self.private_key_pem, "thumbprint": self.sha1_thumbprint}


def load_client_certificate(
    path: str, password: str = "", *, now: dt.datetime | None = None
) -> ClientCertificate:
    """Read and check the PEM file at `path`; GraphUnauthorized says what is wrong with it."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise GraphUnauthorized(
            f"The client certificate file {path} could not be read ({reason}).",
            remediation=FIX_PATH,
        ) from None
    blocks = [(m.group(1), m.group(0)) for m in PEM_BLOCK.finditer(data)]
    if not blocks:
        raise GraphUnauthorized(
            f"The client certificate file {path} is not a PEM file (no -----BEGIN block).",
            remediation="Convert it to PEM, for example a .pfx with `openssl pkcs12 -in "
            "entra-sync.pfx -out entra-sync.pem -nodes`, point ENTRA_CLIENT_CERTIFICATE_PATH at "
            "the PEM file and restart entra-sync.",
        )
    key_blocks = [block for label, block in blocks if label in KEY_LABELS]
    if not key_blocks:
        raise GraphUnauthorized(
            f"The client certificate file {path} holds no RSA private key.",
            remediation=BOTH_IN_ONE_FILE,
        )
    key = _private_key(key_blocks[0], password, path)
    certificates = [_certificate(block, path) for label, block in blocks if label == b"CERTIFICATE"]
    if not certificates:
        raise GraphUnauthorized(
            f"The client certificate file {path} holds a private key but no certificate.",
            remediation=BOTH_IN_ONE_FILE,
        )
    public_key = _public_der(key)
    certificate = next((c for c in certificates if _public_der(c) == public_key), None)
    if certificate is None:
        raise GraphUnauthorized(
            f"No certificate in {path} belongs to its private key.",
            remediation="Put the certificate made with this key (the one uploaded to the "
            "Directory Sync app registration) in the file, next to the key, and restart "
            "entra-sync.",
        )
    # SHA-1 only names the certificate, as the app registration's Certificates list does.
    sha1 = certificate.fingerprint(hashes.SHA1()).hex().upper()
    expired_on = certificate.not_valid_after_utc
    if expired_on <= (now or dt.datetime.now(dt.UTC)):
        raise GraphUnauthorized(
            f"The client certificate in {path} (thumbprint {sha1}) expired on "
            f"{expired_on:%Y-%m-%d}.",
            remediation=NEW_CERTIFICATE,
        )
    return ClientCertificate(
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii"),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        sha1_thumbprint=sha1,
        sha256_thumbprint=certificate.fingerprint(hashes.SHA256()).hex().upper(),
        subject=certificate.subject.rfc4514_string(),
        not_after=expired_on,
    )


def _private_key(block: bytes, password: str, path: str) -> rsa.RSAPrivateKey:
    # PKCS#8 says so in its label, OpenSSL's traditional format in a header.
    encrypted = block.startswith(b"-----BEGIN ENCRYPTED") or b"Proc-Type: 4,ENCRYPTED" in block
    try:
        key: PrivateKeyTypes = serialization.load_pem_private_key(
            block, password.encode() if password and encrypted else None
        )
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        raise GraphUnauthorized(
            f"The private key in {path} is encrypted and ENTRA_CLIENT_CERTIFICATE_PASSWORD is "
            "not set.",
            remediation="Set ENTRA_CLIENT_CERTIFICATE_PASSWORD to the key's password and "
            "restart entra-sync.",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        if encrypted and password:
            raise GraphUnauthorized(
                f"ENTRA_CLIENT_CERTIFICATE_PASSWORD does not decrypt the private key in {path}.",
                remediation="Set ENTRA_CLIENT_CERTIFICATE_PASSWORD to the password the key was "
                "encrypted with and restart entra-sync.",
            ) from None
        raise GraphUnauthorized(
            f"The private key in {path} could not be read (damaged, or a format "
            "cryptography does not support).",
            remediation=NEW_CERTIFICATE,
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise GraphUnauthorized(
            f"The private key in {path} is not an RSA key.",
            remediation="MSAL signs client assertions with RSA (PS256): " + NEW_CERTIFICATE,
        )
    return key


def _certificate(block: bytes, path: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(block)
    except ValueError:
        raise GraphUnauthorized(
            f"A certificate in {path} could not be read (damaged PEM).",
            remediation=NEW_CERTIFICATE,
        ) from None


def _public_der(owner: rsa.RSAPrivateKey | x509.Certificate) -> bytes:
    public_key = owner.public_key()
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
