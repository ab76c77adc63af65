"""benchmark_sync runs three syncs of a generated tenant, checks them, and cleans up."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings

from directories.models import Directory
from identities.models import SyncedUser

pytestmark = pytest.mark.django_db


def benchmark(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("benchmark_sync", "--users", "80", "--groups", "8", *args, "--json", stdout=out)
    report: dict[str, Any] = json.loads(out.getvalue())
    return report


@pytest.mark.parametrize("mode", ["all", "assigned"])
def test_benchmark_reports_three_checked_runs_and_leaves_nothing_behind(mode: str) -> None:
    report = benchmark("--mode", mode)

    full, unchanged, incremental = report["runs"]
    assert full["identity_writes"] > 0 and full["requests"] > 0
    assert unchanged["identity_writes"] == 0
    assert unchanged["summary"] == "no changes"
    assert incremental["identity_writes"] > 0
    assert not Directory.objects.exists()
    assert not SyncedUser.objects.exists()


def test_benchmark_brings_its_own_graph_client_and_needs_no_entra_settings(
    settings: Settings,
) -> None:
    """So it runs on a machine where no Entra application is configured."""
    settings.ENTRA_CLIENT_ID = settings.ENTRA_CLIENT_SECRET = settings.ENTRA_AUTH_CLIENT_ID = ""
    settings.GRAPH_CONCURRENCY = 2

    report = benchmark("--mode", "assigned")

    assert report["concurrency"] == 2
    assert report["runs"][1]["summary"] == "no changes"
