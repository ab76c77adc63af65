"""The record of every sync run: read-only, because history that can be edited is not history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from directories.models import ERROR_CLASS_WORDS, SyncRun
from directories.templatetags.entra_time import moment_html

from .charts import seconds_rounded

PLANNED_REMOVALS_TEMPLATE = "admin/directories/_planned_removals.html"
# How a blank value (a directory that never synced, a run without an error) is in a filter's URL.
BLANK = "none"


def choices_filter(
    field: str, *, title: str, choices: Sequence[tuple[str, str]]
) -> type[admin.SimpleListFilter]:
    """A list filter on `field` titled and labelled in words, whatever the field's choices say.

    The labels live here, not in the field's choices, so rewording them needs no migration.
    A blank value ("") is offered as `BLANK` in the URL, whose parameter is the one Django's own
    filter on the field uses (`field__exact`), so links to filtered lists keep working.
    """

    class ChoicesFilter(admin.SimpleListFilter):
        parameter_name = f"{field}__exact"

        def lookups(
            self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
        ) -> list[tuple[str, str]]:
            return [(str(value) or BLANK, label) for value, label in choices]

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            value = self.value()
            allowed = {str(v) or BLANK: str(v) for v, _ in choices}
            if value not in allowed:
                return queryset
            return queryset.filter(**{field: allowed[value]})

    ChoicesFilter.title = title
    ChoicesFilter.__name__ = ChoicesFilter.__qualname__ = f"{field.title().replace('_', '')}Filter"
    return ChoicesFilter


def error_words_choices() -> list[tuple[str, str]]:
    """Every error class, as the run list's filter names it ('Credentials refused')."""
    return [(value, words[0].upper() + words[1:]) for value, words in ERROR_CLASS_WORDS.items()]


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
        "started",
        "directory",
        "trigger",
        "status",
        "duration_display",
        "result",
        "read_mode",
        "graph_requests",
    )
    list_display_links = ("started",)
    list_filter = (
        "directory",
        "status",
        "trigger",
        "read_mode",
        choices_filter("error_class", title="error", choices=error_words_choices()),
        "started_at",
    )
    date_hierarchy = "started_at"
    list_select_related = ("directory",)
    search_fields = ("error_message", "graph_request_id", "triggered_by_name")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "directory",
                    ("trigger", "started_by"),
                    "status",
                    "started_at",
                    "finished_at",
                )
            },
        ),
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
    readonly_fields = (
        "started_by",
        "duration_display",
        "planned_removals_display",
        "warnings_display",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False

    @admin.display(description="Started by")
    def started_by(self, obj: SyncRun) -> str:
        """The name kept on the run, so that it survives the user's deletion."""
        return obj.triggered_by_name or "—"

    @admin.display(description="Started", ordering="started_at")
    def started(self, obj: SyncRun) -> str:
        return moment_html(obj.started_at)

    @admin.display(description="Result")
    def result(self, obj: SyncRun) -> str:
        """What it changed, what it would remove if held, or why it failed."""
        return obj.summary()

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
