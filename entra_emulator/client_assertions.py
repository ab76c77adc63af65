"""Client assertions: an app proves who it is with a certificate instead of a secret.

"Microsoft identity platform application authentication certificate credentials": the public
part of a certificate is uploaded to the app registration; at the token endpoint the app sends
`client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
`client_assertion`, a JWT signed with the certificate's private key:

- header: `alg` PS256 with `x5t#S256` (base64url SHA-256 thumbprint of the certificate's DER),
  as the page now asks, or RS256 with `x5t` (SHA-1), which older clients send;
- claims: `aud` the tenant's token endpoint, `iss` = `sub` = the client id, `jti`, `exp`, and
  `nbf` (MSAL sends `iat` instead; a missing `nbf` is "valid from 1970" in Microsoft's answer).

Refusals use the codes and words Microsoft answers with ("Microsoft Entra authentication and
authorization error codes", and its answers quoted in MSAL's and Azure SDKs' issues): 50027
malformed or no thumbprint, 700027 certificate not registered, expired, or signature not valid,
700021 `iss`/`sub` not the client, 700023 wrong audience, 700024 outside the valid time range.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("PS256", "RS256")
# Clock difference tolerated on `exp` and `nbf`. Microsoft does not publish its own; five
# minutes is the usual allowance of token validators.
CLOCK_SKEW = 300
DOCS = "https://learn.microsoft.com/entra/identity-platform/certificate-credentials"
PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.DOTALL)


class AssertionRefused(Exception):
    """A client assertion Microsoft would refuse: its AADSTS code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.code = code
        self.message = message


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class AppCertificate:
    """A certificate uploaded to an app registration: its public part only (DER)."""

    der: bytes

    @classmethod
    def parse(cls, data: str | bytes) -> AppCertificate:
        """The first certificate of a PEM text, or DER bytes; ValueError if there is none."""
        raw = data.encode("ascii", "replace") if isinstance(data, str) else data
        pem = PEM_CERTIFICATE.search(raw)
        certificate = (
            x509.load_pem_x509_certificate(pem.group(0))
            if pem
            else x509.load_der_x509_certificate(raw)
        )
        return cls(certificate.public_bytes(serialization.Encoding.DER))

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    @cached_property
    def public_key(self) -> CertificatePublicKeyTypes:
        return self.certificate.public_key()

    @property
    def sha1_thumbprint(self) -> str:
        """Upper-case hex, as the app registration's Certificates list shows it."""
        return hashlib.sha1(self.der).hexdigest().upper()

    @property
    def sha256_thumbprint(self) -> str:
        return hashlib.sha256(self.der).hexdigest().upper()

    @property
    def x5t(self) -> str:
        return _b64url(hashlib.sha1(self.der).digest())

    @property
    def x5t_s256(self) -> str:
        return _b64url(hashlib.sha256(self.der).digest())

    def describe(self) -> dict[str, Any]:
        """What the app registration shows of it (never more than the public part)."""
        return {
            "thumbprint": self.sha1_thumbprint,
            "thumbprint_sha256": self.sha256_thumbprint,
            "subject": self.certificate.subject.rfc4514_string(),
            "start": self.certificate.not_valid_before_utc.isoformat(),
            "end": self.certificate.not_valid_after_utc.isoformat(),
        }


def check_client_assertion(
    assertion: str,
    *,
    client_id: str,
    certificates: Sequence[AppCertificate],
    audiences: Collection[str],
    now: float,
) -> AppCertificate:
    """The registered certificate that signed a valid `assertion`; AssertionRefused if none.

    `audiences`: the token endpoint URLs this request may name, lower case without a trailing
    slash.
    """
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise _malformed() from None
    thumbprint = header.get("x5t#S256") or header.get("x5t")
    if not isinstance(thumbprint, str) or not thumbprint:
        raise AssertionRefused(
            50027, "Invalid JWT token. No certificate thumbprint specified in token header."
        )
    by_sha256 = "x5t#S256" in header
    # RFC 7515 base64url has no padding, but MSAL Python pads its thumbprints and Microsoft
    # accepts them.
    named = thumbprint.rstrip("=")
    certificate = next(
        (c for c in certificates if (c.x5t_s256 if by_sha256 else c.x5t) == named), None
    )
    if certificate is None:
        raise AssertionRefused(
            700027,
            "The certificate with identifier used to sign the client assertion is not "
            "registered on application. [Reason - The key was not found., Thumbprint of key "
            f"used by client: '{_hex(thumbprint)}', Please visit the Azure Portal, Graph "
            f"Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]",
        )
    start = certificate.certificate.not_valid_before_utc
    end = certificate.certificate.not_valid_after_utc
    if now >= end.timestamp():
        raise AssertionRefused(
            700027,
            "Client assertion contains an invalid signature. [Reason - The key used is expired., "
            f"Thumbprint of key used by client: '{_hex(thumbprint)}', Found key "
            f"'Start={start:%m/%d/%Y %H:%M:%S}, End={end:%m/%d/%Y %H:%M:%S}']",
        )
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise AssertionRefused(700027, "Client assertion failed signature validation.")
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key=certificate.public_key,  # type: ignore[arg-type]
            algorithms=[str(algorithm)],
            options={
                "verify_signature": True,
                "verify_exp": False,  # checked below, against the emulator's clock
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise AssertionRefused(700027, "Client assertion failed signature validation.") from None
    except jwt.PyJWTError:
        raise _malformed() from None
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise AssertionRefused(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. "
            f"Review the documentation at {DOCS} .",
        )
    audience = claims.get("aud")
    audience_list = audience if isinstance(audience, list) else [audience]
    if not any(isinstance(a, str) and a.rstrip("/").lower() in audiences for a in audience_list):
        raise AssertionRefused(
            700023,
            "Client assertion audience claim does not match Realm issuer. Review the "
            f"documentation at {DOCS} .",
        )
    expires, not_before = _time(claims.get("exp")), _time(claims.get("nbf", 0))
    if expires is None or not_before is None:
        raise _malformed()
    if not not_before - CLOCK_SKEW <= now < expires + CLOCK_SKEW:
        raise AssertionRefused(
            700024,
            f"Client assertion is not within its valid time range. Current time: {_iso(now)}, "
            f"assertion valid from {_iso(not_before)}, expiry time of assertion "
            f"{_iso(expires)}. Review the documentation at {DOCS} .",
        )
    return certificate


def _malformed() -> AssertionRefused:
    return AssertionRefused(50027, "JWT token is invalid or malformed.")


def _time(value: object) -> float | None:
    """A NumericDate claim as seconds, or None when it is not a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _hex(thumbprint: str) -> str:
    """A base64url thumbprint as the hex Microsoft prints, or as sent if it is not base64url."""
    try:
        return base64.urlsafe_b64decode(thumbprint + "=" * (-len(thumbprint) % 4)).hex().upper()
    except (binascii.Error, ValueError):
        return thumbprint


def _iso(timestamp: float) -> str:
    """Microsoft's timestamps in these messages: seven fractional digits and Z."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
