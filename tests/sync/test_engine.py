"""The sync engine: scope, changes, safety. Graph is replaced by FakeGraph (tests/sync/fakes.py)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta

import pytest
from django.core.mail import EmailMessage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from directories.graph import GraphThrottled, MemberRef
from directories.models import Directory, SyncMode, SyncRun
from directories.sync import SyncAlreadyRunning, SyncRefused, directory_sync
from directories.sync.lock import DirectoryLock
from identities.models import Membership, SyncedGroup, SyncedUser
from tests.factories import DirectoryFactory

from .fakes import FakeGraph, make_group, make_user
from .fakes import sync_with as sync

pytestmark = pytest.mark.django_db


def present_upns(directory: Directory) -> set[str]:
    return set(
        SyncedUser.objects.present()
        .filter(directory=directory)
        .values_list("user_principal_name", flat=True)
    )


def members_of(group_name: str) -> set[str]:
    return set(
        Membership.objects.present()
        .filter(group__display_name=group_name)
        .values_list("user__display_name", flat=True)
    )


@pytest.fixture
def assigned_directory() -> Directory:
    return DirectoryFactory(sync_mode=SyncMode.ASSIGNED)


@pytest.fixture
def all_directory() -> Directory:
    return DirectoryFactory(sync_mode=SyncMode.ALL)


def test_it_syncs_only_the_groups_assigned_to_the_authentication_app(
    graph: FakeGraph, assigned_directory: Directory
) -> None:
    ada, bob, eve = make_user("Ada"), make_user("Bob"), make_user("Eve")
    graph.add_group(make_group("Engineering"), [ada, bob])
    graph.add_group(make_group("Sales"), [eve], assigned=False)

    run = sync(assigned_directory, graph)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert present_upns(assigned_directory) == {ada.user_principal_name, bob.user_principal_name}
    assert set(SyncedGroup.objects.values_list("display_name", flat=True)) == {"Engineering"}
    assert members_of("Engineering") == {"Ada", "Bob"}
    assert (run.users_created, run.groups_created, run.memberships_created) == (2, 1, 2)


def test_it_syncs_every_group_in_all_groups_mode(
    graph: FakeGraph, all_directory: Directory
) -> None:
    ada, eve = make_user("Ada"), make_user("Eve")
    graph.add_group(make_group("Engineering"), [ada])
    graph.add_group(make_group("Sales"), [eve], assigned=False)
    graph.add_group(make_group("Empty"), [], assigned=False)

    sync(all_directory, graph)

    assert set(SyncedGroup.objects.values_list("display_name", flat=True)) == {
        "Engineering",
        "Sales",
        "Empty",
    }
    assert present_upns(all_directory) == {ada.user_principal_name, eve.user_principal_name}


def test_users_and_service_principals_assigned_directly_are_not_synced(
    graph: FakeGraph, assigned_directory: Directory
) -> None:
    ada, bob = make_user("Ada"), make_user("Bob")
    graph.add_group(make_group("Engineering"), [ada])
    graph.assign(bob.id, "User", "Bob")
    graph.assign("33333333-3333-4333-8333-333333333333", "ServicePrincipal", "Some app")

    sync(assigned_directory, graph)

    assert present_upns(assigned_directory) == {ada.user_principal_name}
    assert SyncedGroup.objects.count() == 1


def test_only_users_assigned_directly_fails_with_an_explanation(
    graph: FakeGraph, assigned_directory: Directory
) -> None:
    graph.assign(make_user("Bob").id, "User", "Bob")

    run = sync(assigned_directory, graph)

    assert run.status == SyncRun.Status.FAILED
    assert run.error_class == "not_assigned"
    assert "only users are (Bob)" in run.error_message
    assert "Assign groups instead of users" in run.error_remediation


def test_an_empty_assignment_list_fails_and_removes_nothing(
    graph: FakeGraph, assigned_directory: Directory
) -> None:
    group = graph.add_group(make_group("Engineering"), [make_user("Ada")])
    sync(assigned_directory, graph)
    graph.remove_group(group.id)

    run = sync(assigned_directory, graph)

    assert run.status == SyncRun.Status.FAILED
    assert run.error_class == "not_assigned"
    assert "Nothing was removed" in run.error_message
    assert SyncedUser.objects.present().count() == 1
    assert SyncedGroup.objects.present().count() == 1


def test_it_keeps_disabled_and_guest_users_and_marks_them(
    graph: FakeGraph, all_directory: Directory
) -> None:
    guest = make_user(
        "Gus",
        user_principal_name="gus_fabrikam.com#EXT#@contoso.onmicrosoft.com",
        user_type="Guest",
    )
    graph.add_group(make_group("Partners"), [guest, make_user("Dora", account_enabled=False)])

    sync(all_directory, graph)

    assert SyncedUser.objects.get(display_name="Gus").is_guest
    assert SyncedUser.objects.get(display_name="Dora").account_enabled is False


def test_a_user_without_mail_is_kept_by_its_upn(graph: FakeGraph, all_directory: Directory) -> None:
    graph.add_group(make_group("Staff"), [make_user("Nomail", mail=None)])

    sync(all_directory, graph)

    user = SyncedUser.objects.get()
    assert user.mail == ""
    assert user.user_principal_name == "nomail@contoso.onmicrosoft.com"


def test_a_user_in_several_groups_is_stored_once(
    graph: FakeGraph, all_directory: Directory
) -> None:
    ada = make_user("Ada")
    graph.add_group(make_group("Engineering"), [ada])
    graph.add_group(make_group("Everyone"), [ada, make_user("Bob")])

    run = sync(all_directory, graph)

    assert SyncedUser.objects.filter(entra_id=ada.id).count() == 1
    assert run.memberships_created == 3


def test_users_who_leave_scope_are_marked_removed_with_their_memberships(
    graph: FakeGraph, all_directory: Directory
) -> None:
    ada, bob = make_user("Ada"), make_user("Bob")
    group = graph.add_group(make_group("Engineering"), [ada, bob])
    sync(all_directory, graph)
    graph.set_members(group.id, [ada])

    run = sync(all_directory, graph)

    removed = SyncedUser.objects.get(entra_id=bob.id)
    assert removed.removed_at is not None
    assert not Membership.objects.present().filter(user=removed).exists()
    assert Membership.objects.filter(user=removed).exists()  # history survives
    assert (run.users_removed, run.memberships_removed) == (1, 1)


def test_a_returning_user_is_revived_not_duplicated(
    graph: FakeGraph, all_directory: Directory
) -> None:
    ada, bob = make_user("Ada"), make_user("Bob")
    group = graph.add_group(make_group("Engineering"), [ada, bob])
    sync(all_directory, graph)
    first_seen = SyncedUser.objects.get(entra_id=bob.id).first_synced_at
    graph.set_members(group.id, [ada])
    sync(all_directory, graph)
    graph.set_members(group.id, [ada, bob])

    run = sync(all_directory, graph)

    revived = SyncedUser.objects.get(entra_id=bob.id)
    assert revived.removed_at is None
    assert revived.first_synced_at == first_seen
    assert Membership.objects.present().filter(user=revived).count() == 1
    assert Membership.objects.filter(user=revived).count() == 1
    assert (run.users_created, run.memberships_created) == (1, 1)


def test_a_rename_updates_the_user_in_place(graph: FakeGraph, all_directory: Directory) -> None:
    ada = make_user("Ada")
    group = graph.add_group(make_group("Engineering"), [ada])
    sync(all_directory, graph)
    graph.replace_user(
        ada, display_name="Ada Lovelace", user_principal_name="ada.lovelace@contoso.com"
    )
    graph.groups_by_id[group.id] = make_group("Engineering & Research", id=group.id)

    run = sync(all_directory, graph)

    user = SyncedUser.objects.get()
    assert (user.entra_id, user.display_name) == (ada.id, "Ada Lovelace")
    assert user.user_principal_name == "ada.lovelace@contoso.com"
    assert SyncedGroup.objects.get().display_name == "Engineering & Research"
    assert (run.users_updated, run.groups_updated, run.users_created) == (1, 1, 0)


def test_a_resync_without_changes_writes_nothing_to_identities(
    graph: FakeGraph, all_directory: Directory
) -> None:
    graph.add_group(make_group("Engineering"), [make_user("Ada"), make_user("Bob")])
    graph.add_group(make_group("Disabled"), [make_user("Dora", account_enabled=False)])
    sync(all_directory, graph)

    with CaptureQueriesContext(connection) as queries:
        run = sync(all_directory, graph)

    writes = [
        q["sql"]
        for q in queries.captured_queries
        if "identities_" in q["sql"]
        and q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert writes == []
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.summary() == "no changes"


def test_a_failed_fetch_changes_nothing_and_is_recorded(
    graph: FakeGraph, all_directory: Directory
) -> None:
    ada = make_user("Ada")
    engineering = graph.add_group(make_group("Engineering"), [ada])
    sync(all_directory, graph)
    graph.set_members(engineering.id, [])
    graph.add_group(make_group("Sales"), [make_user("Eve")])
    graph.fail_with = GraphThrottled("Still throttled.", request_id="req-123")

    run = sync(all_directory, graph)

    assert run.status == SyncRun.Status.FAILED
    assert (run.error_class, run.graph_request_id) == ("throttled", "req-123")
    assert present_upns(all_directory) == {ada.user_principal_name}
    assert members_of("Engineering") == {"Ada"}
    all_directory.refresh_from_db()
    assert all_directory.error_class == "throttled"
    assert all_directory.consecutive_failures == 1
    assert all_directory.last_sync_summary.startswith("Failed: Still throttled.")


def test_the_next_success_clears_the_directory_error(
    graph: FakeGraph, all_directory: Directory
) -> None:
    graph.add_group(make_group("Engineering"), [make_user("Ada")])
    graph.fail_with = GraphThrottled("Throttled.")
    sync(all_directory, graph)
    graph.fail_with = None

    sync(all_directory, graph)

    all_directory.refresh_from_db()
    assert (all_directory.error_class, all_directory.consecutive_failures) == ("", 0)
    assert all_directory.last_success_at is not None
    assert all_directory.last_sync_summary == "+1 users, +1 groups, +1 memberships"


def test_a_mass_deletion_waits_for_approval(
    graph: FakeGraph, all_directory: Directory, settings: object
) -> None:
    users = [make_user(f"User{i:03}") for i in range(100)]
    group = graph.add_group(make_group("Everyone"), users)
    sync(all_directory, graph)
    graph.set_members(group.id, users[:70])

    held = sync(all_directory, graph)

    assert held.status == SyncRun.Status.NEEDS_APPROVAL
    assert held.error_class == "needs_approval"
    assert "30 of 100 users (30%)" in held.error_message
    assert held.planned_removals["users_count"] == 30
    assert {u["name"] for u in held.planned_removals["users"]} == {
        u.user_principal_name for u in users[70:]
    }
    assert SyncedUser.objects.present().count() == 100

    approved = sync(all_directory, graph, allow_mass_delete=True)

    assert approved.status == SyncRun.Status.SUCCEEDED
    assert approved.users_removed == 30
    assert SyncedUser.objects.present().count() == 70


def test_small_removals_below_the_floor_apply_without_approval(
    graph: FakeGraph, all_directory: Directory
) -> None:
    users = [make_user(f"User{i}") for i in range(20)]
    group = graph.add_group(make_group("Everyone"), users)
    sync(all_directory, graph)
    graph.set_members(group.id, users[:12])  # 8 of 20 (40%) but not more than 10

    run = sync(all_directory, graph)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.users_removed == 8


def test_an_empty_answer_never_wipes_a_small_directory(
    graph: FakeGraph, all_directory: Directory
) -> None:
    group = graph.add_group(make_group("Everyone"), [make_user("Ada"), make_user("Bob")])
    sync(all_directory, graph)
    graph.remove_group(group.id)

    run = sync(all_directory, graph)

    assert run.status == SyncRun.Status.NEEDS_APPROVAL
    assert "2 of 2 users (100%) and 1 of 1 groups" in run.error_message
    assert SyncedUser.objects.present().count() == 2


def test_a_dry_run_plans_and_writes_nothing(graph: FakeGraph, all_directory: Directory) -> None:
    graph.add_group(make_group("Engineering"), [make_user("Ada")])

    outcome = directory_sync(
        directory=all_directory, trigger=SyncRun.Trigger.COMMAND, client=graph, dry_run=True
    )

    assert outcome.run is None
    assert outcome.plan is not None
    assert (outcome.plan.users.created, outcome.plan.groups.created) == (1, 1)
    assert SyncedUser.objects.count() == 0
    assert SyncRun.objects.count() == 0


def test_a_group_deleted_while_reading_is_out_of_scope(
    graph: FakeGraph, assigned_directory: Directory
) -> None:
    graph.add_group(make_group("Engineering"), [make_user("Ada")])
    graph.assign("44444444-4444-4444-8444-444444444444", "Group", "Deleted meanwhile")

    run = sync(assigned_directory, graph)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert SyncedGroup.objects.count() == 1


def test_an_unverified_or_disabled_directory_is_refused(graph: FakeGraph) -> None:
    with pytest.raises(SyncRefused, match="not verified"):
        directory_sync(
            directory=DirectoryFactory(verified_at=None), trigger="command", client=graph
        )
    with pytest.raises(SyncRefused, match="disabled"):
        directory_sync(
            directory=DirectoryFactory(is_enabled=False), trigger="command", client=graph
        )


def test_the_lock_refuses_a_second_run_while_one_holds_it(
    graph: FakeGraph, all_directory: Directory
) -> None:
    holder = DirectoryLock(all_directory.pk, ttl_seconds=300)
    assert holder.acquire()

    with pytest.raises(SyncAlreadyRunning, match="already running"):
        sync(all_directory, graph)
    assert SyncRun.objects.count() == 0

    holder.release()
    assert sync(all_directory, graph).status == SyncRun.Status.SUCCEEDED


def test_a_lock_left_by_a_dead_worker_expires(graph: FakeGraph, all_directory: Directory) -> None:
    Directory.objects.filter(pk=all_directory.pk).update(
        sync_lock_token="dead-worker", sync_lock_expires_at=timezone.now() - timedelta(seconds=1)
    )

    run = sync(all_directory, graph)

    assert run.status == SyncRun.Status.SUCCEEDED
    all_directory.refresh_from_db()
    assert all_directory.sync_lock_token == ""


def test_an_unexpected_error_is_recorded_and_raised(
    graph: FakeGraph, all_directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph.add_group(make_group("Engineering"), [make_user("Ada")])

    def broken(**kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("directories.sync.engine.apply_plan", broken)
    with pytest.raises(RuntimeError):
        sync(all_directory, graph)

    run = SyncRun.objects.get()
    assert (run.status, run.error_class) == (SyncRun.Status.FAILED, "internal")
    assert "disk full" in run.error_message
    all_directory.refresh_from_db()
    assert all_directory.sync_lock_token == ""


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_syncs_of_one_directory_run_one_at_a_time() -> None:
    directory = DirectoryFactory(sync_mode=SyncMode.ALL)
    reading = threading.Event()
    release = threading.Event()

    class SlowGraph(FakeGraph):
        def group_members(self, group_ids: Sequence[str]) -> dict[str, list[MemberRef]]:
            reading.set()
            release.wait(timeout=10)
            return super().group_members(group_ids)

    slow = SlowGraph()
    slow.add_group(make_group("Engineering"), [make_user("Ada")])
    results: list[str] = []

    def first() -> None:
        try:
            results.append(sync(directory, slow).status)
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert reading.wait(timeout=10)
    with pytest.raises(SyncAlreadyRunning):
        sync(Directory.objects.get(pk=directory.pk), FakeGraph())
    release.set()
    thread.join(timeout=10)

    assert results == [SyncRun.Status.SUCCEEDED]
    assert SyncRun.objects.filter(directory=directory).count() == 1


def test_emptying_a_big_group_is_held_even_if_its_users_stay(
    graph: FakeGraph, all_directory: Directory
) -> None:
    users = [make_user(f"User{i:03}") for i in range(60)]
    everyone = graph.add_group(make_group("Everyone"), users)
    graph.add_group(make_group("Staff"), users)
    sync(all_directory, graph)
    graph.set_members(everyone.id, [])

    run = sync(all_directory, graph)

    assert run.status == SyncRun.Status.NEEDS_APPROVAL
    assert "60 of 120 memberships (50%)" in run.error_message
    assert run.planned_removals["memberships_count"] == 60
    assert members_of("Everyone") == {u.display_name for u in users}


def test_replacing_the_only_user_of_a_tiny_directory_is_not_a_mass_deletion(
    graph: FakeGraph, all_directory: Directory
) -> None:
    group = graph.add_group(make_group("Founders"), [make_user("Ada")])
    sync(all_directory, graph)
    graph.set_members(group.id, [make_user("Bob")])

    run = sync(all_directory, graph)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert (run.users_created, run.users_removed) == (1, 1)


def test_the_third_failure_in_a_row_and_the_recovery_mail_the_admins(
    graph: FakeGraph, all_directory: Directory, mailoutbox: list[EmailMessage]
) -> None:
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("boss", "boss@example.com", "x")
    graph.add_group(make_group("Engineering"), [make_user("Ada")])
    graph.fail_with = GraphThrottled("Throttled.")
    for _ in range(4):
        sync(all_directory, graph)
    graph.fail_with = None
    sync(all_directory, graph)

    assert [m.subject for m in mailoutbox] == [
        f"entra-sync: {all_directory.name} is failing to sync",
        f"entra-sync: {all_directory.name} syncs again",
    ]
