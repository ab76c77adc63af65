"""What the troubleshooting page shows: recent failures explained, and why a user is not synced.

Admins reach this page when something did not sync. Everything here answers in plain words
what happened and what to do, using DESIGN.md's error classes and the README's guide, so the
page, the docs and `sync_history --failures` tell the same story.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from directories.graph.errors import ErrorClass, GraphError, GraphNotFound
from directories.graph.types import GraphGroup, GraphUser
from directories.models import Directory, SyncRun
from directories.sync.reader import DirectoryReader
from directories.sync.scope import SyncScope, read_scope
from identities.models import SyncedUser, SyncedUserQuerySet

from .graph import graph_client_for

# --- the guide ---------------------------------------------------------------------------------

GUIDE_UNAUTHORIZED = "Unauthorized or Access Denied"
GUIDE_GROUPS_ASSIGNED = "Groups not syncing in assigned mode"
GUIDE_USERS = "Users not syncing"
GUIDE_WRONG_TENANT = "Wrong tenant"


@dataclass(frozen=True)
class ErrorKind:
    """One group on the troubleshooting page: which error classes, and what to tell the admin."""

    key: str
    classes: tuple[str, ...]
    title: str
    remediation: str
    guide_topics: tuple[str, ...] = ()


ERROR_KINDS: tuple[ErrorKind, ...] = (
    ErrorKind(
        key=ErrorClass.UNAUTHORIZED,
        classes=(ErrorClass.UNAUTHORIZED,),
        title="Unauthorized: Microsoft refused entra-sync's credentials",
        remediation=(
            "The client secret is wrong or expired, or consent was not granted (or was "
            "revoked) in this tenant. Put the secret's Value (not its Secret ID) of the "
            "Directory Sync application in ENTRA_CLIENT_SECRET, creating a new secret if it "
            "expired, and restart entra-sync. With a certificate (ENTRA_CLIENT_CERTIFICATE_PATH) "
            "instead of a secret: upload its .crt to the application under Certificates & "
            "secrets, or create a new one if it expired. Then use Verify Now on the directory so "
            "a tenant administrator grants admin consent again, with all permissions."
        ),
        guide_topics=(GUIDE_UNAUTHORIZED,),
    ),
    ErrorKind(
        key=ErrorClass.FORBIDDEN,
        classes=(ErrorClass.FORBIDDEN,),
        title="Access denied: a Graph permission is missing",
        remediation=(
            "The Directory Sync application signs in but lacks an application permission "
            "(the message names it). In Entra ID, open App registrations > the Directory Sync "
            "application > API permissions, add User.Read.All, GroupMember.Read.All and "
            "Application.Read.All as application permissions, then grant admin consent again "
            "(or use Verify Now)."
        ),
        guide_topics=(GUIDE_UNAUTHORIZED,),
    ),
    ErrorKind(
        key=ErrorClass.NOT_ASSIGNED,
        classes=(ErrorClass.NOT_ASSIGNED,),
        title="Assigned groups only: no groups can be read",
        remediation=(
            "In assigned mode only groups assigned to the Authentication application (not the "
            "Directory Sync one) are synced, and only users who are members of those groups. "
            "In Entra ID, open Enterprise applications > the Authentication application > "
            "Users and groups and assign the groups (this needs Entra ID P1 or P2). Users "
            "assigned directly are not synced: assign a group they are in instead. If the "
            "Authentication application is missing from the tenant, an administrator must sign "
            "in to it once. With Entra ID Free, switch the directory to 'All groups'. To see "
            "why one user is missing, use 'Why isn't this user syncing?' below."
        ),
        guide_topics=(GUIDE_GROUPS_ASSIGNED, GUIDE_USERS),
    ),
    ErrorKind(
        key=ErrorClass.WRONG_TENANT,
        classes=(ErrorClass.WRONG_TENANT,),
        title="Wrong tenant",
        remediation=(
            "The tenant id does not exist or answers as another tenant than the one this "
            "directory was connected to. Check the tenant id on the directory. To connect a "
            "different tenant, remove the directory and add it again, signing in to the right "
            "tenant during Verify Now."
        ),
        guide_topics=(GUIDE_WRONG_TENANT,),
    ),
    ErrorKind(
        key="throttled_transient",
        classes=(ErrorClass.THROTTLED, ErrorClass.TRANSIENT),
        title="Throttled or temporarily unavailable",
        remediation=(
            "Microsoft Graph throttled the requests (429) or failed (5xx, network). entra-sync "
            "retries these automatically and nothing was changed; the next scheduled sync "
            "tries again. If it persists, check this server's network access to Microsoft and "
            "the Microsoft 365 service health page, or sync less often."
        ),
    ),
    ErrorKind(
        key=ErrorClass.NEEDS_APPROVAL,
        classes=(ErrorClass.NEEDS_APPROVAL,),
        title="Held by the mass-deletion guard",
        remediation=(
            "The run would have removed a large share of the directory, so it stopped before "
            "changing anything. Open the run, review the planned removals, and approve it if "
            "they are expected; otherwise fix the assignments in Entra ID and sync again."
        ),
    ),
    ErrorKind(
        key=ErrorClass.BAD_RESPONSE,
        classes=(ErrorClass.BAD_RESPONSE,),
        title="Microsoft Graph sent something unusable",
        remediation=(
            "Nothing was changed. If it happens again, report it with the Graph request id "
            "shown here (Microsoft support asks for it)."
        ),
    ),
    ErrorKind(
        key=ErrorClass.INTERRUPTED,
        classes=(ErrorClass.INTERRUPTED,),
        title="Interrupted: the worker stopped mid-sync",
        remediation=(
            "The process running the sync was killed, ran out of memory or was restarted "
            "before the run finished; nothing was changed and the next sync starts over. If "
            "it keeps happening, give the qcluster workers more memory (a large tenant's "
            "first sync needs a few hundred MB) and check their logs and the service "
            "manager's (systemd, the container runtime) around the run's start time."
        ),
    ),
    ErrorKind(
        key=ErrorClass.INTERNAL,
        classes=(ErrorClass.INTERNAL,),
        title="Internal error in entra-sync",
        remediation=(
            "Nothing was changed. Check entra-sync's logs for the traceback and report it, "
            "with the run's details."
        ),
    ),
)
_KIND_BY_CLASS = {cls: kind for kind in ERROR_KINDS for cls in kind.classes}


def error_kind(error_class: str) -> ErrorKind:
    """The page's group for a stored error class; unknown or empty ones count as internal."""
    return _KIND_BY_CLASS.get(error_class, _KIND_BY_CLASS[ErrorClass.INTERNAL])


# --- recent failures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FailureEntry:
    run: SyncRun
    run_url: str
    directory_url: str
    message: str
    remediation: str  # the run's own, more specific advice, when it recorded one
    request_id: str


@dataclass(frozen=True)
class FailureGroup:
    kind: ErrorKind
    entries: list[FailureEntry] = field(default_factory=list)


def _run_error_class(run: SyncRun) -> str:
    if run.error_class:
        return run.error_class
    if run.status == SyncRun.Status.NEEDS_APPROVAL:
        return ErrorClass.NEEDS_APPROVAL
    return ErrorClass.INTERNAL


def sync_failures_recent(
    *, since: datetime, directory: Directory | None = None, limit: int = 200
) -> list[FailureGroup]:
    """Failed and held runs since a time, grouped by error class in the order of ERROR_KINDS.

    Groups without failures are left out: the page shows only what needs attention.
    """
    runs = (
        SyncRun.objects.select_related("directory")
        .filter(
            started_at__gte=since,
            status__in=[SyncRun.Status.FAILED, SyncRun.Status.NEEDS_APPROVAL],
        )
        .order_by("-started_at", "-pk")
    )
    if directory is not None:
        runs = runs.filter(directory=directory)
    grouped: dict[str, FailureGroup] = {}
    for run in runs[:limit]:
        kind = error_kind(_run_error_class(run))
        group = grouped.setdefault(kind.key, FailureGroup(kind=kind))
        group.entries.append(
            FailureEntry(
                run=run,
                run_url=reverse("admin:directories_syncrun_change", args=[run.pk]),
                directory_url=reverse(
                    "admin:directories_directory_change", args=[run.directory_id]
                ),
                message=run.error_message,
                remediation=run.error_remediation,
                request_id=run.graph_request_id,
            )
        )
    return [grouped[kind.key] for kind in ERROR_KINDS if kind.key in grouped]


def directories_needing_attention(*, directory: Directory | None = None) -> list[Directory]:
    """Directories whose scheduled syncs are paused (`services.attention`), longest first:
    the page lists them before the failures, since nothing fixes them but a person."""
    found = Directory.objects.filter(attention_since__isnull=False)
    if directory is not None:
        found = found.filter(pk=directory.pk)
    return list(found.order_by("attention_since", "name"))


# --- why isn't this user syncing? --------------------------------------------------------------


class UserReader(DirectoryReader, Protocol):
    """The Graph reads "Why isn't this user syncing?" makes: the user and its groups.

    It extends the sync's DirectoryReader because the scope is read with `read_scope`, exactly
    as the sync reads it. `directories.graph.GraphClient` implements both.
    """

    def user(self, id_or_upn: str) -> GraphUser: ...

    def user_transitive_groups(self, user_id: str) -> list[GraphGroup]: ...


@dataclass(frozen=True)
class EntraFacts:
    """What Microsoft Graph says now: the user, its transitive groups and the directory's scope."""

    user: GraphUser
    groups: tuple[GraphGroup, ...]
    scope: SyncScope


@dataclass(frozen=True)
class NoSuchUser:
    """Graph has no user by that id or UPN: not a failure to ask, an answer."""

    request_id: str


@dataclass(frozen=True)
class UserFacts:
    """Everything known about one user before explaining it: the local copy, then Graph."""

    query: str
    tenant: str  # the tenant's name, or its id
    local: str  # what the local copy says about the user
    was_synced: bool  # the local copy has the user, present or removed
    present: bool  # ... and it is present, not removed
    entra: EntraFacts | NoSuchUser | GraphError | None = None  # None: unverified, not asked


@dataclass(frozen=True)
class Diagnosis:
    """One answer: a short verdict, what it means, and what to do about it."""

    verdict: str
    explanation: str
    remediation: str
    synced: bool = False
    local: str = ""  # what the local copy says about the user
    notes: tuple[str, ...] = ()  # disabled, guest, ...
    error_class: str = ""
    request_id: str = ""


def user_sync_diagnosis(
    *, directory: Directory, query: str, client: UserReader | None = None
) -> Diagnosis:
    """Explain whether, and why (not), one user is synced into a directory.

    Reading (`user_sync_facts`) and explaining (`explain`) are apart so every answer can be
    tested from facts alone. Graph errors become an answer too, never an exception.
    """
    return explain(user_sync_facts(directory=directory, query=query, client=client))


def user_sync_facts(
    *, directory: Directory, query: str, client: UserReader | None = None
) -> UserFacts:
    """The local copy of a user (by object id, UPN or mail) and, once verified, Graph's view.

    Graph is asked for the local copy's object id when there is one, so a renamed user is
    still found; a Graph error is kept as a fact for `explain` to put in words.
    """
    query = query.strip()
    local_user = _local_user(directory, query)
    facts = UserFacts(
        query=query,
        tenant=directory.tenant_name or directory.tenant_id,
        local=_local_line(local_user),
        was_synced=local_user is not None,
        present=local_user is not None and local_user.removed_at is None,
    )
    if not directory.is_verified:
        return facts
    key = local_user.entra_id if local_user else query
    return replace(facts, entra=_entra_facts(directory, key, client))


def _entra_facts(
    directory: Directory, key: str, client: UserReader | None
) -> EntraFacts | NoSuchUser | GraphError:
    try:
        reader: UserReader = client or graph_client_for(tenant_id=directory.tenant_id)
        user = reader.user(key)
    except GraphNotFound as exc:
        return NoSuchUser(request_id=exc.request_id or "")
    except GraphError as exc:
        return exc
    try:
        groups = reader.user_transitive_groups(user.id)
        scope = read_scope(reader, directory=directory)
    except GraphError as exc:  # even "not found": the user was there a moment ago
        return exc
    return EntraFacts(user=user, groups=tuple(groups), scope=scope)


def explain(facts: UserFacts) -> Diagnosis:
    """Why the user is (not) synced, from the facts alone (no I/O, so every case is testable).

    A user is in scope when `SyncScope.synced_groups` finds one of its groups in the scope that
    `read_scope` gives the sync too, so the answer cannot disagree with what the engine does.
    """
    entra = facts.entra
    if entra is None:
        return _not_connected(facts)
    if isinstance(entra, NoSuchUser):
        return _not_in_tenant(facts, entra)
    if isinstance(entra, GraphError):
        return _graph_failure(entra, facts.local)
    through = entra.scope.synced_groups(entra.groups)
    if through and facts.present:
        return _synced(facts, entra.user, through)
    if through:
        return _not_synced_yet(facts, entra.user, through)
    if not entra.scope.assigned_only:
        return _in_no_group(facts, entra.user)
    if entra.scope.is_assigned_directly(entra.user.id):
        return _assigned_directly(facts, entra)
    if not entra.groups:
        return _in_no_group_at_all(facts, entra.user)
    return _in_unassigned_groups(facts, entra)


def _names(groups: Sequence[GraphGroup] | Sequence[str], limit: int = 5) -> str:
    names = [g if isinstance(g, str) else g.display_name or g.id for g in groups]
    shown = ", ".join(f"'{n}'" for n in sorted(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _local_user(directory: Directory, query: str) -> SyncedUser | None:
    """The local copy of a user by object id, UPN or mail; a present one wins over a removed one."""
    matches: SyncedUserQuerySet = SyncedUser.objects.filter(directory=directory).filter(
        Q(entra_id__iexact=query) | Q(user_principal_name__iexact=query) | Q(mail__iexact=query)
    )
    return matches.order_by(F("removed_at").asc(nulls_first=True)).first()


def _local_line(user: SyncedUser | None) -> str:
    if user is None:
        return "Not in entra-sync's copy of this directory."
    if user.removed_at is not None:
        return f"Was synced, and removed at {user.removed_at:%Y-%m-%d %H:%M} UTC."
    groups = sorted(
        user.memberships.filter(removed_at__isnull=True).values_list(
            "group__display_name", flat=True
        )
    )
    since = f"Synced since {user.first_synced_at:%Y-%m-%d %H:%M} UTC"
    if groups:
        return f"{since}, in groups {_names(groups)}."
    return f"{since}, in no group."


def _notes(user: GraphUser, *, in_scope: bool) -> tuple[str, ...]:
    notes = []
    if not user.account_enabled:
        notes.append(
            "The account is disabled in Entra ID: disabled users are kept and marked disabled, "
            "not removed."
            if in_scope
            else "The account is disabled in Entra ID (that alone would not stop it syncing)."
        )
    if user.is_guest:
        notes.append("It is a guest account: guests are synced and marked as guests.")
    return tuple(notes)


def _leaving(facts: UserFacts) -> str:
    return " Its local copy is removed at the next sync." if facts.present else ""


def _not_connected(facts: UserFacts) -> Diagnosis:
    return Diagnosis(
        verdict="The directory is not connected yet",
        explanation="entra-sync does not know this directory's tenant, so it cannot ask "
        "Microsoft Graph about the user.",
        remediation="Open the directory and use Verify Now.",
        local=facts.local,
    )


def _not_in_tenant(facts: UserFacts, answer: NoSuchUser) -> Diagnosis:
    removal = (
        " The next sync marks it removed."
        if facts.present
        else " Its local copy was already marked removed."
        if facts.was_synced
        else ""
    )
    return Diagnosis(
        verdict="Not in the tenant",
        explanation=f"Microsoft Entra ID has no user with the object id or user principal "
        f"name {facts.query!r} in {facts.tenant}.{removal}",
        remediation="Check the spelling and that the user belongs to this tenant. A mail "
        "address is found only when it is also the user principal name or the user was "
        "synced before.",
        local=facts.local,
        request_id=answer.request_id,
    )


def _graph_failure(error: GraphError, local: str) -> Diagnosis:
    return Diagnosis(
        verdict="Could not ask Microsoft Graph",
        explanation=error.message,
        remediation=error.remediation,
        local=local,
        error_class=str(error.error_class),
        request_id=error.request_id or "",
    )


def _through(groups: Sequence[GraphGroup]) -> str:
    verb = "is" if len(groups) == 1 else "are"
    return f"It is in {_names(groups)}, which {verb} synced."


def _synced(facts: UserFacts, user: GraphUser, through: Sequence[GraphGroup]) -> Diagnosis:
    return Diagnosis(
        verdict="Synced" if user.account_enabled else "Synced, marked disabled",
        explanation=f"{facts.local} {_through(through)}",
        remediation="Nothing to do.",
        synced=True,
        local=facts.local,
        notes=_notes(user, in_scope=True),
    )


def _not_synced_yet(facts: UserFacts, user: GraphUser, through: Sequence[GraphGroup]) -> Diagnosis:
    return Diagnosis(
        verdict="Not synced yet",
        explanation=f"{_through(through)} It is not in the local copy yet.",
        remediation="The next sync adds it; use Sync Now to add it now. If runs are "
        "failing, see the failures above.",
        local=facts.local,
        notes=_notes(user, in_scope=True),
    )


def _in_no_group(facts: UserFacts, user: GraphUser) -> Diagnosis:
    return Diagnosis(
        verdict="In no group",
        explanation="The directory syncs all groups and the users in them, and this user "
        f"is a member of no group.{_leaving(facts)}",
        remediation="Add the user to a group in Entra ID; the next sync adds it.",
        local=facts.local,
        notes=_notes(user, in_scope=False),
    )


def _assigned_directly(facts: UserFacts, entra: EntraFacts) -> Diagnosis:
    groups = entra.groups
    return Diagnosis(
        verdict="Assigned directly instead of through a group",
        explanation="The user is assigned to the Authentication application itself. Only "
        "groups assigned to it are synced; users assigned directly are not."
        + (f" It is in {_names(groups)}, none of them assigned." if groups else "")
        + _leaving(facts),
        remediation="In Entra ID, open Enterprise applications > the Authentication "
        "application > Users and groups and assign a group the user is in instead.",
        local=facts.local,
        notes=_notes(entra.user, in_scope=False),
    )


def _in_no_group_at_all(facts: UserFacts, user: GraphUser) -> Diagnosis:
    return Diagnosis(
        verdict="In no synced group",
        explanation="Only members of the groups assigned to the Authentication application "
        f"are synced, and this user is a member of no group at all.{_leaving(facts)}",
        remediation="Add the user to a group that is assigned to the Authentication "
        "application, or assign one of its groups to it.",
        local=facts.local,
        notes=_notes(user, in_scope=False),
    )


def _in_unassigned_groups(facts: UserFacts, entra: EntraFacts) -> Diagnosis:
    groups, plural = entra.groups, len(entra.groups) != 1
    return Diagnosis(
        verdict="In no synced group",
        explanation=f"The user is in {'groups' if plural else 'group'} {_names(groups)}, but "
        f"{'none is' if plural else 'it is not'} assigned to the Authentication application, "
        f"so {'they are' if plural else 'it is'} not synced.{_leaving(facts)}",
        remediation=f"Group {_names(groups)} {'are' if plural else 'is'} not assigned to the "
        "Authentication app (assign it in Enterprise applications > Users and groups); this "
        "needs Entra ID P1 or P2. Make sure it is the Authentication application, not the "
        "Directory Sync one.",
        local=facts.local,
        notes=_notes(entra.user, in_scope=False),
    )


def default_since(days: int = 7) -> datetime:
    return timezone.now() - timedelta(days=days)
