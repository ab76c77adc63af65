"""The record of every sync run: read-only, because history that can be edited is not history."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from directories.models import SyncRun

from .charts import seconds_rounded

PLANNED_REMOVALS_TEMPLATE = "admin/directories/_planned_removals.html"


def planned_removals_context(planned: dict[str, Any]) -> dict[str, Any]:
    """A held run's planned removals as the include shows them: listed items, complete counts.

    A run held again after an approval also shows what it would remove beyond the approved
    run (`beyond`): the difference the approver did not review.
    """
    kinds = []
    for kind, singular in (("users", "user"), ("groups", "group")):
        items = planned.get(kind) or []
        count = int(planned.get(f"{kind}_count", len(items)))
        kinds.append(
            {"singular": singular, "count": count, "items": items, "more": count - len(items)}
        )
    beyond = planned.get("beyond_approval")
    return {
        "kinds": kinds,
        "memberships": int(planned.get("memberships_count", 0)),
        "beyond": planned_removals_context(beyond) if beyond else None,
    }


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin[SyncRun]):
    list_display = (
        "started_at",
        "directory",
        "trigger",
        "status",
        "duration_display",
        "summary",
        "error_class",
        "read_mode",
        "graph_requests",
    )
    list_filter = ("directory", "status", "trigger", "read_mode", "started_at")
    date_hierarchy = "started_at"
    list_select_related = ("directory",)
    search_fields = ("error_message", "graph_request_id")
    fieldsets = (
        (None, {"fields": ("directory", "trigger", "status", "started_at", "finished_at")}),
        (
            "Problem",
            {
                "fields": (
                    "error_class",
                    "error_message",
                    "error_remediation",
                    "graph_request_id",
                    "planned_removals_display",
                    "warnings_display",
                )
            },
        ),
        ("Approval", {"fields": ("approved_run", "approved_by", "approved_at")}),
        (
            "Changes",
            {
                "fields": (
                    ("users_seen", "users_created", "users_updated", "users_removed"),
                    ("groups_seen", "groups_created", "groups_updated", "groups_removed"),
                    ("memberships_seen", "memberships_created", "memberships_removed"),
                )
            },
        ),
        (
            "Cost and progress",
            {
                "fields": (
                    "duration_display",
                    "read_mode",
                    ("graph_requests", "graph_retries"),
                    ("groups_done", "groups_total", "progress_at"),
                )
            },
        ),
    )
    readonly_fields = ("duration_display", "planned_removals_display", "warnings_display")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False

    @admin.display(description="Duration")
    def duration_display(self, obj: SyncRun) -> str:
        seconds = seconds_rounded(obj.duration)
        return "—" if seconds is None else f"{seconds} s"

    @admin.display(description="Planned removals")
    def planned_removals_display(self, obj: SyncRun) -> str:
        if not obj.planned_removals:
            return "—"
        return render_to_string(
            PLANNED_REMOVALS_TEMPLATE, {"removals": planned_removals_context(obj.planned_removals)}
        )

    @admin.display(description="Warnings")
    def warnings_display(self, obj: SyncRun) -> str:
        """Objects Graph sent that were cleaned or skipped; the run itself succeeded."""
        if not obj.warnings:
            return "—"
        return format_html_join(mark_safe("<br>"), "{}", ((w,) for w in obj.warnings))
