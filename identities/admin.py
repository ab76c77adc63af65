"""Synced data is read-only in the admin: Entra ID is the source of truth."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Membership, SyncedGroup, SyncedUser


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SyncedUser)
class SyncedUserAdmin(ReadOnlyAdmin):
    list_display = (
        "display_name",
        "user_principal_name",
        "mail",
        "account_enabled",
        "user_type",
        "directory",
        "removed_at",
    )
    list_filter = ("directory", "account_enabled", "user_type")
    search_fields = ("display_name", "user_principal_name", "mail", "=entra_id")
    list_select_related = ("directory",)


@admin.register(SyncedGroup)
class SyncedGroupAdmin(ReadOnlyAdmin):
    list_display = ("display_name", "mail", "security_enabled", "directory", "removed_at")
    list_filter = ("directory", "security_enabled", "mail_enabled")
    search_fields = ("display_name", "mail", "=entra_id")
    list_select_related = ("directory",)


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ("user", "group", "directory", "first_synced_at", "removed_at")
    list_filter = ("directory",)
    search_fields = ("user__user_principal_name", "group__display_name", "=user__entra_id")
    list_select_related = ("user", "group", "directory")
    raw_id_fields = ("user", "group")
