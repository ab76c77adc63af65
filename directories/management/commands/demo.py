"""manage.py demo: entra-sync with an emulated Contoso tenant, on this machine, in one command.

Starts the Graph emulator (HTTPS, local CA trusted for Chrome/Chromium where certutil exists),
migrates, creates the admin account, adds an unverified "Contoso (demo)" directory, and serves
the admin and a django-q2 cluster until Ctrl-C. A person then clicks through Verify Now (the
emulated admin consent and sign-in) and Sync Now, as with a real tenant; `--verify` does both
from the command line instead.
Every child process gets the emulator's settings from its `emulator.env`; the operator's own
ENTRA_* settings are left alone outside the demo.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from directories.management.base import EntraSyncCommand
from entra_emulator import DEFAULT_ADMIN_PASSWORD, DEFAULT_AUTH_APP_ID, generate_tenant
from entra_emulator.scenarios import use_directory_sync_permissions
from entra_emulator.server import EmulatorLaunch, emulator_launch
from entra_emulator.tls import trust_in_browsers

DIRECTORY_NAME = "Contoso (demo)"


class Command(EntraSyncCommand):
    help = "Run the admin, a task cluster and an emulated Contoso tenant, ready to click through."
    quiet_logs = False  # runs until stopped; its log lines are part of what it shows

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="Admin port")
        parser.add_argument("--emulator-port", type=int, default=8443)
        parser.add_argument("--users", type=int, default=300)
        parser.add_argument("--groups", type=int, default=30)
        parser.add_argument("--state-dir", default=str(Path(settings.BASE_DIR) / ".emulator"))
        parser.add_argument(
            "--no-trust", action="store_true", help="Do not add the CA to the browser store"
        )
        parser.add_argument(
            "--verify",
            action="store_true",
            help="Verify and sync the demo directory now instead of leaving it to Verify Now",
        )
        parser.add_argument(
            "--check", action="store_true", help="Start everything, check the admin answers, stop"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        state_dir = Path(options["state_dir"]).resolve()
        tenant = generate_tenant(
            users=options["users"],
            groups=options["groups"],
            seed=1,
            display_name="Contoso",
            domain="contoso.onmicrosoft.com",
            auth_app_id=DEFAULT_AUTH_APP_ID,
        )
        try:
            launch = emulator_launch(
                tenants=[tenant],
                state_dir=state_dir,
                port=options["emulator_port"],
                auth_client_id=DEFAULT_AUTH_APP_ID,
            )
        except OSError as exc:
            raise CommandError(
                f"Cannot start the emulator on port {options['emulator_port']}: {exc.strerror}. "
                "Stop what uses it or pass --emulator-port."
            ) from exc
        use_directory_sync_permissions(launch.server.emulator, launch.env["ENTRA_CLIENT_ID"])
        children: list[subprocess.Popen[bytes]] = []
        try:
            env = {**os.environ, **launch.env, "DEBUG": os.environ.get("DEBUG", "true")}
            trust = "" if options["no_trust"] else trust_in_browsers(launch.server.ca_pem)[1]
            admin_url = f"http://127.0.0.1:{options['port']}/admin/"
            login = self._prepare(
                env, state_dir, admin_url, tenant.tenant_id, verify=options["verify"]
            )
            children.append(self._spawn(env, "qcluster"))
            children.append(
                self._spawn(env, "runserver", f"127.0.0.1:{options['port']}", "--noreload")
            )
            self._wait_for(admin_url + "login/", children)
            self._print_banner(launch, admin_url, login, trust)
            if not options["check"]:
                self._wait_until_stopped(children)
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
            launch.server.stop()
        self.stdout.write("Demo stopped.")

    def _manage(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def _prepare(
        self, env: dict[str, str], state_dir: Path, admin_url: str, tenant_id: str, *, verify: bool
    ) -> str:
        """Migrate, make the admin, add the demo directory (and verify and sync it with
        --verify); return the login line."""
        steps: tuple[tuple[str, ...], ...] = (
            ("migrate", "--verbosity", "0"),
            ("ensure_admin", "--url", admin_url, "--password-file", str(state_dir / "admin")),
        )
        login = ""
        for step in steps:
            result = self._manage(env, *step)
            if result.returncode != 0:
                raise CommandError(f"`manage.py {step[0]}` failed: {result.stderr.strip()}")
            login = result.stdout.strip()
        added = self._manage(env, "add_directory", "--name", DIRECTORY_NAME, "--mode", "assigned")
        if added.returncode != 0 and "already exists" not in added.stderr:
            raise CommandError(added.stderr.strip())
        if not verify:
            return login
        steps = (
            ("verify_directory", DIRECTORY_NAME, "--tenant-id", tenant_id),
            ("sync_directory", DIRECTORY_NAME),
        )
        for step in steps:
            result = self._manage(env, *step)
            if result.returncode != 0:
                raise CommandError(f"`manage.py {step[0]}` failed: {result.stderr.strip()}")
            self.stdout.write(result.stdout.strip())
        return login

    def _spawn(self, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _wait_for(self, url: str, children: list[subprocess.Popen[bytes]]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(child.poll() is not None for child in children):
                raise CommandError("The admin server or the task cluster stopped at start-up.")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise CommandError(f"The admin did not answer at {url} within 60 seconds.")

    def _print_banner(self, launch: EmulatorLaunch, admin_url: str, login: str, trust: str) -> None:
        tenant = launch.tenants[0]
        lines = [
            "",
            "entra-sync demo is running.",
            f"  Admin:      {admin_url}",
            f"  {login}",
            f"  Directory:  {DIRECTORY_NAME}, for the emulated tenant "
            f"{tenant.display_name} ({tenant.tenant_id}); until it is verified: open it, click "
            "Verify Now, accept and sign in, Save, then Sync Now",
            f"  Emulator:   {launch.server.localhost_url} (sign in there as "
            f"admin@{tenant.default_domain} / {DEFAULT_ADMIN_PASSWORD})",
            f"  Control API: {launch.env['EMULATOR_CONTROL_URL']}/",
        ]
        if trust:
            lines.append(f"  {trust}")
        lines.append("Press Ctrl-C to stop.")
        self.stdout.write("\n".join(lines))

    def _wait_until_stopped(self, children: list[subprocess.Popen[bytes]]) -> None:
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        try:
            while not stop.wait(1):
                if any(child.poll() is not None for child in children):
                    self.stderr.write("A demo process stopped; shutting down.")
                    return
        except KeyboardInterrupt:
            return
