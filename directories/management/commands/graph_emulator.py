"""manage.py graph_emulator: Microsoft Entra ID sign-in and Graph, emulated on this machine.

Serves generated (or JSON) tenants over HTTPS with a local CA, so entra-sync, MSAL and a
browser talk to it exactly as they would to Microsoft. It prints the settings that point
entra-sync at it and writes them to `{state_dir}/emulator.env` (`make demo` sources it).
Change the tenants while it runs through the control API (`/_emulator/`,
`entra_emulator.EmulatorControl`).
"""

from __future__ import annotations

import logging
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from directories.management.base import EntraSyncCommand
from entra_emulator import DEFAULT_AUTH_APP_ID
from entra_emulator.scenarios import tenants_to_serve, use_directory_sync_permissions
from entra_emulator.server import EmulatorLaunch, emulator_launch

SECRET_KEYS = ("ENTRA_CLIENT_SECRET",)


class Command(EntraSyncCommand):
    help = (
        "Run a local Microsoft Entra ID + Graph emulator over HTTPS and print the settings "
        "that point entra-sync at it. Runs until Ctrl-C."
    )
    quiet_logs = False  # runs until stopped; its log lines are part of what it shows

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Loopback address to bind")
        parser.add_argument("--port", type=int, default=8443, help="0 picks a free port")
        parser.add_argument(
            "--users",
            type=int,
            default=None,
            help="Users in the generated tenant (default 300; with --tenant-json, none is "
            "generated unless this is given)",
        )
        parser.add_argument("--groups", type=int, default=30)
        parser.add_argument(
            "--seed", type=int, default=1, help="Same seed, same tenant (ids included)"
        )
        parser.add_argument(
            "--tenant-json",
            nargs="+",
            action="extend",
            default=[],
            metavar="FILE",
            help="Tenants saved as EmuTenant.to_json() (GET /_emulator/tenants/{id})",
        )
        parser.add_argument("--display-name", default="Contoso")
        parser.add_argument("--domain", default="contoso.onmicrosoft.com")
        parser.add_argument("--latency-ms", type=float, default=0.0)
        parser.add_argument("--throttle-limit", type=int, default=None, help="Requests per 10 s")
        parser.add_argument("--token-lifetime", type=int, default=3599, help="Seconds")
        parser.add_argument(
            "--state-dir",
            default=".emulator",
            help="Certificates, the demo secret and emulator.env (default .emulator)",
        )
        parser.add_argument(
            "--client-id", default=None, help="Default: ENTRA_CLIENT_ID or a demo id"
        )
        parser.add_argument(
            "--client-secret",
            default=None,
            help="Default: ENTRA_CLIENT_SECRET or a kept demo secret",
        )
        parser.add_argument(
            "--auth-client-id", default=None, help="Default: ENTRA_AUTH_CLIENT_ID or a demo id"
        )
        parser.add_argument(
            "--check", action="store_true", help="Start, print the settings and stop (a self-test)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbose = options["verbosity"] >= 2
        if verbose:
            _log_requests_to_stderr()
        auth_client_id = (
            options["auth_client_id"] or settings.ENTRA_AUTH_CLIENT_ID or DEFAULT_AUTH_APP_ID
        )
        try:
            tenants = tenants_to_serve(
                users=options["users"],
                groups=options["groups"],
                seed=options["seed"],
                display_name=options["display_name"],
                domain=options["domain"],
                auth_app_id=auth_client_id,
                json_files=options["tenant_json"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        try:
            launch = emulator_launch(
                tenants=tenants,
                state_dir=Path(options["state_dir"]),
                host=options["host"],
                port=options["port"],
                client_id=options["client_id"] or settings.ENTRA_CLIENT_ID or None,
                client_secret=options["client_secret"] or settings.ENTRA_CLIENT_SECRET or None,
                auth_client_id=auth_client_id,
                latency_ms=options["latency_ms"],
                throttle_limit=options["throttle_limit"],
                token_lifetime=options["token_lifetime"],
                verbose=verbose,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']} ({exc}); "
                "pick another --port."
            ) from exc
        use_directory_sync_permissions(launch.server.emulator, launch.env["ENTRA_CLIENT_ID"])
        try:
            self._report(launch, auth_client_id)
            if not options["check"]:
                _wait_for_stop()
        finally:
            launch.server.stop()
        self.stdout.write("Graph emulator stopped.")

    def _report(self, launch: EmulatorLaunch, auth_client_id: str) -> None:
        server, env = launch.server, launch.env
        write = self.stdout.write
        write(f"Graph emulator listening on {server.localhost_url} (HTTPS, local CA)")
        write("Tenants:")
        for tenant in launch.tenants:
            assigned = sum(a.principal_type == "Group" for a in tenant.assignments)
            write(
                f"  {tenant.display_name}  {tenant.tenant_id}  {tenant.default_domain}  "
                f"({len(tenant.users)} users, {len(tenant.groups)} groups, {assigned} assigned)"
            )
            for user in tenant.users.values():
                if user.password and user.is_admin:
                    write(f"    sign in as {user.user_principal_name} / {user.password}")
            if tenant.auth_app_id != auth_client_id:
                write(
                    f"    note: its Authentication app is {tenant.auth_app_id}, not "
                    f"ENTRA_AUTH_CLIENT_ID {auth_client_id}"
                )
        write(f"CA certificate: {server.ca_pem}  (trust it in a browser for the sign-in pages)")
        write(f"Control API: {env['EMULATOR_CONTROL_URL']}/")
        write("")
        write(f"Point entra-sync at it (also in {launch.env_file}):")
        for key, value in env.items():
            if key in SECRET_KEYS and not launch.client_secret_from_caller:
                write(f"export {key}={shlex.quote(value)}")
            elif key in SECRET_KEYS:
                write(f"# {key}: the one in your settings / --client-secret (in {launch.env_file})")
            else:
                write(f"export {key}={shlex.quote(value) if value else ''}")
        write(f"# or: set -a; . {shlex.quote(str(launch.env_file))}; set +a")


def _wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM (handlers are set only in the main thread)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _log_requests_to_stderr() -> None:
    """Show the server's per-request lines (settings.LOGGING usually already does)."""
    log = logging.getLogger("entra_emulator.server")
    if not log.hasHandlers():
        log.addHandler(logging.StreamHandler(sys.stderr))
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
