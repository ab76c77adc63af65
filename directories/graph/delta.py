"""Folding the pages of a delta round (`/users/delta`, `/groups/delta`) into one change per id.

Microsoft's delta query pages say what this has to cope with:
- "Updated instances are represented by their id with *at least* the properties that have been
  updated", and a property that was never set is not sent at all: so a change carries only the
  properties Graph sent, and a missing one means "unknown", never "empty".
- Removed instances carry `@removed` (reason "changed": deleted but restorable; "deleted":
  gone for good); an item may appear several times in a round ("replays"), and a large group's
  `members@delta` is spread over several pages, the same group repeated on each.
So items are merged per id in page order: later pages win per property, the last word on
removal wins, and membership events per (group, member) keep only the last one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from .errors import GraphBadResponse
from .types import GroupChange, MemberKind, MemberRef, UserChange

# Graph's JSON name -> (GraphUser/GraphGroup field, the normalisation client._user/_group apply).
_Normalise = Callable[[Any], object]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


USER_PROPERTIES: dict[str, tuple[str, _Normalise]] = {
    "userPrincipalName": ("user_principal_name", lambda v: _text(v) or ""),
    "mail": ("mail", lambda v: _text(v) or None),
    "displayName": ("display_name", lambda v: _text(v) or ""),
    "givenName": ("given_name", _text),
    "surname": ("surname", _text),
    "accountEnabled": ("account_enabled", lambda v: v if isinstance(v, bool) else True),
    "userType": ("user_type", lambda v: _text(v) or "Member"),
}
GROUP_PROPERTIES: dict[str, tuple[str, _Normalise]] = {
    "displayName": ("display_name", lambda v: _text(v) or ""),
    "description": ("description", _text),
    "mail": ("mail", lambda v: _text(v) or None),
    "mailEnabled": ("mail_enabled", bool),
    "securityEnabled": ("security_enabled", bool),
    "groupTypes": (
        "group_types",
        lambda v: tuple(t for t in v if isinstance(t, str)) if isinstance(v, list) else (),
    ),
}
MEMBER_KINDS: dict[str, MemberKind] = {
    "#microsoft.graph.user": "user",
    "#microsoft.graph.group": "group",
}


def member_ref(item: Any, *, request_id: str | None = None) -> MemberRef:
    """A member from a members listing or `members@delta`: id and what `@odata.type` says."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        raise GraphBadResponse(
            "Microsoft Graph sent a group member without an id.", request_id=request_id
        )
    odata_type = item.get("@odata.type")
    if not isinstance(odata_type, str) or not odata_type:
        # Members are directoryObjects of several types; without the type a user could not
        # be told from a device, and silently skipping it would lose a membership.
        raise GraphBadResponse(
            f"Microsoft Graph sent group member {item['id']} without its @odata.type.",
            request_id=request_id,
        )
    # Interned: a large tenant lists each user id in many groups, and one copy will do.
    return MemberRef(id=sys.intern(item["id"]), kind=MEMBER_KINDS.get(odata_type, "other"))


def _item_id(item: Any, kind: str, request_id: str | None) -> str:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        raise GraphBadResponse(
            f"Microsoft Graph sent a {kind} without an id in a delta round.", request_id=request_id
        )
    return str(item["id"])


def _fields(item: dict[str, Any], properties: dict[str, tuple[str, _Normalise]]) -> dict[str, Any]:
    return {
        name: normalise(item[key]) for key, (name, normalise) in properties.items() if key in item
    }


class _Entry:
    __slots__ = ("fields", "members", "removed")

    def __init__(self) -> None:
        self.removed = False
        self.fields: dict[str, object] = {}
        self.members: dict[str, tuple[MemberRef | None, bool]] = {}  # id: (ref, removed)


class UserRound:
    """Collects the items of a `/users/delta` round, page by page."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def add(self, item: Any, request_id: str | None = None) -> None:
        user_id = _item_id(item, "user", request_id)
        entry = self._entries.setdefault(user_id, _Entry())
        if "@removed" in item:
            entry.removed = True
            entry.fields = {}
            return
        entry.removed = False
        entry.fields.update(_fields(item, USER_PROPERTIES))

    def changes(self) -> tuple[UserChange, ...]:
        return tuple(
            UserChange(id=user_id, removed=e.removed, fields=MappingProxyType(dict(e.fields)))
            for user_id, e in self._entries.items()
        )


class GroupRound:
    """Collects the items of a `/groups/delta` round with `members`, page by page."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def add(self, item: Any, request_id: str | None = None) -> None:
        group_id = _item_id(item, "group", request_id)
        entry = self._entries.setdefault(group_id, _Entry())
        if "@removed" in item:
            entry.removed = True
            entry.fields = {}
            entry.members = {}  # a deleted group's membership goes with it
            return
        entry.removed = False
        entry.fields.update(_fields(item, GROUP_PROPERTIES))
        members = item.get("members@delta", [])
        if not isinstance(members, list):
            raise GraphBadResponse(
                f"Microsoft Graph sent group {group_id} with members@delta that is not a list.",
                request_id=request_id,
            )
        for member in members:
            if isinstance(member, dict) and "@removed" in member:
                member_id = _item_id(member, "group member", request_id)
                entry.members[member_id] = (None, True)
            else:
                ref = member_ref(member, request_id=request_id)
                entry.members[ref.id] = (ref, False)

    def changes(self) -> tuple[GroupChange, ...]:
        out = []
        for group_id, e in self._entries.items():
            added = tuple(ref for ref, removed in e.members.values() if ref and not removed)
            gone = tuple(member_id for member_id, (_, removed) in e.members.items() if removed)
            out.append(
                GroupChange(
                    id=group_id,
                    removed=e.removed,
                    fields=MappingProxyType(dict(e.fields)),
                    members_added=added,
                    members_removed=gone,
                )
            )
        return tuple(out)
