"""Export a directory's present users, groups and memberships (JSON or CSV).

The one module that writes CSV: every cell goes through `csv_cell` (a test enforces it).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TextIO, TypeVar

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

from directories.models import Directory

from .models import Membership, SyncedGroup, SyncedUser

# The CSV's columns: the user properties we keep, in Graph's names, then the user's groups.
# Listed here, not derived from the Graph client's $select, so a new Graph field never
# changes (or breaks) the export by accident.
CSV_COLUMNS = [
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "givenName",
    "surname",
    "accountEnabled",
    "userType",
    "groups",
]


def directory_export_data(*, directory: Directory) -> dict[str, Any]:
    """Present objects only, keyed by Entra object ids, in Graph's property names."""
    members_by_group: dict[str, list[str]] = defaultdict(list)
    groups_by_user: dict[str, list[str]] = defaultdict(list)
    for group_id, user_id in (
        Membership.objects.present()
        .filter(directory=directory, user__removed_at__isnull=True, group__removed_at__isnull=True)
        .order_by("group__entra_id", "user__entra_id")
        .values_list("group__entra_id", "user__entra_id")
    ):
        members_by_group[group_id].append(user_id)
        groups_by_user[user_id].append(group_id)
    users = [
        {
            "id": u["entra_id"],
            "userPrincipalName": u["user_principal_name"],
            "mail": u["mail"] or None,
            "displayName": u["display_name"],
            "givenName": u["given_name"] or None,
            "surname": u["surname"] or None,
            "accountEnabled": u["account_enabled"],
            "userType": u["user_type"],
            "groups": groups_by_user.get(u["entra_id"], []),
        }
        for u in SyncedUser.objects.present()
        .filter(directory=directory)
        .order_by("user_principal_name", "entra_id")
        .values()
    ]
    groups = [
        {
            "id": g["entra_id"],
            "displayName": g["display_name"],
            "description": g["description"] or None,
            "mail": g["mail"] or None,
            "members": members_by_group.get(g["entra_id"], []),
        }
        for g in SyncedGroup.objects.present()
        .filter(directory=directory)
        .order_by("display_name", "entra_id")
        .values()
    ]
    return {"users": users, "groups": groups}


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A value as a CSV cell that no spreadsheet executes: a leading formula sign is quoted."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def write_users_csv(data: dict[str, Any], stream: TextIO) -> None:
    """One row per user; `groups` holds the object ids of its groups, separated by ';'.

    Names come from Entra ID, where anyone who may edit a profile can type `=HYPERLINK(…)`:
    every cell goes through `csv_cell`. Rows end in CRLF (RFC 4180), because the csv module
    quotes only the line breaks its terminator holds: with "\n" alone, a cell holding "\r"
    went out unquoted and a spreadsheet split the row there.
    """
    writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for user in data["users"]:
        row = {key: user.get(key) for key in CSV_COLUMNS}
        row["accountEnabled"] = "true" if user["accountEnabled"] else "false"
        row["groups"] = ";".join(user["groups"])
        writer.writerow({key: csv_cell(value) for key, value in row.items()})


# --- streamed exports from the admin --------------------------------------------------------
#
# The admin exports whatever a changelist selects (selected rows, or all matching its filters)
# and may be asked for a directory of 100,000 users or millions of memberships: rows are read
# with `.iterator(chunk_size=…)` and written out as they come, never held in memory at once.

# Rows per database round trip; a user chunk's groups are read in one query per chunk.
EXPORT_CHUNK_SIZE = 1000

USER_EXPORT_COLUMNS = [
    "directory",
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "givenName",
    "surname",
    "accountEnabled",
    "userType",
    "firstSyncedAt",
    "removedAt",
    "groupIds",
    "groupNames",
]
GROUP_EXPORT_COLUMNS = [
    "directory",
    "id",
    "displayName",
    "description",
    "mail",
    "mailEnabled",
    "securityEnabled",
    "groupTypes",
    "firstSyncedAt",
    "removedAt",
]
MEMBERSHIP_EXPORT_COLUMNS = [
    "directory",
    "groupId",
    "groupName",
    "userId",
    "userPrincipalName",
    "userDisplayName",
    "firstSyncedAt",
    "removedAt",
]


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


_T = TypeVar("_T")


def _chunks(rows: Iterator[_T], size: int) -> Iterator[list[_T]]:
    while chunk := list(islice(rows, size)):
        yield chunk


def _present_groups_of(user_pks: list[int]) -> dict[int, list[dict[str, str]]]:
    """The present groups of these users, by user pk: one query for a whole chunk of users."""
    groups: dict[int, list[dict[str, str]]] = defaultdict(list)
    for user_pk, group_id, group_name in (
        Membership.objects.present()
        .filter(user_id__in=user_pks, group__removed_at__isnull=True)
        .order_by("group__display_name", "group__entra_id")
        .values_list("user_id", "group__entra_id", "group__display_name")
    ):
        groups[user_pk].append({"id": group_id, "displayName": group_name})
    return groups


def users_export_rows(*, users: QuerySet[SyncedUser]) -> Iterator[dict[str, Any]]:
    """One dict per user, with its present groups as ids and names (a row per user is what a
    reviewer reads; memberships_export_rows has one row per user and group)."""
    size = EXPORT_CHUNK_SIZE
    values = users.values(
        "pk",
        "directory__name",
        "entra_id",
        "user_principal_name",
        "mail",
        "display_name",
        "given_name",
        "surname",
        "account_enabled",
        "user_type",
        "first_synced_at",
        "removed_at",
    ).iterator(chunk_size=size)
    for chunk in _chunks(values, size):
        groups = _present_groups_of([u["pk"] for u in chunk])
        for u in chunk:
            yield {
                "directory": u["directory__name"],
                "id": u["entra_id"],
                "userPrincipalName": u["user_principal_name"],
                "mail": u["mail"] or None,
                "displayName": u["display_name"],
                "givenName": u["given_name"] or None,
                "surname": u["surname"] or None,
                "accountEnabled": u["account_enabled"],
                "userType": u["user_type"],
                "firstSyncedAt": _moment(u["first_synced_at"]),
                "removedAt": _moment(u["removed_at"]),
                "groups": groups.get(u["pk"], []),
            }


def groups_export_rows(*, groups: QuerySet[SyncedGroup]) -> Iterator[dict[str, Any]]:
    """One dict per group; its members are in the memberships export."""
    values = groups.values(
        "directory__name",
        "entra_id",
        "display_name",
        "description",
        "mail",
        "mail_enabled",
        "security_enabled",
        "group_types",
        "first_synced_at",
        "removed_at",
    ).iterator(chunk_size=EXPORT_CHUNK_SIZE)
    for g in values:
        yield {
            "directory": g["directory__name"],
            "id": g["entra_id"],
            "displayName": g["display_name"],
            "description": g["description"] or None,
            "mail": g["mail"] or None,
            "mailEnabled": g["mail_enabled"],
            "securityEnabled": g["security_enabled"],
            "groupTypes": g["group_types"] or [],
            "firstSyncedAt": _moment(g["first_synced_at"]),
            "removedAt": _moment(g["removed_at"]),
        }


def memberships_export_rows(*, memberships: QuerySet[Membership]) -> Iterator[dict[str, Any]]:
    """One dict per (group, user), with the group's id and name and the user's id and UPN."""
    values = memberships.values(
        "directory__name",
        "group__entra_id",
        "group__display_name",
        "user__entra_id",
        "user__user_principal_name",
        "user__display_name",
        "first_synced_at",
        "removed_at",
    ).iterator(chunk_size=EXPORT_CHUNK_SIZE)
    for m in values:
        yield {
            "directory": m["directory__name"],
            "groupId": m["group__entra_id"],
            "groupName": m["group__display_name"],
            "userId": m["user__entra_id"],
            "userPrincipalName": m["user__user_principal_name"],
            "userDisplayName": m["user__display_name"],
            "firstSyncedAt": _moment(m["first_synced_at"]),
            "removedAt": _moment(m["removed_at"]),
        }


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A row's lists as ';'-separated cells (a user's groups: ids and names in one order)."""
    flat = dict(row)
    if "groups" in flat:
        groups = flat.pop("groups")
        flat["groupIds"] = ";".join(g["id"] for g in groups)
        flat["groupNames"] = ";".join(g["displayName"] for g in groups)
    if "groupTypes" in flat:
        flat["groupTypes"] = ";".join(flat["groupTypes"])
    return {
        key: ("true" if value else "false") if isinstance(value, bool) else value
        for key, value in flat.items()
    }


class _Echo:
    """A file whose write() hands the text back, so csv.writer can feed a streamed response."""

    def write(self, value: str) -> str:
        return value


def stream_csv(rows: Iterable[dict[str, Any]], columns: list[str]) -> Iterator[str]:
    """CSV text, one line at a time: every cell through `csv_cell`, CRLF line ends (RFC 4180,
    and see write_users_csv for why the terminator matters)."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield writer.writerow([csv_cell(column) for column in columns])
    for row in rows:
        flat = _flat(row)
        yield writer.writerow([csv_cell(flat.get(column)) for column in columns])


def stream_json(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A JSON array written one object at a time, so it never exists whole in memory."""
    separator = "\n"
    yield "["
    for row in rows:
        yield separator + json.dumps(row, ensure_ascii=False)
        separator = ",\n"
    yield "\n]\n"


def export_filename(*, kind: str, directory_name: str | None, fmt: str) -> str:
    """`<directory>-<kind>-<UTC timestamp>.<fmt>`, safe in a Content-Disposition header.

    The directory's name is typed by an admin; slugify keeps ASCII letters, digits and dashes,
    so no quote, slash or line break reaches the header or the reader's file system.
    """
    name = slugify(directory_name or "")[:60].strip("-") or "all-directories"
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{name}-{kind}-{stamp}.{fmt}"
