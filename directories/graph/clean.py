"""What Graph sends, made storable: text cleaned and clipped, objects without a usable id skipped.

One bad object must not stop a directory forever: PostgreSQL refuses NUL in text and in jsonb,
a lone surrogate (JSON's "\\ud800") cannot be encoded at all, an id longer than the 64-character
column fails the insert, and a 5 MB description would be stored and shown whole. So every
object a sync reads (full listings, `$batch` member listings, delta rounds, `memberOf`) comes
through here, and what could not be kept as sent is summed up in the run's warnings: one
warning per kind of cleaning per run, however many objects it touched.

The rules:
- Text: C0 and C1 control characters (NUL among them) and lone surrogates are removed. In
  one-line properties (names, UPN, mail, ...) a tab or line break becomes a space, since it
  separated words; a description is free text that may run over several lines, and its tabs
  and line breaks are harmless in the database and in a page, so they are kept.
- Length: names, UPN and mail are clipped to the columns they are stored in (identities'
  SyncedUser/SyncedGroup, which `directories.sync.plan` clips to as well). Microsoft's group
  reference page gives no maximum for a description; we keep 1024 characters.
- Ids: an object whose id is missing, not a string, empty, longer than 64 characters or made of
  anything but letters, digits and `-`, `_`, `.`, `~` is skipped: not stored, not counted.
  Graph's object ids are GUIDs, but its own examples carry shorter ones and its assignment ids
  are base64url, so any URL-safe token is accepted, and nothing that is not one.
- Wrong types: a property that is not what Graph documents counts as not sent (a default),
  except `"true"`/`"false"` strings for a boolean, which mean what they say.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from .types import GraphGroup, GraphUser, MemberKind

ObjectKind = Literal["user", "group", "member", "membership", "assignment"]

ID_MAX_LENGTH = 64  # the entra_id columns
# The columns of identities.models (SyncedUser, SyncedGroup), which plan.py clips to as well.
NAME_MAX_LENGTH = 256
UPN_MAX_LENGTH = 320
MAIL_MAX_LENGTH = 320
PART_NAME_MAX_LENGTH = 128  # givenName, surname
USER_TYPE_MAX_LENGTH = 16
# Microsoft's "group resource type" documents no maximum for `description`: 1024 characters.
DESCRIPTION_MAX_LENGTH = 1024
# `groupTypes` holds a few short keywords ("Unified", "DynamicMembership").
GROUP_TYPE_MAX_LENGTH = 64
GROUP_TYPES_MAX = 16
SAMPLE_LENGTH = 32  # characters of a bad value quoted in a warning

_ID = re.compile(rf"[A-Za-z0-9._~-]{{1,{ID_MAX_LENGTH}}}")
# C0 and C1 controls, DEL, and lone surrogates (a valid pair is one character in Python).
_UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSTORABLE_IN_PROSE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_LINE_LAYOUT = re.compile("[\t\n\x0b\x0c\r\x85]")

_NOUNS: dict[str, tuple[str, str]] = {
    "user": ("user", "users"),
    "group": ("group", "groups"),
    "member": ("group member", "group members"),
    "membership": ("group membership", "group memberships"),
    "assignment": ("app role assignment", "app role assignments"),
}


def _noun(kind: str, count: int) -> str:
    singular, plural = _NOUNS[kind]
    return singular if count == 1 else plural


def escaped(value: Any) -> str:
    """A short, printable sample of a bad value for a warning: never the raw text."""
    if value is None:
        return "none"
    if isinstance(value, str):
        sample = ascii(value[:SAMPLE_LENGTH])
        return sample + ("…" if len(value) > SAMPLE_LENGTH else "")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return ascii(value)[:SAMPLE_LENGTH]
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else "a value"


def clean_text(value: str, limit: int, *, prose: bool = False) -> str:
    """Text as kept: its first `limit` characters, without control characters.

    Clipped before it is cleaned, so a 5 MB value costs no more than its first `limit`
    characters. `prose` (a description) keeps tabs and line breaks; elsewhere they become spaces.
    """
    text = value[:limit]
    unstorable = _UNSTORABLE_IN_PROSE if prose else _UNSTORABLE
    if unstorable.search(text) is None:
        return text
    if not prose:
        text = _LINE_LAYOUT.sub(" ", text)
    return unstorable.sub("", text)


def _listed(names: Iterable[str]) -> str:
    items = list(names)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass
class _Tally:
    """One kind of cleaning in one run: which objects, which properties, one example."""

    count: int = 0
    ids: set[str] = field(default_factory=set)  # a delta round may repeat an object
    properties: dict[str, int] = field(default_factory=dict)  # property -> limit (0: none)
    example: str = ""


class Cleaning:
    """What one run cleaned or skipped, kept as one live warning per kind in `warnings`.

    `warnings` is the client's `RequestStats.warnings`: each kind's sentence is written once
    and rewritten in place as its count grows. Thread-safe: `$batch` listings run in threads.
    """

    def __init__(self, warnings: list[str] | None = None) -> None:
        self.warnings: list[str] = [] if warnings is None else warnings
        self._lock = threading.Lock()
        self._tallies: dict[tuple[str, str], tuple[_Tally, int]] = {}

    # --- ids ------------------------------------------------------------------------------------

    def object_id(
        self, item: Any, kind: ObjectKind, *, within: str = "", request_id: str | None = None
    ) -> str | None:
        """The item's id if it can be stored; None, with a warning, when the item is skipped.

        `within` names where the item was (e.g. "the members of group X"), for the warning.
        """
        raw = item.get("id") if isinstance(item, dict) else item
        if isinstance(item, dict) and isinstance(raw, str) and _ID.fullmatch(raw):
            return sys.intern(raw)  # the same id comes back in member lists: one copy
        example = escaped(raw)
        if within:
            example += f" in {within}"
        if request_id:
            example += f" (request-id {escaped(request_id)})"
        self.record("skipped", kind, None, "", 0, example)
        return None

    # --- text -----------------------------------------------------------------------------------

    def text(
        self,
        value: Any,
        *,
        kind: ObjectKind,
        object_id: str,
        prop: str,
        limit: int,
        prose: bool = False,
    ) -> str | None:
        """A string property as kept (`clean_text`): None when Graph sent no string."""
        if not isinstance(value, str):
            return None
        head = value[:limit]
        text = clean_text(head, limit, prose=prose)
        if text != head:
            self.record("control", kind, object_id, prop, 0, object_id)
        if len(value) > limit:
            self.record("clipped", kind, object_id, prop, limit, object_id)
        return text

    # --- warnings -------------------------------------------------------------------------------

    def record(
        self,
        what: str,
        kind: ObjectKind,
        object_id: str | None,
        prop: str,
        limit: int,
        example: str,
    ) -> None:
        """Count one cleaning (`what`: "skipped", "control", "clipped") and rewrite its warning."""
        with self._lock:
            key = (what, kind)
            if key not in self._tallies:
                self._tallies[key] = (_Tally(example=example), len(self.warnings))
                self.warnings.append("")
            tally, index = self._tallies[key]
            if object_id is None:
                tally.count += 1
            elif object_id not in tally.ids:
                tally.ids.add(object_id)
                tally.count += 1
            if prop:
                tally.properties.setdefault(prop, limit)
            self.warnings[index] = _sentence(what, kind, tally)


def _sentence(what: str, kind: str, tally: _Tally) -> str:
    count, example = tally.count, tally.example
    if what == "skipped":
        if count == 1:
            return (
                f"Skipped a {_noun(kind, 1)} Graph sent with an invalid id ({example}): it was "
                "not stored."
            )
        return (
            f"Skipped {count} {_noun(kind, count)} Graph sent with invalid ids (missing, not a "
            f"string, empty, over {ID_MAX_LENGTH} characters or not an object id), e.g. "
            f"{example}: they were not stored."
        )
    if what == "control":
        return (
            f"{count} {_noun(kind, count)} had control characters removed from "
            f"{_listed(tally.properties)}, e.g. {kind} {example}."
        )
    clipped = (f"{prop} to {limit}" for prop, limit in tally.properties.items())
    return (
        f"{count} {_noun(kind, count)} had over-long text shortened ({_listed(clipped)} "
        f"characters), e.g. {kind} {example}."
    )


# --- Graph's properties -> GraphUser / GraphGroup fields ------------------------------------------

# (cleaning, object kind, object id, Graph's property name, value) -> the field's value
_Normalise = Callable[[Cleaning, ObjectKind, str, str, Any], object]


def _text_property(
    limit: int, *, default: str | None, empty_is_default: bool = False, prose: bool = False
) -> _Normalise:
    def normalise(
        cleaning: Cleaning, kind: ObjectKind, object_id: str, prop: str, v: Any
    ) -> object:
        text = cleaning.text(v, kind=kind, object_id=object_id, prop=prop, limit=limit, prose=prose)
        if text is None or (empty_is_default and not text):
            return default
        return text

    return normalise


def flag(value: Any, default: bool) -> bool:
    """A boolean property: JSON's true/false, or the strings "true"/"false"; else `default`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return default


def _flag_property(default: bool) -> _Normalise:
    def normalise(
        cleaning: Cleaning, kind: ObjectKind, object_id: str, prop: str, v: Any
    ) -> object:
        return flag(v, default)

    return normalise


def _group_types(cleaning: Cleaning, kind: ObjectKind, object_id: str, prop: str, v: Any) -> object:
    if not isinstance(v, list):
        return ()
    texts = [t for t in v if isinstance(t, str)]
    if len(texts) > GROUP_TYPES_MAX:
        texts = texts[:GROUP_TYPES_MAX]
        cleaning.record("clipped", kind, object_id, prop, GROUP_TYPES_MAX, object_id)
    limit = GROUP_TYPE_MAX_LENGTH
    cleaned = (
        cleaning.text(t, kind=kind, object_id=object_id, prop=prop, limit=limit) for t in texts
    )
    return tuple(t for t in cleaned if t is not None)


# Graph's JSON name -> (GraphUser/GraphGroup field, its normalisation): one table for a full
# read and a delta round, so both keep exactly the same values.
USER_PROPERTIES: dict[str, tuple[str, _Normalise]] = {
    "userPrincipalName": ("user_principal_name", _text_property(UPN_MAX_LENGTH, default="")),
    "mail": ("mail", _text_property(MAIL_MAX_LENGTH, default=None, empty_is_default=True)),
    "displayName": ("display_name", _text_property(NAME_MAX_LENGTH, default="")),
    "givenName": ("given_name", _text_property(PART_NAME_MAX_LENGTH, default=None)),
    "surname": ("surname", _text_property(PART_NAME_MAX_LENGTH, default=None)),
    "accountEnabled": ("account_enabled", _flag_property(True)),
    "userType": (
        "user_type",
        _text_property(USER_TYPE_MAX_LENGTH, default="Member", empty_is_default=True),
    ),
}
GROUP_PROPERTIES: dict[str, tuple[str, _Normalise]] = {
    "displayName": ("display_name", _text_property(NAME_MAX_LENGTH, default="")),
    "description": (
        "description",
        _text_property(DESCRIPTION_MAX_LENGTH, default=None, prose=True),
    ),
    "mail": ("mail", _text_property(MAIL_MAX_LENGTH, default=None, empty_is_default=True)),
    "mailEnabled": ("mail_enabled", _flag_property(False)),
    "securityEnabled": ("security_enabled", _flag_property(False)),
    "groupTypes": ("group_types", _group_types),
}
MEMBER_KINDS: dict[str, MemberKind] = {
    "#microsoft.graph.user": "user",
    "#microsoft.graph.group": "group",
}


def properties(
    item: dict[str, Any],
    table: dict[str, tuple[str, _Normalise]],
    cleaning: Cleaning,
    kind: ObjectKind,
    object_id: str,
    *,
    sent_only: bool = False,
) -> dict[str, Any]:
    """The fields of an object. `sent_only` (a delta item): only the properties Graph sent,
    since one it left out is unknown there, not empty."""
    return {
        name: normalise(cleaning, kind, object_id, key, item.get(key))
        for key, (name, normalise) in table.items()
        if not sent_only or key in item
    }


def parse_user(item: Any, cleaning: Cleaning, *, request_id: str | None = None) -> GraphUser | None:
    """A user of a listing as kept; None (skipped, with a warning) without a usable id."""
    user_id = cleaning.object_id(item, "user", request_id=request_id)
    if user_id is None:
        return None
    return GraphUser(id=user_id, **properties(item, USER_PROPERTIES, cleaning, "user", user_id))


def parse_group(
    item: Any, cleaning: Cleaning, *, request_id: str | None = None
) -> GraphGroup | None:
    """A group of a listing as kept; None (skipped, with a warning) without a usable id."""
    group_id = cleaning.object_id(item, "group", request_id=request_id)
    if group_id is None:
        return None
    return GraphGroup(
        id=group_id, **properties(item, GROUP_PROPERTIES, cleaning, "group", group_id)
    )
