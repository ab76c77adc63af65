"""CSV formula injection: no CSV the product writes hands a spreadsheet a formula to run.

OWASP's rule: a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is
prefixed with a single quote. `identities.export.csv_cell` applies it, and every CSV writer
goes through it (the last test keeps it that way).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command

from identities.export import FORMULA_PREFIXES, csv_cell, write_users_csv
from tests.factories import (
    DirectoryFactory,
    MembershipFactory,
    SyncedGroupFactory,
    SyncedUserFactory,
)

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ['=HYPERLINK("http://x")', "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_a_spreadsheet_would_run_is_quoted(value: str) -> None:
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("Ada Lovelace", "Ada Lovelace"),
        ("a=b", "a=b"),
        ("O'Brien", "O'Brien"),
        ("", ""),
        (None, ""),
        (True, "True"),
        ("'=already", "'=already"),
    ],
)
def test_other_cells_are_left_alone(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


def test_the_rule_is_owasps() -> None:
    assert set(FORMULA_PREFIXES) == {"=", "+", "-", "@", "\t", "\r"}


def hostile_row(value: str) -> dict[str, object]:
    return {
        "id": value,
        "userPrincipalName": value,
        "mail": value,
        "displayName": value,
        "givenName": value,
        "surname": value,
        "accountEnabled": True,
        "userType": value,
        "groups": [value],
    }


@pytest.mark.parametrize("value", HOSTILE)
def test_every_column_of_the_users_csv_is_neutralised(value: str) -> None:
    stream = io.StringIO()

    write_users_csv({"users": [hostile_row(value)]}, stream)

    (row,) = list(csv.DictReader(io.StringIO(stream.getvalue())))
    for column, cell in row.items():
        if column != "accountEnabled":
            assert cell == "'" + value, column


@pytest.mark.django_db
@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("to_file", [False, True], ids=["stdout", "output-file"])
def test_export_directory_csv_neutralises_hostile_display_names(
    value: str, to_file: bool, tmp_path: Path
) -> None:
    directory = DirectoryFactory(name="Contoso")
    user = SyncedUserFactory(
        directory=directory,
        user_principal_name="mallory@contoso.com",
        display_name=value,
        given_name=value,
        surname=value,
    )
    MembershipFactory(
        directory=directory,
        user=user,
        group=SyncedGroupFactory(directory=directory, display_name=value),
    )
    out = io.StringIO()
    target = tmp_path / "export.csv"
    args = ["--output", str(target)] if to_file else []

    call_command(
        "export_directory", "Contoso", "--format", "csv", *args, stdout=out, stderr=io.StringIO()
    )

    text = target.read_bytes().decode("utf-8") if to_file else out.getvalue()
    (row,) = list(csv.DictReader(io.StringIO(text, newline="")))
    assert (row["displayName"], row["givenName"], row["surname"]) == ("'" + value,) * 3
    assert row["userPrincipalName"] == "mallory@contoso.com"
    assert not any(cell.startswith(FORMULA_PREFIXES) for cell in row.values())


def test_every_csv_writer_goes_through_csv_cell() -> None:
    """The one module that writes CSV is the one with the helper: a new CSV export (an admin
    action, a view, a command) calls `identities.export`, or uses `csv_cell` there."""
    sources = {
        path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
        for package in ("directories", "identities", "config")
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    writers = {
        path
        for path, text in sources.items()
        if re.search(r"^\s*(import csv\b|from csv import)", text, re.MULTILINE)
    }
    serving_csv = {path for path, text in sources.items() if "text/csv" in text}

    assert writers == {"identities/export.py"}
    assert all("identities.export" in sources[path] for path in serving_csv)
