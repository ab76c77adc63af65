"""Every page entra-sync adds to the admin checks a real permission, not just `is_staff`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import DirectoryFactory, SyncRunFactory

pytestmark = pytest.mark.django_db

TROUBLESHOOTING = "view_troubleshooting"
DIAGNOSE = "diagnose_user"


@pytest.mark.parametrize(
    "name", ["admin:troubleshooting", "admin:troubleshooting_user"], ids=["failures", "user"]
)
def test_staff_without_the_permission_get_403_on_each_troubleshooting_page(
    staff_client: Callable[..., Client], name: str
) -> None:
    # Every other directories permission, but not the page's own.
    client = staff_client("view_directory", "view_syncrun", "change_directory", "sync_directory")

    assert client.get(reverse(name)).status_code == 403


def test_the_failures_page_needs_view_troubleshooting(
    staff_client: Callable[..., Client],
) -> None:
    SyncRunFactory(status="failed", error_class="forbidden", error_message="Needs User.Read.All")

    page = staff_client(TROUBLESHOOTING).get(reverse("admin:troubleshooting"))

    assert page.status_code == 200
    assert b"Needs User.Read.All" in page.content


def test_the_failures_page_offers_the_graph_lookup_only_with_its_permission(
    staff_client: Callable[..., Client],
) -> None:
    without = staff_client(TROUBLESHOOTING).get(reverse("admin:troubleshooting"))

    assert reverse("admin:troubleshooting_user").encode() not in without.content


def test_the_user_lookup_needs_diagnose_user_not_view_troubleshooting(
    staff_client: Callable[..., Client],
) -> None:
    client = staff_client(TROUBLESHOOTING)
    assert client.get(reverse("admin:troubleshooting_user")).status_code == 403


def test_the_user_lookup_opens_with_diagnose_user(staff_client: Callable[..., Client]) -> None:
    page = staff_client(DIAGNOSE).get(reverse("admin:troubleshooting_user"))

    assert page.status_code == 200
    assert b"Why isn&#x27;t this user syncing?" in page.content


@pytest.mark.parametrize(
    ("suffix", "method"),
    [
        ("verify", "post"),
        ("verify_confirm", "get"),
        ("sync", "post"),
        ("approve", "post"),
    ],
)
def test_each_directory_button_needs_its_permission(
    staff_client: Callable[..., Client], suffix: str, method: str
) -> None:
    directory = DirectoryFactory()
    client = staff_client("view_directory", "change_directory")

    response = getattr(client, method)(
        reverse(f"admin:directories_directory_{suffix}", args=[directory.pk])
    )

    assert response.status_code == 403


def test_the_verify_callback_needs_the_verify_permission(
    staff_client: Callable[..., Client],
) -> None:
    client = staff_client("view_directory", "change_directory")

    response = client.get(reverse("admin:directories_directory_verify_callback"), {"state": "x"})

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("suffix", "wrong_method"),
    [("verify", "get"), ("sync", "get"), ("approve", "get"), ("status", "post")],
)
def test_each_directory_button_refuses_the_wrong_method(
    admin_client: Client, suffix: str, wrong_method: str
) -> None:
    directory = DirectoryFactory()

    response = getattr(admin_client, wrong_method)(
        reverse(f"admin:directories_directory_{suffix}", args=[directory.pk])
    )

    assert response.status_code == 405


def test_anonymous_visitors_are_sent_to_the_admin_login(client: Client) -> None:
    for url in (
        reverse("admin:troubleshooting"),
        reverse("admin:troubleshooting_user"),
        reverse("admin:directories_directory_verify_callback"),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
