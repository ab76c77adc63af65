"""benchmark_sync runs three syncs of a generated tenant, checks them, and cleans up."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from directories.models import Directory
from identities.models import SyncedUser

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("mode", ["all", "assigned"])
def test_benchmark_reports_three_checked_runs_and_leaves_nothing_behind(mode: str) -> None:
    out = io.StringIO()

    call_command(
        "benchmark_sync", "--users", "80", "--groups", "8", "--mode", mode, "--json", stdout=out
    )

    report = json.loads(out.getvalue())
    full, unchanged, incremental = report["runs"]
    assert full["identity_writes"] > 0 and full["requests"] > 0
    assert unchanged["identity_writes"] == 0
    assert unchanged["summary"] == "no changes"
    assert incremental["identity_writes"] > 0
    assert not Directory.objects.exists()
    assert not SyncedUser.objects.exists()
