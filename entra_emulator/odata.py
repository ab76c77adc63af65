"""Graph's JSON for the emulator's objects and Graph's query options, shared by the Graph
routes (`graph_api`), delta queries (`delta`) and JSON batching (`batch`): the error type,
property getters, `$select` renderers, `@odata.context`, and the parsed system query options.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from . import schema
from .messages import EmuRequest
from .tenant import ODATA_DEVICE, EmuGroup, EmuOther, EmuUser

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
UNSUPPORTED_OPTIONS = ("$orderby", "$expand", "$search", "$count", "$format", "$apply", "$compute")


class EmulatedGraphError(Exception):
    """A Graph error response: status, `error.code`, `error.message`, extra headers, and
    extra `innerError` members (the throttling page's 429 has `code`, `message`, `status`)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        inner: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.inner = inner or {}


def not_found(key: str) -> EmulatedGraphError:
    return EmulatedGraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def const_getter(value: Any) -> Callable[[Any], Any]:
    value = [] if value == () else value
    return lambda _obj: value


def user_proxy_addresses(user: EmuUser) -> list[str]:
    return [f"SMTP:{user.mail}"] if user.mail else []


USER_GETTERS: dict[str, Callable[[EmuUser], Any]] = {
    "id": lambda u: u.id,
    "userPrincipalName": lambda u: u.user_principal_name,
    "mail": lambda u: u.mail,
    "displayName": lambda u: u.display_name,
    "givenName": lambda u: u.given_name,
    "surname": lambda u: u.surname,
    "accountEnabled": lambda u: u.account_enabled,
    "userType": lambda u: u.user_type,
    "jobTitle": lambda u: u.job_title,
    "createdDateTime": lambda u: u.created_date_time,
    "mailNickname": lambda u: u.user_principal_name.split("@")[0],
    "proxyAddresses": user_proxy_addresses,
    "creationType": lambda u: "Invitation" if u.user_type == "Guest" else None,
    "externalUserState": lambda u: "Accepted" if u.user_type == "Guest" else None,
    "showInAddressList": lambda u: None,
}
GROUP_GETTERS: dict[str, Callable[[EmuGroup], Any]] = {
    "id": lambda g: g.id,
    "displayName": lambda g: g.display_name,
    "description": lambda g: g.description,
    "mail": lambda g: g.mail,
    "mailEnabled": lambda g: g.mail_enabled,
    "securityEnabled": lambda g: g.security_enabled,
    "groupTypes": lambda g: list(g.group_types),
    "mailNickname": lambda g: g.mail_nickname,
    "visibility": lambda g: g.visibility,
    "createdDateTime": lambda g: g.created_date_time,
    "renewedDateTime": lambda g: g.created_date_time,
    "proxyAddresses": lambda g: [f"SMTP:{g.mail}"] if g.mail else [],
    "isAssignableToRole": lambda g: None if g.is_unified else False,
    "securityIdentifier": lambda g: (
        "S-1-12-1-"
        + "-".join(
            str(int.from_bytes(uuid.UUID(g.id).bytes_le[i : i + 4], "little"))
            for i in (0, 4, 8, 12)
        )
        if GUID_RE.match(g.id)
        else None
    ),
}
OTHER_GETTERS: dict[str, Callable[[EmuOther], Any]] = {
    "id": lambda o: o.id,
    "displayName": lambda o: o.display_name,
    "accountEnabled": lambda o: True if o.odata_type == ODATA_DEVICE else None,
    "deviceId": lambda o: str(uuid.uuid5(uuid.NAMESPACE_OID, o.id)),
    "operatingSystem": lambda o: "Windows",
    "operatingSystemVersion": lambda o: "10.0.22631.3447",
    "trustType": lambda o: "AzureAd",
    "appId": lambda o: str(uuid.uuid5(uuid.NAMESPACE_URL, o.id)),
    "servicePrincipalType": lambda o: "Application",
    "appRoleAssignmentRequired": lambda o: False,
}


# --- query options ----------------------------------------------------------------------------


class QueryOptions:
    """The system query options of one request, validated the way Graph does."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs
        self.values: dict[str, str] = {}
        for name, value in pairs:
            if not name.startswith("$"):
                continue  # Graph ignores query parameters that are not OData options
            lowered = name.lower()
            if lowered in self.values:
                raise EmulatedGraphError(
                    400,
                    "BadRequest",
                    f"Query option '{name}' was specified more than once, but it must be "
                    "specified at most once.",
                )
            self.values[lowered] = value

    @classmethod
    def parse(cls, request: EmuRequest) -> QueryOptions:
        return cls(request.query)

    def only(self, *allowed: str) -> None:
        for name in self.values:
            if name in allowed:
                continue
            if name == "$skip":
                raise EmulatedGraphError(
                    400, "Request_BadRequest", "'$skip' is not supported by the service."
                )
            if name in UNSUPPORTED_OPTIONS or name in ("$filter", "$top", "$skiptoken", "$select"):
                raise EmulatedGraphError(
                    400,
                    "Request_UnsupportedQuery",
                    f"The query option '{name}' is not supported on this request by the emulator.",
                )
            raise EmulatedGraphError(
                400, "BadRequest", f"The query parameter '{name}' is not supported."
            )

    @property
    def skiptoken(self) -> str | None:
        return self.values.get("$skiptoken")

    @property
    def filter(self) -> str | None:
        return self.values.get("$filter")

    def top(self) -> int:
        raw = self.values.get("$top")
        if raw is None:
            return DEFAULT_PAGE_SIZE
        try:
            top = int(raw)
        except ValueError:
            top = -1
        if not 1 <= top <= MAX_PAGE_SIZE:
            raise EmulatedGraphError(
                400,
                "Request_BadRequest",
                f"Invalid page size specified: '{raw}'. Must be between 1 and {MAX_PAGE_SIZE} "
                "inclusive.",
            )
        return top

    def select(self, type_name: str) -> list[str] | None:
        """The selected property names (canonical case), or None for the default set."""
        raw = self.values.get("$select")
        if raw is None:
            return None
        known = (
            schema.DIRECTORY_OBJECT_SELECTABLE
            if type_name == "directoryObject"
            else schema.BY_TYPE[type_name]
        )
        canonical = {name.lower(): name for name in known}
        names: list[str] = []
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            if item == "*":
                names.extend(n for n in schema.BY_TYPE.get(type_name, known) if n not in names)
                continue
            name = canonical.get(item.lower())
            if name is None:
                raise EmulatedGraphError(
                    400,
                    "Request_BadRequest",
                    f"Could not find a property named '{item}' on type "
                    f"'microsoft.graph.{type_name}'.",
                )
            if name not in names:
                names.append(name)
        return names

    def digest(self) -> str:
        """What a skiptoken is bound to: every option but the skiptoken itself."""
        kept = sorted((k, v) for k, v in self.values.items() if k != "$skiptoken")
        return hashlib.sha256(repr(kept).encode()).hexdigest()[:16]


def part_name(part: str) -> str:
    return unquote_plus(part.partition("=")[0]).lower()


def segment_error(segment: str) -> EmulatedGraphError:
    return EmulatedGraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def renderer(
    type_name: str,
    select: Iterable[str] | None,
    getters: Mapping[str, Callable[[Any], Any]],
    *,
    odata_type: str | None = None,
    limited: bool = False,
) -> Callable[[Any], dict[str, Any]]:
    """A function object -> Graph JSON dict for one type and `$select`, built once per request."""
    table = schema.BY_TYPE[type_name]
    names = list(select) if select is not None else list(schema.DEFAULTS[type_name])
    if "id" not in names:
        names.append("id")  # Graph always returns the id of a directory object
    pairs: list[tuple[str, Callable[[Any], Any]]] = []
    for name in names:
        if name == "id" or not limited:
            getter = getters.get(name) or const_getter(table.get(name))
        else:
            getter = const_getter(None)  # hidden: shown as null
        pairs.append((name, getter))
    if odata_type is not None:  # members collections say what each object is
        return lambda obj: {"@odata.type": odata_type, **{n: g(obj) for n, g in pairs}}
    return lambda obj: {n: g(obj) for n, g in pairs}


def context(
    request: EmuRequest, entity_set: str, select: list[str] | None, *, entity: bool = False
) -> str:
    text = f"{request.base}/v1.0/$metadata#{entity_set}"
    if select is not None:
        text += f"({','.join(select)})"
    return text + ("/$entity" if entity else "")
