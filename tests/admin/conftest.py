"""Admin fixtures: the task-queue fixtures (FakeGraph, inline tasks) and staff with few rights."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from tests.tasks.conftest import graph, sync_tasks

__all__ = ["graph", "staff_client", "sync_tasks"]

VIEW_ONLY = ("view_directory", "view_syncrun")


@pytest.fixture
def staff_client(db: None) -> Callable[..., Client]:
    """A logged-in client for a staff user holding exactly the given directories permissions."""

    def make(*codenames: str) -> Client:
        user = User.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="directories", codename__in=codenames)
        )
        client = Client()
        client.force_login(user)
        return client

    return make
