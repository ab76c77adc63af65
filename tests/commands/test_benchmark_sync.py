"""benchmark_sync times entra-sync against a sequential reference, checks every run, cleans up."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings

from directories.models import Directory, MirroredEdge, MirroredUser, SyncRun
from identities.models import Membership, SyncedGroup, SyncedUser

pytestmark = pytest.mark.django_db

RUN_KEYS = {
    "run",
    "label",
    "seconds",
    "graph_requests",
    "batch_subrequests",
    "client_retries",
    "resource_units",
    "resource_units_throttled",
    "status_429",
    "rows_written",
    "rows_per_second",
    "write_statements",
    "run_peak_rss_mb",
    "peak_rss_mb",
    "summary",
    "matched",
    "differences",
    "ratio_to_reference",
}


def benchmark(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("benchmark_sync", "--users", "80", "--groups", "8", *args, "--json", stdout=out)
    report: dict[str, Any] = json.loads(out.getvalue())
    return report


def assert_nothing_left_behind() -> None:
    for model in (Directory, SyncRun, SyncedUser, SyncedGroup, Membership, MirroredUser):
        assert not model._default_manager.exists(), model.__name__
    assert not MirroredEdge.objects.exists()


@pytest.mark.parametrize("mode", ["all", "assigned"])
def test_it_times_three_syncs_and_the_reference_and_every_run_matches(mode: str) -> None:
    report = benchmark("--mode", mode)

    assert [run["run"] for run in report["runs"]] == ["full", "unchanged", "changes", "reference"]
    assert all(set(run) == RUN_KEYS for run in report["runs"])
    assert report["matched"] and all(run["matched"] for run in report["runs"])
    full, unchanged, changes, reference = report["runs"]
    assert full["rows_written"] == (
        report["tenant"]["synced_users"]
        + report["tenant"]["synced_groups"]
        + report["tenant"]["memberships"]
    )
    assert full["graph_requests"] > 0 and full["resource_units"] > 0
    assert unchanged["rows_written"] == unchanged["write_statements"] == 0
    assert unchanged["graph_requests"] == (3 if mode == "assigned" else 2)
    assert changes["rows_written"] > 0 and report["changes"]
    # One listing per group, plus the groups (and in assigned mode the assignments).
    assert reference["graph_requests"] >= report["tenant"]["synced_groups"] + 1
    assert reference["rows_written"] == reference["write_statements"] > 0
    assert reference["ratio_to_reference"] == 1.0
    assert full["ratio_to_reference"] == round(reference["seconds"] / full["seconds"], 2)
    assert report["mode"] == mode
    assert_nothing_left_behind()


def test_without_the_reference_there_is_no_ratio() -> None:
    report = benchmark("--no-reference", "--members-per-group", "5", "--nesting-depth", "3")

    assert [run["run"] for run in report["runs"]] == ["full", "unchanged", "changes"]
    assert all(run["ratio_to_reference"] is None for run in report["runs"])
    assert report["matched"]
    assert report["tenant"]["members_per_group"] == 5
    assert report["tenant"]["nesting_depth"] == 3
    assert_nothing_left_behind()


def test_it_reports_latency_throttling_and_the_database() -> None:
    report = benchmark("--no-reference", "--latency-ms", "1", "--throttle")

    assert report["latency_ms"] == 1.0
    assert (report["throttle"], report["ru_limit"], report["ru_window_seconds"]) == (
        True,
        8000,
        10.0,
    )
    assert report["database"] in ("sqlite", "postgresql")
    assert report["peak_rss_mb"] >= report["rss_before_first_sync_mb"] > 0
    assert all(run["status_429"] == 0 for run in report["runs"])  # far below the budget


def test_keep_leaves_the_directories_and_the_next_run_replaces_them() -> None:
    benchmark("--keep")
    assert Directory.objects.filter(name__startswith="benchmark-80x8-all").count() == 2

    report = benchmark("--no-reference")

    assert report["matched"]
    assert_nothing_left_behind()


def test_the_table_names_every_run_and_the_set_up() -> None:
    out = io.StringIO()
    call_command("benchmark_sync", "--users", "80", "--groups", "8", stdout=out)

    table = out.getvalue()
    for text in (
        "full sync (empty database)",
        "re-sync, no change",
        "re-sync after 1 % changes",
        "reference (sequential)",
        "RU spent",
        "GRAPH_CONCURRENCY",
        "Every run matched the tenant exactly.",
    ):
        assert text in table


def test_it_brings_its_own_graph_client_and_needs_no_entra_settings(settings: Settings) -> None:
    """So it runs on a machine where no Entra application is configured."""
    settings.ENTRA_CLIENT_ID = settings.ENTRA_CLIENT_SECRET = settings.ENTRA_AUTH_CLIENT_ID = ""
    settings.GRAPH_CONCURRENCY = 2

    report = benchmark("--mode", "assigned", "--no-reference")

    assert report["concurrency"] == 2
    assert report["runs"][1]["rows_written"] == 0


def test_it_refuses_an_empty_tenant() -> None:
    with pytest.raises(CommandError, match="at least 1"):
        call_command("benchmark_sync", "--users", "0", "--groups", "8")
