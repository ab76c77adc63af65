"""Connected Entra ID tenants and the record of every sync run."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone

from .graph.errors import ErrorClass

ERROR_CLASS_CHOICES = [(c.value, c.value.replace("_", " ").capitalize()) for c in ErrorClass]


class SyncMode(models.TextChoices):
    ASSIGNED = "assigned", "Assigned groups only (recommended)"
    ALL = "all", "All groups"


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
    last_sync_status = models.CharField(max_length=16, blank=True)
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

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "directories"
        # Buttons in the admin, separate from "change": staff may edit a directory's name
        # without being trusted to connect a tenant or approve the removal of many users.
        permissions = [
            ("verify_directory", "Can verify a directory (Verify Now)"),
            ("sync_directory", "Can start a sync (Sync Now)"),
            ("approve_mass_deletion", "Can approve a held mass deletion"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None and bool(self.tenant_id)


class SyncRun(models.Model):
    """One sync attempt, successful or not: what changed, what it cost, what went wrong."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Sync Now"
        COMMAND = "command", "Command"
        APPROVAL = "approval", "Approved mass deletion"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        NEEDS_APPROVAL = "needs_approval", "Needs approval"

    directory = models.ForeignKey(Directory, on_delete=models.CASCADE, related_name="sync_runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
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

    graph_requests = models.PositiveIntegerField(default=0)
    graph_retries = models.PositiveIntegerField(default=0)

    error_class = models.CharField(max_length=32, choices=ERROR_CLASS_CHOICES, blank=True)
    error_message = models.TextField(blank=True)
    error_remediation = models.TextField(blank=True)
    graph_request_id = models.CharField(max_length=64, blank=True)
    # For a run held by the mass-deletion guard: what it would have removed.
    planned_removals = models.JSONField(default=dict, blank=True)

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

    def summary(self) -> str:
        """A short line such as '+3 users, ~1 group, -2 memberships' (or 'no changes')."""
        parts = []
        for label, created, updated, removed in (
            ("users", self.users_created, self.users_updated, self.users_removed),
            ("groups", self.groups_created, self.groups_updated, self.groups_removed),
            ("memberships", self.memberships_created, 0, self.memberships_removed),
        ):
            changes = [
                f"{sign}{n}" for sign, n in (("+", created), ("~", updated), ("-", removed)) if n
            ]
            if changes:
                parts.append(f"{' '.join(changes)} {label}")
        return ", ".join(parts) or "no changes"
