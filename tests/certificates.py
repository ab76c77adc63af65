"""Self-signed test certificates, made with `cryptography` as the README's openssl command would.

RSA keys are slow to generate, so a few are made once per test session and shared; each
certificate is new.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@functools.cache
def rsa_key(n: int = 0) -> rsa.RSAPrivateKey:
    """The n-th shared test key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class SelfSigned:
    """A key and its self-signed certificate, written as the PEM file entra-sync reads."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def sha1_thumbprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA1()).hex().upper()

    def key_pem(self, password: str = "") -> str:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        ).decode("ascii")

    def write(self, path: Path, *, password: str = "") -> Path:
        """One PEM file: the private key (encrypted with `password` if given), then the cert."""
        path.write_text(self.key_pem(password) + self.certificate_pem)
        return path


def make_certificate(
    *,
    key: int = 0,
    common_name: str = "entra-sync Directory Sync",
    valid_from: dt.datetime | None = None,
    valid_days: int = 730,
) -> SelfSigned:
    private_key = rsa_key(key)
    start = valid_from or dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .sign(private_key, hashes.SHA256())
    )
    return SelfSigned(private_key, certificate)
