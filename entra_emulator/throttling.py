"""Graph's resource-unit throttling for directory objects, as Microsoft documents it.

Source: "Microsoft Graph service-specific throttling limits" > "Identity and access service
limits" (learn.microsoft.com/graph/throttling-limits):
- a token bucket per application+tenant pair: S 3,500 / M 5,000 / L 8,000 ResourceUnits per
  10 seconds, the size from the tenant's users (S under 50, M 50..500, L above 500), and
  150,000 ResourceUnits per 20 seconds per application across tenants;
- each request costs its path's base cost (the table below; "any requests not listed have a
  base cost of 1"), minus 1 with `$select`, plus 1 with `$expand`, minus 1 with `$top` under
  20, never below 1; a `me/...` cost applies to the same `users/{id}/...` request;
- over a limit: `429 Too Many Requests` with `Retry-After`; the response headers
  `x-ms-resource-unit` (every response), `x-ms-throttle-limit-percentage` (above 80 % of the
  limit), and on a 429 `x-ms-throttle-scope` and `x-ms-throttle-information`.
"Microsoft Graph throttling guidance" adds that Graph "continues to log resource usage while a
client is being throttled", so a throttled request is charged too.

Delta functions (`users/delta`, `groups/delta`) are not in the table: they cost 1. JSON batch
sub-requests are "evaluated individually against the applicable throttling limits"
(Combine multiple HTTP requests using JSON batching): each is charged like a request; the
`$batch` envelope itself is not an identity request and costs nothing.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

PAIR_LIMITS = {"S": 3_500, "M": 5_000, "L": 8_000}
PAIR_WINDOW = 10.0
APP_LIMIT = 150_000
APP_WINDOW = 20.0

# (method, path pattern) -> base cost; "{id}" matches one segment. GET rows and the POST rows
# of the documented table (the emulator serves only GET, but the costs are kept as published).
BASE_COSTS: dict[tuple[str, str], int] = {
    ("GET", "applications"): 2,
    ("GET", "applications/{id}/extensionProperties"): 2,
    ("GET", "contracts"): 3,
    ("POST", "directoryObjects/getByIds"): 5,
    ("GET", "domains/{id}/domainNameReferences"): 4,
    ("POST", "getObjectsById"): 5,
    ("GET", "groups/{id}/members"): 3,
    ("GET", "groups/{id}/transitiveMembers"): 5,
    ("POST", "isMemberOf"): 4,
    ("POST", "me/checkMemberGroups"): 4,
    ("POST", "me/checkMemberObjects"): 4,
    ("POST", "me/getMemberGroups"): 2,
    ("POST", "me/getMemberObjects"): 2,
    ("GET", "me/licenseDetails"): 2,
    ("GET", "me/memberOf"): 2,
    ("GET", "me/ownedObjects"): 2,
    ("GET", "me/transitiveMemberOf"): 2,
    ("GET", "oauth2PermissionGrants"): 2,
    ("GET", "oauth2PermissionGrants/{id}"): 2,
    ("GET", "servicePrincipals/{id}/appRoleAssignments"): 2,
    ("GET", "subscribedSkus"): 3,
    ("GET", "users"): 2,
}
_COSTS = {
    (method, tuple(part.lower() for part in path.split("/"))): cost
    for (method, path), cost in BASE_COSTS.items()
}


def tenant_size(user_count: int) -> str:
    """S under 50 users, M between 50 and 500, L above 500 (the limits table's note)."""
    if user_count < 50:
        return "S"
    return "M" if user_count <= 500 else "L"


def request_cost(method: str, path: list[str], options: Mapping[str, str]) -> int:
    """ResourceUnits of one request: `path` is the segments after `/v1.0`, `options` the
    system query options (lower-case names)."""
    parts = [p.lower() for p in path]
    if len(parts) >= 2 and parts[0] == "users":
        parts[:2] = ["me"]  # "applies to equivalent requests starting with users/{id}/"
    if len(parts) >= 3 and parts[-1].startswith(("microsoft.graph.", "graph.")):
        parts = parts[:-1]  # an OData cast on a relationship: the relationship's own cost
    cost = 1
    for (row_method, pattern), row_cost in _COSTS.items():
        if row_method == method.upper() and _matches(pattern, parts):
            cost = row_cost
            break
    if "$select" in options:
        cost -= 1
    if "$expand" in options:
        cost += 1
    top = options.get("$top")
    if top is not None and top.strip().isdigit() and int(top) < 20:
        cost -= 1
    return max(1, cost)


def _matches(pattern: tuple[str, ...], parts: list[str]) -> bool:
    if len(pattern) != len(parts):
        return False
    return all(p == "{id}" or p == s for p, s in zip(pattern, parts, strict=True))


@dataclass
class Charge:
    """What charging one request did: its cost, and if it was throttled, for how long."""

    cost: int
    retry_after: int | None = None
    scope: str = ""
    limit_percentage: float = 0.0


@dataclass
class _Bucket:
    window: float
    entries: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)
    total: int = 0

    def expire(self, now: float) -> None:
        while self.entries and self.entries[0][0] <= now - self.window:
            self.total -= self.entries.popleft()[1]

    def wait_until_fits(self, now: float, limit: int, cost: int) -> int:
        """Whole seconds until the bucket (already charged) holds room for `cost` again."""
        excess = self.total + cost - limit
        freed = 0
        for at, spent in self.entries:
            freed += spent
            if freed >= excess:
                return max(1, math.ceil(at + self.window - now))
        return max(1, math.ceil(self.window))


class ResourceUnitBudget:
    """The per app+tenant and per app buckets, plus running totals of what was spent.

    Off until `enabled`; costs are counted either way. `pair_limit` None: by tenant size.
    """

    def __init__(self) -> None:
        self.enabled = False
        self.pair_limit: int | None = None
        self.pair_window = PAIR_WINDOW
        self.app_limit = APP_LIMIT
        self.app_window = APP_WINDOW
        self.spent: collections.Counter[str] = collections.Counter()  # "app/tenant" -> RU
        self.throttled_cost: collections.Counter[str] = collections.Counter()
        self._pairs: dict[tuple[str, str], _Bucket] = {}
        self._apps: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def limit_for(self, user_count: int) -> int:
        return (
            self.pair_limit if self.pair_limit is not None else PAIR_LIMITS[tenant_size(user_count)]
        )

    def charge(
        self, *, app_id: str, tenant_id: str, user_count: int, cost: int, now: float
    ) -> Charge:
        key = f"{app_id}/{tenant_id}"
        if not self.enabled:
            with self._lock:
                self.spent[key] += cost
            return Charge(cost)
        limit = self.limit_for(user_count)
        with self._lock:
            pair = self._pairs.setdefault((app_id, tenant_id), _Bucket(self.pair_window))
            app = self._apps.setdefault(app_id, _Bucket(self.app_window))
            pair.window, app.window = self.pair_window, self.app_window
            pair.expire(now)
            app.expire(now)
            over_pair = pair.total + cost > limit
            over_app = app.total + cost > self.app_limit
            # Throttled or not, the request is logged against both buckets.
            for bucket in (pair, app):
                bucket.entries.append((now, cost))
                bucket.total += cost
            percentage = pair.total / limit
            if not (over_pair or over_app):
                self.spent[key] += cost
                return Charge(cost, limit_percentage=percentage)
            self.throttled_cost[key] += cost
            waits = []
            if over_pair:
                waits.append(pair.wait_until_fits(now, limit, cost))
            if over_app:
                waits.append(app.wait_until_fits(now, self.app_limit, cost))
            scope = (
                f"Tenant_Application/ReadWrite/{app_id}/{tenant_id}"
                if over_pair
                else f"Application/ReadWrite/{app_id}/{tenant_id}"
            )
            return Charge(cost, max(waits), scope, percentage)

    def reset(self) -> None:
        with self._lock:
            self._pairs.clear()
            self._apps.clear()
            self.spent.clear()
            self.throttled_cost.clear()
