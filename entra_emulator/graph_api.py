"""Microsoft Graph v1.0, the read-only directory part, served from in-memory tenants.

What it follows (Microsoft's docs, and Graph's observed behaviour where the docs are silent):
- Bearer tokens from the shared `TokenStore`; 401 `InvalidAuthenticationToken` otherwise.
- `$select` (unknown property: 400), `$top` (default 100, 1..999 else 400), `@odata.nextLink`
  with an opaque, signed `$skiptoken`; `$filter` only as `property eq 'value'`.
- Graph's JSON names, default property sets, `@odata.context`, `@odata.type` on members,
  error bodies `{"error": {"code", "message", "innerError": {...}}}`, `request-id` headers.
- 429 `TooManyRequests` with `Retry-After` when a tenant exceeds its request budget
  (`throttle_limit`), or when an app+tenant pair exceeds its resource-unit budget (`ru`,
  module `throttling`, off unless `ru.enabled`; the units spent are counted either way).
- `/users/delta` and `/groups/delta` (module `delta`) and `POST /$batch` (module `batch`).

Tests steer it with `fail_next`, `malformed_next`, `page_without_value_next`, `delay_next`,
`disconnect_next`, `latency`, `throttle_limit`, `ru`, `delta`, `batch_seed`, and read
`requests_seen` (batch parts included) and `counters`: `requests` (HTTP requests),
`subrequests` (batch parts), `status.N` (HTTP responses), `batch.status.N` (parts),
`throttled` (every 429 for a spent budget, parts included), `ru.spent` and `ru.throttled`.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from . import schema
from .batch import parse_batch, run_batch
from .delta import DeltaQueries, is_delta_segment
from .messages import EmuRequest, EmuResponse, dump_json
from .odata import (
    GROUP_GETTERS,
    GUID_RE,
    OTHER_GETTERS,
    USER_GETTERS,
    EmulatedGraphError,
    not_found,
)
from .odata import QueryOptions as _Options
from .odata import const_getter as _const
from .odata import context as _context
from .odata import part_name as _part_name
from .odata import renderer as _renderer
from .odata import segment_error as _segment_error
from .tenant import (
    ODATA_DEVICE,
    ODATA_GROUP,
    ODATA_ORG_CONTACT,
    ODATA_SERVICE_PRINCIPAL,
    ODATA_USER,
    EmuAssignment,
    EmuGroup,
    EmuTenant,
    EmuUser,
)
from .throttling import ResourceUnitBudget, request_cost
from .tokens import TokenInfo, TokenStore

ALTERNATE_KEY_RE = re.compile(r"^servicePrincipals\(appId=(['\"]?)(.*)\1\)$", re.IGNORECASE)
FILTER_RE = re.compile(r"^\s*(\w+)\s+eq\s+('(?:[^']|'')*'|true|false|null)\s*$", re.IGNORECASE)

JSON_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)
ERROR_CONTENT_TYPE = "application/json"

# Application permissions that allow each area (least privileged first), per the v1.0 pages.
PERMISSIONS = {
    "users": ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All"),
    "groups": (
        "GroupMember.Read.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
    ),
    "servicePrincipals": (
        "Application.Read.All",
        "Application.ReadWrite.All",
        "Directory.Read.All",
    ),
    "organization": ("Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All"),
}
USER_READERS = frozenset(("User.Read.All", "User.ReadWrite.All", "Directory.Read.All"))
ALL_ROLES = tuple(sorted({p for perms in PERMISSIONS.values() for p in perms}))

# Status -> (code, message) for injected failures without a body of their own.
STATUS_ERRORS = {
    400: ("Request_BadRequest", "Bad request."),
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    404: ("Request_ResourceNotFound", "Resource not found."),
    429: ("TooManyRequests", "Please retry again later."),
    500: ("generalException", "An unspecified error has occurred."),
    502: ("UnknownError", ""),
    503: ("serviceNotAvailable", "The service is not available. Try the request again later."),
    504: ("UnknownError", ""),
}

CASTS = {
    "user": ("user", ODATA_USER),
    "group": ("group", ODATA_GROUP),
    "device": ("device", ODATA_DEVICE),
    "serviceprincipal": ("servicePrincipal", ODATA_SERVICE_PRINCIPAL),
    "orgcontact": ("orgContact", ODATA_ORG_CONTACT),
}
ENTITY_SETS = {
    "user": "users",
    "group": "groups",
    "device": "devices",
    "servicePrincipal": "servicePrincipals",
    "orgContact": "contacts",
}


@dataclass
class Fault:
    """One injected misbehaviour, used for the next `remaining` matching requests."""

    kind: str  # status | malformed | no_value | delay | disconnect
    remaining: int
    path_contains: str | None = None
    status: int = 0
    retry_after: int | None = None
    body: Any = None
    seconds: float = 0.0
    disconnect: str = "reset"

    def matches(self, request: EmuRequest) -> bool:
        if self.path_contains is None:
            return True
        return self.path_contains in request.url or self.path_contains in unquote(request.url)


@dataclass
class ServicePrincipal:
    id: str
    app_id: str
    display_name: str
    app_role_assignment_required: bool = False
    service_principal_type: str = "Application"
    app_owner_organization_id: str | None = None


SP_GETTERS: dict[str, Callable[[ServicePrincipal], Any]] = {
    "id": lambda s: s.id,
    "appId": lambda s: s.app_id,
    "displayName": lambda s: s.display_name,
    "appDisplayName": lambda s: s.display_name,
    "appRoleAssignmentRequired": lambda s: s.app_role_assignment_required,
    "servicePrincipalType": lambda s: s.service_principal_type,
    "appOwnerOrganizationId": lambda s: s.app_owner_organization_id,
    "accountEnabled": lambda s: True,
    "signInAudience": lambda s: "AzureADMultipleOrgs",
    "servicePrincipalNames": lambda s: [s.app_id],
    "tags": lambda s: ["WindowsAzureActiveDirectoryIntegratedApp"],
    "info": lambda s: dict.fromkeys(
        ("logoUrl", "marketingUrl", "privacyStatementUrl", "supportUrl", "termsOfServiceUrl")
    ),
}
ASSIGNMENT_GETTERS: dict[str, Callable[[EmuAssignment], Any]] = {
    "id": lambda a: a.id,
    "appRoleId": lambda a: a.app_role_id,
    "createdDateTime": lambda a: a.created,
    "principalDisplayName": lambda a: a.principal_display_name,
    "principalId": lambda a: a.principal_id,
    "principalType": lambda a: a.principal_type,
}


class GraphApi:
    """Graph v1.0 for several tenants; a token picks the tenant, as in Graph."""

    def __init__(
        self,
        *,
        tenants: Mapping[str, EmuTenant],
        tokens: TokenStore,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        throttle_limit: int | None = None,
        throttle_window: float = 10.0,
        skiptoken_lifetime: float | None = None,
    ) -> None:
        self.tenants = tenants
        self.tokens = tokens
        self.clock = clock
        self.sleep = sleep
        # At most `throttle_limit` requests per tenant per `throttle_window` seconds (None: any).
        self.throttle_limit = throttle_limit
        self.throttle_window = throttle_window
        self.skiptoken_lifetime = skiptoken_lifetime
        # Microsoft's table of advanced queries lists the OData cast on a relationship among
        # the queries that need `ConsistencyLevel: eventual` plus `$count=true` ("Advanced query
        # capabilities on Microsoft Entra ID objects"). Enforced by default; some tenants are
        # seen to answer without them, which `advanced_query_strict = False` imitates.
        self.advanced_query_strict = True
        self.latency = 0.0
        self.requests_seen: list[tuple[str, str]] = []
        self.counters: collections.Counter[str] = collections.Counter()
        self.faults: list[Fault] = []
        self._recent: dict[str, collections.deque[float]] = {}
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self.ru = ResourceUnitBudget()
        self.delta = DeltaQueries(key=self._key, clock=lambda: self.clock())
        self._batch_seed = 0
        self._batch_rng = random.Random(0)

    @property
    def batch_seed(self) -> int:
        """Seed of the order in which `$batch` answers come back (a new seed restarts it)."""
        return self._batch_seed

    @batch_seed.setter
    def batch_seed(self, value: int) -> None:
        self._batch_seed = value
        self._batch_rng = random.Random(value)

    # --- fault injection ----------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        count: int = 1,
        path_contains: str | None = None,
        retry_after: int | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next `count` matching requests with `status` (Graph's error body unless
        `body` is given: a dict is sent as JSON, str/bytes as they are)."""
        self._add(Fault("status", count, path_contains, status, retry_after, body))

    def malformed_next(self, count: int = 1, path_contains: str | None = None) -> None:
        """200 with a body that is not valid JSON (a truncated page)."""
        self._add(Fault("malformed", count, path_contains))

    def page_without_value_next(self, count: int = 1, path_contains: str | None = None) -> None:
        """200 with a JSON object that has no `value` list."""
        self._add(Fault("no_value", count, path_contains))

    def delay_next(self, seconds: float, count: int = 1, path_contains: str | None = None) -> None:
        """Sleep (through the injected `sleep`) before answering, then answer normally."""
        self._add(Fault("delay", count, path_contains, seconds=seconds))

    def disconnect_next(
        self, count: int = 1, path_contains: str | None = None, kind: str = "reset"
    ) -> None:
        """Drop the connection ("reset") or never answer ("timeout") instead of responding."""
        self._add(Fault("disconnect", count, path_contains, disconnect=kind))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def _take_faults(self, request: EmuRequest, kinds: tuple[str, ...]) -> list[Fault]:
        """Matching faults of these kinds: every delay, then at most one other; each used once."""
        taken: list[Fault] = []
        with self._lock:
            for fault in self.faults:
                if fault.remaining <= 0 or fault.kind not in kinds or not fault.matches(request):
                    continue
                if fault.kind == "delay" or not any(f.kind != "delay" for f in taken):
                    fault.remaining -= 1
                    taken.append(fault)
                    self.counters[f"fault.{fault.kind}"] += 1
            self.faults = [f for f in self.faults if f.remaining > 0]
        return taken

    # --- entry point --------------------------------------------------------------------------

    def handle(self, request: EmuRequest) -> EmuResponse:
        request_id = str(uuid.uuid4())
        client_request_id = request.header("client-request-id") or request_id
        with self._lock:
            self.requests_seen.append((request.method.upper(), request.url))
            self.counters["requests"] += 1
            priority = request.header("x-ms-throttle-priority")
            if priority:
                self.counters[f"priority.{priority.lower()}"] += 1
        if self.latency:
            self.sleep(self.latency)
        try:
            response = self._handle(request, request_id, client_request_id, part=False)
        except EmulatedGraphError as error:
            response = self._error_response(error, request_id, client_request_id)
        with self._lock:
            self.counters[f"status.{response.status}"] += 1
        return response

    def _handle_part(self, request: EmuRequest) -> EmuResponse:
        """One request of a JSON batch: like `handle`, without the network's latency."""
        request_id = str(uuid.uuid4())
        client_request_id = request.header("client-request-id") or request_id
        with self._lock:
            self.requests_seen.append((request.method.upper(), request.url))
            self.counters["subrequests"] += 1
        try:
            response = self._handle(request, request_id, client_request_id, part=True)
        except EmulatedGraphError as error:
            response = self._error_response(error, request_id, client_request_id)
        with self._lock:
            self.counters[f"batch.status.{response.status}"] += 1
        return response

    def _handle(
        self, request: EmuRequest, request_id: str, client_request_id: str, *, part: bool
    ) -> EmuResponse:
        for fault in self._take_faults(request, ("delay", "disconnect", "status")):
            if fault.kind == "delay":
                self.sleep(fault.seconds)
            elif fault.kind == "disconnect":
                return EmuResponse(0, {}, b"", disconnect=fault.disconnect)
            else:
                return self._injected_status(fault, request_id, client_request_id)

        segments = request.segments
        if len(segments) == 2 and segments[0] == "v1.0" and segments[1].lower() == "$batch":
            if part:
                raise EmulatedGraphError(
                    400, "BadRequest", "A batch request cannot contain another batch."
                )
            return self._batch(request, request_id, client_request_id)
        if request.method.upper() != "GET":
            raise EmulatedGraphError(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )
        token = self._authenticate(request)
        tenant = self.tenants[token.tenant_id.lower()]
        self._throttle(tenant.tenant_id)
        units = self._charge(request, tenant, token)
        try:
            body = self._route(request, tenant, token)
        except EmulatedGraphError as error:
            error.headers.update(units)
            raise
        # Content faults spoil only answers that would have succeeded.
        spoiled = self._take_faults(request, ("malformed", "no_value"))
        if spoiled and spoiled[0].kind == "malformed":
            raw = dump_json(body)
            payload = raw[: max(1, len(raw) // 2)]  # cut mid-document: not valid JSON
        else:
            if spoiled:
                body.pop("value", None)
            payload = dump_json(body)
        headers = self._headers(request_id, client_request_id)
        headers.update(units)
        return EmuResponse(200, headers, payload)

    def _batch(self, request: EmuRequest, request_id: str, client_request_id: str) -> EmuResponse:
        """`POST /v1.0/$batch` (module `batch`): 200 with every part's own answer."""
        if request.method.upper() != "POST":
            raise EmulatedGraphError(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )
        self._authenticate(request)
        parts = parse_batch(request)
        with self._lock:
            self.counters["batch.requests"] += 1
        result = run_batch(
            request,
            parts,
            serve=self._handle_part,
            error=lambda e: self._error_response(e, str(uuid.uuid4()), client_request_id),
            rng=self._batch_rng,
        )
        if result.disconnect:
            return EmuResponse(0, {}, b"", disconnect=result.disconnect)
        headers = self._headers(request_id, client_request_id)
        headers["Content-Type"] = "application/json; charset=utf-8"
        return EmuResponse(200, headers, dump_json(result.body))

    # --- auth and throttling ------------------------------------------------------------------

    def _authenticate(self, request: EmuRequest) -> TokenInfo:
        challenge = {
            "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com'
            '/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
        }
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise EmulatedGraphError(
                401, "InvalidAuthenticationToken", "Access token is empty.", challenge
            )
        info = self.tokens.lookup(token)
        if info is None:
            message = (
                "IDX14100: JWT is not well formed, there are no dots (.)."
                if "." not in token
                else "Access token validation failure. Invalid audience."
            )
            raise EmulatedGraphError(401, "InvalidAuthenticationToken", message, challenge)
        if self.tokens.is_expired(info):
            raise EmulatedGraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
                challenge,
            )
        if info.tenant_id.lower() not in self.tenants:
            raise EmulatedGraphError(
                401, "InvalidAuthenticationToken", "Access token validation failure.", challenge
            )
        return info

    def _throttle(self, tenant_id: str) -> None:
        if self.throttle_limit is None:
            return
        now = self.clock()
        with self._lock:
            recent = self._recent.setdefault(tenant_id, collections.deque())
            while recent and recent[0] <= now - self.throttle_window:
                recent.popleft()
            if len(recent) >= self.throttle_limit:
                self.counters["throttled"] += 1
                wait = max(1, math.ceil(recent[0] + self.throttle_window - now))
                raise EmulatedGraphError(
                    429,
                    "TooManyRequests",
                    "Please retry again later.",
                    {"Retry-After": str(wait)},
                )
            recent.append(now)

    def _charge(self, request: EmuRequest, tenant: EmuTenant, token: TokenInfo) -> dict[str, str]:
        """Charge the request's resource units; 429 when its budget is spent. Returns the
        headers that report the cost ("Identity and access service limits")."""
        options = {name.lower(): value for name, value in request.query if name.startswith("$")}
        cost = request_cost(request.method, request.segments[1:], options)
        charge = self.ru.charge(
            app_id=token.client_id,
            tenant_id=tenant.tenant_id.lower(),
            user_count=len(tenant.users),
            cost=cost,
            now=self.clock(),
        )
        headers = {"x-ms-resource-unit": str(cost)}
        if charge.limit_percentage >= 0.8:
            headers["x-ms-throttle-limit-percentage"] = f"{min(charge.limit_percentage, 1.8):.1f}"
        with self._lock:
            if charge.retry_after is None:
                self.counters["ru.spent"] += cost
                return headers
            self.counters["ru.throttled"] += cost
            self.counters["throttled"] += 1
        headers.update(
            {
                "Retry-After": str(charge.retry_after),
                "x-ms-throttle-scope": charge.scope,
                "x-ms-throttle-information": "ResourceUnitLimitExceeded",
            }
        )
        raise EmulatedGraphError(
            429,
            "TooManyRequests",
            "Please retry again later.",
            headers,
            {"code": "429", "message": "Please retry after", "status": "429"},
        )

    @staticmethod
    def _require(token: TokenInfo, area: str) -> None:
        if not set(PERMISSIONS[area]) & set(token.roles):
            raise EmulatedGraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )

    # --- routing ------------------------------------------------------------------------------

    def _route(self, request: EmuRequest, tenant: EmuTenant, token: TokenInfo) -> dict[str, Any]:
        segments = request.segments
        if not segments or segments[0] != "v1.0":
            version = segments[0] if segments else ""
            raise EmulatedGraphError(400, "BadRequest", f"Invalid version: {version}")
        rest = segments[1:]
        if not rest:
            raise EmulatedGraphError(400, "BadRequest", "Resource not found for the segment ''.")
        head, tail = rest[0], rest[1:]
        options = _Options.parse(request)
        if head == "organization":
            self._require(token, "organization")
            return self._organization(request, tenant, options, tail)
        if head == "users":
            self._require(token, "users")
            if not tail:
                return self._collection(request, tenant, options, "user", tuple(tenant.users))
            if len(tail) == 1 and is_delta_segment(tail[0]):
                return self.delta.serve(request, tenant, "users", options)
            if len(tail) == 1:
                user = tenant.user_by_key(tail[0])
                if user is None:
                    raise not_found(tail[0])
                return self._entity(request, options, "user", user)
            if tail[1] in ("memberOf", "transitiveMemberOf") and len(tail) <= 3:
                user = tenant.user_by_key(tail[0])
                if user is None:
                    raise not_found(tail[0])
                cast = tail[2] if len(tail) == 3 else None
                return self._member_of(request, tenant, options, user, tail[1], cast)
            raise _segment_error(tail[1])
        if head == "groups":
            self._require(token, "groups")
            if not tail:
                return self._collection(request, tenant, options, "group", tuple(tenant.groups))
            if len(tail) == 1 and is_delta_segment(tail[0]):
                return self.delta.serve(request, tenant, "groups", options)
            group = self._group(tenant, tail[0])
            if len(tail) == 1:
                return self._entity(request, options, "group", group)
            if tail[1] in ("members", "transitiveMembers") and len(tail) <= 3:
                cast = tail[2] if len(tail) == 3 else None
                return self._members(request, tenant, token, options, group, tail[1], cast)
            raise _segment_error(tail[-1])
        if head == "servicePrincipals":
            self._require(token, "servicePrincipals")
            if not tail:
                principals = self._service_principals(tenant)
                return self._sp_collection(request, tenant, options, principals)
            return self._service_principal_path(request, tenant, options, self._sp_by_id, tail)
        match = ALTERNATE_KEY_RE.match(head)
        if match:
            self._require(token, "servicePrincipals")
            app_id = match.group(2)
            return self._service_principal_path(
                request, tenant, options, self._sp_by_app_id, [app_id, *tail]
            )
        raise _segment_error(head)

    # --- organization -------------------------------------------------------------------------

    def _organization(
        self, request: EmuRequest, tenant: EmuTenant, options: _Options, tail: list[str]
    ) -> dict[str, Any]:
        domains = [
            {
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": name == tenant.default_domain,
                "isInitial": name == tenant.default_domain,
                "name": name,
                "type": "Managed",
            }
            for name in tenant.verified_domains()
        ]
        org = {
            "id": tenant.tenant_id,
            "deletedDateTime": None,
            "businessPhones": [],
            "city": None,
            "country": None,
            "countryLetterCode": "US",
            "createdDateTime": tenant.created_date_time,
            "defaultUsageLocation": None,
            "displayName": tenant.display_name,
            "marketingNotificationEmails": [],
            "onPremisesLastSyncDateTime": None,
            "onPremisesSyncEnabled": None,
            "postalCode": None,
            "preferredLanguage": "en",
            "securityComplianceNotificationMails": [],
            "securityComplianceNotificationPhones": [],
            "state": None,
            "street": None,
            "technicalNotificationMails": [f"admin@{tenant.default_domain}"],
            "tenantType": "AAD",
            "assignedPlans": [],
            "provisionedPlans": [],
            "verifiedDomains": domains,
        }
        options.only("$select", "$top", "$skiptoken")
        select = options.select("organization")
        getters = {name: (lambda o, n=name: o[n]) for name in org}
        render = _renderer("organization", select, getters)
        if tail:
            if len(tail) > 1:
                raise _segment_error(tail[1])
            if tail[0].lower() != tenant.tenant_id.lower():
                raise not_found(tail[0])
            return {
                "@odata.context": _context(request, "organization", select, entity=True)
            } | render(org)
        return {"@odata.context": _context(request, "organization", select), "value": [render(org)]}

    # --- users and groups ---------------------------------------------------------------------

    @staticmethod
    def _group(tenant: EmuTenant, key: str) -> EmuGroup:
        if not GUID_RE.match(key):
            raise EmulatedGraphError(
                400, "Request_BadRequest", f"Invalid object identifier '{key}'."
            )
        group = tenant.groups.get(key) or tenant.groups.get(key.lower())
        if group is None:
            raise not_found(key)
        return group

    def _entity(
        self, request: EmuRequest, options: _Options, type_name: str, obj: Any
    ) -> dict[str, Any]:
        options.only("$select", "$top", "$skiptoken", "$filter")
        select = options.select(type_name)
        getters = USER_GETTERS if type_name == "user" else GROUP_GETTERS
        context = _context(request, ENTITY_SETS[type_name], select, entity=True)
        return {"@odata.context": context} | _renderer(type_name, select, getters)(obj)

    def _collection(
        self,
        request: EmuRequest,
        tenant: EmuTenant,
        options: _Options,
        type_name: str,
        ids: Sequence[str],
    ) -> dict[str, Any]:
        options.only("$select", "$top", "$skiptoken", "$filter")
        select = options.select(type_name)
        objects: Mapping[str, Any] = tenant.users if type_name == "user" else tenant.groups
        getters = USER_GETTERS if type_name == "user" else GROUP_GETTERS
        if options.filter is not None:
            ids = _filtered(ids, objects, type_name, options.filter, getters)
        render = _renderer(type_name, select, getters)

        def render_id(object_id: str) -> dict[str, Any] | None:
            obj = objects.get(object_id)
            return None if obj is None else render(obj)

        context = _context(request, ENTITY_SETS[type_name], select)
        return self._page(request, tenant, options, context, ids, lambda i: i, render_id)

    def _members(
        self,
        request: EmuRequest,
        tenant: EmuTenant,
        token: TokenInfo,
        options: _Options,
        group: EmuGroup,
        relation: str,
        cast_segment: str | None,
    ) -> dict[str, Any]:
        options.only("$select", "$top", "$skiptoken", "$count")
        transitive = relation == "transitiveMembers"
        cast: tuple[str, str] | None = None
        self._advanced_query(request, options, cast=cast_segment is not None)
        if cast_segment is not None:
            name = cast_segment.lower().removeprefix("microsoft.").removeprefix("graph.")
            if not cast_segment.lower().startswith(("microsoft.graph.", "graph.")):
                raise _segment_error(cast_segment)
            cast = CASTS.get(name)
            if cast is None:
                raise _segment_error(cast_segment)
            if cast[0] == "group" and group.is_unified:
                # Observed: Graph refuses a group cast on Microsoft 365 groups, which cannot
                # hold groups (microsoftgraph/microsoft-graph-docs issue 19672).
                raise EmulatedGraphError(400, "Request_UnsupportedQuery", "Invalid search request.")
        type_name = cast[0] if cast else "directoryObject"
        select = options.select(type_name)
        if cast is None:
            ids = tenant.members_of(group.id, transitive=transitive)
        elif cast[0] in ("user", "group"):
            ids = tenant.members_of(group.id, transitive=transitive, kind=cast[0])  # type: ignore[arg-type]
        else:
            others = tenant.members_of(group.id, transitive=transitive, kind="other")
            ids = tuple(i for i in others if tenant.others[i].odata_type == cast[1])

        can_read_users = bool(USER_READERS & set(token.roles))
        renderers: dict[str, Callable[[Any], dict[str, Any]]] = {}

        def renderer_for(kind: str) -> Callable[[Any], dict[str, Any]]:
            if kind not in renderers:
                by_kind: dict[str, Mapping[str, Callable[[Any], Any]]] = {
                    "user": USER_GETTERS,
                    "group": GROUP_GETTERS,
                    "servicePrincipal": {**OTHER_GETTERS, "accountEnabled": lambda o: True},
                }
                getters = by_kind.get(kind, OTHER_GETTERS)
                table = kind if kind in schema.BY_TYPE else "directoryObject"
                typed_select = select
                if select is not None and cast is None:
                    typed_select = [n for n in select if n in schema.BY_TYPE[table]]
                # "Limited information returned for inaccessible member objects": without a
                # user-reading permission, users show only their type and id.
                limited = kind == "user" and not can_read_users
                renderers[kind] = _renderer(
                    table,
                    typed_select,
                    getters,
                    odata_type=f"#microsoft.graph.{kind}",
                    limited=limited,
                )
            return renderers[kind]

        def render_id(object_id: str) -> dict[str, Any] | None:
            user = tenant.users.get(object_id)
            if user is not None:
                return renderer_for("user")(user)
            nested = tenant.groups.get(object_id)
            if nested is not None:
                return renderer_for("group")(nested)
            other = tenant.others.get(object_id)
            if other is not None:
                return renderer_for(other.odata_type.removeprefix("#microsoft.graph."))(other)
            return None

        entity_set = ENTITY_SETS[cast[0]] if cast else "directoryObjects"
        context = _context(request, entity_set, select)
        return self._page(request, tenant, options, context, ids, lambda i: i, render_id)

    def _member_of(
        self,
        request: EmuRequest,
        tenant: EmuTenant,
        options: _Options,
        user: EmuUser,
        relation: str,
        cast_segment: str | None,
    ) -> dict[str, Any]:
        """`/users/{id}/memberOf` and `/transitiveMemberOf`: the groups a user is in.

        Tenants store group -> members; the reverse comes from the tenant's cached index.
        """
        options.only("$select", "$top", "$skiptoken", "$count")
        self._advanced_query(request, options, cast=cast_segment is not None)
        if cast_segment is not None:
            name = cast_segment.lower().removeprefix("microsoft.").removeprefix("graph.")
            if not cast_segment.lower().startswith(("microsoft.graph.", "graph.")):
                raise _segment_error(cast_segment)
            if name not in CASTS:
                raise _segment_error(cast_segment)
            if CASTS[name][0] != "group":
                # Only groups are modelled as containers: any other cast is a valid, empty list.
                select = options.select(CASTS[name][0])
                context = _context(request, ENTITY_SETS[CASTS[name][0]], select)
                return self._page(
                    request, tenant, options, context, (), lambda i: i, lambda i: None
                )
        transitive = relation == "transitiveMemberOf"
        ids = tenant.groups_containing(user.id, transitive=transitive)
        if cast_segment is not None:
            select = options.select("group")
            typed_select = select
        else:
            select = options.select("directoryObject")
            typed_select = (
                None if select is None else [n for n in select if n in schema.BY_TYPE["group"]]
            )
        render = _renderer("group", typed_select, GROUP_GETTERS, odata_type=ODATA_GROUP)

        def render_id(group_id: str) -> dict[str, Any] | None:
            group = tenant.groups.get(group_id)
            return None if group is None else render(group)

        entity_set = "groups" if cast_segment is not None else "directoryObjects"
        context = _context(request, entity_set, select)
        return self._page(request, tenant, options, context, ids, lambda i: i, render_id)

    # --- service principals and assignments ---------------------------------------------------

    @staticmethod
    def _service_principals(tenant: EmuTenant) -> list[ServicePrincipal]:
        principals = []
        if tenant.auth_sp_id and tenant.auth_app_id:
            principals.append(
                ServicePrincipal(
                    id=tenant.auth_sp_id,
                    app_id=tenant.auth_app_id,
                    display_name=tenant.auth_app_display_name,
                    app_role_assignment_required=tenant.auth_app_role_assignment_required,
                    app_owner_organization_id=tenant.tenant_id,
                )
            )
        for other in tenant.others.values():
            if other.odata_type == ODATA_SERVICE_PRINCIPAL:
                principals.append(
                    ServicePrincipal(
                        id=other.id,
                        app_id=OTHER_GETTERS["appId"](other),
                        display_name=other.display_name,
                        app_owner_organization_id=tenant.tenant_id,
                    )
                )
        return principals

    def _sp_by_id(self, tenant: EmuTenant, key: str) -> ServicePrincipal:
        if not GUID_RE.match(key):
            raise EmulatedGraphError(
                400, "Request_BadRequest", f"Invalid object identifier '{key}'."
            )
        for principal in self._service_principals(tenant):
            if principal.id.lower() == key.lower():
                return principal
        raise not_found(key)

    def _sp_by_app_id(self, tenant: EmuTenant, app_id: str) -> ServicePrincipal:
        for principal in self._service_principals(tenant):
            if principal.app_id.lower() == app_id.lower():
                return principal
        raise not_found(app_id)

    def _service_principal_path(
        self,
        request: EmuRequest,
        tenant: EmuTenant,
        options: _Options,
        find: Callable[[EmuTenant, str], ServicePrincipal],
        tail: list[str],
    ) -> dict[str, Any]:
        principal = find(tenant, tail[0])
        if len(tail) == 1:
            options.only("$select", "$top", "$skiptoken", "$filter")
            select = options.select("servicePrincipal")
            context = _context(request, "servicePrincipals", select, entity=True)
            return {"@odata.context": context} | _renderer("servicePrincipal", select, SP_GETTERS)(
                principal
            )
        if tail[1] != "appRoleAssignedTo" or len(tail) > 2:
            raise _segment_error(tail[1] if tail[1] != "appRoleAssignedTo" else tail[2])
        options.only("$select", "$top", "$skiptoken")
        select = options.select("appRoleAssignment")
        getters = {
            **ASSIGNMENT_GETTERS,
            "resourceDisplayName": lambda a: principal.display_name,
            "resourceId": lambda a: principal.id,
        }
        render = _renderer("appRoleAssignment", select, getters)
        assignments = tenant.assignments if principal.id == tenant.auth_sp_id else []
        # A soft-deleted principal's assignments come back with it; meanwhile they are hidden.
        assignments = [a for a in assignments if not tenant.is_deleted(a.principal_id)]
        by_id = {a.id: a for a in assignments}

        def render_id(assignment_id: str) -> dict[str, Any] | None:
            found = by_id.get(assignment_id)
            return None if found is None else render(found)

        context = _context(
            request, f"servicePrincipals('{principal.id}')/appRoleAssignedTo", select
        )
        ids = tuple(by_id)
        return self._page(request, tenant, options, context, ids, lambda i: i, render_id)

    def _sp_collection(
        self,
        request: EmuRequest,
        tenant: EmuTenant,
        options: _Options,
        principals: list[ServicePrincipal],
    ) -> dict[str, Any]:
        options.only("$select", "$top", "$skiptoken", "$filter")
        select = options.select("servicePrincipal")
        by_id = {p.id: p for p in principals}
        ids: Sequence[str] = tuple(by_id)
        if options.filter is not None:
            ids = _filtered(ids, by_id, "servicePrincipal", options.filter, SP_GETTERS)
        render = _renderer("servicePrincipal", select, SP_GETTERS)

        def render_id(object_id: str) -> dict[str, Any] | None:
            return render(by_id[object_id]) if object_id in by_id else None

        context = _context(request, "servicePrincipals", select)
        return self._page(request, tenant, options, context, ids, lambda i: i, render_id)

    # --- paging -------------------------------------------------------------------------------

    def _advanced_query(self, request: EmuRequest, options: _Options, *, cast: bool) -> None:
        """Refuse what Graph refuses about advanced queries (see `advanced_query_strict`).

        An OData cast on a relationship needs `ConsistencyLevel: eventual` and `$count=true`;
        `$count` on directory objects needs the header too.
        """
        count = options.values.get("$count")
        if count is not None and count.lower() not in ("true", "false"):
            raise EmulatedGraphError(
                400, "Request_BadRequest", f"Invalid value '{count}' for query option '$count'."
            )
        if not self.advanced_query_strict:
            return
        eventual = (request.header("ConsistencyLevel") or "").strip().lower() == "eventual"
        counted = (count or "").lower() == "true"
        if cast and not (eventual and counted):
            raise EmulatedGraphError(
                400,
                "Request_UnsupportedQuery",
                "Unsupported Query. An OData cast on a directory object relationship is an "
                "advanced query: it needs the ConsistencyLevel header set to 'eventual' and "
                "$count=true.",
            )
        if counted and not eventual:
            raise EmulatedGraphError(
                400,
                "Request_BadRequest",
                "$count is not currently supported without the ConsistencyLevel header set to "
                "'eventual'.",
            )

    def _page(
        self,
        request: EmuRequest,
        tenant: EmuTenant,
        options: _Options,
        context: str,
        items: Sequence[str],
        key: Callable[[str], str],
        render: Callable[[str], dict[str, Any] | None],
    ) -> dict[str, Any]:
        top = options.top()
        route = "/".join(request.segments).lower()
        digest = options.digest()
        start = 0
        if options.skiptoken is not None:
            start = self._read_skiptoken(options.skiptoken, tenant, route, digest, items, key)
        chunk = items[start : start + top]
        value = [obj for obj in map(render, chunk) if obj is not None]
        body: dict[str, Any] = {"@odata.context": context}
        if (options.values.get("$count") or "").lower() == "true":
            body["@odata.count"] = len(items)
        end = start + len(chunk)
        if end < len(items):
            token = self._write_skiptoken(tenant, route, digest, end, key(items[end - 1]))
            kept = [p for p in request.raw_query_parts if _part_name(p) != "$skiptoken"]
            query = "&".join([*kept, f"$skiptoken={token}"])
            body["@odata.nextLink"] = f"{request.base}{request.raw_path}?{query}"
        body["value"] = value
        return body

    def _write_skiptoken(
        self, tenant: EmuTenant, route: str, digest: str, offset: int, last: str
    ) -> str:
        payload = json.dumps(
            {
                "t": tenant.tenant_id,
                "r": route,
                "q": digest,
                "o": offset,
                "l": last,
                "at": round(self.clock(), 3),
            },
            separators=(",", ":"),
        ).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")

    def _read_skiptoken(
        self,
        token: str,
        tenant: EmuTenant,
        route: str,
        digest: str,
        items: Sequence[str],
        key: Callable[[str], str],
    ) -> int:
        invalid = EmulatedGraphError(
            400, "Request_BadRequest", "The specified page token value is invalid."
        )
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raise invalid from None
        payload, mac = raw[:-16], raw[-16:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        if len(raw) <= 16 or not hmac.compare_digest(mac, expected):
            raise invalid
        state = json.loads(payload)
        if (state["t"], state["r"], state["q"]) != (tenant.tenant_id, route, digest):
            raise invalid  # a token from another query, tenant or collection
        if (
            self.skiptoken_lifetime is not None
            and self.clock() - state["at"] > self.skiptoken_lifetime
        ):
            raise EmulatedGraphError(
                400,
                "Directory_ExpiredPageToken",
                "The specified page token value has expired and can no longer be included in "
                "your request.",
            )
        offset, last = int(state["o"]), state["l"]
        # Resume after the last object served, even if objects were added or removed meanwhile.
        if 0 < offset <= len(items) and key(items[offset - 1]) == last:
            return offset
        for index, item in enumerate(items):
            if key(item) == last:
                return index + 1
        return min(offset, len(items))

    # --- responses ----------------------------------------------------------------------------

    @staticmethod
    def _headers(request_id: str, client_request_id: str) -> dict[str, str]:
        return {
            "Content-Type": JSON_CONTENT_TYPE,
            "request-id": request_id,
            "client-request-id": client_request_id,
            "OData-Version": "4.0",
            "x-ms-ags-diagnostic": json.dumps(
                {"ServerInfo": {"DataCenter": "Emulator", "Slice": "E", "Ring": "1"}}
            ),
        }

    def _error_body(
        self,
        code: str,
        message: str,
        request_id: str,
        client_request_id: str,
        inner: Mapping[str, str] | None = None,
    ) -> bytes:
        return dump_json(
            {
                "error": {
                    "code": code,
                    "message": message,
                    "innerError": {
                        "date": dt.datetime.fromtimestamp(self.clock(), dt.UTC).strftime(
                            "%Y-%m-%dT%H:%M:%S"
                        ),
                        "request-id": request_id,
                        "client-request-id": client_request_id,
                        **(inner or {}),
                    },
                }
            }
        )

    def _error_response(
        self, error: EmulatedGraphError, request_id: str, client_request_id: str
    ) -> EmuResponse:
        headers = self._headers(request_id, client_request_id)
        headers["Content-Type"] = ERROR_CONTENT_TYPE
        headers.update(error.headers)
        body = self._error_body(
            error.code, error.message, request_id, client_request_id, error.inner
        )
        return EmuResponse(error.status, headers, body)

    def _injected_status(
        self, fault: Fault, request_id: str, client_request_id: str
    ) -> EmuResponse:
        code, message = STATUS_ERRORS.get(fault.status, ("UnknownError", ""))
        headers = self._headers(request_id, client_request_id)
        headers["Content-Type"] = ERROR_CONTENT_TYPE
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if fault.body is None:
            body = self._error_body(code, message, request_id, client_request_id)
        elif isinstance(fault.body, bytes):
            body = fault.body
        elif isinstance(fault.body, str):
            body = fault.body.encode()
        else:
            body = dump_json(fault.body)
        return EmuResponse(fault.status, headers, body)


# --- query options ----------------------------------------------------------------------------


def _filtered(
    ids: Sequence[str],
    objects: Mapping[str, Any],
    type_name: str,
    expression: str,
    getters: Mapping[str, Callable[[Any], Any]],
) -> tuple[str, ...]:
    """`$filter=property eq 'value'` (case-insensitive for strings, as in the directory)."""
    match = FILTER_RE.match(expression)
    canonical = {name.lower(): name for name in schema.BY_TYPE[type_name]}
    if match is None:
        words = re.findall(r"[A-Za-z]\w*", expression)
        prop = words[0] if words else expression
        raise EmulatedGraphError(
            400,
            "Request_UnsupportedQuery",
            f"Unsupported or invalid query filter clause specified for property '{prop}' of "
            f"resource '{type_name[0].upper() + type_name[1:]}'.",
        )
    prop = canonical.get(match.group(1).lower())
    if prop is None:
        raise EmulatedGraphError(
            400,
            "Request_BadRequest",
            f"Could not find a property named '{match.group(1)}' on type "
            f"'microsoft.graph.{type_name}'.",
        )
    literal = match.group(2)
    wanted: Any
    if literal.lower() in ("true", "false"):
        wanted = literal.lower() == "true"
    elif literal.lower() == "null":
        wanted = None
    else:
        wanted = literal[1:-1].replace("''", "'").lower()
    getter = getters.get(prop) or _const(schema.BY_TYPE[type_name][prop])

    def keep(object_id: str) -> bool:
        obj = objects.get(object_id)
        if obj is None:
            return False
        value = getter(obj)
        return bool((value.lower() if isinstance(value, str) else value) == wanted)

    return tuple(i for i in ids if keep(i))
