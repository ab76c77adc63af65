"""sync_directory's exit status for every mix of outcomes: broken wins (1), then waiting for a
person (3), else 0; one stderr line per directory that did not succeed."""

from __future__ import annotations

import io
import itertools
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from directories.graph import GraphUnauthorized
from directories.management.commands.sync_directory import sync_exit_status
from directories.models import Directory
from directories.sync.lock import DirectoryLock
from tests.factories import DirectoryFactory

from ..sync.fakes import FakeGraph, make_group, make_user

pytestmark = pytest.mark.django_db

# What can happen to one directory of `sync_directory --all`, and whether it counts as broken.
OUTCOMES = {
    "succeeded": False,
    "held": False,  # the mass-deletion guard waits for approval
    "failed": True,  # Graph refused (recorded as a failed run)
    "crashed": True,  # a bug inside the engine (recorded as failed, internal)
    "busy": True,  # another sync holds the directory's lock
}


@pytest.mark.parametrize(
    ("failed", "held", "status"),
    [(False, False, 0), (False, True, 3), (True, False, 1), (True, True, 1)],
)
def test_the_rule(failed: bool, held: bool, status: int) -> None:
    assert sync_exit_status(failed=failed, held=held) == status


class Tenants:
    """One FakeGraph per directory, each set up to end its next sync in a given way."""

    def __init__(self) -> None:
        self.graphs: dict[str, FakeGraph] = {}
        self.crashing: set[str] = set()

    def client_for(self, *, tenant_id: str, **kwargs: object) -> FakeGraph:
        if tenant_id in self.crashing:
            raise RuntimeError("boom")
        return self.graphs[tenant_id]

    def directory(self, outcome: str) -> Directory:
        directory = DirectoryFactory(name=outcome)
        graph = self.graphs[directory.tenant_id] = FakeGraph()
        users = [make_user(f"{outcome}{i}") for i in range(20)]
        group = graph.add_group(make_group("Everyone"), users)
        if outcome == "held":
            call_command("sync_directory", outcome, stdout=io.StringIO())
            graph.set_members(group.id, users[:2])  # 18 of 20 users would go
        elif outcome == "failed":
            graph.fail_with = GraphUnauthorized("Microsoft rejected the client secret.")
        elif outcome == "crashed":
            self.crashing.add(directory.tenant_id)
        elif outcome == "busy":
            assert DirectoryLock(directory.pk, ttl_seconds=60).acquire()
        return directory


@pytest.fixture
def tenants(monkeypatch: pytest.MonkeyPatch) -> Tenants:
    tenants = Tenants()
    monkeypatch.setattr("directories.sync.engine.graph_client_for", tenants.client_for)
    return tenants


def sync_all(*args: str) -> tuple[int, str, list[str]]:
    """Exit status, stdout and stderr lines, as the shell would see them."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("sync_directory", "--all", *args, stdout=out, stderr=err)
    except CommandError as error:
        return error.returncode, out.getvalue(), [*err.getvalue().splitlines(), str(error)]
    return 0, out.getvalue(), err.getvalue().splitlines()


MIXES = [mix for size in range(len(OUTCOMES) + 1) for mix in itertools.combinations(OUTCOMES, size)]


@pytest.mark.parametrize("mix", MIXES, ids=lambda mix: "+".join(mix) or "nothing")
def test_every_mix_of_outcomes(tenants: Tenants, mix: tuple[str, ...]) -> None:
    for outcome in mix:
        tenants.directory(outcome)
    broken = any(OUTCOMES[outcome] for outcome in mix)
    expected = 1 if broken else 3 if "held" in mix else 0

    status, out, problems = sync_all("--json")

    assert status == expected
    # Directories sync in name order; one stderr line for each that did not succeed.
    not_ok = sorted(outcome for outcome in mix if outcome != "succeeded")
    assert [line.split(":", 1)[0] for line in problems] == not_ok
    assert all("Traceback" not in line for line in problems)
    # The JSON has every directory that ran; a busy one did not.
    statuses = {s["directory"]: s["status"] for s in json.loads(out)}
    assert statuses == {
        outcome: {"held": "needs_approval", "crashed": "failed"}.get(outcome, outcome)
        for outcome in mix
        if outcome != "busy"
    }


@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_one_directory_by_name_exits_as_with_all(tenants: Tenants, outcome: str) -> None:
    tenants.directory(outcome)

    try:
        call_command("sync_directory", outcome, stdout=io.StringIO(), stderr=io.StringIO())
        status = 0
    except CommandError as error:
        status = error.returncode

    assert status == (1 if OUTCOMES[outcome] else 3 if outcome == "held" else 0)


def test_a_refused_directory_counts_as_broken(tenants: Tenants) -> None:
    DirectoryFactory(name="Unverified", verified_at=None)

    with pytest.raises(CommandError, match="not verified yet") as error:
        call_command("sync_directory", "Unverified", "--json", stdout=io.StringIO())

    assert error.value.returncode == 1


def test_a_dry_run_exits_as_the_real_run_would(tenants: Tenants) -> None:
    """3 when the guard would hold the run: a script can check before it syncs (nothing is
    recorded, so nothing waits for approval)."""
    tenants.directory("held")

    with pytest.raises(CommandError) as error:
        call_command("sync_directory", "held", "--dry-run", stdout=io.StringIO())

    assert error.value.returncode == 3
    assert not Directory.objects.get(name="held").sync_runs.filter(status="needs_approval").exists()
