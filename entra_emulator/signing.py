"""The emulator's token-signing key: RS256 ID tokens and the JWKS that verifies them.

Microsoft publishes its keys at `/{tenant}/discovery/v2.0/keys` with `kid` equal to `x5t` (the
SHA-1 thumbprint of a self-signed certificate in `x5c`). We do the same, and build the
certificate deterministically from the key, so a key kept in a file gives the same `kid`, the
same certificate and the same JWKS after a restart; without a file the key lives in memory.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

KEY_SIZE = 2048
CERT_SUBJECT = "login.emulator.test (entra-sync emulator)"
# Fixed validity so the certificate, and with it the key id, depend on the key alone.
CERT_NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
CERT_NOT_AFTER = dt.datetime(2049, 12, 31, tzinfo=dt.UTC)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SigningKey:
    """One RSA key with its certificate, key id and JWK; signs JWTs with RS256."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self.private_key = private_key

    @classmethod
    def generate(cls) -> SigningKey:
        """A new in-memory key (gone when the process ends)."""
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE))

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> SigningKey:
        """The key in `path` (PEM, PKCS#8), created there (mode 0600) if it does not exist."""
        file = Path(path)
        if file.exists():
            loaded = serialization.load_pem_private_key(file.read_bytes(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"{file} does not hold an RSA private key")
            return cls(loaded)
        key = cls.generate()
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.private_pem())
        return key

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @cached_property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    @cached_property
    def certificate_der(self) -> bytes:
        """A self-signed certificate; PKCS#1 v1.5 signatures are deterministic, so it is stable."""
        public_der = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        serial = int.from_bytes(hashlib.sha256(public_der).digest()[:16], "big") >> 1
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERT_SUBJECT)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.public_key)
            .serial_number(serial or 1)
            .not_valid_before(CERT_NOT_BEFORE)
            .not_valid_after(CERT_NOT_AFTER)
            .sign(self.private_key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.DER)

    @cached_property
    def kid(self) -> str:
        """The certificate's SHA-1 thumbprint, base64url: Microsoft's `kid` and `x5t`."""
        return _b64url(hashlib.sha1(self.certificate_der).digest())

    def jwk(self, *, issuer: str | None = None) -> dict[str, Any]:
        """The public key as Microsoft's v2.0 JWKS lists it."""
        numbers = self.public_key.public_numbers()
        key: dict[str, Any] = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
            "x5c": [base64.b64encode(self.certificate_der).decode("ascii")],
        }
        if issuer is not None:
            key["issuer"] = issuer
        return key

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact RS256 JWT with `typ`, `alg` and `kid` in its header."""
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})
