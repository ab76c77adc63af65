"""add_directory, export_directory and sync_history: exit status, output, JSON shape."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from directories.models import Directory, SyncMode, SyncRun
from tests.factories import (
    DirectoryFactory,
    MembershipFactory,
    SyncedGroupFactory,
    SyncedUserFactory,
    SyncRunFactory,
)

pytestmark = pytest.mark.django_db
TENANT = "6ec9d5f0-5a2b-4a6e-8b6a-0123456789ab"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_add_directory_records_an_unverified_directory() -> None:
    output = run("add_directory", "--name", "Contoso", "--mode", "assigned")

    directory = Directory.objects.get(name="Contoso")
    assert directory.sync_mode == SyncMode.ASSIGNED
    assert not directory.is_verified
    assert "verify_directory Contoso --tenant-id TENANT_ID" in output


def test_add_directory_keeps_a_given_tenant_id_in_lower_case() -> None:
    run("add_directory", "--name", "Fabrikam", "--mode", "all", "--tenant-id", TENANT.upper())

    assert Directory.objects.get(name="Fabrikam").tenant_id == TENANT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Contoso", "--mode", "all"], "already exists"),
        (["--name", "New", "--mode", "all", "--tenant-id", "contoso.com"], "not a tenant id"),
        (["--name", "  ", "--mode", "all"], "needs a name"),
    ],
)
def test_add_directory_refuses_bad_input_with_one_line(args: list[str], message: str) -> None:
    DirectoryFactory(name="Contoso")

    with pytest.raises(CommandError, match=message) as error:
        call_command("add_directory", *args)
    assert "\n" not in str(error.value)
    assert error.value.returncode == 1


def test_an_unknown_directory_name_lists_the_known_ones() -> None:
    DirectoryFactory(name="Contoso")

    with pytest.raises(CommandError, match=r"No directory named 'Nope' \(known: Contoso"):
        call_command("sync_history", "Nope")


def test_a_directory_can_be_named_by_its_id() -> None:
    directory = DirectoryFactory(name="Contoso")
    SyncRunFactory(directory=directory)

    assert "Contoso" in run("sync_history", str(directory.pk))


def make_synced_directory() -> Directory:
    directory = DirectoryFactory(name="Contoso")
    ada = SyncedUserFactory(directory=directory, user_principal_name="ada@contoso.com")
    nomail = SyncedUserFactory(
        directory=directory, user_principal_name="nomail@contoso.com", mail=""
    )
    gone = SyncedUserFactory(directory=directory, user_principal_name="gone@contoso.com")
    gone.removed_at = gone.changed_at
    gone.save()
    engineering = SyncedGroupFactory(directory=directory, display_name="Engineering")
    MembershipFactory(directory=directory, group=engineering, user=ada)
    MembershipFactory(directory=directory, group=engineering, user=nomail)
    old_group = SyncedGroupFactory(directory=directory, display_name="Old")
    old_group.removed_at = old_group.changed_at
    old_group.save()
    SyncedUserFactory(user_principal_name="other@fabrikam.com")  # another directory
    return directory


def test_export_json_holds_present_users_and_groups_with_members() -> None:
    make_synced_directory()

    data = json.loads(run("export_directory", "Contoso", "--format", "json"))

    assert [u["userPrincipalName"] for u in data["users"]] == [
        "ada@contoso.com",
        "nomail@contoso.com",
    ]
    assert set(data["users"][0]) >= {
        "id",
        "userPrincipalName",
        "mail",
        "displayName",
        "accountEnabled",
    }
    assert data["users"][1]["mail"] is None
    assert [g["displayName"] for g in data["groups"]] == ["Engineering"]
    assert sorted(data["groups"][0]["members"]) == sorted(u["id"] for u in data["users"])


def test_export_csv_has_a_row_per_present_user(tmp_path: object) -> None:
    make_synced_directory()

    rows = list(csv.DictReader(io.StringIO(run("export_directory", "Contoso", "--format", "csv"))))

    assert [r["userPrincipalName"] for r in rows] == ["ada@contoso.com", "nomail@contoso.com"]
    assert rows[0]["accountEnabled"] == "true"
    assert rows[1]["mail"] == ""
    assert len(rows[0]["groups"].split(";")) == 1


def test_export_csv_neutralises_cells_a_spreadsheet_would_run_as_formulas() -> None:
    directory = DirectoryFactory(name="Contoso")
    SyncedUserFactory(
        directory=directory,
        user_principal_name="mallory@contoso.com",
        display_name='=HYPERLINK("https://evil.example","Click")',
        given_name="+1",
        surname="@SUM(A1)",
    )

    rows = list(csv.DictReader(io.StringIO(run("export_directory", "Contoso", "--format", "csv"))))

    assert rows[0]["displayName"] == '\'=HYPERLINK("https://evil.example","Click")'
    assert (rows[0]["givenName"], rows[0]["surname"]) == ("'+1", "'@SUM(A1)")
    assert rows[0]["userPrincipalName"] == "mallory@contoso.com"


def test_export_csv_columns_are_listed_explicitly() -> None:
    make_synced_directory()

    header = run("export_directory", "Contoso", "--format", "csv").splitlines()[0]

    assert header == (
        "id,userPrincipalName,mail,displayName,givenName,surname,accountEnabled,userType,groups"
    )


def test_export_to_a_file(tmp_path: pytest.TempPathFactory) -> None:
    make_synced_directory()
    target = tmp_path / "contoso.json"  # type: ignore[operator]

    call_command(
        "export_directory",
        "Contoso",
        "--output",
        str(target),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )

    assert len(json.loads(target.read_text())["users"]) == 2


def test_sync_history_lists_runs_newest_first_with_errors() -> None:
    directory = DirectoryFactory(name="Contoso")
    SyncRunFactory(directory=directory, users_created=3)
    SyncRunFactory(
        directory=directory,
        status=SyncRun.Status.FAILED,
        error_class="forbidden",
        error_message="Graph denied access.",
        graph_request_id="abc-123",
    )

    lines = run("sync_history").splitlines()

    assert "[forbidden] Graph denied access. (request-id abc-123)" in lines[0]
    assert "+3 users" in lines[1]


def test_sync_history_failures_as_json() -> None:
    directory = DirectoryFactory(name="Contoso")
    SyncRunFactory(directory=directory)
    SyncRunFactory(
        directory=directory,
        status=SyncRun.Status.FAILED,
        error_class="transient",
        error_message="Graph failed.",
    )

    runs = json.loads(run("sync_history", "Contoso", "--failures", "--json"))

    assert len(runs) == 1
    assert runs[0]["status"] == "failed"
    assert runs[0]["error"]["class"] == "transient"
    assert set(runs[0]) >= {"users", "groups", "memberships", "requests", "seconds"}


def test_sync_history_says_when_there_is_nothing() -> None:
    assert run("sync_history") == "No sync runs yet.\n"


def test_ensure_admin_creates_one_admin_and_prints_the_login() -> None:
    first = run("ensure_admin")
    second = run("ensure_admin")

    assert "Created the admin account" in first and " as admin / " in first
    assert "log in with your admin account" in second
