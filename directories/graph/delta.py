"""Folding the pages of a delta round (`/users/delta`, `/groups/delta`) into one change per id.

Microsoft's delta query pages say what this has to cope with:
- "Updated instances are represented by their id with *at least* the properties that have been
  updated", and a property that was never set is not sent at all: so a change carries only the
  properties Graph sent, and a missing one means "unknown", never "empty".
- Removed instances carry `@removed` (reason "changed": deleted but restorable; "deleted":
  gone for good); an item may appear several times in a round ("replays"), and a large group's
  `members@delta` is spread over several pages, the same group repeated on each.
So items are merged per id in page order: later pages win per property, the last word on
removal wins, and membership events per (group, member) keep only the last one. Properties are
cleaned as a full read cleans them (`clean.py`); an item without a usable id is skipped.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from .clean import (
    GROUP_PROPERTIES,
    MEMBER_KINDS,
    USER_PROPERTIES,
    Cleaning,
    ObjectKind,
    properties,
)
from .errors import GraphBadResponse
from .types import GroupChange, MemberRef, UserChange


def member_ref(
    item: Any,
    cleaning: Cleaning,
    *,
    request_id: str | None = None,
    within: str = "",
    kind: ObjectKind = "member",
) -> MemberRef | None:
    """A member from a members listing, `memberOf` or `members@delta`: its id and kind.

    Without a usable id it is skipped (None, with a warning): it could never be stored, so no
    stored membership names it, while failing would stop the directory for as long as Graph
    sends it. Without `@odata.type` it fails the run instead (GraphBadResponse): its id is a
    real member's, a user could not be told from a device, and skipping it could silently
    drop a membership, and with it a user.
    """
    member_id = cleaning.object_id(item, kind, within=within, request_id=request_id)
    if member_id is None:
        return None
    odata_type = item.get("@odata.type")
    if not isinstance(odata_type, str) or not odata_type:
        raise GraphBadResponse(
            f"Microsoft Graph sent group member {member_id} without its @odata.type.",
            request_id=request_id,
        )
    return MemberRef(id=member_id, kind=MEMBER_KINDS.get(odata_type, "other"))


class _Entry:
    __slots__ = ("fields", "members", "removed")

    def __init__(self) -> None:
        self.removed = False
        self.fields: dict[str, object] = {}
        self.members: dict[str, tuple[MemberRef | None, bool]] = {}  # id: (ref, removed)


class UserRound:
    """Collects the items of a `/users/delta` round, page by page."""

    def __init__(self, cleaning: Cleaning | None = None) -> None:
        self._entries: dict[str, _Entry] = {}
        self._cleaning = cleaning or Cleaning()

    def add(self, item: Any, request_id: str | None = None) -> None:
        user_id = self._cleaning.object_id(item, "user", request_id=request_id)
        if user_id is None:
            return  # nothing stored can have this id: there is nothing to change or remove
        entry = self._entries.setdefault(user_id, _Entry())
        if "@removed" in item:
            entry.removed = True
            entry.fields = {}
            return
        entry.removed = False
        entry.fields.update(
            properties(item, USER_PROPERTIES, self._cleaning, "user", user_id, sent_only=True)
        )

    def changes(self) -> tuple[UserChange, ...]:
        return tuple(
            UserChange(id=user_id, removed=e.removed, fields=MappingProxyType(dict(e.fields)))
            for user_id, e in self._entries.items()
        )


class GroupRound:
    """Collects the items of a `/groups/delta` round with `members`, page by page."""

    def __init__(self, cleaning: Cleaning | None = None) -> None:
        self._entries: dict[str, _Entry] = {}
        self._cleaning = cleaning or Cleaning()

    def add(self, item: Any, request_id: str | None = None) -> None:
        cleaning = self._cleaning
        group_id = cleaning.object_id(item, "group", request_id=request_id)
        if group_id is None:
            return
        entry = self._entries.setdefault(group_id, _Entry())
        if "@removed" in item:
            entry.removed = True
            entry.fields = {}
            entry.members = {}  # a deleted group's membership goes with it
            return
        entry.removed = False
        entry.fields.update(
            properties(item, GROUP_PROPERTIES, cleaning, "group", group_id, sent_only=True)
        )
        members = item.get("members@delta", [])
        if not isinstance(members, list):
            # Not skipped: a delta round is read once, and its membership changes with it.
            raise GraphBadResponse(
                f"Microsoft Graph sent group {group_id} with members@delta that is not a list.",
                request_id=request_id,
            )
        within = f"the members of group {group_id}"
        for member in members:
            if isinstance(member, dict) and "@removed" in member:
                member_id = cleaning.object_id(
                    member, "member", within=within, request_id=request_id
                )
                if member_id is not None:
                    entry.members[member_id] = (None, True)
                continue
            ref = member_ref(member, cleaning, request_id=request_id, within=within)
            if ref is not None:
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
