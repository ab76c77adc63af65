"""Staff export synced users, groups and memberships from the admin as CSV or JSON, streamed."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any, cast

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from identities import export
from identities.export import (
    FORMULA_PREFIXES,
    GROUP_EXPORT_COLUMNS,
    MEMBERSHIP_EXPORT_COLUMNS,
    USER_EXPORT_COLUMNS,
)
from identities.models import SyncedUser
from tests.factories import (
    DirectoryFactory,
    MembershipFactory,
    SyncedGroupFactory,
    SyncedUserFactory,
)

pytestmark = pytest.mark.django_db

USERS = reverse("admin:identities_synceduser_changelist")
GROUPS = reverse("admin:identities_syncedgroup_changelist")
MEMBERSHIPS = reverse("admin:identities_membership_changelist")
USERS_CSV = reverse("admin:identities_synceduser_export_csv")
USERS_JSON = reverse("admin:identities_synceduser_export_json")
MEMBERSHIPS_CSV = reverse("admin:identities_membership_export_csv")


def content(response: Any) -> str:
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(cast(Iterator[bytes], response.streaming_content)).decode("utf-8")


def csv_rows(response: Any) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content(response), newline="")))


def action(client: Client, url: str, name: str, pks: list[int], **extra: str) -> Any:
    return client.post(url, {"action": name, "index": "0", "_selected_action": pks, **extra})


@pytest.fixture
def staff(client: Client) -> tuple[Client, User]:
    """A staff member with no permission yet."""
    user = User.objects.create_user("staff", password="x", is_staff=True)
    client.force_login(user)
    return client, user


def grant(user: User, *codenames: str) -> None:
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="identities", codename__in=codenames)
    )


# What is exported


def test_the_csv_action_exports_the_selected_users_with_their_groups_names_and_ids(
    admin_client: Client,
) -> None:
    directory = DirectoryFactory(name="Contoso")
    alice = SyncedUserFactory(directory=directory, user_principal_name="alice@contoso.com")
    SyncedUserFactory(directory=directory)  # not selected
    admins = SyncedGroupFactory(directory=directory, display_name="Admins")
    staff = SyncedGroupFactory(directory=directory, display_name="Staff")
    gone = SyncedGroupFactory(directory=directory, display_name="Gone")
    for group in (admins, staff):
        MembershipFactory(directory=directory, group=group, user=alice)
    MembershipFactory(directory=directory, group=gone, user=alice, removed_at=timezone.now())

    response = action(admin_client, USERS, "export_csv", [alice.pk])

    text = content(response)
    assert text.startswith(",".join(USER_EXPORT_COLUMNS) + "\r\n")
    [row] = csv.DictReader(io.StringIO(text, newline=""))
    assert row["directory"] == "Contoso"
    assert row["id"] == alice.entra_id
    assert row["userPrincipalName"] == "alice@contoso.com"
    assert row["accountEnabled"] == "true"
    assert row["groupNames"] == "Admins;Staff"
    assert row["groupIds"] == f"{admins.entra_id};{staff.entra_id}"


def test_select_all_exports_every_row_matching_the_filters(admin_client: Client) -> None:
    contoso, fabrikam = DirectoryFactory(), DirectoryFactory()
    present = SyncedUserFactory.create_batch(3, directory=contoso)
    SyncedUserFactory(directory=contoso, removed_at=timezone.now())
    SyncedUserFactory(directory=fabrikam)

    response = action(
        admin_client,
        f"{USERS}?directory__id__exact={contoso.pk}",
        "export_json",
        [present[0].pk],
        select_across="1",
    )

    users = json.loads(content(response))
    assert sorted(u["id"] for u in users) == sorted(u.entra_id for u in present)


def test_the_json_action_exports_groups_as_one_array(admin_client: Client) -> None:
    group = SyncedGroupFactory(display_name="Admins", group_types=["Unified"])

    users = json.loads(content(action(admin_client, GROUPS, "export_json", [group.pk])))

    assert users == [
        {
            "directory": group.directory.name,
            "id": group.entra_id,
            "displayName": "Admins",
            "description": None,
            "mail": None,
            "mailEnabled": False,
            "securityEnabled": True,
            "groupTypes": ["Unified"],
            "firstSyncedAt": group.first_synced_at.isoformat(),
            "removedAt": None,
        }
    ]
    assert set(users[0]) == set(GROUP_EXPORT_COLUMNS)


def test_a_membership_row_has_the_group_id_and_name_and_the_user_id_and_upn(
    admin_client: Client,
) -> None:
    membership = MembershipFactory(
        group__display_name="Admins", user__user_principal_name="bob@contoso.com"
    )

    response = action(admin_client, MEMBERSHIPS, "export_csv", [membership.pk])

    [row] = csv_rows(response)
    assert list(row) == MEMBERSHIP_EXPORT_COLUMNS
    assert (row["groupId"], row["groupName"]) == (membership.group.entra_id, "Admins")
    assert (row["userId"], row["userPrincipalName"]) == (
        membership.user.entra_id,
        "bob@contoso.com",
    )


def test_a_directory_export_has_its_present_objects_unless_the_filter_asks_for_removed(
    admin_client: Client,
) -> None:
    directory = DirectoryFactory()
    present = MembershipFactory(directory=directory)
    removed = MembershipFactory(directory=directory, removed_at=timezone.now())
    MembershipFactory()  # another directory

    default = csv_rows(admin_client.get(MEMBERSHIPS_CSV, {"directory__id__exact": directory.pk}))
    only_removed = csv_rows(
        admin_client.get(
            MEMBERSHIPS_CSV, {"directory__id__exact": directory.pk, "presence": "removed"}
        )
    )

    assert [r["userId"] for r in default] == [present.user.entra_id]
    assert [r["userId"] for r in only_removed] == [removed.user.entra_id]


def test_the_file_name_has_the_sanitised_directory_name_and_a_timestamp(
    admin_client: Client,
) -> None:
    directory = DirectoryFactory(name='Contoso "HQ"/Paris\r\n')
    SyncedUserFactory(directory=directory)

    response = admin_client.get(USERS_JSON, {"directory__id__exact": directory.pk})

    assert response["Content-Type"] == "application/json"
    assert re.fullmatch(
        r'attachment; filename="contoso-hqparis-users-\d{8}T\d{6}Z\.json"',
        response["Content-Disposition"],
    )


def test_an_export_of_several_directories_says_so_in_its_file_name(admin_client: Client) -> None:
    SyncedUserFactory.create_batch(2)

    response = admin_client.get(USERS_CSV)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="all-directories-users-' in response["Content-Disposition"]


def test_the_lists_link_to_the_export_of_the_directory_they_are_filtered_to(
    admin_client: Client,
) -> None:
    directory = DirectoryFactory(name="Contoso")

    page = admin_client.get(USERS, {"directory__id__exact": directory.pk}).content.decode()

    assert f'href="{USERS_CSV}?directory__id__exact={directory.pk}"' in page
    assert "Export Contoso as CSV" in page
    assert "Export Contoso as JSON" in page


def test_invalid_filters_are_a_bad_request(admin_client: Client) -> None:
    assert admin_client.get(USERS_CSV, {"no_such_field": "1"}).status_code == 400


# Permissions


def test_staff_without_the_view_permission_cannot_export(staff: tuple[Client, User]) -> None:
    client, _ = staff
    user = SyncedUserFactory()

    assert client.get(USERS_CSV).status_code == 403
    assert action(client, USERS, "export_csv", [user.pk]).status_code == 403


def test_the_view_permission_of_the_model_is_enough(staff: tuple[Client, User]) -> None:
    client, user = staff
    grant(user, "view_membership")
    membership = MembershipFactory()

    assert len(csv_rows(client.get(MEMBERSHIPS_CSV))) == 1
    assert len(csv_rows(action(client, MEMBERSHIPS, "export_csv", [membership.pk]))) == 1
    assert client.get(USERS_CSV).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login_page(client: Client) -> None:
    response = client.get(USERS_CSV)

    assert response.status_code == 302
    assert "/login/" in response["Location"]


# Hostile names


@pytest.mark.parametrize("prefix", FORMULA_PREFIXES)
def test_hostile_names_are_neutralised_in_every_csv(admin_client: Client, prefix: str) -> None:
    hostile = f'{prefix}HYPERLINK("http://evil.example","x")'
    directory = DirectoryFactory(name=f"{prefix}Contoso")
    membership = MembershipFactory(
        directory=directory,
        group__display_name=hostile,
        user__display_name=hostile,
        user__given_name=hostile,
        user__user_principal_name=f"{prefix}mallory@contoso.com",
    )

    for url in (USERS_CSV, MEMBERSHIPS_CSV, reverse("admin:identities_syncedgroup_export_csv")):
        text = content(admin_client.get(url))
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert len(rows) == 2  # a "\r" inside a cell is quoted, not a line break
        assert not any(cell.startswith(FORMULA_PREFIXES) for cell in rows[1])
        assert text.endswith("\r\n")
    [user] = csv_rows(admin_client.get(USERS_CSV))
    assert user["displayName"] == "'" + hostile
    assert user["groupNames"] == "'" + hostile
    assert user["id"] == membership.user.entra_id


# Streaming


def test_a_large_export_is_read_in_chunks_not_all_at_once(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "EXPORT_CHUNK_SIZE", 7)
    iterated: list[int | None] = []
    original = QuerySet.iterator

    def spy(self: QuerySet[Any], chunk_size: int | None = None) -> Any:
        iterated.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    directory = DirectoryFactory()
    group = SyncedGroupFactory(directory=directory)
    for user in SyncedUserFactory.create_batch(30, directory=directory):
        MembershipFactory(directory=directory, group=group, user=user)

    response = admin_client.get(USERS_JSON)
    assert isinstance(response, StreamingHttpResponse)
    with CaptureQueriesContext(connection) as queries:
        users = json.loads(content(response))

    assert len(users) == 30
    assert {json.dumps(u["groups"]) for u in users} == {
        json.dumps([{"id": group.entra_id, "displayName": group.display_name}])
    }
    assert iterated == [7]
    # One query for the users, then one per chunk of 7 for their groups: never one per user.
    tables = [q["sql"] for q in queries.captured_queries]
    assert sum('FROM "identities_synceduser"' in sql for sql in tables) == 1
    assert sum('FROM "identities_membership"' in sql for sql in tables) == 5


def test_an_export_costs_a_few_queries_however_many_rows(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    directory = DirectoryFactory()
    group = SyncedGroupFactory(directory=directory)
    for user in SyncedUserFactory.create_batch(50, directory=directory):
        MembershipFactory(directory=directory, group=group, user=user)

    with django_assert_max_num_queries(8):
        rows = csv_rows(admin_client.get(USERS_CSV))

    assert len(rows) == 50
    assert {r["groupNames"] for r in rows} == {group.display_name}
    assert SyncedUser.objects.count() == 50
