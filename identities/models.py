"""The local copy of a directory: users, groups and who is in which group.

Every object is keyed by (directory, Entra object id), never by e-mail or UPN, which change.
Objects that leave scope keep their row with `removed_at` set, so history survives and a
returning object is revived rather than duplicated.
"""

from __future__ import annotations

from typing import Self, TypeVar

from django.db import models

from directories.models import Directory

_M = TypeVar("_M", bound=models.Model)


class PresentQuerySet(models.QuerySet[_M]):
    """Objects in scope now (`removed_at` unset); removed ones are kept for history."""

    def present(self) -> Self:
        return self.filter(removed_at__isnull=True)


class SyncedUserQuerySet(PresentQuerySet["SyncedUser"]):
    pass


class SyncedGroupQuerySet(PresentQuerySet["SyncedGroup"]):
    pass


class MembershipQuerySet(PresentQuerySet["Membership"]):
    pass


class UserType(models.TextChoices):
    """Graph's `userType`."""

    MEMBER = "Member", "Member"
    GUEST = "Guest", "Guest"


class SyncedUser(models.Model):
    # Not indexed alone: the (directory, entra_id) constraint's index starts with it.
    directory = models.ForeignKey(
        Directory, on_delete=models.CASCADE, related_name="users", db_index=False
    )
    entra_id = models.CharField("object id", max_length=64)
    user_principal_name = models.CharField("user principal name", max_length=320)
    mail = models.CharField(max_length=320, blank=True)
    display_name = models.CharField(max_length=256, blank=True)
    given_name = models.CharField(max_length=128, blank=True)
    surname = models.CharField(max_length=128, blank=True)
    account_enabled = models.BooleanField(default=True)
    user_type = models.CharField(max_length=16, choices=UserType.choices, default=UserType.MEMBER)
    first_synced_at = models.DateTimeField()
    changed_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)

    objects = SyncedUserQuerySet.as_manager()

    class Meta:
        ordering = ["display_name", "user_principal_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["directory", "entra_id"], name="unique_user_per_directory"
            )
        ]
        indexes = [
            models.Index(fields=["directory", "removed_at"]),
            models.Index(fields=["entra_id"]),
            models.Index(fields=["user_principal_name"]),
            models.Index(fields=["mail"]),
            models.Index(fields=["display_name"]),
        ]

    def __str__(self) -> str:
        return self.display_name or self.user_principal_name

    @property
    def is_guest(self) -> bool:
        return self.user_type == UserType.GUEST


class SyncedGroup(models.Model):
    directory = models.ForeignKey(
        Directory, on_delete=models.CASCADE, related_name="groups", db_index=False
    )
    entra_id = models.CharField("object id", max_length=64)
    display_name = models.CharField(max_length=256, blank=True)
    description = models.TextField(blank=True)
    mail = models.CharField(max_length=320, blank=True)
    mail_enabled = models.BooleanField(default=False)
    security_enabled = models.BooleanField(default=False)
    group_types = models.JSONField(default=list, blank=True)
    first_synced_at = models.DateTimeField()
    changed_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)

    objects = SyncedGroupQuerySet.as_manager()

    class Meta:
        ordering = ["display_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["directory", "entra_id"], name="unique_group_per_directory"
            )
        ]
        indexes = [
            models.Index(fields=["directory", "removed_at"]),
            models.Index(fields=["entra_id"]),
            models.Index(fields=["display_name"]),
            models.Index(fields=["mail"]),
        ]

    def __str__(self) -> str:
        return self.display_name or self.entra_id


class Membership(models.Model):
    """A user is in a group, directly or through nested groups."""

    # A large tenant has millions of memberships, and each index and foreign-key check costs
    # on every insert. The directory is always the group's (no database constraint needed);
    # the single-column indexes would repeat the first column of the indexes below.
    directory = models.ForeignKey(
        Directory,
        on_delete=models.CASCADE,
        related_name="memberships",
        db_index=False,
        db_constraint=False,
    )
    group = models.ForeignKey(
        SyncedGroup, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    user = models.ForeignKey(
        SyncedUser, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    first_synced_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "user"], name="unique_membership")]
        indexes = [
            models.Index(fields=["directory", "removed_at"]),
            models.Index(fields=["user", "removed_at"]),
            models.Index(fields=["group", "removed_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.group}"
