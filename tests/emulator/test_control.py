"""The control API (`/_emulator/...`) through its client: every endpoint changes what Graph and
the login service then answer, exactly as the Python methods it calls would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import certifi
import pytest
import requests

from entra_emulator import (
    Emulator,
    EmulatorControl,
    EmulatorControlError,
    EmulatorServer,
    EmuResponse,
    EmuTenant,
)

from .conftest import BASE, CLIENT_ID, GRAPH_URL, LOGIN_URL, SECRET, guid

Get = Callable[..., EmuResponse]


def graph_ids(get: Get, path: str, *, advanced: bool = False) -> set[str]:
    response = get(f"{path}{'&' if '?' in path else '?'}$top=999", advanced=advanced)
    assert response.status == 200, response.text
    return {item["id"] for item in response.json()["value"]}


def token_response(emulator: Emulator, tenant_id: str, client_id: str, secret: str) -> Any:
    return emulator.handle(
        "POST",
        f"{LOGIN_URL}/{tenant_id}/oauth2/v2.0/token",
        {"Content-Type": "application/x-www-form-urlencoded"},
        f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}"
        f"&scope={GRAPH_URL}/.default",
    )


def refused(status: int, call: Callable[[], object]) -> EmulatorControlError:
    with pytest.raises(EmulatorControlError) as caught:
        call()
    assert caught.value.status == status, caught.value
    return caught.value


# --- requests in general ----------------------------------------------------------------------


def test_the_index_lists_the_endpoints(emulator: Emulator) -> None:
    response = emulator.handle("GET", f"{BASE}/_emulator/")

    assert response.status == 200
    assert "GET POST /_emulator/tenants" in response.json()["endpoints"]


def test_unknown_paths_wrong_methods_and_bad_bodies_are_json_errors(emulator: Emulator) -> None:
    missing = emulator.handle("GET", f"{BASE}/_emulator/nothing")
    assert (missing.status, missing.json()["error"]["code"]) == (404, "not_found")

    wrong = emulator.handle("PATCH", f"{BASE}/_emulator/tenants")
    assert wrong.status == 405 and wrong.headers["Allow"] == "GET, POST"
    assert wrong.json()["error"]["code"] == "method_not_allowed"

    json_headers = {"Content-Type": "application/json"}
    bad = emulator.handle("POST", f"{BASE}/_emulator/faults", json_headers, b"{nope")
    assert (bad.status, bad.json()["error"]["code"]) == (400, "invalid_json")
    listed = emulator.handle("POST", f"{BASE}/_emulator/faults", json_headers, b"[1]")
    assert listed.status == 400


def test_writes_must_be_json_so_web_pages_cannot_forge_them(emulator: Emulator) -> None:
    # A cross-site form or fetch without a CORS preflight can send text/plain, never JSON.
    response = emulator.handle(
        "POST", f"{BASE}/_emulator/tokens/expire", {"Content-Type": "text/plain"}, b"{}"
    )

    assert response.status == 415


# --- tenants ----------------------------------------------------------------------------------


def test_tenants_are_listed_with_their_counts(control: EmulatorControl, tenant: EmuTenant) -> None:
    [summary] = control.tenants()

    assert summary == {
        "tenant_id": tenant.tenant_id,
        "display_name": "Contoso",
        "default_domain": "contoso.onmicrosoft.com",
        "auth_app_id": tenant.auth_app_id,
        "users": 25,
        "groups": 6,
        "others": 1,
        "assignments": 3,
        "assigned_groups": 2,
    }


def test_a_tenant_reads_as_its_json_and_can_be_replaced(
    control: EmulatorControl, emulator: Emulator, tenant: EmuTenant, get: Get
) -> None:
    data = control.tenant(tenant.tenant_id)
    assert data == tenant.to_dict()

    data["display_name"] = "Contoso Renamed"
    data["users"] = data["users"][:10]
    summary = control.put_tenant(tenant.tenant_id, data)

    assert summary["users"] == 10
    replaced = emulator.tenants[tenant.tenant_id]
    assert replaced.display_name == "Contoso Renamed"
    assert len(graph_ids(get, "users")) == 10


def test_put_creates_a_tenant_and_refuses_a_mismatched_or_broken_one(
    control: EmulatorControl, emulator: Emulator, tenant: EmuTenant
) -> None:
    data = tenant.to_dict() | {"tenant_id": guid(7777), "display_name": "Fabrikam"}
    control.put_tenant(guid(7777), data)
    assert emulator.tenants[guid(7777)].display_name == "Fabrikam"

    refused(400, lambda: control.put_tenant(guid(8888), data))
    error = refused(400, lambda: control.put_tenant(guid(8888), {"display_name": "x"}))
    assert error.code == "invalid_tenant"


def test_post_generates_a_tenant_with_the_configured_authentication_app(
    control: EmulatorControl, emulator: Emulator
) -> None:
    emulator.control.tenant_defaults = {"auth_app_id": guid(4242)}

    tenant_id = control.generate_tenant(users=20, groups=4, seed=9, display_name="Tailspin")

    tenant = emulator.tenants[tenant_id]
    assert tenant.display_name == "Tailspin"
    assert tenant.auth_app_id == guid(4242)
    assert len(tenant.groups) == 4
    again = refused(409, lambda: control.generate_tenant(users=20, groups=4, seed=9))
    assert again.code == "tenant_exists"
    refused(400, lambda: control.create_tenant({"users": 5, "groups": 1, "colour": "red"}))
    refused(400, lambda: control.create_tenant({"users": -1, "groups": 1}))
    refused(400, lambda: control.create_tenant({"users": "many", "groups": 1}))


def test_post_takes_a_whole_tenant_document(
    control: EmulatorControl, emulator: Emulator, tenant: EmuTenant
) -> None:
    document = tenant.to_dict() | {"tenant_id": guid(5151)}

    summary = control.create_tenant(document)

    assert summary["tenant_id"] == guid(5151)
    assert emulator.tenants[guid(5151)].users.keys() == tenant.users.keys()


def test_a_deleted_tenant_is_gone(
    control: EmulatorControl, emulator: Emulator, tenant: EmuTenant
) -> None:
    control.delete_tenant(tenant.tenant_id)

    assert tenant.tenant_id not in emulator.tenants
    assert refused(404, lambda: control.tenant(tenant.tenant_id)).code == "tenant_not_found"


# --- users ------------------------------------------------------------------------------------


def test_an_added_user_is_in_graph_and_in_its_groups(
    control: EmulatorControl, tenant: EmuTenant, get: Get
) -> None:
    user = control.add_user(
        tenant.tenant_id,
        userPrincipalName="new.hire@contoso.onmicrosoft.com",
        displayName="New Hire",
        mail="new.hire@contoso.com",
        groups=[guid(102)],
    )

    assert user["accountEnabled"] is True and user["userType"] == "Member"
    assert user["id"] in graph_ids(get, "users")
    # Sales EMEA (102) is nested in Sales (101).
    assert user["id"] in graph_ids(
        get, f"groups/{guid(101)}/transitiveMembers/microsoft.graph.user", advanced=True
    )
    assert control.user(tenant.tenant_id, "new.hire@contoso.onmicrosoft.com")["id"] == user["id"]
    assert user["id"] in {u["id"] for u in control.users(tenant.tenant_id)}


def test_adding_a_user_checks_its_fields(control: EmulatorControl, tenant: EmuTenant) -> None:
    tid = tenant.tenant_id
    refused(400, lambda: control.add_user(tid, displayName="No UPN"))
    refused(400, lambda: control.add_user(tid, userPrincipalName="x@y", accountEnabled="yes"))
    refused(400, lambda: control.add_user(tid, userPrincipalName="x@y", favouriteColour="red"))
    refused(404, lambda: control.add_user(tid, userPrincipalName="x@y", groups=[guid(999)]))
    taken = tenant.users[guid(1)].user_principal_name
    assert refused(409, lambda: control.add_user(tid, userPrincipalName=taken)).code == "upn_exists"
    refused(409, lambda: control.add_user(tid, id=guid(2), userPrincipalName="z@y"))


def test_a_user_can_sign_in_when_given_a_password_which_is_never_shown(
    control: EmulatorControl, tenant: EmuTenant
) -> None:
    user = control.add_user(
        tenant.tenant_id,
        userPrincipalName="helpdesk@contoso.onmicrosoft.com",
        password="s3cret",
        directoryRoles=["Global Administrator"],
    )

    assert "password" not in user
    assert user["directoryRoles"] == ["Global Administrator"]
    assert tenant.users[user["id"]].password == "s3cret"


def test_patch_renames_disables_and_keeps_the_id(
    control: EmulatorControl, tenant: EmuTenant, get: Get
) -> None:
    user_id = guid(24)  # assigned to the app directly: its assignment shows the new name
    updated = control.update_user(
        tenant.tenant_id,
        user_id,
        displayName="Renamed",
        userPrincipalName="renamed@contoso.onmicrosoft.com",
        mail=None,
        accountEnabled=False,
        jobTitle="Boss",
    )

    assert updated["displayName"] == "Renamed" and updated["mail"] is None
    seen = get(f"users/{user_id}?$select=displayName,userPrincipalName,accountEnabled").json()
    assert (seen["displayName"], seen["accountEnabled"]) == ("Renamed", False)
    assert get("users/renamed@contoso.onmicrosoft.com").status == 200
    names = {a.principal_id: a.principal_display_name for a in tenant.assignments}
    assert names[user_id] == "Renamed"


def test_patch_refuses_unknown_fields_new_ids_and_taken_names(
    control: EmulatorControl, tenant: EmuTenant
) -> None:
    tid, uid = tenant.tenant_id, guid(1)
    refused(400, lambda: control.update_user(tid, uid, shoeSize=44))
    refused(400, lambda: control.update_user(tid, uid, id=guid(77)))
    refused(400, lambda: control.update_user(tid, uid, userType="Admin"))
    taken = tenant.users[guid(2)].user_principal_name
    refused(409, lambda: control.update_user(tid, uid, userPrincipalName=taken.upper()))
    refused(404, lambda: control.update_user(tid, guid(999), displayName="Nobody"))


def test_a_deleted_user_leaves_graph_and_every_group(
    control: EmulatorControl, tenant: EmuTenant, get: Get
) -> None:
    control.delete_user(tenant.tenant_id, guid(1))

    assert guid(1) not in graph_ids(get, "users")
    assert guid(1) not in graph_ids(get, f"groups/{guid(105)}/members")
    refused(404, lambda: control.delete_user(tenant.tenant_id, guid(1)))


# --- groups and members -----------------------------------------------------------------------


def test_an_added_group_has_its_members_and_can_be_assigned(
    control: EmulatorControl, tenant: EmuTenant, get: Get
) -> None:
    group = control.add_group(
        tenant.tenant_id,
        displayName="Contractors",
        members=[guid(1), guid(2), guid(104)],
        assigned=True,
    )

    assert group["members"] == [guid(1), guid(2), guid(104)]
    assert group["id"] in graph_ids(get, "groups")
    assert graph_ids(get, f"groups/{group['id']}/members") == {guid(1), guid(2), guid(104)}
    assigned = graph_ids(get, f"servicePrincipals/{tenant.auth_sp_id}/appRoleAssignedTo")
    assert any(a.principal_id == group["id"] for a in tenant.assignments)
    assert len(assigned) == 4
    assert control.group(tenant.tenant_id, group["id"])["displayName"] == "Contractors"
    assert len(control.groups(tenant.tenant_id)) == 7


def test_adding_a_group_checks_its_fields(control: EmulatorControl, tenant: EmuTenant) -> None:
    tid = tenant.tenant_id
    refused(400, lambda: control.add_group(tid, description="no name"))
    refused(400, lambda: control.add_group(tid, displayName="X", groupTypes="Unified"))
    refused(404, lambda: control.add_group(tid, displayName="X", members=[guid(999)]))
    refused(409, lambda: control.add_group(tid, id=guid(101), displayName="Again"))


def test_a_renamed_group_keeps_its_assignment_name_in_step(
    control: EmulatorControl, tenant: EmuTenant, get: Get
) -> None:
    control.update_group(tenant.tenant_id, guid(101), displayName="Sales (all)")

    assert get(f"groups/{guid(101)}").json()["displayName"] == "Sales (all)"
    names = {a.principal_id: a.principal_display_name for a in tenant.assignments}
    assert names[guid(101)] == "Sales (all)"
    refused(400, lambda: control.update_group(tenant.tenant_id, guid(101), id=guid(5)))


def test_a_deleted_group_is_gone_with_its_assignment(
    control: EmulatorControl, tenant: EmuTenant, get: Get
) -> None:
    control.delete_group(tenant.tenant_id, guid(101))

    assert guid(101) not in graph_ids(get, "groups")
    assert all(a.principal_id != guid(101) for a in tenant.assignments)
    refused(404, lambda: control.delete_group(tenant.tenant_id, guid(101)))


def test_members_are_added_and_removed(
    control: EmulatorControl, tenant: EmuTenant, get: Get
) -> None:
    tid = tenant.tenant_id
    control.add_members(tid, guid(104), guid(3), guid(102), guid(900))

    direct = graph_ids(get, f"groups/{guid(104)}/members")
    assert direct == {guid(3), guid(102), guid(900)}
    users = graph_ids(
        get, f"groups/{guid(104)}/transitiveMembers/microsoft.graph.user", advanced=True
    )
    assert users == {guid(3), *(guid(i) for i in range(11, 16))}

    control.remove_member(tid, guid(104), guid(102))
    assert graph_ids(get, f"groups/{guid(104)}/members") == {guid(3), guid(900)}
    refused(404, lambda: control.remove_member(tid, guid(104), guid(102)))


def test_impossible_members_are_refused(control: EmulatorControl, tenant: EmuTenant) -> None:
    tid = tenant.tenant_id
    refused(404, lambda: control.add_members(tid, guid(104), guid(999)))
    refused(400, lambda: control.add_members(tid, guid(104), guid(104)))
    # Marketing (103) is a Microsoft 365 group: no nested groups.
    refused(400, lambda: control.add_members(tid, guid(103), guid(104)))
    refused(404, lambda: control.add_members(tid, guid(999), guid(1)))
    refused(400, lambda: control.add_members(tid, guid(104)))


# --- assignments ------------------------------------------------------------------------------


def test_groups_are_assigned_and_unassigned(
    control: EmulatorControl, tenant: EmuTenant, get: Get
) -> None:
    path = f"servicePrincipals/{tenant.auth_sp_id}/appRoleAssignedTo"
    assignment = control.assign(tenant.tenant_id, guid(104))

    assert assignment["principalType"] == "Group"
    assert assignment["principalDisplayName"] == "Empty"
    assert assignment["id"] in graph_ids(get, path)
    assert len(control.assignments(tenant.tenant_id)) == 4
    refused(409, lambda: control.assign(tenant.tenant_id, guid(104)))

    control.unassign(tenant.tenant_id, guid(104))
    assert assignment["id"] not in graph_ids(get, path)
    refused(404, lambda: control.unassign(tenant.tenant_id, guid(104)))


def test_users_can_be_assigned_but_devices_cannot(
    control: EmulatorControl, tenant: EmuTenant
) -> None:
    assert control.assign(tenant.tenant_id, guid(7))["principalType"] == "User"
    refused(404, lambda: control.assign(tenant.tenant_id, guid(900)))
    refused(404, lambda: control.assign(tenant.tenant_id, guid(999)))


# --- faults -----------------------------------------------------------------------------------


def test_status_faults_answer_with_graph_errors(
    control: EmulatorControl, tenant: EmuTenant, get: Get
) -> None:
    control.add_fault(429, count=2, path_contains="/groups", retry_after=7)

    assert get("users").status == 200
    throttled = get("groups")
    assert throttled.status == 429 and throttled.headers["Retry-After"] == "7"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert control.faults()["graph"][0]["remaining"] == 1
    assert get("groups").status == 429
    assert get("groups").status == 200


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        (
            "malformed",
            lambda r: r.status == 200 and r.body.startswith(b"{") and not r.body.endswith(b"}"),
        ),
        ("no_value", lambda r: r.status == 200 and "value" not in r.json()),
        ("reset", lambda r: r.disconnect == "reset"),
        ("timeout", lambda r: r.disconnect == "timeout"),
    ],
)
def test_other_fault_kinds(
    control: EmulatorControl, tenant: EmuTenant, get: Get, kind: str, check: Any
) -> None:
    control.add_fault(kind=kind)

    assert check(get("users"))
    assert get("users").status == 200


def test_a_delay_fault_waits_through_the_emulators_sleep(
    control: EmulatorControl, tenant: EmuTenant, get: Get, clock: Any
) -> None:
    control.add_fault(kind="delay", seconds=2.5)

    assert get("users").status == 200
    assert clock.slept == [2.5]
    refused(400, lambda: control.add_fault(kind="delay"))


def test_login_faults_hit_the_token_endpoint(
    control: EmulatorControl, emulator: Emulator, tenant: EmuTenant
) -> None:
    control.add_fault(503, target="login", path_contains="/token")

    failed = token_response(emulator, tenant.tenant_id, CLIENT_ID, SECRET)
    assert failed.status == 503
    assert control.faults()["login"] == []
    assert token_response(emulator, tenant.tenant_id, CLIENT_ID, SECRET).status == 200


def test_faults_are_listed_and_cleared(control: EmulatorControl, tenant: EmuTenant) -> None:
    control.add_fault(500, count=3)
    control.add_fault(kind="reset", path_contains="/users")
    control.add_fault(502, target="login")

    listed = control.faults()
    assert [f["kind"] for f in listed["graph"]] == ["status", "reset"]
    assert listed["graph"][0]["status"] == 500 and listed["graph"][0]["remaining"] == 3
    assert listed["login"][0]["status"] == 502

    assert control.clear_faults() == {"graph": [], "login": []}


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 200},
        {"status": 503, "count": 0},
        {"kind": "explode"},
        {"kind": "reset", "target": "login"},
        {"target": "elsewhere", "status": 500},
        {"status": 500, "retry_after": "soon"},
        {"status": 500, "colour": "red"},
    ],
)
def test_impossible_faults_are_refused(control: EmulatorControl, fault: dict[str, Any]) -> None:
    with pytest.raises(EmulatorControlError) as caught:
        control._call("POST", "faults", fault)
    assert caught.value.status == 400


# --- settings, tokens, apps -------------------------------------------------------------------


def test_settings_change_latency_throttling_and_token_lifetime(
    control: EmulatorControl, emulator: Emulator, tenant: EmuTenant, get: Get
) -> None:
    settings = control.update_settings(
        latency_ms=25, throttle_limit=1, throttle_window=60, token_lifetime=120
    )

    assert settings == {
        "latency_ms": 25,
        "throttle_limit": 1,
        "throttle_window": 60,
        "token_lifetime": 120,
        "skiptoken_lifetime": None,
        "advanced_query_strict": True,
        "ru_throttling": False,
        "ru_limit": None,
        "ru_window": 10.0,
        "delta_user_page_size": 200,
        "delta_group_page_size": 100,
        "delta_member_page_size": 1000,
        "delta_token_lifetime": 7 * 24 * 3600,
        "batch_seed": 0,
    }
    assert emulator.graph.latency == 0.025
    assert get("users").status == 200
    assert get("users").status == 429
    issued = token_response(emulator, tenant.tenant_id, CLIENT_ID, SECRET).json()
    assert issued["expires_in"] == 120

    control.update_settings(throttle_limit=None)
    assert get("users").status == 200
    assert control.settings()["throttle_limit"] is None


@pytest.mark.parametrize(
    "values",
    [{"latency_ms": -1}, {"throttle_limit": 0}, {"token_lifetime": 1.5}, {"speed": "fast"}],
)
def test_impossible_settings_are_refused(control: EmulatorControl, values: dict[str, Any]) -> None:
    with pytest.raises(EmulatorControlError) as caught:
        control.update_settings(**values)
    assert caught.value.status == 400


def test_expired_tokens_are_refused_by_graph(
    control: EmulatorControl, tenant: EmuTenant, get: Get
) -> None:
    control.expire_tokens()

    refused_read = get("users")
    assert refused_read.status == 401
    assert "expired" in refused_read.json()["error"]["message"]


def test_revoked_tokens_are_unknown_to_graph(
    control: EmulatorControl, tenant: EmuTenant, get: Get
) -> None:
    assert control.expire_tokens(revoke=True) == {"tokens": 0}

    assert get("users").status == 401


def test_apps_are_registered_listed_without_secrets_and_removed(
    control: EmulatorControl, emulator: Emulator, tenant: EmuTenant
) -> None:
    reader = guid(3131)
    control.add_app(reader, "reader-secret", permissions=["User.Read.All"])
    expired = guid(3232)
    control.add_app(expired, "old-secret", secret_expired=True)

    issued = token_response(emulator, tenant.tenant_id, reader, "reader-secret")
    assert issued.status == 200
    groups = emulator.handle(
        "GET",
        f"{GRAPH_URL}/v1.0/groups",
        {"Authorization": f"Bearer {issued.json()['access_token']}"},
    )
    assert groups.status == 403
    old = token_response(emulator, tenant.tenant_id, expired, "old-secret")
    assert old.status == 401 and "AADSTS7000222" in old.json()["error_description"]

    apps = {a["client_id"]: a for a in control.apps()}
    assert apps[reader]["permissions"] == ["User.Read.All"]
    assert "secret" not in apps[reader]
    control.delete_app(reader)
    assert token_response(emulator, tenant.tenant_id, reader, "reader-secret").status == 400
    refused(404, lambda: control.delete_app(reader))
    refused(400, lambda: control.add_app("", "x"))


# --- the request log --------------------------------------------------------------------------


def test_the_request_log_shows_urls_never_credentials(
    control: EmulatorControl, tenant: EmuTenant, get: Get, token: str
) -> None:
    get("users?$select=id")
    get(f"groups/{guid(101)}/members")

    log = control.requests_log()

    assert [entry["url"] for entry in log["graph"]] == [
        f"{GRAPH_URL}/v1.0/users?$select=id",
        f"{GRAPH_URL}/v1.0/groups/{guid(101)}/members",
    ]
    assert log["login"][0]["method"] == "POST"
    assert log["counters"]["graph"]["requests"] == 2
    assert token not in str(log) and SECRET not in str(log)

    cleared = control.clear_requests()
    assert cleared["graph"] == [] and cleared["login"] == []


# --- over the real server ---------------------------------------------------------------------


def test_the_client_changes_a_served_tenant_between_reads(
    tmp_path: Any, tenant: EmuTenant, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client passes `verify=` per request, so a REQUESTS_CA_BUNDLE without our CA is fine.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    with EmulatorServer(emulator) as server:
        ca = str(server.ca_pem)
        control = EmulatorControl(server.localhost_url, verify=server.ca_pem)
        issued = requests.post(
            f"{server.url}/{tenant.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "scope": f"{server.url}/.default",
            },
            verify=ca,
        ).json()
        headers = {"Authorization": f"Bearer {issued['access_token']}"}

        control.update_user(tenant.tenant_id, guid(1), displayName="Renamed Over HTTPS")
        seen = requests.get(f"{server.url}/v1.0/users/{guid(1)}", headers=headers, verify=ca)

        assert seen.json()["displayName"] == "Renamed Over HTTPS"
        assert control.tenants()[0]["users"] == 25
        control.close()


def test_the_advanced_query_rule_can_be_relaxed_and_restored(
    control: EmulatorControl, emulator: Emulator, get: Get
) -> None:
    cast = f"groups/{guid(101)}/transitiveMembers/microsoft.graph.user"
    assert control.settings()["advanced_query_strict"] is True
    assert get(cast).status == 400

    assert control.update_settings(advanced_query_strict=False)["advanced_query_strict"] is False
    assert get(cast).status == 200

    control.update_settings(advanced_query_strict=True)
    assert get(cast).status == 400
    with pytest.raises(EmulatorControlError):
        control.update_settings(advanced_query_strict="no")
