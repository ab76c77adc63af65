"""Serve the emulator over real HTTPS on a loopback port, for browsers, MSAL and `requests`.

Every request becomes one `Emulator.handle(method, absolute_url, headers, body)` call; the
absolute URL uses the Host header the client sent, so `@odata.nextLink` and the OpenID
configuration point back at whatever name (localhost, 127.0.0.1) the client used.

    with EmulatorServer(emulator, cert=ensure_certificates(tmp_path)) as server:
        requests.get(f"{server.url}/common/v2.0/.well-known/openid-configuration",
                     verify=str(server.ca_pem))

The server only binds loopback addresses: it has no authentication of its own (the control
API under `/_emulator/` can rewrite tenants), so it must never be reachable from a network.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import select
import shlex
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import urlsplit

import certifi

from .core import Emulator
from .messages import EmuResponse, dump_json
from .tenant import DEFAULT_AUTH_APP_ID, EmuTenant
from .tls import CertPaths, ensure_certificates, write_atomic

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024  # a whole generated tenant PUT through the control API fits
HOP_BY_HOP = frozenset(
    {"connection", "content-length", "transfer-encoding", "keep-alive", "date", "server"}
)


def check_loopback(host: str) -> str:
    """The host if it is a loopback address or "localhost"; ValueError otherwise."""
    bare = host.strip("[]")
    if bare.lower() == "localhost":
        return bare.lower()
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"The Graph emulator only listens on a loopback address (127.0.0.1, ::1 or "
            f"localhost), not {host!r}: it has no authentication and must not be reachable "
            "from a network."
        )
    return str(address)


class _TLSServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections are TLS, handshaken in their own thread
    (a slow or failing client must not hold up the accept loop)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        context: ssl.SSLContext,
        emulator: Emulator,
        *,
        hold_seconds: float,
        verbose: bool,
        family: socket.AddressFamily,
    ) -> None:
        self.address_family = family
        self.context = context
        self.emulator = emulator
        self.hold_seconds = hold_seconds
        self.verbose = verbose
        self.stopping = threading.Event()
        self.open_sockets: set[socket.socket] = set()
        self.connections = 0  # TLS connections accepted: keep-alive keeps this low
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        raw: socket.socket = request
        raw.settimeout(10.0)  # the handshake
        with contextlib.suppress(OSError):
            # Headers and body go out as separate writes; without this, Nagle's algorithm
            # and delayed ACKs add ~40 ms to every keep-alive exchange.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            # Typically a client that does not trust our CA (and says so with an alert).
            logger.debug("TLS handshake with %s failed: %s", client_address, exc)
            raw.close()
            return
        with self.sockets_lock:
            self.open_sockets.add(conn)
            self.connections += 1
        try:
            _Handler(conn, client_address, self)
        except OSError as exc:
            logger.debug("Connection from %s ended: %s", client_address, exc)
        finally:
            with self.sockets_lock:
                self.open_sockets.discard(conn)
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints tracebacks to stderr; a client that went away is not news.
        logger.debug("Error serving %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for conn in sockets:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 keep-alive, each request handed to the emulator."""

    protocol_version = "HTTP/1.1"  # keep-alive, so MSAL and requests reuse connections
    timeout = 60  # an idle keep-alive connection is closed after this many seconds
    server: _TLSServer
    server_version = "entra-sync-emulator"
    sys_version = ""
    error_content_type = "application/json"
    error_message_format = '{"error":{"code":"%(code)d","message":"%(message)s"}}'

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            self.send_error(HTTPStatus.BAD_REQUEST, str(exc))
            return
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        try:
            response = self.server.emulator.handle(self.command, self._url(), headers, body)
        except Exception:
            # An emulator bug (or a tenant edited mid-request) must look like a Graph 500,
            # which clients retry, not like a dropped connection.
            logger.exception("The emulator failed on %s %s", self.command, self._path_only())
            response = EmuResponse(
                500,
                {"Content-Type": "application/json"},
                dump_json(
                    {"error": {"code": "generalException", "message": "The emulator failed."}}
                ),
            )
        if response.disconnect == "timeout":
            self._hold()
            self._drop(reset=False)
        elif response.disconnect:
            self._drop(reset=True)
        else:
            self._send(response)

    def _url(self) -> str:
        path = self.path
        if "://" in path:  # absolute-form request target: keep only the path and query
            split = urlsplit(path)
            path = split.path + (f"?{split.query}" if split.query else "")
        port = self.server.server_address[1]
        host = self.headers.get("Host") or f"{_url_host(str(self.server.server_address[0]))}:{port}"
        return f"https://{host}{path}"

    def _path_only(self) -> str:
        return self.path.split("?", 1)[0]

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if not raw:
            return b""
        try:
            length = int(raw)
        except ValueError:
            raise ValueError("Invalid Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            raise ValueError("Request body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ValueError("Invalid chunked body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise ValueError("Request body too large")
            parts.append(self.rfile.read(size))
            self.rfile.readline(16)

    def _send(self, response: EmuResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() in HOP_BY_HOP:
                continue
            # A header value cannot hold a newline, so "\n" separates repeated headers
            # (several Set-Cookie) in the one-value-per-name `EmuResponse.headers`.
            for line in value.split("\n"):
                self.send_header(name, line)
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        if not no_body:
            self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not no_body:
            self.wfile.write(response.body)

    def _hold(self) -> None:
        """Answer nothing until the client gives up (closes), the bound passes, or we stop."""
        deadline = time.monotonic() + self.server.hold_seconds
        while not self.server.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                readable, _, _ = select.select([self.connection], [], [], min(0.1, remaining))
            except (OSError, ValueError):
                return
            if readable:
                return  # the client closed (or, oddly, sent more): stop waiting

    def _drop(self, *, reset: bool) -> None:
        self.close_connection = True
        if reset:
            # SO_LINGER 0: close() sends a TCP RST, as a dropped connection on the way would.
            with contextlib.suppress(OSError):
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
        self.connection.close()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Method, path (no query: it may hold a state or code) and status; never headers.
        if self.server.verbose:
            logger.info('"%s %s" %s', self.command, self._path_only(), code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class EmulatorServer:
    """The emulator on https://127.0.0.1:PORT (or localhost, or [::1]), in a daemon thread.

    `port=0` picks a free port (`.port`, `.url` tell which). Without `cert`, certificates are
    made in a temporary directory removed by `stop()`. A "timeout" fault holds the connection
    for up to `hold_seconds` (longer than any sensible client timeout) or until the client
    hangs up.
    """

    _bind_hosts: ClassVar[dict[str, str]] = {"localhost": "127.0.0.1"}

    def __init__(
        self,
        emulator: Emulator,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cert: CertPaths | None = None,
        hold_seconds: float = 100.0,
        verbose: bool = False,
    ) -> None:
        self.host = check_loopback(host)
        self.emulator = emulator
        self._tmp: Path | None = None
        if cert is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="entra-sync-emulator-"))
            cert = ensure_certificates(self._tmp)
        self.cert = cert
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert.cert_pem), str(cert.key_pem))
        bind = self._bind_hosts.get(self.host, self.host)
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        try:
            self._server = _TLSServer(
                (bind, port),
                context,
                emulator,
                hold_seconds=hold_seconds,
                verbose=verbose,
                family=family,
            )
        except BaseException:
            self._cleanup()
            raise
        self.port: int = self._server.server_address[1]
        # Scopes `{url}/.default` name Microsoft Graph, under every name the cert covers.
        for name in ("127.0.0.1", "[::1]", _url_host(self.host), "localhost"):
            emulator.login.add_graph_url(f"https://{name}:{self.port}")
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where clients reach it, without a trailing slash."""
        return f"https://{_url_host(self.host)}:{self.port}"

    @property
    def localhost_url(self) -> str:
        """The same server by name: what browsers and printed settings should use."""
        return f"https://localhost:{self.port}"

    @property
    def ca_pem(self) -> Path:
        return self.cert.ca_pem

    @property
    def connections(self) -> int:
        """TLS connections accepted so far (clients that keep connections alive reuse them)."""
        return self._server.connections

    @property
    def open_connections(self) -> int:
        """Connections being served now (a held "timeout" answer counts until released)."""
        with self._server.sockets_lock:
            return len(self._server.open_sockets)

    def start(self) -> EmulatorServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"graph-emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, release held connections, close open ones, remove temp certs."""
        self._server.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.close_connections()
        self._server.server_close()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- running it as a program (manage.py graph_emulator) ---------------------------------------

# A fixed, recognisable client id for the demo's Directory Sync app, so restarts keep it.
DEMO_CLIENT_ID = "d3e0a5c1-0000-4000-8000-0000000000e5"
SECRET_FILE = "client-secret"
ENV_FILE = "emulator.env"
BUNDLE_FILE = "ca-bundle.pem"
BUNDLE_MARKER = "# entra-sync emulator local CA (appended by graph_emulator)"


@dataclass
class EmulatorLaunch:
    """A started server and the settings that point entra-sync at it."""

    server: EmulatorServer
    tenants: list[EmuTenant]
    env: dict[str, str]
    env_file: Path
    ca_bundle: Path
    client_secret_from_caller: bool


def emulator_launch(
    *,
    tenants: list[EmuTenant],
    state_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8443,
    client_id: str | None = None,
    client_secret: str | None = None,
    auth_client_id: str = DEFAULT_AUTH_APP_ID,
    latency_ms: float = 0.0,
    throttle_limit: int | None = None,
    token_lifetime: int = 3599,
    verbose: bool = False,
) -> EmulatorLaunch:
    """Serve these tenants and one Directory Sync app over HTTPS and write `emulator.env`.

    Without a client id/secret, the demo app's fixed id and a secret generated once and kept
    in `state_dir` are used, so a restarted emulator still matches a configured entra-sync.
    """
    state_dir = Path(state_dir).resolve()
    cert = ensure_certificates(state_dir)
    _ignore_in_git(state_dir)
    emulator = Emulator(token_lifetime=token_lifetime, throttle_limit=throttle_limit)
    # Keep the ID-token signing key, so a restart does not invalidate the published key id.
    emulator.login.use_signing_key_file(state_dir / "signing-key.pem")
    emulator.graph.latency = latency_ms / 1000
    emulator.control.tenant_defaults = {"auth_app_id": auth_client_id}
    client_id = client_id or DEMO_CLIENT_ID
    secret = client_secret or demo_client_secret(state_dir)
    emulator.add_app(client_id, secret)
    for tenant in tenants:
        emulator.add_tenant(tenant)
    server = EmulatorServer(emulator, host=host, port=port, cert=cert, verbose=verbose)
    bundle = write_ca_bundle(state_dir, cert.ca_pem)
    url = server.localhost_url
    env = {
        "REQUESTS_CA_BUNDLE": str(bundle),
        "ENTRA_LOGIN_URL": url,
        "GRAPH_URL": url,
        "ENTRA_CLIENT_ID": client_id,
        "ENTRA_CLIENT_SECRET": secret,
        "ENTRA_AUTH_CLIENT_ID": auth_client_id,
        "EMULATOR_CA_PEM": str(cert.ca_pem),
        "EMULATOR_CONTROL_URL": f"{url}/_emulator",
        "EMULATOR_TENANT_ID": tenants[0].tenant_id if tenants else "",
        "EMULATOR_TENANT_NAME": tenants[0].display_name if tenants else "",
        "EMULATOR_TENANT_IDS": ",".join(t.tenant_id for t in tenants),
    }
    env_file = state_dir / ENV_FILE
    write_env_file(env_file, env)
    server.start()
    return EmulatorLaunch(
        server=server,
        tenants=tenants,
        env=env,
        env_file=env_file,
        ca_bundle=bundle,
        client_secret_from_caller=client_secret is not None,
    )


def demo_client_secret(state_dir: Path) -> str:
    """The demo app's secret: made once, kept (0600) in the state directory."""
    path = Path(state_dir) / SECRET_FILE
    try:
        secret = path.read_text().strip()
    except OSError:
        secret = ""
    if not secret:
        secret = secrets.token_urlsafe(32)
        write_atomic(path, secret.encode() + b"\n", private=True)
    return secret


def write_ca_bundle(state_dir: Path, ca_pem: Path) -> Path:
    """The CAs this shell already trusts plus the emulator's, for REQUESTS_CA_BUNDLE.

    These machines point REQUESTS_CA_BUNDLE at a bundle with the package mirror's CA; naming
    only the emulator's CA there would break pip and every real HTTPS call in that shell.
    """
    target = Path(state_dir) / BUNDLE_FILE
    base = ""
    for candidate in (
        os.environ.get("REQUESTS_CA_BUNDLE"),
        os.environ.get("CURL_CA_BUNDLE"),
        certifi.where(),
    ):
        if not candidate:
            continue
        try:
            base = Path(candidate).read_text()
        except (OSError, UnicodeDecodeError):
            continue
        break
    base = base.split(BUNDLE_MARKER)[0].rstrip()  # our own bundle, from an earlier run
    write_atomic(target, f"{base}\n\n{BUNDLE_MARKER}\n{ca_pem.read_text()}".lstrip().encode())
    return target


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """KEY=value lines that both `set -a; . FILE` and django-environ read (0600: a secret)."""
    lines = ["# entra-sync Graph emulator settings, written by manage.py graph_emulator"]
    lines += [f"{key}={shlex.quote(value) if value else ''}" for key, value in env.items()]
    write_atomic(Path(path), ("\n".join(lines) + "\n").encode(), private=True)


def _ignore_in_git(state_dir: Path) -> None:
    ignore = state_dir / ".gitignore"
    if not ignore.exists():
        write_atomic(ignore, b"# Keys, secrets and certificates of the local Graph emulator.\n*\n")
