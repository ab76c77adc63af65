"""Admin for directories and their sync history (the full console comes with Verify Now)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import Directory, SyncRun


@admin.register(Directory)
class DirectoryAdmin(admin.ModelAdmin[Directory]):
    list_display = (
        "name",
        "sync_mode",
        "tenant_name",
        "tenant_id",
        "verified_at",
        "is_enabled",
        "last_sync_at",
        "last_sync_status",
        "last_sync_summary",
    )
    list_filter = ("sync_mode", "is_enabled", "last_sync_status")
    search_fields = ("name", "tenant_name", "tenant_id", "tenant_domain")
    readonly_fields = (
        "tenant_id",
        "tenant_name",
        "tenant_domain",
        "verified_at",
        "created_at",
        "last_sync_at",
        "last_sync_status",
        "last_success_at",
        "last_sync_summary",
        "error_class",
        "error_message",
        "consecutive_failures",
    )


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin[SyncRun]):
    list_display = (
        "started_at",
        "directory",
        "trigger",
        "status",
        "duration",
        "summary",
        "error_class",
        "graph_requests",
    )
    list_filter = ("status", "trigger", "directory", "started_at")
    date_hierarchy = "started_at"
    list_select_related = ("directory",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False
