"""Staff browse synced users, groups and memberships in the admin, and can change none of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from identities.models import Membership, SyncedGroup, SyncedUser
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


def listed(client: Client, url: str, **params: str) -> list[Any]:
    response = client.get(url, params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def user_page(user: SyncedUser) -> str:
    return reverse("admin:identities_synceduser_change", args=[user.pk])


def group_page(group: SyncedGroup) -> str:
    return reverse("admin:identities_syncedgroup_change", args=[group.pk])


@pytest.fixture
def viewer(client: Client) -> Client:
    """A staff member with only the view permissions of the three identity models."""
    staff = User.objects.create_user("viewer", password="x", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="identities", codename__startswith="view_"
        )
    )
    client.force_login(staff)
    return client


# Users


def test_the_user_list_shows_present_users_by_default(admin_client: Client) -> None:
    present = SyncedUserFactory()
    SyncedUserFactory(directory=present.directory, removed_at=timezone.now())

    assert listed(admin_client, USERS) == [present]


def test_the_user_list_shows_removed_users_or_all_users_on_request(admin_client: Client) -> None:
    present = SyncedUserFactory(display_name="A present")
    removed = SyncedUserFactory(display_name="B removed", removed_at=timezone.now())

    assert listed(admin_client, USERS, presence="removed") == [removed]
    assert listed(admin_client, USERS, presence="all") == [present, removed]
    assert listed(admin_client, USERS, presence="present") == [present]


def test_the_presence_filter_offers_present_removed_and_all_with_present_selected(
    admin_client: Client,
) -> None:
    SyncedUserFactory()

    response = admin_client.get(USERS)

    presence = next(f for f in response.context["cl"].filter_specs if f.title == "presence")
    choices = list(presence.choices(response.context["cl"]))
    assert [c["display"] for c in choices] == ["Present", "Removed", "All"]
    assert [c["selected"] for c in choices] == [True, False, False]
    assert choices[0]["query_string"] == "?"


def test_the_user_list_shows_each_column(admin_client: Client) -> None:
    SyncedUserFactory(
        display_name="Adele Vance",
        user_principal_name="adelev@contoso.onmicrosoft.com",
        mail="adele.vance@contoso.com",
        user_type="Guest",
        directory__name="Contoso HQ",
    )

    content = admin_client.get(USERS).content.decode()

    for text in ("Adele Vance", "adelev@contoso.onmicrosoft.com", "adele.vance@contoso.com"):
        assert text in content
    assert "Contoso HQ" in content
    for header in ("column-enabled", "column-guest", "column-first_synced_at"):
        assert header in content


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("adele", "adele"),  # display name
        ("adelev@", "adele"),  # user principal name
        ("vance@fabrikam", "adele"),  # mail only
        ("megan", "megan"),
    ],
)
def test_users_are_found_by_name_upn_or_mail(
    admin_client: Client, term: str, expected: str
) -> None:
    adele = SyncedUserFactory(
        display_name="Adele Vance",
        user_principal_name="adelev@contoso.onmicrosoft.com",
        mail="a.vance@fabrikam.com",
    )
    megan = SyncedUserFactory(display_name="Megan Bowen", user_principal_name="meganb@contoso.com")

    assert listed(admin_client, USERS, q=term) == [{"adele": adele, "megan": megan}[expected]]


def test_users_are_found_by_their_exact_object_id_only(admin_client: Client) -> None:
    user = SyncedUserFactory(entra_id="87d349ed-44d7-43e1-9a83-5f2406dee5bd")
    SyncedUserFactory()

    assert listed(admin_client, USERS, q="87d349ed-44d7-43e1-9a83-5f2406dee5bd") == [user]
    assert listed(admin_client, USERS, q="87d349ed") == []


def test_users_are_filtered_by_directory(admin_client: Client) -> None:
    user = SyncedUserFactory()
    SyncedUserFactory()

    assert listed(admin_client, USERS, directory__id__exact=str(user.directory_id)) == [user]


def test_users_are_filtered_by_enabled(admin_client: Client) -> None:
    enabled = SyncedUserFactory(account_enabled=True)
    disabled = SyncedUserFactory(account_enabled=False)

    assert listed(admin_client, USERS, account_enabled__exact="1") == [enabled]
    assert listed(admin_client, USERS, account_enabled__exact="0") == [disabled]


def test_users_are_filtered_by_guest(admin_client: Client) -> None:
    guest = SyncedUserFactory(user_type="Guest")
    member = SyncedUserFactory(user_type="Member")

    assert listed(admin_client, USERS, guest="yes") == [guest]
    assert listed(admin_client, USERS, guest="no") == [member]


def test_the_user_list_with_facets_counts_each_filter_choice(admin_client: Client) -> None:
    SyncedUserFactory()
    SyncedUserFactory(removed_at=timezone.now(), user_type="Guest")

    content = admin_client.get(USERS, {"_facets": "True"}).content.decode()

    assert "Present (1)" in content
    assert "Removed (1)" in content
    assert "All (2)" in content


def test_the_user_list_runs_a_fixed_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Callable[..., Any]
) -> None:
    directory = DirectoryFactory()
    SyncedUserFactory.create_batch(60, directory=directory)

    with django_assert_max_num_queries(8):
        assert len(listed(admin_client, USERS)) == 60


def test_a_users_page_lists_its_present_groups_with_links(admin_client: Client) -> None:
    membership = MembershipFactory(group__display_name="Sales")
    user = membership.user
    MembershipFactory(
        directory=user.directory,
        user=user,
        group__display_name="Former team",
        removed_at=timezone.now(),
    )

    response = admin_client.get(user_page(user))

    content = response.content.decode()
    assert "Groups (1)" in content
    assert f'<a href="{group_page(membership.group)}">Sales</a>' in content
    assert "Former team" not in content


def test_a_users_page_paginates_its_groups(admin_client: Client) -> None:
    user = SyncedUserFactory()
    for n in range(55):
        MembershipFactory(directory=user.directory, user=user, group__display_name=f"G{n:03}")

    response = admin_client.get(user_page(user), {"groups_page": "2"})

    names = [row["group__display_name"] for row in response.context["group_rows"]]
    assert names == [f"G{n:03}" for n in range(50, 55)]
    assert "Groups (55)" in response.content.decode()


# Groups


def test_the_group_list_counts_present_members_without_a_query_per_group(
    admin_client: Client, django_assert_max_num_queries: Callable[..., Any]
) -> None:
    directory = DirectoryFactory()
    big = SyncedGroupFactory(directory=directory, display_name="Big")
    MembershipFactory.create_batch(3, directory=directory, group=big)
    MembershipFactory(directory=directory, group=big, removed_at=timezone.now())
    SyncedGroupFactory.create_batch(40, directory=directory)

    with django_assert_max_num_queries(8):
        groups = listed(admin_client, GROUPS)

    counts = {group.display_name: group.member_count for group in groups}
    assert counts["Big"] == 3
    assert len(groups) == 41
    assert sum(counts.values()) == 3


def test_the_group_list_sorts_by_member_count(admin_client: Client) -> None:
    directory = DirectoryFactory()
    small = SyncedGroupFactory(directory=directory)
    large = SyncedGroupFactory(directory=directory)
    MembershipFactory.create_batch(2, directory=directory, group=large)
    MembershipFactory(directory=directory, group=small)

    column = list(admin_client.get(GROUPS).context["cl"].list_display).index("member_count")

    assert listed(admin_client, GROUPS, o=f"-{column}") == [large, small]


@pytest.mark.parametrize("term", ["Marketing", "marketing@contoso", "=exact"])
def test_groups_are_found_by_name_mail_or_exact_object_id(admin_client: Client, term: str) -> None:
    group = SyncedGroupFactory(
        display_name="Marketing",
        mail="marketing@contoso.com",
        entra_id="02bd9fd6-8f93-4758-87c3-1fb73740a315",
    )
    SyncedGroupFactory(display_name="Finance")
    if term == "=exact":
        term = group.entra_id

    assert listed(admin_client, GROUPS, q=term) == [group]


def test_groups_are_filtered_by_directory_kind_and_presence(admin_client: Client) -> None:
    security = SyncedGroupFactory(security_enabled=True, mail_enabled=False)
    mail = SyncedGroupFactory(security_enabled=False, mail_enabled=True)
    removed = SyncedGroupFactory(removed_at=timezone.now())

    assert listed(admin_client, GROUPS, directory__id__exact=str(mail.directory_id)) == [mail]
    assert listed(admin_client, GROUPS, security_enabled__exact="0") == [mail]
    assert listed(admin_client, GROUPS, mail_enabled__exact="0") == [security]
    assert listed(admin_client, GROUPS, presence="removed") == [removed]
    assert removed not in listed(admin_client, GROUPS)


@pytest.fixture
def group_of_120() -> SyncedGroup:
    directory = DirectoryFactory()
    group = SyncedGroupFactory(directory=directory)
    users = SyncedUser.objects.bulk_create(
        SyncedUserFactory.build(
            directory=directory,
            display_name=f"Member {n:03}",
            user_principal_name=f"member{n:03}@contoso.com",
        )
        for n in range(120)
    )
    now = timezone.now()
    Membership.objects.bulk_create(
        Membership(directory=directory, group=group, user=user, first_synced_at=now)
        for user in users
    )
    return group


def test_a_groups_page_shows_the_first_50_members_and_the_total(
    admin_client: Client, group_of_120: SyncedGroup
) -> None:
    response = admin_client.get(group_page(group_of_120))

    content = response.content.decode()
    rows = response.context["member_rows"]
    assert [row["user__display_name"] for row in rows] == [f"Member {n:03}" for n in range(50)]
    assert "Members (120)" in content
    assert "page 1 of 3" in content
    assert "?members_page=2#members" in content


def test_a_groups_page_shows_the_requested_page_of_members(
    admin_client: Client,
    group_of_120: SyncedGroup,
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    with django_assert_max_num_queries(10):
        response = admin_client.get(group_page(group_of_120), {"members_page": "2"})

    names = [row["user__display_name"] for row in response.context["member_rows"]]
    assert names == [f"Member {n:03}" for n in range(50, 100)]
    member = SyncedUser.objects.get(display_name="Member 050")
    assert f'<a href="{user_page(member)}">Member 050</a>' in response.content.decode()

    last = admin_client.get(group_page(group_of_120), {"members_page": "3"})
    assert len(last.context["member_rows"]) == 20


def test_a_groups_page_survives_a_bad_page_number(
    admin_client: Client, group_of_120: SyncedGroup
) -> None:
    beyond = admin_client.get(group_page(group_of_120), {"members_page": "99"})
    garbage = admin_client.get(group_page(group_of_120), {"members_page": "x"})

    assert beyond.context["members_page"].number == 3
    assert garbage.context["members_page"].number == 1


def test_a_groups_page_searches_within_its_members(
    admin_client: Client, group_of_120: SyncedGroup
) -> None:
    response = admin_client.get(group_page(group_of_120), {"members_q": "member11"})

    names = [row["user__display_name"] for row in response.context["member_rows"]]
    assert names == [f"Member {n}" for n in range(110, 120)]
    assert "Members (10 matching" in response.content.decode()


def test_a_groups_page_leaves_out_removed_members(admin_client: Client) -> None:
    membership = MembershipFactory(user__display_name="Stays")
    MembershipFactory(
        directory=membership.directory,
        group=membership.group,
        user__display_name="Left",
        removed_at=timezone.now(),
    )

    rows = admin_client.get(group_page(membership.group)).context["member_rows"]

    assert [row["user__display_name"] for row in rows] == ["Stays"]


# Memberships


def test_memberships_show_present_ones_by_default_and_filter_by_directory(
    admin_client: Client,
) -> None:
    present = MembershipFactory()
    removed = MembershipFactory(removed_at=timezone.now())

    assert listed(admin_client, MEMBERSHIPS) == [present]
    assert listed(admin_client, MEMBERSHIPS, presence="removed") == [removed]
    assert listed(admin_client, MEMBERSHIPS, directory__id__exact=str(removed.directory_id)) == []


@pytest.mark.parametrize(
    "term",
    ["adelev@contoso", "Adele", "Sales Team", "user-object-id", "group-object-id"],
)
def test_memberships_are_found_by_user_or_group(admin_client: Client, term: str) -> None:
    membership = MembershipFactory(
        user__display_name="Adele Vance",
        user__user_principal_name="adelev@contoso.com",
        user__entra_id="user-object-id",
        group__display_name="Sales Team",
        group__entra_id="group-object-id",
    )
    MembershipFactory()

    assert listed(admin_client, MEMBERSHIPS, q=term) == [membership]


def test_the_membership_list_runs_a_fixed_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Callable[..., Any]
) -> None:
    directory = DirectoryFactory()
    MembershipFactory.create_batch(40, directory=directory)

    with django_assert_max_num_queries(8):
        assert len(listed(admin_client, MEMBERSHIPS)) == 40


# Read-only, for everyone


@pytest.mark.parametrize("model", ["synceduser", "syncedgroup", "membership"])
def test_nobody_can_add_change_or_delete_synced_objects(admin_client: Client, model: str) -> None:
    membership = MembershipFactory()
    obj = {"synceduser": membership.user, "syncedgroup": membership.group}.get(model, membership)
    change = reverse(f"admin:identities_{model}_change", args=[obj.pk])

    assert admin_client.get(reverse(f"admin:identities_{model}_add")).status_code == 403
    page = admin_client.get(change)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.post(change, {"display_name": "Hacked"}).status_code == 403
    delete = reverse(f"admin:identities_{model}_delete", args=[obj.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()
    assert (
        "delete_selected"
        not in admin_client.get(reverse(f"admin:identities_{model}_changelist")).content.decode()
    )


def test_a_user_refused_an_edit_keeps_its_synced_values(admin_client: Client) -> None:
    user = SyncedUserFactory(display_name="Adele Vance")

    admin_client.post(user_page(user), {"display_name": "Hacked"})

    user.refresh_from_db()
    assert user.display_name == "Adele Vance"


@pytest.mark.parametrize("url", [USERS, GROUPS, MEMBERSHIPS])
def test_staff_with_view_permission_see_the_lists(viewer: Client, url: str) -> None:
    MembershipFactory()

    assert len(listed(viewer, url)) == 1


def test_staff_with_view_permission_see_pages_but_cannot_add(viewer: Client) -> None:
    membership = MembershipFactory(user__display_name="Adele Vance")

    group = viewer.get(group_page(membership.group))
    assert group.status_code == 200
    assert f'<a href="{user_page(membership.user)}">Adele Vance</a>' in group.content.decode()
    assert viewer.get(user_page(membership.user)).status_code == 200
    assert viewer.get(reverse("admin:identities_synceduser_add")).status_code == 403
    assert viewer.post(user_page(membership.user), {}).status_code == 403


def test_members_are_not_linked_for_staff_who_cannot_view_users(client: Client) -> None:
    staff = User.objects.create_user("groups-only", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_syncedgroup"))
    client.force_login(staff)
    membership = MembershipFactory(user__display_name="Adele Vance")

    response = client.get(group_page(membership.group))

    assert response.status_code == 200
    assert response.context["member_rows"][0]["url"] is None
    assert user_page(membership.user) not in response.content.decode()
    assert client.get(USERS).status_code == 403


def test_staff_without_view_permission_see_nothing(client: Client) -> None:
    client.force_login(User.objects.create_user("nobody", password="x", is_staff=True))

    assert client.get(USERS).status_code == 403
