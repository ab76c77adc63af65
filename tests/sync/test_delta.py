"""Delta sync: the stored tenant, local transitive membership, and when a run reads in full."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from directories.models import Directory, SyncMode, SyncRun
from directories.sync import directory_sync
from identities.selectors import directory_present_state
from tests.factories import DirectoryFactory

from .fakes import FakeGraph, make_group, make_user
from .fakes import sync_with as sync

pytestmark = pytest.mark.django_db
FULL, DELTA = SyncRun.ReadMode.FULL, SyncRun.ReadMode.DELTA


def fresh_state(graph: FakeGraph, mode: str) -> Any:
    """What a first, full sync of the same tenant into a new directory gives."""
    other = DirectoryFactory(sync_mode=mode)
    assert sync(other, graph).read_mode == FULL
    return directory_present_state(directory=other)


def identity_writes(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if "identities_" in q["sql"] and q["sql"].lstrip()[:6] in ("INSERT", "UPDATE", "DELETE")
    ]


def test_the_first_sync_reads_in_full_and_the_next_ones_read_deltas() -> None:
    graph = FakeGraph()
    graph.add_group(make_group("Engineering"), [make_user("Ada")])
    directory = DirectoryFactory(sync_mode=SyncMode.ASSIGNED)

    first = sync(directory, graph)
    directory.refresh_from_db()
    before = graph.stats.requests
    with CaptureQueriesContext(connection) as queries:
        again = sync(directory, graph)

    assert (first.read_mode, first.status) == (FULL, SyncRun.Status.SUCCEEDED)
    assert directory.users_delta_link and directory.groups_delta_link
    assert (again.read_mode, again.summary()) == (DELTA, "no changes")
    # Assignments, the users round and the groups round: nothing else, nothing written.
    assert graph.stats.requests - before == 3
    assert identity_writes(queries) == []
    assert (again.users_seen, again.groups_seen, again.memberships_seen) == (1, 1, 1)


def test_a_change_to_a_nested_group_reaches_the_group_it_is_nested_in() -> None:
    graph = FakeGraph()
    ada, bob = make_user("Ada"), make_user("Bob")
    parent = graph.add_group(make_group("All staff"), [ada])
    child = graph.add_group(make_group("Engineering"), [], assigned=False)
    graph.nest(parent.id, child.id)
    directory = DirectoryFactory(sync_mode=SyncMode.ASSIGNED)
    sync(directory, graph)

    graph.set_members(child.id, [bob])
    run = sync(directory, graph)

    assert run.read_mode == DELTA
    state = directory_present_state(directory=directory)
    assert state.memberships == {(parent.id, ada.id), (parent.id, bob.id)}
    assert state.group_ids == {parent.id}  # the nested group is not assigned itself


def test_nesting_cycles_are_tolerated() -> None:
    graph = FakeGraph()
    ada, bob = make_user("Ada"), make_user("Bob")
    a = graph.add_group(make_group("A"), [ada])
    b = graph.add_group(make_group("B"), [bob])
    graph.nest(a.id, b.id)
    graph.nest(b.id, a.id)
    directory = DirectoryFactory(sync_mode=SyncMode.ALL)

    sync(directory, graph)

    state = directory_present_state(directory=directory)
    assert state.memberships == {(g, u) for g in (a.id, b.id) for u in (ada.id, bob.id)}


def test_a_newly_assigned_group_has_its_members_read_then() -> None:
    graph = FakeGraph()
    graph.add_group(make_group("Engineering"), [make_user("Ada")])
    sales = graph.add_group(make_group("Sales"), [make_user("Eve")], assigned=False)
    directory = DirectoryFactory(sync_mode=SyncMode.ASSIGNED)
    sync(directory, graph)
    reads = graph._member_reads

    graph.assign(sales.id, "Group", "Sales")
    run = sync(directory, graph)

    assert run.read_mode == DELTA and run.groups_created == 1 and run.users_created == 1
    assert graph._member_reads == reads + 1  # only Sales, which was never read


def test_an_expired_delta_link_falls_back_to_a_full_read() -> None:
    graph = FakeGraph()
    graph.add_group(make_group("Engineering"), [make_user("Ada")])
    directory = DirectoryFactory(sync_mode=SyncMode.ALL)
    sync(directory, graph)

    graph.expire_delta_links()
    graph.add_group(make_group("Sales"), [make_user("Eve")])
    run = sync(directory, graph)

    assert (run.read_mode, run.status) == (SyncRun.ReadMode.FULL_EXPIRED, SyncRun.Status.SUCCEEDED)
    assert run.summary() == "+1 users, +1 groups, +1 memberships"
    assert sync(directory, graph).read_mode == DELTA  # fresh links again


def test_a_full_read_reconciles_once_a_day(settings: Any) -> None:
    settings.SYNC_FULL_RECONCILE_HOURS = 24
    graph = FakeGraph()
    graph.add_group(make_group("Engineering"), [make_user("Ada")])
    directory = DirectoryFactory(sync_mode=SyncMode.ALL)
    sync(directory, graph)
    Directory.objects.filter(pk=directory.pk).update(
        full_read_at=timezone.now() - timedelta(hours=25)
    )

    assert sync(directory, graph).read_mode == SyncRun.ReadMode.FULL_RECONCILE
    assert sync(directory, graph).read_mode == DELTA


def test_a_held_run_does_not_advance_the_links_or_the_mirror(settings: Any) -> None:
    settings.SYNC_MASS_DELETE_MIN = 2
    graph = FakeGraph()
    users = [make_user(f"User{i}") for i in range(10)]
    group = graph.add_group(make_group("Everyone"), users)
    directory = DirectoryFactory(sync_mode=SyncMode.ALL)
    sync(directory, graph)
    directory.refresh_from_db()
    links = (directory.users_delta_link, directory.groups_delta_link)

    graph.set_members(group.id, users[:2])
    held = sync(directory, graph)
    directory.refresh_from_db()

    assert held.status == SyncRun.Status.NEEDS_APPROVAL
    assert (directory.users_delta_link, directory.groups_delta_link) == links
    approved = sync(directory, graph, allow_mass_delete=True)
    assert (approved.status, approved.users_removed) == (SyncRun.Status.SUCCEEDED, 8)


def test_a_dry_run_reads_but_moves_nothing() -> None:
    graph = FakeGraph()
    graph.add_group(make_group("Engineering"), [make_user("Ada")])
    directory = DirectoryFactory(sync_mode=SyncMode.ALL)
    sync(directory, graph)
    directory.refresh_from_db()
    links = (directory.users_delta_link, directory.groups_delta_link)

    graph.add_group(make_group("Sales"), [make_user("Eve")])
    outcome = directory_sync(
        directory=directory, trigger=SyncRun.Trigger.COMMAND, client=graph, dry_run=True
    )
    directory.refresh_from_db()

    assert outcome.plan is not None and outcome.plan.groups.created == 1
    assert (directory.users_delta_link, directory.groups_delta_link) == links
    assert sync(directory, graph).groups_created == 1  # the real run still sees it


# --- the delta-synced copy always equals a fresh full sync -----------------------------------

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "rename",
                "disable",
                "guest",
                "add_member",
                "remove_member",
                "nest",
                "unnest",
                "delete_group",
                "new_group",
                "assign",
                "unassign",
            ]
        ),
        st.integers(min_value=0, max_value=1000),
        st.integers(min_value=0, max_value=1000),
    ),
    min_size=1,
    max_size=12,
)


def apply_operation(graph: FakeGraph, pool: list[Any], op: str, i: int, j: int) -> None:
    groups = sorted(graph.groups_by_id)
    if not groups:
        op = "new_group"
    user = pool[i % len(pool)]
    current = {u.id: u for members in graph.members.values() for u in members}
    user = current.get(user.id, user)
    if op == "rename":
        pool[i % len(pool)] = graph.replace_user(user, display_name=f"{user.display_name}'")
    elif op == "disable":
        pool[i % len(pool)] = graph.replace_user(user, account_enabled=not user.account_enabled)
    elif op == "guest":
        pool[i % len(pool)] = graph.replace_user(user, user_type="Guest")
    elif op == "add_member":
        group = groups[j % len(groups)]
        if all(u.id != user.id for u in graph.members[group]):
            graph.members[group].append(user)
    elif op == "remove_member":
        group = groups[j % len(groups)]
        graph.members[group] = [u for u in graph.members[group] if u.id != user.id]
    elif op == "nest":
        graph.nest(groups[i % len(groups)], groups[j % len(groups)])
    elif op == "unnest":
        graph.nested[groups[i % len(groups)]].discard(groups[j % len(groups)])
    elif op == "delete_group" and len(groups) > 1:
        graph.remove_group(groups[j % len(groups)])
    elif op == "new_group":
        graph.add_group(make_group(f"G{i}"), [user], assigned=j % 2 == 0)
    elif op == "assign":
        graph.assign(groups[j % len(groups)], "Group", "g")
    elif op == "unassign":
        gone = groups[j % len(groups)]
        graph.assigned = [a for a in graph.assigned if a.principal_id != gone]


@pytest.mark.parametrize("mode", [SyncMode.ALL, SyncMode.ASSIGNED])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(OPERATIONS, min_size=1, max_size=3))
def test_after_any_changes_delta_sync_equals_a_fresh_full_sync(
    mode: str, steps: list[list[tuple[str, int, int]]]
) -> None:
    graph = FakeGraph()
    pool = [make_user(f"User{n}") for n in range(6)]
    for n in range(3):
        graph.add_group(make_group(f"Group{n}"), pool[n : n + 3], assigned=n != 2)
    directory = DirectoryFactory(sync_mode=mode)
    sync(directory, graph, allow_mass_delete=True)

    for operations in steps:
        for op, i, j in operations:
            apply_operation(graph, pool, op, i, j)
        if mode == SyncMode.ASSIGNED and not any(
            a.principal_type == "Group" and a.principal_id in graph.groups_by_id
            for a in graph.assigned
        ):
            graph.assign(sorted(graph.groups_by_id)[0], "Group", "g")
        run = sync(directory, graph, allow_mass_delete=True)
        assert run.status == SyncRun.Status.SUCCEEDED, run.error_message
        assert run.read_mode == DELTA
        assert directory_present_state(directory=directory) == fresh_state(graph, mode)
