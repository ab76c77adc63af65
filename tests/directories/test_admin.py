"""The admin pages load and synced data cannot be edited there."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import MembershipFactory, SyncRunFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "model",
    [
        "directories/directory",
        "directories/syncrun",
        "identities/synceduser",
        "identities/syncedgroup",
        "identities/membership",
    ],
)
def test_every_list_page_loads(admin_client: Client, model: str) -> None:
    membership = MembershipFactory()
    SyncRunFactory(directory=membership.directory)

    response = admin_client.get(f"/admin/{model}/")

    assert response.status_code == 200


def test_synced_users_are_read_only(admin_client: Client) -> None:
    user = MembershipFactory().user

    assert admin_client.get(reverse("admin:identities_synceduser_add")).status_code == 403
    page = admin_client.get(reverse("admin:identities_synceduser_change", args=[user.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content


def test_the_root_url_leads_to_the_admin(client: Client) -> None:
    assert client.get("/")["Location"] == "/admin/"


def test_the_troubleshooting_pages_are_mounted_in_the_admin(admin_client: Client) -> None:
    assert admin_client.get(reverse("admin:troubleshooting")).status_code == 200
    assert admin_client.get(reverse("admin:troubleshooting_user")).status_code == 200
