"""Every kind of body the emulator serves, checked against Microsoft's OpenAPI description.

Uses /work/shared/tools/graph_request_check.py (see /work/shared/graph-openapi/README.md):
response mode for bodies, request mode for the URLs the tests sent.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from entra_emulator import Emulator, EmuResponse, EmuTenant
from tests.conftest import GRAPH_REQUEST_CHECKER

from .conftest import GRAPH_URL, guid

CHECKER = GRAPH_REQUEST_CHECKER
pytestmark = pytest.mark.skipif(not CHECKER.exists(), reason="graph_request_check.py not found")

USER_SELECT = "id,userPrincipalName,mail,displayName,givenName,surname,accountEnabled,userType"
GROUP_SELECT = "id,displayName,description,mail,mailEnabled,securityEnabled,groupTypes"


def run_checker(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def paths(tenant: EmuTenant) -> list[str]:
    sp = f"servicePrincipals(appId='{tenant.auth_app_id}')"
    return [
        f"users?$select={USER_SELECT}&$top=999",
        "users?$top=10",
        f"users/{guid(5)}",
        f"users/{guid(6)}?$select={USER_SELECT}",
        f"groups?$select={GROUP_SELECT}&$top=999",
        "groups",
        f"groups/{guid(103)}",
        f"groups/{guid(101)}/members",
        f"groups/{guid(101)}/members?$select=id,displayName",
        f"groups/{guid(101)}/transitiveMembers",
        f"groups/{guid(101)}/transitiveMembers/microsoft.graph.user?$select={USER_SELECT}&$top=999",
        f"groups/{guid(101)}/members/microsoft.graph.group?$select={GROUP_SELECT}",
        "organization?$select=id,displayName,verifiedDomains",
        "organization",
        f"{sp}?$select=id,appId,displayName,appRoleAssignmentRequired",
        sp,
        f"servicePrincipals/{tenant.auth_sp_id}",
        f"servicePrincipals?$filter=appId eq '{tenant.auth_app_id}'",
        f"{sp}/appRoleAssignedTo?$select=id,principalId,principalType,principalDisplayName&$top=999",
        f"servicePrincipals/{tenant.auth_sp_id}/appRoleAssignedTo",
    ]


def test_every_body_type_matches_microsofts_schemas(
    get: Callable[..., EmuResponse], tenant: EmuTenant, tmp_path: Path
) -> None:
    failures = []
    for i, path in enumerate(paths(tenant)):
        response = get(path, advanced="/microsoft.graph." in path)
        assert response.status == 200, (path, response.text)
        body_file = tmp_path / f"body{i}.json"
        body_file.write_bytes(response.body)
        result = run_checker(
            "--response", str(body_file), "--request", f"GET {GRAPH_URL}/v1.0/{path}"
        )
        if result.returncode != 0 or "0 problems" not in result.stdout:
            failures.append(f"{path}\n{result.stdout}{result.stderr}")
    assert not failures, "\n".join(failures)


def test_every_url_the_tests_sent_is_a_valid_graph_request(
    emulator: Emulator, get: Callable[..., EmuResponse], tenant: EmuTenant
) -> None:
    for path in paths(tenant):
        body = get(path).json()
        if "@odata.nextLink" in body:
            get(body["@odata.nextLink"])
    get("users?$top=10&$select=id")  # a page with a nextLink, followed below
    get(get("users?$top=10&$select=id").json()["@odata.nextLink"])

    lines = "\n".join(f"{method} {url}" for method, url in emulator.requests_seen)
    result = run_checker(stdin=lines)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(emulator.requests_seen)} requests checked, 0 problems" in result.stdout


def test_error_bodies_match_the_odata_error_schema(get: Callable[..., EmuResponse]) -> None:
    # The checker's response mode reads the 2XX schema only, so call its validator directly
    # with the spec's error schema (responses/error -> microsoft.graph.ODataErrors.ODataError).
    # The spec leaves innerError open ("service-specific", additionalProperties) but the
    # validator ignores additionalProperties, so innerError is checked here by hand.
    spec = importlib.util.spec_from_file_location("graph_request_check", CHECKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    checker = module.Checker(module.Spec(module.DEFAULT_SPEC))
    schema = {"$ref": "#/components/schemas/microsoft.graph.ODataErrors.ODataError"}

    for path in ("users?$select=nope", f"groups/{guid(4242)}", "users?$top=5000"):
        response = get(path)
        assert response.status >= 400
        body = json.loads(response.body)
        inner = body["error"].pop("innerError")
        assert set(inner) == {"date", "request-id", "client-request-id"}
        assert inner["request-id"] == response.headers["request-id"]
        checker.validate(schema, body, "body")
    assert checker.problems == 0
