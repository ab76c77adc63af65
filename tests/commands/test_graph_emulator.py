"""graph_emulator starts an HTTPS emulator, prints the settings that reach it, and writes them
to a dotenv file; `--check` stops right after, so these tests never serve forever."""

from __future__ import annotations

import io
import json
import re
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django.fixtures import Settings

from directories.graph import GraphClient, GraphSettings
from entra_emulator import DEFAULT_AUTH_APP_ID, generate_tenant
from entra_emulator.server import DEMO_CLIENT_ID
from tests.conftest import AUTH_CLIENT_ID, CLIENT_ID

Run = Callable[..., str]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    def do(*args: str) -> str:
        out = io.StringIO()
        call_command(
            "graph_emulator",
            "--check",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path / "state"),
            "--users",
            "20",
            "--groups",
            "3",
            *args,
            stdout=out,
        )
        return out.getvalue()

    return do


@pytest.fixture
def no_entra_settings(settings: Settings) -> None:
    settings.ENTRA_CLIENT_ID = ""
    settings.ENTRA_CLIENT_SECRET = ""
    settings.ENTRA_AUTH_CLIENT_ID = ""


def exports(output: str) -> dict[str, str]:
    return dict(re.findall(r"^export (\w+)=(.*)$", output, re.MULTILINE))


def dotenv(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_it_prints_settings_ready_to_paste(run: Run, tmp_path: Path) -> None:
    output = run()

    values = exports(output)
    port = re.search(r"listening on https://localhost:(\d+)", output)
    assert port is not None
    url = f"https://localhost:{port.group(1)}"
    state = (tmp_path / "state").resolve()
    tenant = generate_tenant(users=20, groups=3, seed=1, auth_app_id=AUTH_CLIENT_ID)
    assert values == {
        "REQUESTS_CA_BUNDLE": str(state / "ca-bundle.pem"),
        "ENTRA_LOGIN_URL": url,
        "GRAPH_URL": url,
        "ENTRA_CLIENT_ID": CLIENT_ID,
        "ENTRA_AUTH_CLIENT_ID": AUTH_CLIENT_ID,
        "EMULATOR_CA_PEM": str(state / "ca.pem"),
        "EMULATOR_CONTROL_URL": f"{url}/_emulator",
        "EMULATOR_TENANT_ID": tenant.tenant_id,
        "EMULATOR_TENANT_NAME": "Contoso",
        "EMULATOR_TENANT_IDS": tenant.tenant_id,
    }
    # A secret from the settings stays off the screen; the 0600 dotenv file has it.
    assert "# ENTRA_CLIENT_SECRET: the one in your settings" in output
    assert f"Contoso  {tenant.tenant_id}  contoso.onmicrosoft.com" in output
    assert f"CA certificate: {state / 'ca.pem'}" in output
    assert f"Control API: {url}/_emulator/" in output
    assert "Graph emulator stopped." in output


def test_the_dotenv_file_holds_every_setting_privately(run: Run, tmp_path: Path) -> None:
    output = run()

    env_file = tmp_path / "state" / "emulator.env"
    values = dotenv(env_file)
    assert {k: v for k, v in values.items() if k != "ENTRA_CLIENT_SECRET"} == exports(output)
    assert values["ENTRA_CLIENT_SECRET"] == "test-secret-value"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert (tmp_path / "state" / ".gitignore").read_text().endswith("*\n")


def test_without_settings_it_uses_a_demo_app_whose_secret_survives_restarts(
    run: Run, tmp_path: Path, no_entra_settings: None
) -> None:
    first = exports(run())
    second = exports(run())

    assert first["ENTRA_CLIENT_ID"] == DEMO_CLIENT_ID
    assert first["ENTRA_AUTH_CLIENT_ID"] == DEFAULT_AUTH_APP_ID
    assert len(first["ENTRA_CLIENT_SECRET"]) >= 32
    assert second["ENTRA_CLIENT_SECRET"] == first["ENTRA_CLIENT_SECRET"]
    assert second["EMULATOR_TENANT_ID"] == first["EMULATOR_TENANT_ID"]
    secret_file = tmp_path / "state" / "client-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_options_override_the_settings(run: Run) -> None:
    values = exports(
        run(
            "--client-id",
            "aaaaaaaa-0000-4000-8000-000000000001",
            "--client-secret",
            "from-the-command-line",
            "--auth-client-id",
            "bbbbbbbb-0000-4000-8000-000000000002",
            "--display-name",
            "Fabrikam",
            "--domain",
            "fabrikam.onmicrosoft.com",
            "--seed",
            "4",
        )
    )

    assert values["ENTRA_CLIENT_ID"] == "aaaaaaaa-0000-4000-8000-000000000001"
    assert values["ENTRA_AUTH_CLIENT_ID"] == "bbbbbbbb-0000-4000-8000-000000000002"
    assert values["EMULATOR_TENANT_NAME"] == "Fabrikam"
    expected = generate_tenant(users=20, groups=3, seed=4)
    assert values["EMULATOR_TENANT_ID"] == expected.tenant_id


def test_tenants_can_come_from_json_files(tmp_path: Path) -> None:
    saved = generate_tenant(
        users=5, groups=2, seed=8, display_name="Saved Ltd", auth_app_id=CLIENT_ID
    )
    path = tmp_path / "saved.json"
    path.write_text(saved.to_json())
    out = io.StringIO()

    call_command(
        "graph_emulator",
        "--check",
        "--port",
        "0",
        "--state-dir",
        str(tmp_path / "state"),
        "--tenant-json",
        str(path),
        stdout=out,
    )

    values = exports(out.getvalue())
    assert values["EMULATOR_TENANT_IDS"] == saved.tenant_id  # nothing generated besides
    assert values["EMULATOR_TENANT_NAME"] == "'Saved Ltd'"
    assert dotenv(tmp_path / "state" / "emulator.env")["EMULATOR_TENANT_NAME"] == "'Saved Ltd'"
    assert "note: its Authentication app is" in out.getvalue()


def test_a_generated_tenant_and_json_tenants_can_be_served_together(
    run: Run, tmp_path: Path
) -> None:
    saved = generate_tenant(users=5, groups=2, seed=8)
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(saved.to_dict()))

    values = exports(run("--tenant-json", str(path)))

    assert values["EMULATOR_TENANT_IDS"].split(",")[1] == saved.tenant_id


def test_bad_input_is_a_command_error(run: Run, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="only listens on a loopback"):
        run("--host", "0.0.0.0")
    with pytest.raises(CommandError, match="Cannot read a tenant"):
        run("--tenant-json", str(tmp_path / "missing.json"))
    (tmp_path / "broken.json").write_text('{"tenant_id": "x"}')
    with pytest.raises(CommandError, match="Cannot read a tenant"):
        run("--tenant-json", str(tmp_path / "broken.json"))
    with pytest.raises(CommandError, match="cannot be negative"):
        run("--groups", "-1")


def test_a_port_in_use_is_a_command_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match="pick another --port"):
            call_command(
                "graph_emulator",
                "--check",
                "--port",
                str(port),
                "--state-dir",
                str(tmp_path / "state"),
                stdout=io.StringIO(),
            )


def test_the_printed_settings_reach_the_running_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_entra_settings: None
) -> None:
    """Serve (instead of --check), and while it runs, read Graph with the dotenv's settings."""
    seen: dict[str, object] = {}

    def use_it_then_stop() -> None:
        env = dotenv(tmp_path / "state" / "emulator.env")
        client = GraphClient(
            tenant_id=env["EMULATOR_TENANT_ID"],
            settings=GraphSettings(
                client_id=env["ENTRA_CLIENT_ID"],
                client_secret=env["ENTRA_CLIENT_SECRET"],
                login_url=env["ENTRA_LOGIN_URL"],
                graph_url=env["GRAPH_URL"],
                verify=env["REQUESTS_CA_BUNDLE"],
            ),
        )
        seen["organization"] = client.organization().display_name
        seen["groups"] = len(list(client.groups()))

    monkeypatch.setattr(
        "directories.management.commands.graph_emulator._wait_for_stop", use_it_then_stop
    )
    call_command(
        "graph_emulator",
        "--port",
        "0",
        "--state-dir",
        str(tmp_path / "state"),
        "--users",
        "15",
        "--groups",
        "4",
        stdout=io.StringIO(),
    )

    assert seen == {"organization": "Contoso", "groups": 4}
