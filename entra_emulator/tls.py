"""A local certificate authority and a server certificate for the emulator's HTTPS server.

Browsers (the sign-in pages), MSAL and `requests` all need a certificate chain they can be
told to trust: one CA file (`ca.pem`) that an operator points REQUESTS_CA_BUNDLE at, or
imports into a browser, and a server certificate for localhost / 127.0.0.1 / ::1 signed by
it. Chromium refuses server certificates valid for more than 398 days, even from a local CA,
so the server certificate lives 365 days and is renewed (the CA kept) well before it ends.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "entra-sync emulator local CA"
CA_DAYS = 3650
SERVER_DAYS = 365  # Chromium: at most 398
RENEW_BEFORE = dt.timedelta(days=30)  # renew the server certificate this close to its end
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class CertPaths:
    """PEM files: the CA to trust, and the server's certificate and private key."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path


def ensure_certificates(
    state_dir: Path, *, hosts: Sequence[str] = DEFAULT_HOSTS, now: dt.datetime | None = None
) -> CertPaths:
    """Reuse the certificates in `state_dir` when they still serve `hosts`, else make new ones.

    The CA survives server-certificate renewals, so a browser or bundle that trusts it once
    keeps trusting the emulator. `now` lets tests look a year ahead.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = CertPaths(state_dir / CA_FILE, state_dir / CERT_FILE, state_dir / KEY_FILE)
    ca_key_path = state_dir / CA_KEY_FILE
    now = now or dt.datetime.now(dt.UTC)

    loaded = _load_ca(paths.ca_pem, ca_key_path, now)
    if loaded is None:
        ca_cert, ca_key = _make_ca(now)
        write_atomic(ca_key_path, _key_pem(ca_key), private=True)
        write_atomic(paths.ca_pem, ca_cert.public_bytes(serialization.Encoding.PEM))
        server_ok = False
    else:
        ca_cert, ca_key = loaded
        server_ok = _server_cert_ok(paths, ca_cert, hosts, now)
    if not server_ok:
        cert, key = _make_server_cert(ca_cert, ca_key, hosts, now)
        write_atomic(paths.key_pem, _key_pem(key), private=True)
        write_atomic(paths.cert_pem, cert.public_bytes(serialization.Encoding.PEM))
    return paths


def certificate_hosts(cert: x509.Certificate) -> set[str]:
    """DNS names and IP addresses (as text) in a certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {str(n).lower() for n in san.get_values_for_type(x509.DNSName)}
    return names | {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


# --- loading and checking ---------------------------------------------------------------------


def _load_ca(
    ca_path: Path, key_path: Path, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """The existing CA, or None when missing, unreadable, not a CA, or ending within a
    server certificate's lifetime."""
    try:
        cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.public_key() != key.public_key():
        return None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None
    if not constraints.ca:
        return None
    if cert.not_valid_after_utc < now + dt.timedelta(days=SERVER_DAYS) + RENEW_BEFORE:
        return None
    return cert, key


def _server_cert_ok(
    paths: CertPaths, ca_cert: x509.Certificate, hosts: Sequence[str], now: dt.datetime
) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(paths.cert_pem.read_bytes())
        key = serialization.load_pem_private_key(paths.key_pem.read_bytes(), password=None)
    except (OSError, ValueError):
        return False
    if cert.public_key() != key.public_key():
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc - RENEW_BEFORE:
        return False
    return {_host_text(h) for h in hosts} <= certificate_hosts(cert)


# --- making -----------------------------------------------------------------------------------


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: accepted by every browser and TLS stack, and made in microseconds, not seconds.
    return ec.generate_private_key(ec.SECP256R1())


def _make_ca(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "entra-sync"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _host_text(host: str) -> str:
    """A host as `certificate_hosts` spells it: IPs normalised, names lower-case."""
    entry = _host_entry(host)
    return str(entry.value) if isinstance(entry, x509.IPAddress) else host.lower()


def _host_entry(host: str) -> x509.GeneralName:
    try:
        address: IPAddress = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return x509.DNSName(host.lower())
    return x509.IPAddress(address)


def _make_server_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: Sequence[str],
    now: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    names = [_host_entry(h) for h in hosts]
    dns = [h for h in hosts if isinstance(_host_entry(h), x509.DNSName)]
    common_name = dns[0] if dns else hosts[0]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_atomic(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write atomically (a reader never sees half a key); private files are 0600 from birth."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


BROWSER_CA_NICKNAME = "entra-sync emulator local CA"


def trust_in_browsers(ca_pem: Path, *, home: Path | None = None) -> tuple[bool, str]:
    """Add the CA to the user's NSS database, which Chrome and Chromium on Linux trust.

    Returns (trusted, a sentence for the person): the sign-in pages are HTTPS, and a browser
    that does not trust the CA would show a certificate warning on them.
    """
    certutil = shutil.which("certutil")
    instructions = (
        f"Trust {ca_pem} in your browser to open the emulated sign-in pages without a "
        "warning (macOS: `sudo security add-trusted-cert -d -r trustRoot -k "
        f"/Library/Keychains/System.keychain {ca_pem}`; Firefox: Settings > Certificates > "
        "Import)."
    )
    if certutil is None:
        return False, "certutil (libnss3-tools) is not installed. " + instructions
    nssdb = (home or Path.home()) / ".pki" / "nssdb"
    database = f"sql:{nssdb}"
    if not (nssdb / "cert9.db").exists():
        nssdb.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [certutil, "-N", "-d", database, "--empty-password"], check=False, capture_output=True
        )
    listed = subprocess.run(
        [certutil, "-L", "-d", database, "-n", BROWSER_CA_NICKNAME], capture_output=True
    )
    if listed.returncode == 0:
        subprocess.run(
            [certutil, "-D", "-d", database, "-n", BROWSER_CA_NICKNAME], capture_output=True
        )
    added = subprocess.run(
        [certutil, "-A", "-d", database, "-t", "C,,", "-n", BROWSER_CA_NICKNAME, "-i", ca_pem],
        capture_output=True,
        text=True,
    )
    if added.returncode != 0:
        return False, f"certutil could not add the CA ({added.stderr.strip()}). " + instructions
    return True, f"Chrome and Chromium for this user trust the emulator's CA ({nssdb})."
