"""Resource-unit throttling ("Microsoft Graph service-specific throttling limits", "Identity and
access service limits"): costs, budgets per app+tenant, 429s, and the counters reports use."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from entra_emulator import Emulator, EmulatorControl, EmuResponse, EmuTenant, generate_tenant
from entra_emulator.throttling import PAIR_LIMITS, request_cost, tenant_size

from .conftest import GRAPH_URL, FakeClock, guid, token_for

Get = Callable[..., EmuResponse]


@pytest.mark.parametrize(
    ("path", "options", "cost"),
    [
        ("users", {}, 2),
        ("users", {"$select": "id"}, 1),
        ("users", {"$top": "999"}, 2),
        ("users", {"$select": "id", "$top": "5"}, 1),  # never below 1
        ("users/abc", {}, 1),
        ("users/abc/memberOf", {}, 2),  # me/memberOf "also applies to users/{id}/"
        ("users/abc/transitiveMemberOf/microsoft.graph.group", {}, 2),
        ("users/delta", {}, 1),  # not in the table: 1
        ("groups", {}, 1),
        ("groups/delta", {"$select": "members"}, 1),
        ("groups/abc/members", {}, 3),
        ("groups/abc/members", {"$select": "id"}, 2),
        ("groups/abc/members/microsoft.graph.user", {}, 3),
        ("groups/abc/transitiveMembers", {}, 5),
        ("groups/abc/transitiveMembers", {"$expand": "x"}, 6),
        ("servicePrincipals/abc/appRoleAssignments", {}, 2),
        ("servicePrincipals/abc/appRoleAssignedTo", {}, 1),
        ("organization", {}, 1),
        ("subscribedSkus", {}, 3),
    ],
)
def test_request_costs_follow_the_documented_table(
    path: str, options: dict[str, str], cost: int
) -> None:
    assert request_cost("GET", path.split("/"), options) == cost


def test_tenant_sizes_follow_the_documented_user_counts() -> None:
    assert [tenant_size(n) for n in (0, 49, 50, 500, 501)] == ["S", "S", "M", "M", "L"]
    assert PAIR_LIMITS == {"S": 3_500, "M": 5_000, "L": 8_000}


def test_every_response_says_what_it_cost_and_the_units_are_counted(
    emulator: Emulator, get: Get
) -> None:
    assert emulator.graph.ru.enabled is False  # off unless asked for
    costs = {
        "users": "2",
        "users?$select=id": "1",
        f"groups/{guid(101)}/members": "3",
        f"groups/{guid(101)}/transitiveMembers": "5",
        "users/delta": "1",
        "users/nobody@contoso.onmicrosoft.com": "1",  # a 404 is charged too
    }
    for path, cost in costs.items():
        assert get(path).headers["x-ms-resource-unit"] == cost, path

    assert emulator.graph.counters["ru.spent"] == 13


def test_an_app_over_its_budget_gets_429_with_retry_after(
    emulator: Emulator, tenant: EmuTenant, get: Get, clock: FakeClock
) -> None:
    emulator.graph.ru.enabled = True
    emulator.graph.ru.pair_limit = 10
    for _ in range(5):
        assert get("users").status == 200  # 2 each
        clock.advance(1)

    throttled = get("users")

    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "6"
    assert throttled.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    scope = throttled.headers["x-ms-throttle-scope"]
    assert scope.startswith("Tenant_Application/ReadWrite/") and scope.endswith(tenant.tenant_id)
    error = throttled.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert (error["innerError"]["code"], error["innerError"]["status"]) == ("429", "429")
    clock.advance(6)
    assert get("users").status == 200
    counters = emulator.graph.counters
    assert (counters["ru.spent"], counters["ru.throttled"], counters["throttled"]) == (12, 2, 1)


def test_throttled_requests_are_charged_too(emulator: Emulator, get: Get, clock: FakeClock) -> None:
    # "Microsoft Graph continues to log resource usage while a client is being throttled."
    emulator.graph.ru.enabled = True
    emulator.graph.ru.pair_limit = 4
    assert [get("users").status for _ in range(4)] == [200, 200, 429, 429]
    clock.advance(9)

    assert get("users").status == 429  # the throttled ones still fill the window

    clock.advance(1)
    assert get("users").status == 200


def test_the_default_budget_follows_the_tenants_size(
    emulator: Emulator, tenant: EmuTenant, get: Get
) -> None:
    emulator.graph.ru.enabled = True

    statuses = [get("users").status for _ in range(1751)]  # 25 users: S, 3,500 per 10 s

    assert statuses.count(200) == 1750 and statuses[-1] == 429
    assert emulator.graph.ru.limit_for(len(tenant.users)) == 3_500
    assert emulator.graph.ru.limit_for(10_000) == 8_000


def test_the_budget_is_per_app_and_tenant(emulator: Emulator, tenant: EmuTenant, get: Get) -> None:
    emulator.graph.ru.enabled = True
    emulator.graph.ru.pair_limit = 2
    other_tenant = emulator.add_tenant(generate_tenant(users=5, groups=2, seed=9))
    other = token_for(emulator, other_tenant.tenant_id)

    assert get("users").status == 200
    assert get("users").status == 429
    response = emulator.handle(
        "GET", f"{GRAPH_URL}/v1.0/users", {"Authorization": f"Bearer {other}"}
    )
    assert response.status == 200


def test_the_limit_percentage_header_warns_above_80_percent(emulator: Emulator, get: Get) -> None:
    emulator.graph.ru.enabled = True
    emulator.graph.ru.pair_limit = 10
    headers = [get("users").headers.get("x-ms-throttle-limit-percentage") for _ in range(5)]

    assert headers == [None, None, None, "0.8", "1.0"]


def test_the_control_api_switches_it_on_and_reports_the_totals(
    control: EmulatorControl, emulator: Emulator, get: Get
) -> None:
    control.update_settings(ru_throttling=True, ru_limit=4, ru_window=30)
    statuses = [get("users").status for _ in range(3)]

    stats = control.stats()

    assert statuses == [200, 200, 429]
    assert (stats["ru_spent"], stats["ru_throttled"], stats["throttled"]) == (4, 2, 1)
    assert stats["status_429"] == 1 and stats["requests"] == 3
    assert list(stats["ru_by_app_tenant"].values()) == [4]
    assert emulator.graph.ru.pair_window == 30
    assert control.clear_stats()["ru_spent"] == 0
    control.update_settings(ru_throttling=False, ru_limit=None)
    assert get("users").status == 200
