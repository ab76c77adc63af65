"""Delta queries: `GET /users/delta` and `GET /groups/delta` (Graph v1.0), from a tenant's change
log (`EmuTenant.changes`).

What it follows:
- "user: delta" and "group: delta" (graph/api/user-delta, graph/api/group-delta): `$select`
  (the id is always returned; `members` on groups gives `members@delta`, included by default
  when there is no `$select`), `$filter=id eq '...' or ...` (at most 50 objects),
  `$deltatoken` / `$skiptoken`, `Prefer: return=minimal` (changed properties only).
- "Use delta query to track changes in Microsoft Graph data" (graph/delta-query-overview):
  opaque state tokens that encode the query parameters; `$expand`, `$top` and `$orderby` are
  not supported for users and groups; `$select` with `$skiptoken` is not supported, `$select`
  with a deltaLink changes what is tracked; `$deltatoken=latest` gives an empty page and a
  deltaLink ("sync from now"); a page never has both links; `@removed` with reason `changed`
  (restorable from deleted items) or `deleted` (gone, or deleted from deleted items), also in
  the initial round; restored objects show up as newly created; updated objects carry at least
  the changed properties; the same object may appear more than once and replays happen;
  a change to a property that is not selected does not make the object appear.
  "Synchronization reset": `410 Gone` with a `Location` header holding the initial query with an
  empty `$deltatoken` (error code `resyncRequired`, "The delta token is no longer valid, and the
  app must reset the sync state", from "Microsoft Graph error responses"). "Token duration":
  seven days for directory objects, then "a 40X-series error with error codes such as
  syncStateNotFound"; the Microsoft 365 Developer Blog post "Duration of change tracking tokens
  for identity and education resources" (July 2020) names it: a BadRequest (400) with code
  `syncStateNotFound` and the message used below. `expire()` can use 410 instead.
- "Get incremental changes for groups" (graph/delta-query-groups): a group's `members@delta`
  holds `@odata.type` and `id` of each member, a removed member carries `@removed`
  (`reason: deleted`); a group without members has no `members@delta`; a large group's members
  are split over several pages, the same group (same properties) coming back on the next
  page; soft-deleted users keep their memberships (nothing in members@delta until they are
  permanently deleted); a deleted Microsoft 365 group is `@removed` `changed`, a deleted
  security group `deleted`.
- "Get incremental changes for users" (graph/delta-query-users): a deleted user is `@removed`
  `changed`, a permanently deleted one `deleted`; created and restored users have no
  annotation.
- user: delta, "Default: return the same properties as initial delta request": a property
  that "has never been set before" is left out. The emulator cannot tell "never set" from
  "cleared", so null properties are left out unless they changed (to null) in the round.

Page sizes are server-chosen (`DeltaSettings`); a round's later pages and the next round's
deltaLink start from the log position where the round began, so a change made during a round
is replayed in the next one rather than lost.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from . import schema
from .messages import EmuRequest
from .odata import (
    GROUP_GETTERS,
    USER_GETTERS,
    EmulatedGraphError,
    QueryOptions,
    const_getter,
    context,
)
from .tenant import Change, EmuTenant

DELTA_SEGMENTS = frozenset(("delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"))
DELTA_OPTIONS = frozenset(("$select", "$filter", "$deltatoken", "$skiptoken"))
MAX_FILTERED_OBJECTS = 50
SEVEN_DAYS = 7 * 24 * 3600.0
# Relationships `$select` may name on delta ("$select also supports manager and members
# navigation properties"; group: delta: "any group relationship of type directoryObject
# collection"). Only members are modelled: the others are accepted and never change.
RELATIONSHIPS = {"users": ("manager",), "groups": ("members", "owners")}
SYNC_STATE_NOT_FOUND = (
    "The sync state generation is not found. The delta token is expired and data must be "
    "synchronized again."
)
_FILTER_TERM = re.compile(r"^\s*id\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def is_delta_segment(segment: str) -> bool:
    """`delta`, or the fully qualified `microsoft.graph.delta` the SDKs send (with or
    without `()`)."""
    return segment.lower() in DELTA_SEGMENTS


@dataclass
class DeltaSettings:
    """Server-chosen paging ("The number of objects in each page can vary") and token life."""

    user_page_size: int = 200
    group_page_size: int = 100
    # members@delta entries in one page, over all its groups: a bigger group is split.
    member_page_size: int = 1000
    token_lifetime: float = SEVEN_DAYS


@dataclass
class _Query:
    """What a round tracks: decoded from the first request, then carried in its tokens."""

    select: list[str] | None  # structural properties; None: the default set, all tracked
    members: bool  # groups: members@delta wanted
    ids: list[str] | None  # $filter=id eq ... (None: every object)

    def tracked(self, props: Iterable[str]) -> bool:
        """Does a change of these properties make the object show up?"""
        if self.select is None:
            return True
        return not set(props).isdisjoint(self.select)


@dataclass
class _Fold:
    """Everything one object went through in a round's slice of the change log."""

    created: bool = False  # created or restored, and still there at the end of the slice
    props: set[str] = field(default_factory=set)
    members: dict[str, tuple[str, str | None]] = field(default_factory=dict)


class _Members:
    """A group's members@delta entries, built only for the slice a page shows."""

    def __init__(
        self,
        ids: Sequence[str] = (),
        type_of: Callable[[str], str | None] | None = None,
        entries: list[dict[str, Any]] | None = None,
    ) -> None:
        self._ids = ids
        self._type_of = type_of
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries) if self._entries is not None else len(self._ids)

    def slice(self, start: int, stop: int) -> list[dict[str, Any]]:
        if self._entries is not None:
            return self._entries[start:stop]
        assert self._type_of is not None
        out = []
        for member_id in self._ids[start:stop]:
            odata_type = self._type_of(member_id)
            if odata_type is not None:
                out.append({"@odata.type": odata_type, "id": member_id})
        return out


class DeltaQueries:
    """Serves delta rounds for every tenant; `GraphApi.delta` is the instance in use."""

    def __init__(self, *, key: bytes, clock: Callable[[], float]) -> None:
        self.settings = DeltaSettings()
        self.clock = clock
        self._key = hashlib.sha256(key + b"delta").digest()
        self._serial = 0
        self._lock = threading.Lock()
        # tenant id -> (last serial it applies to, status) / last serial reset.
        self._expired: dict[str, tuple[int, int]] = {}
        self._reset: dict[str, int] = {}

    # --- controls -----------------------------------------------------------------------------

    def expire(self, tenant_id: str, *, status: int = 400) -> None:
        """Every state token issued so far for this tenant has expired: `syncStateNotFound`."""
        with self._lock:
            self._expired[tenant_id.lower()] = (self._serial, status)

    def reset(self, tenant_id: str) -> None:
        """Graph asks for a full resync of this tenant: 410 Gone with a Location header."""
        with self._lock:
            self._reset[tenant_id.lower()] = self._serial

    # --- entry point --------------------------------------------------------------------------

    def serve(
        self, request: EmuRequest, tenant: EmuTenant, collection: str, options: QueryOptions
    ) -> dict[str, Any]:
        values = options.values
        for name in values:
            if name not in DELTA_OPTIONS:
                raise EmulatedGraphError(
                    400,
                    "Request_UnsupportedQuery",
                    f"The query option '{name}' is not supported with delta queries.",
                )
        skiptoken, deltatoken = values.get("$skiptoken"), values.get("$deltatoken")
        if skiptoken is not None and deltatoken is not None:
            raise EmulatedGraphError(
                400, "Request_BadRequest", "Specify either $skiptoken or $deltatoken, not both."
            )
        if skiptoken is not None and ("$select" in values or "$filter" in values):
            raise EmulatedGraphError(
                400,
                "Request_UnsupportedQuery",
                "Delta queries with both $select and $skiptoken aren't supported.",
            )
        resumed = bool(deltatoken) and deltatoken != "latest"
        if resumed and "$filter" in values:
            raise EmulatedGraphError(
                400,
                "Request_UnsupportedQuery",
                "Query parameters other than $select must be given in the initial delta request.",
            )
        minimal = "return=minimal" in (request.header("Prefer") or "").replace(" ", "").lower()
        if skiptoken is not None:
            state = self._read(skiptoken, request, tenant, collection, "s")
            query = _Query(state["s"], state["m"], state["f"])
            position = (int(state["o"]), state["l"], int(state["mo"]))
            if state["p"] == "i":
                return self._initial(request, tenant, collection, query, int(state["b"]), position)
            since, until = int(state["b"]), int(state["u"])
            return self._changes(
                request, tenant, collection, query, since, until, position, minimal
            )
        if resumed:
            assert deltatoken is not None
            state = self._read(deltatoken, request, tenant, collection, "d")
            query = _Query(state["s"], state["m"], state["f"])
            if "$select" in values:  # "customers can change the properties they want to track"
                query.select, query.members = self._select(options, collection)
            since = int(state["b"])
            return self._changes(
                request, tenant, collection, query, since, tenant.change_seq, (0, None, 0), minimal
            )
        select, members = self._select(options, collection)
        query = _Query(select, members, self._filter(options, collection))
        if deltatoken == "latest":
            body: dict[str, Any] = {"@odata.context": self._context(request, collection, query)}
            token = self._write("d", tenant, collection, query, b=tenant.change_seq)
            body["@odata.deltaLink"] = self._link(request, collection, "$deltatoken", token)
            body["value"] = []
            return body
        return self._initial(request, tenant, collection, query, tenant.change_seq, (0, None, 0))

    # --- the initial round: every object as it is now -----------------------------------------

    def _initial(
        self,
        request: EmuRequest,
        tenant: EmuTenant,
        collection: str,
        query: _Query,
        snapshot: int,
        position: tuple[int, str | None, int],
    ) -> dict[str, Any]:
        items: Sequence[str] = tenant.ids_with_deleted("user" if collection == "users" else "group")
        if query.ids is not None:
            wanted = set(query.ids)
            items = tuple(i for i in items if i in wanted)
        render = self._renderer(collection, query)
        present: Mapping[str, Any] = tenant.users if collection == "users" else tenant.groups

        def item(object_id: str) -> tuple[dict[str, Any] | None, _Members | None]:
            obj = present.get(object_id)
            if obj is None:
                # Soft deleted: "a deleted directory object that can still be restored from
                # deleted items shows up as @removed: changed", initial round included.
                if tenant.is_deleted(object_id):
                    return _removed(object_id, "changed"), None
                return None, None
            entry = render(obj, set(), False)
            if collection == "groups" and query.members:
                ids = tenant.members_of(object_id, transitive=False)
                return entry, _Members(ids, tenant.odata_type_of)
            return entry, None

        return self._page(
            request, tenant, collection, query, items, item, position, ("i", snapshot, 0)
        )

    # --- later rounds: what the change log says since the token's position -------------------

    def _changes(
        self,
        request: EmuRequest,
        tenant: EmuTenant,
        collection: str,
        query: _Query,
        since: int,
        until: int,
        position: tuple[int, str | None, int],
        minimal: bool,
    ) -> dict[str, Any]:
        folds = _fold(tenant.changes[since:until], collection)
        if query.ids is not None:
            wanted = set(query.ids)
            folds = {k: v for k, v in folds.items() if k in wanted}
        items = tuple(folds)
        render = self._renderer(collection, query)
        present: Mapping[str, Any] = tenant.users if collection == "users" else tenant.groups

        def item(object_id: str) -> tuple[dict[str, Any] | None, _Members | None]:
            fold = folds[object_id]
            obj = present.get(object_id)
            if obj is None:
                reason = "changed" if tenant.is_deleted(object_id) else "deleted"
                return _removed(object_id, reason), None
            if fold.created:  # new, or restored: "show up as newly created instances"
                entry = render(obj, set(), False)
                if collection == "groups" and query.members:
                    ids = tenant.members_of(object_id, transitive=False)
                    return entry, _Members(ids, tenant.odata_type_of)
                return entry, None
            member_changes = fold.members if collection == "groups" and query.members else {}
            if not member_changes and not (fold.props and query.tracked(fold.props)):
                return None, None  # only properties nobody selected changed
            entry = render(obj, fold.props, minimal)
            if not member_changes:
                return entry, None
            entries = []
            for member_id, (op, odata_type) in member_changes.items():
                change: dict[str, Any] = {
                    "@odata.type": odata_type or "#microsoft.graph.directoryObject",
                    "id": member_id,
                }
                if op == "removed":
                    change["@removed"] = {"reason": "deleted"}
                entries.append(change)
            return entry, _Members(entries=entries)

        return self._page(
            request, tenant, collection, query, items, item, position, ("c", since, until)
        )

    # --- paging -------------------------------------------------------------------------------

    def _page(
        self,
        request: EmuRequest,
        tenant: EmuTenant,
        collection: str,
        query: _Query,
        items: Sequence[str],
        item: Callable[[str], tuple[dict[str, Any] | None, _Members | None]],
        position: tuple[int, str | None, int],
        round_state: tuple[str, int, int],
    ) -> dict[str, Any]:
        settings = self.settings
        index, expected, member_offset = position
        if expected is not None and not (index < len(items) and items[index] == expected):
            # Objects came or went since the last page: find where we were.
            try:
                index = items.index(expected)
            except ValueError:
                index, member_offset = min(index, len(items)), 0
        page_size = settings.user_page_size if collection == "users" else settings.group_page_size
        value: list[dict[str, Any]] = []
        members_used = 0
        while index < len(items) and len(value) < page_size:
            entry, members = item(items[index])
            if entry is None:
                index, member_offset = index + 1, 0
                continue
            if members is None:
                value.append(entry)
                index, member_offset = index + 1, 0
                continue
            remaining = max(0, len(members) - member_offset)  # members may have left meanwhile
            room = settings.member_page_size - members_used
            if remaining <= room:
                if remaining > 0:
                    entry["members@delta"] = members.slice(member_offset, len(members))
                value.append(entry)
                members_used += remaining
                index, member_offset = index + 1, 0
                continue
            if room <= 0 and value:
                break
            room = max(room, 1)
            # "Microsoft Graph may return a response that contains just one group object, with
            # a large list of members": the group comes back on the next page with the rest.
            entry["members@delta"] = members.slice(member_offset, member_offset + room)
            value.append(entry)
            member_offset += room
            break
        body: dict[str, Any] = {"@odata.context": self._context(request, collection, query)}
        phase, base, until = round_state
        if index < len(items):
            token = self._write(
                "s",
                tenant,
                collection,
                query,
                p=phase,
                b=base,
                u=until,
                o=index,
                l=items[index],
                mo=member_offset,
            )
            body["@odata.nextLink"] = self._link(request, collection, "$skiptoken", token)
        else:
            # The next round starts where this one started: changes made while it was read
            # are replayed ("Your application must be prepared for replays").
            next_base = base if phase == "i" else until
            token = self._write("d", tenant, collection, query, b=next_base)
            body["@odata.deltaLink"] = self._link(request, collection, "$deltatoken", token)
        body["value"] = value
        return body

    # --- rendering ----------------------------------------------------------------------------

    def _renderer(
        self, collection: str, query: _Query
    ) -> Callable[[Any, set[str], bool], dict[str, Any]]:
        type_name = "user" if collection == "users" else "group"
        getters: Mapping[str, Callable[[Any], Any]] = (
            USER_GETTERS if collection == "users" else GROUP_GETTERS
        )
        table = schema.BY_TYPE[type_name]
        names = list(query.select) if query.select is not None else list(schema.DEFAULTS[type_name])
        if "id" in names:
            names.remove("id")
        pairs = [(n, getters.get(n) or const_getter(table.get(n))) for n in names]

        def render(obj: Any, changed: set[str], minimal: bool) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, getter in pairs:
                if minimal and name not in changed:
                    continue
                value = getter(obj)
                if value is None and name not in changed:
                    continue  # "never been set": not included at all
                out[name] = value
            out["id"] = obj.id
            return out

        return render

    @staticmethod
    def _context(request: EmuRequest, collection: str, query: _Query) -> str:
        return context(request, collection, query.select or None)

    def _select(self, options: QueryOptions, collection: str) -> tuple[list[str] | None, bool]:
        """(structural properties or None, members@delta wanted)."""
        raw = options.values.get("$select")
        if raw is None:
            return None, collection == "groups"
        relationships = {r.lower() for r in RELATIONSHIPS[collection]}
        names = [n.strip() for n in raw.split(",") if n.strip()]
        rest = [n for n in names if n.lower() not in relationships]
        members = collection == "groups" and any(n.lower() == "members" for n in names)
        type_name = "user" if collection == "users" else "group"
        select = QueryOptions([("$select", ",".join(rest))]).select(type_name) or []
        return select, members

    @staticmethod
    def _filter(options: QueryOptions, collection: str) -> list[str] | None:
        raw = options.values.get("$filter")
        if raw is None:
            return None
        ids = []
        for term in re.split(r"\s+or\s+", raw.strip(), flags=re.IGNORECASE):
            match = _FILTER_TERM.match(term)
            if match is None:
                resource = "User" if collection == "users" else "Group"
                raise EmulatedGraphError(
                    400,
                    "Request_UnsupportedQuery",
                    "Unsupported or invalid query filter clause specified for property 'id' of "
                    f"resource '{resource}'. Delta queries filter only by object id.",
                )
            ids.append(match.group(1).lower())
        if len(ids) > MAX_FILTERED_OBJECTS:
            raise EmulatedGraphError(
                400,
                "Request_UnsupportedQuery",
                f"A delta query can filter at most {MAX_FILTERED_OBJECTS} objects.",
            )
        return ids

    @staticmethod
    def _link(request: EmuRequest, collection: str, name: str, token: str) -> str:
        return f"{request.base}/v1.0/{collection}/delta?{name}={token}"

    # --- state tokens -------------------------------------------------------------------------

    def _write(
        self, kind: str, tenant: EmuTenant, collection: str, query: _Query, **state: Any
    ) -> str:
        with self._lock:
            self._serial += 1
            serial = self._serial
        payload = json.dumps(
            {
                "k": kind,
                "t": tenant.tenant_id.lower(),
                "g": tenant.log_id,
                "c": collection,
                "s": query.select,
                "m": query.members,
                "f": query.ids,
                "n": serial,
                "at": round(self.clock(), 3),
                **state,
            },
            separators=(",", ":"),
        ).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")

    def _read(
        self, token: str, request: EmuRequest, tenant: EmuTenant, collection: str, kind: str
    ) -> dict[str, Any]:
        name = "$skiptoken" if kind == "s" else "$deltatoken"
        invalid = EmulatedGraphError(
            400, "Request_BadRequest", f"The specified {name} value is invalid."
        )
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raise invalid from None
        payload, mac = raw[:-16], raw[-16:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        if len(raw) <= 16 or not hmac.compare_digest(mac, expected):
            raise invalid
        state: dict[str, Any] = json.loads(payload)
        if (state["k"], state["t"], state["c"]) != (kind, tenant.tenant_id.lower(), collection):
            raise invalid  # another collection's or tenant's token, or a deltatoken as skiptoken
        serial = int(state["n"])
        reset = self._reset.get(state["t"])
        if state["g"] != tenant.log_id or (reset is not None and serial <= reset):
            query = _Query(state["s"], state["m"], state["f"])
            raise EmulatedGraphError(
                410,
                "resyncRequired",
                "The delta token is no longer valid, and the app must reset the sync state.",
                {"Location": self._restart_url(request, collection, query)},
            )
        expired = self._expired.get(state["t"])
        if expired is not None and serial <= expired[0]:
            raise EmulatedGraphError(expired[1], "syncStateNotFound", SYNC_STATE_NOT_FOUND)
        if self.clock() - float(state["at"]) > self.settings.token_lifetime:
            raise EmulatedGraphError(400, "syncStateNotFound", SYNC_STATE_NOT_FOUND)
        return state

    @staticmethod
    def _restart_url(request: EmuRequest, collection: str, query: _Query) -> str:
        """ "A request URL with an empty $deltatoken (same as the initial query)"."""
        parts = []
        if query.select is not None:
            names = [*(query.select or []), *(["members"] if query.members else [])]
            parts.append("$select=" + quote(",".join(names or ["id"]), safe=","))
        if query.ids is not None:
            expression = " or ".join(f"id eq '{i}'" for i in query.ids)
            parts.append("$filter=" + quote(expression, safe="'"))
        parts.append("$deltatoken=")
        return f"{request.base}/v1.0/{collection}/delta?{'&'.join(parts)}"


def _removed(object_id: str, reason: str) -> dict[str, Any]:
    return {"id": object_id, "@removed": {"reason": reason}}


def _fold(changes: Sequence[Change], collection: str) -> dict[str, _Fold]:
    """Per object, in order of first change: what happened to it in this slice of the log."""
    wanted = ("user",) if collection == "users" else ("group", "member")
    folds: dict[str, _Fold] = {}
    for change in changes:
        if change.kind not in wanted:
            continue
        fold = folds.get(change.object_id)
        if fold is None:
            fold = folds[change.object_id] = _Fold()
        if change.kind == "member":
            assert change.member_id is not None
            fold.members.pop(change.member_id, None)  # the latest change of a member wins
            fold.members[change.member_id] = (change.op, change.member_type)
        elif change.op == "created":
            fold.created = True
        elif change.op == "updated":
            fold.props.update(change.props)
        elif change.op == "removed":
            fold.created = False  # rendered from the current state: @removed with its reason
    return folds
