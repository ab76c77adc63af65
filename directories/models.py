"""Connected Entra ID tenants and the record of every sync run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from .graph.errors import ErrorClass

ERROR_CLASS_CHOICES = [(c.value, c.value.replace("_", " ").capitalize()) for c in ErrorClass]

# What each error class means, in the words a run's summary and the admin's filters use
# ("Failed: credentials refused"). Not the field's choices, which migrations record.
ERROR_CLASS_WORDS: dict[str, str] = {
    ErrorClass.UNAUTHORIZED: "credentials refused",
    ErrorClass.FORBIDDEN: "a Graph permission is missing",
    ErrorClass.NOT_ASSIGNED: "no assigned groups to read",
    ErrorClass.WRONG_TENANT: "wrong tenant",
    ErrorClass.THROTTLED: "throttled by Microsoft Graph",
    ErrorClass.TRANSIENT: "Microsoft Graph unavailable",
    ErrorClass.NEEDS_APPROVAL: "held by the mass-deletion guard",
    ErrorClass.BAD_RESPONSE: "unusable answer from Microsoft Graph",
    ErrorClass.INTERNAL: "internal error",
    ErrorClass.INTERRUPTED: "worker stopped mid-sync",
}


def error_class_words(error_class: str) -> str:
    """An error class in plain words ('credentials refused'); an unknown one de-underscored."""
    return ERROR_CLASS_WORDS.get(error_class, error_class.replace("_", " "))


# Seen, created, updated and removed per kind ("users", "groups", "memberships"; memberships
# are never "updated"): what a plan will do and what a run did, in one shape.
RunCounts = dict[str, dict[str, int]]
COUNTED_KINDS = ("users", "groups", "memberships")

# A queued Sync Now whose task never started (a cluster that was down, a flushed Redis) must
# not block the button forever: after this long the marker is ignored.
QUEUED_MARKER_TTL = timedelta(hours=1)


class SyncMode(models.TextChoices):
    ASSIGNED = "assigned", "Assigned groups only (recommended)"
    ALL = "all", "All groups"


class RunStatus(models.TextChoices):
    """How a sync run ended (or that it is still running); also the directory's last status."""

    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    NEEDS_APPROVAL = "needs_approval", "Needs approval"


class DirectoryStatus(models.TextChoices):
    """A directory's state at a glance, most urgent first (the badge in the admin)."""

    DISABLED = "disabled", "Disabled"
    UNVERIFIED = "unverified", "Not verified"
    SYNCING = "syncing", "Syncing"
    QUEUED = "queued", "Queued"
    NEEDS_ATTENTION = "needs_attention", "Needs attention"
    NEEDS_APPROVAL = "needs_approval", "Needs approval"
    FAILING = "failing", "Failing"
    NEVER_SYNCED = "never_synced", "Never synced"
    HEALTHY = "healthy", "Healthy"


class SyncState(models.TextChoices):
    """Whether a sync of the directory is on its way: what the change page polls for."""

    RUNNING = "running", "Running"
    QUEUED = "queued", "Queued"
    IDLE = "idle", "Idle"


class DirectoryPermission(models.TextChoices):
    """Directory's own permissions, beyond add/change/delete/view.

    Buttons in the admin are separate from "change": staff may edit a directory's name
    without being trusted to connect a tenant, approve the removal of many users, read every
    directory's failures or query any user with the app's credentials.
    """

    VERIFY = "verify_directory", "Can verify a directory (Verify Now)"
    SYNC = "sync_directory", "Can start a sync (Sync Now)"
    APPROVE = "approve_mass_deletion", "Can approve a held mass deletion"
    VIEW_TROUBLESHOOTING = "view_troubleshooting", "Can view the troubleshooting page"
    DIAGNOSE_USER = "diagnose_user", "Can ask Microsoft Graph why a user is not syncing"

    @property
    def perm(self) -> str:
        """The name `User.has_perm` takes."""
        return f"directories.{self.value}"


class DirectoryQuerySet(models.QuerySet["Directory"]):
    def syncable(self) -> DirectoryQuerySet:
        """Directories that may sync: verified (a tenant id and a verification) and enabled.

        The same rule as `Directory.sync_refusal()`, for the schedule and `sync_directory --all`.
        """
        return self.filter(is_enabled=True, verified_at__isnull=False).exclude(tenant_id="")


class Directory(models.Model):
    """One Entra ID tenant whose users, groups and memberships are kept in sync."""

    name = models.CharField(max_length=100, unique=True)
    sync_mode = models.CharField(max_length=16, choices=SyncMode.choices, default=SyncMode.ASSIGNED)
    tenant_id = models.CharField(max_length=36, blank=True, help_text="Entra ID tenant id (GUID)")
    tenant_name = models.CharField(max_length=256, blank=True)
    tenant_domain = models.CharField(max_length=256, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    is_enabled = models.BooleanField(
        default=True, help_text="Disabled directories keep their data but do not sync."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Summary of the most recent run, kept here so lists need no join.
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_status = models.CharField(max_length=16, choices=RunStatus.choices, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_sync_summary = models.CharField(max_length=255, blank=True)
    # The current problem, cleared by the next successful run.
    error_class = models.CharField(max_length=32, choices=ERROR_CLASS_CHOICES, blank=True)
    error_message = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)

    # A lock that holds across processes and machines; an expired one is taken over.
    sync_lock_token = models.CharField(max_length=64, blank=True, editable=False)
    sync_lock_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # A Sync Now waiting in the task queue (cleared when its task starts), so that a second
    # click is refused instead of queueing the same work twice.
    sync_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    sync_task_id = models.CharField(max_length=64, blank=True, editable=False)

    # Delta sync: where the next users and groups delta rounds start (Graph's opaque links,
    # advanced only by the transaction that applies a run), when the tenant was last read in
    # full, and the scope (assigned group ids) that run saw.
    users_delta_link = models.TextField(blank=True, editable=False)
    groups_delta_link = models.TextField(blank=True, editable=False)
    full_read_at = models.DateTimeField(null=True, blank=True, editable=False)
    delta_scope = models.JSONField(null=True, blank=True, editable=False)

    # "Needs attention": failures that will not go away by themselves (or that have lasted
    # too long) pause the directory's schedule until someone fixes them and verifies again.
    attention_since = models.DateTimeField(null=True, blank=True, editable=False)
    attention_reason = models.TextField(blank=True, editable=False)
    # When admins were last e-mailed about this directory's failures (alerts back off).
    alerted_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = DirectoryQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "directories"
        permissions = [(p.value, str(p.label)) for p in DirectoryPermission]

    def __str__(self) -> str:
        return self.name

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None and bool(self.tenant_id)

    def sync_refusal(self) -> str | None:
        """Why this directory may not sync now, or None if it may (see `objects.syncable()`)."""
        if not self.is_verified:
            return (
                f"{self.name} is not verified yet: use Verify Now in the admin or "
                f"`manage.py verify_directory {self.name} --tenant-id …`."
            )
        if not self.is_enabled:
            return f"{self.name} is disabled: enable it to sync."
        return None

    @property
    def needs_attention(self) -> bool:
        """Whether failures that need a person paused its scheduled syncs (see
        `directories.services.attention`); Sync Now and `sync_directory NAME` still run."""
        return self.attention_since is not None

    @property
    def is_sync_running(self) -> bool:
        """Whether a sync holds the lock (an expired lock belongs to a dead worker)."""
        expires = self.sync_lock_expires_at
        return bool(self.sync_lock_token) and expires is not None and expires > timezone.now()

    @property
    def is_sync_queued(self) -> bool:
        """Whether a Sync Now waits in the task queue (a stale marker does not count)."""
        requested = self.sync_requested_at
        return requested is not None and requested > timezone.now() - QUEUED_MARKER_TTL

    def sync_state(self) -> SyncState:
        if self.is_sync_running:
            return SyncState.RUNNING
        if self.is_sync_queued:
            return SyncState.QUEUED
        return SyncState.IDLE

    def status(self) -> DirectoryStatus:
        """The most urgent thing to know, from fields the directory list already has.

        A queued or running sync outranks the last result: a new result is on its way.
        """
        if not self.is_enabled:
            return DirectoryStatus.DISABLED
        if not self.is_verified:
            return DirectoryStatus.UNVERIFIED
        if self.is_sync_running:
            return DirectoryStatus.SYNCING
        if self.is_sync_queued:
            return DirectoryStatus.QUEUED
        if self.needs_attention:
            return DirectoryStatus.NEEDS_ATTENTION
        if self.last_sync_status == RunStatus.NEEDS_APPROVAL:
            return DirectoryStatus.NEEDS_APPROVAL
        if self.last_sync_status == RunStatus.FAILED or self.error_class:
            return DirectoryStatus.FAILING
        if not self.last_sync_status:
            # Verified, but no run has finished: nothing says it works yet.
            return DirectoryStatus.NEVER_SYNCED
        return DirectoryStatus.HEALTHY

    def last_sync_words(self, *, planned_removals: dict[str, Any] | None = None) -> str:
        """The last run's result in a line, as `SyncRun.summary()` words it.

        A held run's line needs that run's `planned_removals`; without them it says only that
        it is held.
        """
        if self.last_sync_status == RunStatus.FAILED:
            return f"Failed: {error_class_words(self.error_class or ErrorClass.INTERNAL)}"
        if self.last_sync_status == RunStatus.NEEDS_APPROVAL:
            if planned_removals:
                return f"Held: would remove {removals_summary(planned_removals)}"
            return "Held: waiting for approval of a mass deletion"
        return self.last_sync_summary


class SyncRun(models.Model):
    """One sync attempt, successful or not: what changed, what it cost, what went wrong."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Sync Now"
        COMMAND = "command", "Command"
        APPROVAL = "approval", "Approved mass deletion"

    Status = RunStatus

    directory = models.ForeignKey(Directory, on_delete=models.CASCADE, related_name="sync_runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    # Who started it: the admin user, and a name that outlives the user's deletion (the
    # username, "schedule", or "command (OS user)").
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    triggered_by_name = models.CharField(max_length=150, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    users_seen = models.PositiveIntegerField(default=0)
    users_created = models.PositiveIntegerField(default=0)
    users_updated = models.PositiveIntegerField(default=0)
    users_removed = models.PositiveIntegerField(default=0)
    groups_seen = models.PositiveIntegerField(default=0)
    groups_created = models.PositiveIntegerField(default=0)
    groups_updated = models.PositiveIntegerField(default=0)
    groups_removed = models.PositiveIntegerField(default=0)
    memberships_seen = models.PositiveIntegerField(default=0)
    memberships_created = models.PositiveIntegerField(default=0)
    memberships_removed = models.PositiveIntegerField(default=0)

    # Live progress of the fetch, written about once a second so a page can show it.
    groups_total = models.PositiveIntegerField(default=0)
    groups_done = models.PositiveIntegerField(default=0)
    progress_at = models.DateTimeField(null=True, blank=True)

    class ReadMode(models.TextChoices):
        FULL = "full", "Full read"
        DELTA = "delta", "Delta"
        FULL_EXPIRED = "full_expired", "Full read (delta token expired)"
        FULL_RECONCILE = "full_reconcile", "Full read (periodic reconciliation)"

    read_mode = models.CharField(max_length=16, choices=ReadMode.choices, blank=True)
    graph_requests = models.PositiveIntegerField(default=0)
    graph_retries = models.PositiveIntegerField(default=0)

    error_class = models.CharField(max_length=32, choices=ERROR_CLASS_CHOICES, blank=True)
    error_message = models.TextField(blank=True)
    error_remediation = models.TextField(blank=True)
    graph_request_id = models.CharField(max_length=64, blank=True)
    # For a run held by the mass-deletion guard: what it would have removed (a list to
    # review), and every user and group id it would have removed (what an approval allows).
    planned_removals = models.JSONField(default=dict, blank=True)
    held_removals = models.JSONField(default=dict, blank=True, editable=False)
    # A run that applies an admin's approval of a held run: which one, who, when.
    approved_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="approvals"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    # The directory lock this run holds: a "running" run whose token no longer holds the
    # lock was abandoned by its worker (killed, out of memory) and is reclaimed.
    lock_token = models.CharField(max_length=64, blank=True, editable=False)
    # Objects Graph sent that could not be stored (skipped) or were cleaned, in words.
    warnings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["directory", "-started_at"]),
            models.Index(fields=["status", "-started_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.directory} {self.started_at:%Y-%m-%d %H:%M} {self.status}"

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None

    def counts(self) -> RunCounts:
        """The run's counts in the shape `SyncPlan.counts()` gives them."""
        return {
            kind: {
                action: getattr(self, f"{kind}_{action}")
                for action in ("seen", "created", "updated", "removed")
                if hasattr(self, f"{kind}_{action}")
            }
            for kind in COUNTED_KINDS
        }

    def set_counts(self, counts: RunCounts, *, applied: bool) -> None:
        """Record a plan's counts: what was seen always, what changed only if it was applied."""
        for kind, actions in counts.items():
            for action, value in actions.items():
                if action == "seen" or applied:
                    setattr(self, f"{kind}_{action}", value)

    def summary(self) -> str:
        """What the run did, in a line: '+3 users, ~1 groups, -2 memberships' (or 'no changes').

        A held run changed nothing, so it says what it would remove ('Held: would remove 30
        users, …'); a failed one says why ('Failed: credentials refused').
        """
        if self.status == RunStatus.NEEDS_APPROVAL:
            return f"Held: would remove {removals_summary(self.planned_removals)}"
        if self.status == RunStatus.FAILED:
            return f"Failed: {error_class_words(self.error_class or ErrorClass.INTERNAL)}"
        return counts_summary(self.counts())


def removals_summary(planned: dict[str, Any]) -> str:
    """A held run's planned removals: '30 users, 2 groups, 45 memberships' (zeros left out)."""
    parts = []
    for kind, singular in (("users", "user"), ("groups", "group"), ("memberships", "membership")):
        count = int(planned.get(f"{kind}_count", len(planned.get(kind) or [])))
        if count:
            parts.append(f"{count} {singular if count == 1 else kind}")
    return ", ".join(parts) or "nothing"


def counts_summary(counts: RunCounts) -> str:
    """'+3 ~1 users, -2 memberships', or 'no changes'."""
    parts = []
    for kind in COUNTED_KINDS:
        actions = counts.get(kind, {})
        changes = [
            f"{sign}{actions[action]}"
            for sign, action in (("+", "created"), ("~", "updated"), ("-", "removed"))
            if actions.get(action)
        ]
        if changes:
            parts.append(f"{' '.join(changes)} {kind}")
    return ", ".join(parts) or "no changes"


# --- the tenant as last read (for delta sync) ------------------------------------------------
# Every user and group of the tenant and each group's direct members, as Graph last reported
# them: delta rounds update it, and transitive membership is computed from it locally. It is
# not the synced copy (identities.*): that holds only what is in scope. Graph's null is stored
# as "" (the synced copy does the same).


class MirroredUser(models.Model):
    directory = models.ForeignKey(
        Directory, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    entra_id = models.CharField(max_length=64)
    user_principal_name = models.TextField(blank=True)
    mail = models.TextField(blank=True)
    display_name = models.TextField(blank=True)
    given_name = models.TextField(blank=True)
    surname = models.TextField(blank=True)
    account_enabled = models.BooleanField(default=True)
    user_type = models.CharField(max_length=16, default="Member")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["directory", "entra_id"], name="unique_mirrored_user_per_directory"
            )
        ]

    def __str__(self) -> str:
        return self.user_principal_name or self.entra_id


class MirroredGroup(models.Model):
    directory = models.ForeignKey(
        Directory, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    entra_id = models.CharField(max_length=64)
    display_name = models.TextField(blank=True)
    description = models.TextField(blank=True)
    mail = models.TextField(blank=True)
    mail_enabled = models.BooleanField(default=False)
    security_enabled = models.BooleanField(default=False)
    group_types = models.JSONField(default=list, blank=True)
    # Whether its direct members were read (all of them); unread groups are outside any scope.
    members_known = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["directory", "entra_id"], name="unique_mirrored_group_per_directory"
            )
        ]

    def __str__(self) -> str:
        return self.display_name or self.entra_id


class MirroredEdge(models.Model):
    """A direct member (a user or a nested group) of a group."""

    class Kind(models.TextChoices):
        USER = "user", "User"
        GROUP = "group", "Group"

    # As Membership's: no lone index (the unique constraint's leads with it), no constraint.
    directory = models.ForeignKey(
        Directory, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    group_id = models.CharField(max_length=64)
    member_id = models.CharField(max_length=64)
    member_kind = models.CharField(max_length=8, choices=Kind.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["directory", "group_id", "member_id"], name="unique_mirrored_edge"
            )
        ]

    def __str__(self) -> str:
        return f"{self.member_id} in {self.group_id}"
