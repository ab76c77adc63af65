"""Export a directory's present users, groups and memberships (JSON or CSV)."""

from __future__ import annotations

import csv
from collections import defaultdict
from typing import Any, TextIO

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
