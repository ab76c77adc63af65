"""`explain`: every answer of "Why isn't this user syncing?" from facts alone, no Graph, no DB."""

from __future__ import annotations

from dataclasses import replace

import pytest

from directories.graph import AppRoleAssignment, GraphForbidden, GraphGroup, GraphUser
from directories.services.troubleshooting import (
    EntraFacts,
    NoSuchUser,
    UserFacts,
    explain,
)
from directories.sync.scope import ALL_GROUPS, SyncScope, scope_from_assignments

ALICE = GraphUser(
    id="0a11ce00-0000-4000-8000-000000000001",
    user_principal_name="alice@contoso.example",
    mail=None,
    display_name="Alice",
    given_name=None,
    surname=None,
    account_enabled=True,
    user_type="Member",
)


def group(name: str) -> GraphGroup:
    return GraphGroup(
        id=f"group-{name.lower()}",
        display_name=name,
        description=None,
        mail=None,
        mail_enabled=False,
        security_enabled=True,
        group_types=(),
    )


SALES, STAFF = group("Sales"), group("Staff")


def assigned(*principals: tuple[str, str]) -> SyncScope:
    """Assigned mode's scope from (principal id, principal type) rows of appRoleAssignedTo."""
    return scope_from_assignments(
        [
            AppRoleAssignment(
                id=f"a{i}", principal_id=pid, principal_type=kind, principal_display_name=""
            )
            for i, (pid, kind) in enumerate(principals)
        ]
    )


SALES_ASSIGNED = assigned((SALES.id, "Group"))
NOT_LOCAL = "Not in entra-sync's copy of this directory."
LOCAL = "Synced since 2024-05-01 09:30 UTC, in groups 'Sales'."


def facts(
    *,
    user: GraphUser = ALICE,
    groups: tuple[GraphGroup, ...] = (SALES,),
    scope: SyncScope = SALES_ASSIGNED,
    present: bool = False,
) -> UserFacts:
    """Graph answered: the user, its transitive groups and the scope; maybe a local copy."""
    return UserFacts(
        query=user.user_principal_name,
        tenant="Contoso",
        local=LOCAL if present else NOT_LOCAL,
        was_synced=present,
        present=present,
        entra=EntraFacts(user=user, groups=groups, scope=scope),
    )


UNASKED = replace(facts(), entra=None)
DISABLED = replace(ALICE, account_enabled=False)
GUEST = replace(ALICE, user_type="Guest")


@pytest.mark.parametrize(
    ("given", "verdict", "synced"),
    [
        pytest.param(UNASKED, "The directory is not connected yet", False, id="not-verified"),
        pytest.param(
            replace(UNASKED, entra=NoSuchUser(request_id="r-1")),
            "Not in the tenant",
            False,
            id="not-in-tenant",
        ),
        pytest.param(
            replace(UNASKED, entra=GraphForbidden("Needs User.Read.All.")),
            "Could not ask Microsoft Graph",
            False,
            id="graph-error",
        ),
        pytest.param(facts(present=True), "Synced", True, id="synced"),
        pytest.param(
            facts(user=DISABLED, present=True), "Synced, marked disabled", True, id="disabled"
        ),
        pytest.param(facts(), "Not synced yet", False, id="not-synced-yet"),
        pytest.param(
            facts(groups=(STAFF, SALES), scope=ALL_GROUPS), "Not synced yet", False, id="all-mode"
        ),
        pytest.param(
            facts(groups=(), scope=ALL_GROUPS, present=True),
            "In no group",
            False,
            id="all-mode-in-no-group",
        ),
        pytest.param(
            facts(groups=(STAFF,), scope=assigned((SALES.id, "Group"), (ALICE.id, "User"))),
            "Assigned directly instead of through a group",
            False,
            id="assigned-directly",
        ),
        pytest.param(
            facts(scope=assigned((SALES.id, "Group"), (ALICE.id, "User")), present=True),
            "Synced",
            True,
            id="assigned-directly-and-through-a-group",
        ),
        pytest.param(facts(groups=()), "In no synced group", False, id="in-no-group-at-all"),
        pytest.param(
            facts(groups=(STAFF,), present=True),
            "In no synced group",
            False,
            id="in-groups-none-assigned",
        ),
        pytest.param(
            facts(scope=assigned((SALES.id, "ServicePrincipal"))),
            "In no synced group",
            False,
            id="only-groups-assigned-as-groups-count",
        ),
        pytest.param(facts(user=GUEST, present=True), "Synced", True, id="guest"),
    ],
)
def test_explain_gives_each_situation_its_verdict(
    given: UserFacts, verdict: str, synced: bool
) -> None:
    diagnosis = explain(given)

    assert (diagnosis.verdict, diagnosis.synced) == (verdict, synced)
    assert diagnosis.local == given.local


def test_a_guest_and_a_disabled_account_are_noted() -> None:
    guest = explain(facts(user=GUEST, present=True))
    disabled_out_of_scope = explain(facts(user=DISABLED, groups=()))

    assert guest.notes == ("It is a guest account: guests are synced and marked as guests.",)
    assert disabled_out_of_scope.notes == (
        "The account is disabled in Entra ID (that alone would not stop it syncing).",
    )


def test_a_present_user_out_of_scope_is_told_its_copy_goes_at_the_next_sync() -> None:
    diagnosis = explain(facts(groups=(STAFF,), present=True))

    assert diagnosis.explanation == (
        "The user is in group 'Staff', but it is not assigned to the Authentication "
        "application, so it is not synced. Its local copy is removed at the next sync."
    )


def test_a_graph_error_keeps_its_class_and_request_id() -> None:
    error = GraphForbidden("Needs User.Read.All.", request_id="r-2")

    diagnosis = explain(replace(UNASKED, entra=error))

    assert (diagnosis.error_class, diagnosis.request_id) == ("forbidden", "r-2")
    assert diagnosis.explanation == "Needs User.Read.All."
    assert diagnosis.remediation == error.remediation


def test_a_user_not_in_the_tenant_names_the_query_and_the_tenant() -> None:
    diagnosis = explain(replace(UNASKED, entra=NoSuchUser(request_id="r-3")))

    assert diagnosis.explanation == (
        "Microsoft Entra ID has no user with the object id or user principal name "
        "'alice@contoso.example' in Contoso."
    )
    assert diagnosis.request_id == "r-3"
