"""The emulator over real HTTPS: certificates, TLS, MSAL, the Graph client, and faults that only
a socket can show (a reset connection, an answer that never comes)."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import certifi
import msal
import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from directories.graph import GraphClient, GraphSettings, GraphTransient
from entra_emulator import (
    CertPaths,
    Emulator,
    EmulatorServer,
    EmuResponse,
    EmuTenant,
    ensure_certificates,
    generate_tenant,
)
from entra_emulator.server import check_loopback, write_ca_bundle
from entra_emulator.tls import CA_NAME, certificate_hosts

CLIENT_ID = "33333333-3333-4333-8333-333333333333"
SECRET = "server-test-secret"
AUTH_APP_ID = "44444444-4444-4444-8444-444444444444"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return ensure_certificates(tmp_path_factory.mktemp("emulator-state"))


@pytest.fixture
def emulator() -> Emulator:
    emu = Emulator()
    emu.add_app(CLIENT_ID, SECRET)
    return emu


@pytest.fixture
def tenant(emulator: Emulator) -> EmuTenant:
    return emulator.add_tenant(
        generate_tenant(users=250, groups=12, seed=5, auth_app_id=AUTH_APP_ID)
    )


@pytest.fixture
def server(emulator: Emulator, certs: CertPaths) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator, cert=certs, hold_seconds=5) as running:
        yield running


@pytest.fixture
def ca(server: EmulatorServer) -> str:
    return str(server.ca_pem)


def token(server: EmulatorServer, tenant: EmuTenant, ca: str) -> str:
    response = requests.post(
        f"{server.url}/{tenant.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "scope": f"{server.url}/.default",
        },
        verify=ca,
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def graph_settings(server: EmulatorServer, ca: str, **overrides: float) -> GraphSettings:
    return GraphSettings(
        client_id=CLIENT_ID,
        client_secret=SECRET,
        login_url=server.url,
        graph_url=server.url,
        verify=ca,
        **overrides,  # type: ignore[arg-type]
    )


# --- certificates -----------------------------------------------------------------------------


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_server_certificate_covers_localhost_and_both_loopback_addresses(
    certs: CertPaths,
) -> None:
    cert = load(certs.cert_pem)

    assert certificate_hosts(cert) == {"localhost", "127.0.0.1", "::1"}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    # Chromium refuses server certificates valid for more than 398 days.
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=397)


def test_the_ca_is_a_ca_and_signed_the_server_certificate(certs: CertPaths) -> None:
    ca, cert = load(certs.ca_pem), load(certs.cert_pem)

    common_names = ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert [n.value for n in common_names] == [CA_NAME]
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > dt.timedelta(days=9 * 365)
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    cert.verify_directly_issued_by(ca)


def test_private_keys_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    paths = ensure_certificates(tmp_path / "state")

    for key in (paths.key_pem, tmp_path / "state" / "ca-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


def test_certificates_are_reused_while_valid(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path)
    before = {p: p.read_bytes() for p in (first.ca_pem, first.cert_pem, first.key_pem)}

    started = time.perf_counter()
    second = ensure_certificates(tmp_path)

    assert time.perf_counter() - started < 0.5
    assert second == first
    assert {p: p.read_bytes() for p in before} == before


def test_a_server_certificate_near_its_end_is_renewed_with_the_same_ca(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path)
    ca_before, cert_before = first.ca_pem.read_bytes(), load(first.cert_pem)

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=350)
    ensure_certificates(tmp_path, now=later)

    assert first.ca_pem.read_bytes() == ca_before
    renewed = load(first.cert_pem)
    assert renewed.serial_number != cert_before.serial_number
    assert renewed.not_valid_after_utc > later + dt.timedelta(days=300)


def test_new_hosts_get_a_new_server_certificate(tmp_path: Path) -> None:
    ensure_certificates(tmp_path)

    paths = ensure_certificates(tmp_path, hosts=("localhost", "127.0.0.1", "::1", "emu.test"))

    assert "emu.test" in certificate_hosts(load(paths.cert_pem))


def test_a_damaged_key_is_replaced(tmp_path: Path) -> None:
    paths = ensure_certificates(tmp_path)
    paths.key_pem.write_text("not a key")

    ensure_certificates(tmp_path)

    cert = load(paths.cert_pem)
    assert b"PRIVATE KEY" in paths.key_pem.read_bytes()
    context = ssl.create_default_context()
    context.load_cert_chain(paths.cert_pem, paths.key_pem)  # the pair matches
    assert certificate_hosts(cert) >= {"localhost"}


# --- binding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com", "10.0.0.1"])
def test_it_refuses_to_listen_beyond_loopback(emulator: Emulator, host: str) -> None:
    with pytest.raises(ValueError, match="only listens on a loopback address"):
        EmulatorServer(emulator, host=host, port=0)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.3.2.1", "127.3.2.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("LOCALHOST", "localhost"),
    ],
)
def test_loopback_hosts_are_accepted(host: str, expected: str) -> None:
    assert check_loopback(host) == expected


def test_it_serves_on_localhost_and_ipv6_loopback(emulator: Emulator, certs: CertPaths) -> None:
    with EmulatorServer(emulator, host="localhost", cert=certs) as named:
        assert named.url == f"https://localhost:{named.port}"
        response = requests.get(f"{named.url}/_emulator/tenants", verify=str(certs.ca_pem))
        assert response.status_code == 200
    try:
        v6 = EmulatorServer(emulator, host="::1", cert=certs)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with v6:
        assert v6.url == f"https://[::1]:{v6.port}"
        response = requests.get(f"{v6.url}/_emulator/tenants", verify=str(certs.ca_pem))
        assert response.status_code == 200


def test_without_certificates_it_makes_temporary_ones(emulator: Emulator) -> None:
    server = EmulatorServer(emulator)
    with server:
        ca = server.ca_pem
        response = requests.get(f"{server.url}/_emulator/settings", verify=str(ca))
        assert response.status_code == 200
    assert not ca.exists()


# --- TLS and HTTP -----------------------------------------------------------------------------


def test_clients_that_trust_the_ca_connect_and_others_get_an_ssl_error(
    server: EmulatorServer, ca: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert requests.get(f"{server.url}/_emulator/tenants", verify=ca, timeout=5).ok

    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{server.url}/_emulator/tenants", verify=certifi.where(), timeout=5)

    # The refused handshake is not stderr noise.
    time.sleep(0.05)
    assert capfd.readouterr().err == ""


def test_it_speaks_tls_1_2_or_newer_only(server: EmulatorServer, ca: str) -> None:
    # This OpenSSL cannot even offer TLS 1.1 any more, so check the server's own floor.
    assert server._server.context.minimum_version == ssl.TLSVersion.TLSv1_2
    context = ssl.create_default_context(cafile=ca)
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as conn,
    ):
        assert conn.version() in ("TLSv1.2", "TLSv1.3")


def test_connections_are_kept_alive_and_lengths_are_right(
    server: EmulatorServer, tenant: EmuTenant, ca: str
) -> None:
    http = requests.Session()
    headers = {"Authorization": f"Bearer {token(server, tenant, ca)}"}
    before = server.connections

    for _ in range(5):
        response = http.get(f"{server.url}/v1.0/users?$top=3", headers=headers, verify=ca)
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) == len(response.content)
        assert response.headers.get("Connection", "").lower() != "close"

    assert server.connections - before == 1


def test_links_use_the_host_the_client_named(
    server: EmulatorServer, tenant: EmuTenant, ca: str
) -> None:
    by_name = f"https://localhost:{server.port}"
    bearer = token(server, tenant, ca)
    body = requests.get(
        f"{by_name}/v1.0/users?$top=10",
        headers={"Authorization": f"Bearer {bearer}"},
        verify=ca,
    ).json()

    assert body["@odata.nextLink"].startswith(f"{by_name}/v1.0/users?")
    config = requests.get(
        f"{by_name}/{tenant.tenant_id}/v2.0/.well-known/openid-configuration", verify=ca
    ).json()
    assert config["token_endpoint"] == f"{by_name}/{tenant.tenant_id}/oauth2/v2.0/token"


def test_an_emulator_failure_is_a_graph_style_500(
    server: EmulatorServer, emulator: Emulator, ca: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> EmuResponse:
        raise RuntimeError("boom")

    monkeypatch.setattr(emulator, "handle", broken)

    response = requests.get(f"{server.url}/v1.0/users", verify=ca, timeout=5)

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "generalException"


def test_chunked_request_bodies_are_read(server: EmulatorServer, ca: str) -> None:
    response = requests.put(
        f"{server.url}/_emulator/settings",
        data=(part for part in (b'{"latency_ms"', b": 0}")),  # a generator: chunked
        headers={"Content-Type": "application/json"},
        verify=ca,
        timeout=5,
    )

    assert response.status_code == 200, response.text
    assert response.json()["latency_ms"] == 0


def test_requests_are_logged_without_headers_queries_or_bodies(
    emulator: Emulator, certs: CertPaths, tenant: EmuTenant, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="entra_emulator.server"),
        EmulatorServer(emulator, cert=certs, verbose=True) as server,
    ):
        ca = str(server.ca_pem)
        bearer = token(server, tenant, ca)
        requests.get(
            f"{server.url}/v1.0/users?$filter=displayName eq 'x'",
            headers={"Authorization": f"Bearer {bearer}"},
            verify=ca,
        )

    assert '"GET /v1.0/users" 200' in caplog.text
    assert bearer not in caplog.text
    assert SECRET not in caplog.text
    assert "$filter" not in caplog.text


# --- MSAL and the Graph client over the wire --------------------------------------------------


def test_msal_gets_a_token_and_requests_pages_users_through_next_links(
    server: EmulatorServer, tenant: EmuTenant, ca: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MSAL's `verify=` sets its session's default, which REQUESTS_CA_BUNDLE overrides (the
    # DESIGN.md trap); these machines set it, so this plain-MSAL test must unset it.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=SECRET,
        authority=f"{server.url}/{tenant.tenant_id}",
        instance_discovery=False,
        verify=ca,
    )
    result = app.acquire_token_for_client(scopes=[f"{server.url}/.default"])
    assert "access_token" in result, result

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {result['access_token']}"
    url: str | None = f"{server.url}/v1.0/users?$top=60&$select=id,displayName"
    ids: list[str] = []
    pages = 0
    while url:
        body = http.get(url, verify=ca, timeout=5).json()
        ids += [user["id"] for user in body["value"]]
        pages += 1
        url = body.get("@odata.nextLink")

    assert sorted(ids) == sorted(tenant.users)
    assert pages == -(-len(tenant.users) // 60) >= 4


def test_the_graph_client_lists_groups_and_transitive_users(
    server: EmulatorServer, tenant: EmuTenant, ca: str
) -> None:
    client = GraphClient(tenant_id=tenant.tenant_id, settings=graph_settings(server, ca))

    groups = list(client.groups())
    assert {g.id for g in groups} == set(tenant.groups)
    nested = max(tenant.groups, key=lambda g: len(tenant.members_of(g, transitive=True)))
    users = client.group_transitive_users(nested)
    assert {u.id for u in users} == set(tenant.members_of(nested, transitive=True, kind="user"))
    assert client.organization().display_name == tenant.display_name


def test_the_graph_client_ignores_a_requests_ca_bundle_that_lacks_our_ca(
    server: EmulatorServer, tenant: EmuTenant, ca: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    client = GraphClient(tenant_id=tenant.tenant_id, settings=graph_settings(server, ca))

    assert len(list(client.groups())) == len(tenant.groups)


# --- connection faults ------------------------------------------------------------------------


def test_a_reset_fault_drops_the_connection(
    server: EmulatorServer, emulator: Emulator, tenant: EmuTenant, ca: str
) -> None:
    headers = {"Authorization": f"Bearer {token(server, tenant, ca)}"}
    emulator.graph.disconnect_next(kind="reset")

    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/v1.0/users", headers=headers, verify=ca, timeout=5)
    assert requests.get(f"{server.url}/v1.0/users", headers=headers, verify=ca).ok


def test_a_timeout_fault_never_answers_and_the_server_lets_go_when_the_client_does(
    server: EmulatorServer, emulator: Emulator, tenant: EmuTenant, ca: str
) -> None:
    headers = {"Authorization": f"Bearer {token(server, tenant, ca)}"}
    emulator.graph.disconnect_next(kind="timeout")

    started = time.perf_counter()
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{server.url}/v1.0/users", headers=headers, verify=ca, timeout=0.3)
    assert time.perf_counter() - started < 2

    deadline = time.monotonic() + 2
    while server.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)  # the held connection is released once the client hangs up
    assert server.open_connections == 0


def test_stopping_releases_a_held_connection(
    emulator: Emulator, certs: CertPaths, tenant: EmuTenant
) -> None:
    server = EmulatorServer(emulator, cert=certs, hold_seconds=30).start()
    ca = str(server.ca_pem)
    headers = {"Authorization": f"Bearer {token(server, tenant, ca)}"}
    emulator.graph.disconnect_next(kind="timeout")
    raw = socket.create_connection(("127.0.0.1", server.port))
    context = ssl.create_default_context(cafile=ca)
    conn = context.wrap_socket(raw, server_hostname="127.0.0.1")
    conn.sendall(
        f"GET /v1.0/users HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: {headers['Authorization']}\r\n\r\n".encode()
    )
    time.sleep(0.1)

    started = time.perf_counter()
    server.stop()

    assert time.perf_counter() - started < 2
    conn.settimeout(2)
    assert conn.recv(100) == b""  # closed without an answer
    conn.close()


def test_the_graph_client_retries_resets_and_timeouts(
    server: EmulatorServer, emulator: Emulator, tenant: EmuTenant, ca: str
) -> None:
    client = GraphClient(
        tenant_id=tenant.tenant_id, settings=graph_settings(server, ca, timeout=0.5)
    )
    client.organization()  # a token first, so the faults hit Graph reads
    emulator.graph.disconnect_next(kind="reset", path_contains="/groups")
    emulator.graph.disconnect_next(kind="timeout", path_contains="/groups")

    groups = list(client.groups())

    assert len(groups) == len(tenant.groups)
    assert client.stats.retries == 2
    assert emulator.graph.counters["fault.disconnect"] == 2


def test_the_graph_client_gives_up_on_a_connection_that_keeps_dropping(
    server: EmulatorServer, emulator: Emulator, tenant: EmuTenant, ca: str
) -> None:
    client = GraphClient(
        tenant_id=tenant.tenant_id, settings=graph_settings(server, ca, max_retries=2)
    )
    client.organization()
    emulator.graph.disconnect_next(count=5, kind="reset")

    with pytest.raises(GraphTransient, match="Could not reach Microsoft"):
        list(client.groups())


# --- the CA bundle the command points REQUESTS_CA_BUNDLE at -----------------------------------


def test_the_ca_bundle_adds_our_ca_to_what_the_shell_already_trusts_once(
    tmp_path: Path, certs: CertPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror.pem"
    mirror.write_text(certs.cert_pem.read_text())  # any PEM stands in for a mirror's CA
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(mirror))

    bundle = write_ca_bundle(tmp_path, certs.ca_pem)
    # A shell that sourced emulator.env already points at the bundle: no CA twice.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    write_ca_bundle(tmp_path, certs.ca_pem)

    text = bundle.read_text()
    assert text.startswith(mirror.read_text().strip())
    assert text.count(certs.ca_pem.read_text().strip()) == 1
    context = ssl.create_default_context(cafile=str(bundle))
    assert len(context.get_ca_certs()) >= 1
