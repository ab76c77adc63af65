"""The directory console: cards, Verify Now, Sync Now, live progress, history and approvals.

The admin is a thin caller: every button ends in a service (`directories.tasks`, the consent
views, the sync engine) so that a click, the schedule and a management command behave alike.
The buttons are guarded by the custom permissions on Directory, checked again in each view
because a hidden button is not a refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.core.exceptions import PermissionDenied
from django.db.models import CharField, Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Cast, Coalesce, Concat
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST
from django_q.models import Schedule

from identities.models import Membership, SyncedGroup, SyncedUser

from .consent_views import verify_confirm, verify_start
from .models import Directory, SyncMode, SyncRun
from .selectors import sync_run_summary, sync_runs_recent
from .sync import SyncAlreadyRunning, SyncRefused
from .tasks import (
    SyncAlreadyQueued,
    directory_sync_enqueue,
    directory_sync_is_queued,
    directory_sync_is_running,
)

PERM_VERIFY = "directories.verify_directory"
PERM_SYNC = "directories.sync_directory"
PERM_APPROVE = "directories.approve_mass_deletion"

HISTORY_RUNS = 20

MODE_HELP = mark_safe(
    "<strong>Assigned groups only</strong> (recommended): only the groups assigned to the "
    "<strong>Authentication</strong> application in Entra ID are synced, with their members. "
    "Assign the groups to the Authentication application, not to the Directory Sync one. "
    "Needs Entra ID P1 or P2.<br>"
    "<strong>All groups</strong>: every group in the tenant is synced. Use it with Entra ID "
    "Free, or when every group should appear here."
)
NEW_DIRECTORY_HELP = (
    "A new directory is unverified and does not sync. After Save, use Verify Now: you grant "
    "consent and sign in to the tenant, and the tenant's name and id are filled in for you."
)


# --- status -------------------------------------------------------------------------------


def directory_badge(directory: Directory) -> tuple[str, str]:
    """(state, label) for a directory, most urgent first, from fields the list already has.

    "Syncing" covers a queued Sync Now too: in both cases a result is on its way.
    """
    if not directory.is_enabled:
        return "disabled", "Disabled"
    if not directory.is_verified:
        return "unverified", "Unverified"
    if directory_sync_is_running(directory):
        return "syncing", "Syncing"
    if directory_sync_is_queued(directory):
        return "syncing", "Queued"
    if directory.last_sync_status == SyncRun.Status.NEEDS_APPROVAL:
        return "needs_approval", "Needs approval"
    if directory.last_sync_status == SyncRun.Status.FAILED or directory.error_class:
        return "failing", "Failing"
    return "healthy", "Healthy"


def directory_sync_state(directory: Directory) -> str:
    if directory_sync_is_running(directory):
        return "running"
    if directory_sync_is_queued(directory):
        return "queued"
    return "idle"


def _seconds(value: timedelta | None) -> float | None:
    return round(value.total_seconds(), 1) if value is not None else None


def _changes(run: SyncRun) -> int:
    return (
        run.users_created
        + run.users_updated
        + run.users_removed
        + run.groups_created
        + run.groups_updated
        + run.groups_removed
        + run.memberships_created
        + run.memberships_removed
    )


def history_chart_svg(runs: Sequence[SyncRun], width: int = 640, height: int = 140) -> SafeString:
    """Duration (bars) and changes (dots) per run, oldest on the left, as inline SVG.

    Rendered on the server so the page needs no chart library; each series has its own
    scale, and each mark has a tooltip with the exact numbers.
    """
    runs = [run for run in reversed(runs) if run.finished_at is not None]
    if not runs:
        return mark_safe("")
    top, bottom = 18, 22
    plot = height - top - bottom
    slot = width / len(runs)
    max_seconds = max(run.duration.total_seconds() for run in runs if run.duration) or 1.0
    max_changes = max(_changes(run) for run in runs) or 1
    bars, dots = [], []
    for index, run in enumerate(runs):
        seconds = run.duration.total_seconds() if run.duration else 0.0
        bar_h = max(1.0, plot * seconds / max_seconds)
        x = index * slot
        bars.append(
            (
                f"{x + slot * 0.15:.1f}",
                f"{top + plot - bar_h:.1f}",
                f"{slot * 0.7:.1f}",
                f"{bar_h:.1f}",
                f"status-{run.status}",
                f"{run.started_at:%Y-%m-%d %H:%M}: {seconds:.1f} s, {run.get_status_display()}",
            )
        )
        changes = _changes(run)
        dots.append(
            (
                f"{x + slot / 2:.1f}",
                f"{top + plot - plot * changes / max_changes:.1f}",
                f"{run.started_at:%Y-%m-%d %H:%M}: {changes} changes",
            )
        )
    return format_html(
        '<svg class="history-chart" viewBox="0 0 {w} {h}" width="100%" height="{h}" '
        'role="img" aria-label="Duration and changes of the last {n} runs">'
        '<text x="0" y="12" class="legend">▮ duration (max {max_s} s)</text>'
        '<text x="{w}" y="12" text-anchor="end" class="legend">● changes (max {max_c})</text>'
        '<line x1="0" y1="{base}" x2="{w}" y2="{base}" class="axis"/>'
        "{bars}{dots}"
        '<text x="0" y="{h}" class="legend">older</text>'
        '<text x="{w}" y="{h}" text-anchor="end" class="legend">newer</text>'
        "</svg>",
        w=width,
        h=height,
        n=len(runs),
        max_s=f"{max_seconds:.1f}",
        max_c=max_changes,
        base=top + plot,
        bars=format_html_join(
            "",
            '<rect x="{}" y="{}" width="{}" height="{}" class="bar {}"><title>{}</title></rect>',
            bars,
        ),
        dots=format_html_join(
            "", '<circle cx="{}" cy="{}" r="3.5" class="dot"><title>{}</title></circle>', dots
        ),
    )


def _next_sync_subquery() -> Subquery:
    """The django-q2 schedule's next run, found by its name `sync-directory-{pk}`."""
    name = Concat(
        Value("sync-directory-"), Cast(OuterRef("pk"), CharField()), output_field=CharField()
    )
    return Subquery(Schedule.objects.filter(name=name).values("next_run")[:1])


def _present_count(model: type[SyncedUser] | type[SyncedGroup]) -> Coalesce:
    """Present objects per directory as a correlated subquery.

    Two Count() joins on one query would multiply users by groups before counting; a subquery
    each keeps the list to one query however large the directories are.
    """
    counts = (
        model.objects.filter(directory=OuterRef("pk"), removed_at__isnull=True)
        .order_by()
        .values("directory")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), 0)


# --- the directory admin --------------------------------------------------------------------


@admin.register(Directory)
class DirectoryAdmin(admin.ModelAdmin[Directory]):
    change_list_template = "admin/directories/directory/change_list.html"
    change_form_template = "admin/directories/directory/change_form.html"
    list_display = (
        "card_name",
        "card_tenant",
        "card_status",
        "card_last_sync",
        "card_next_sync",
        "card_counts",
    )
    list_display_links = ("card_name",)
    list_filter = ("sync_mode", "is_enabled", "last_sync_status")
    search_fields = ("name", "tenant_name", "tenant_id", "tenant_domain")
    radio_fields = {"sync_mode": admin.VERTICAL}
    actions = ["sync_now"]
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
    add_fieldsets = ((None, {"fields": ("name", "sync_mode", "is_enabled")}),)
    fieldsets = (
        (None, {"fields": ("name", "sync_mode", "is_enabled")}),
        ("Tenant", {"fields": ("tenant_name", "tenant_id", "tenant_domain", "verified_at")}),
        (
            "Last sync",
            {
                "fields": (
                    "last_sync_at",
                    "last_sync_status",
                    "last_success_at",
                    "last_sync_summary",
                    "error_class",
                    "error_message",
                    "consecutive_failures",
                    "created_at",
                )
            },
        ),
    )

    # --- list ---

    def get_queryset(self, request: HttpRequest) -> QuerySet[Directory]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                present_users=_present_count(SyncedUser),
                present_groups=_present_count(SyncedGroup),
                next_sync_at=_next_sync_subquery(),
            )
        )

    @admin.display(description="Directory", ordering="name")
    def card_name(self, obj: Directory) -> str:
        return format_html(
            '<span class="card-name">{}</span><span class="card-sub">{}</span>',
            obj.name,
            "Assigned groups only" if obj.sync_mode == SyncMode.ASSIGNED else "All groups",
        )

    @admin.display(description="Tenant", ordering="tenant_name")
    def card_tenant(self, obj: Directory) -> str:
        if not obj.tenant_id:
            return format_html('<span class="card-sub">{}</span>', "Not connected yet")
        return format_html(
            '{}<span class="card-sub"><code>{}</code></span>',
            obj.tenant_name or "(no name)",
            obj.tenant_id,
        )

    @admin.display(description="Status")
    def card_status(self, obj: Directory) -> str:
        state, label = directory_badge(obj)
        return format_html(
            '<span class="badge badge-{}" title="{}">{}</span>',
            state,
            obj.error_message or obj.last_sync_summary,
            label,
        )

    @admin.display(description="Last sync", ordering="last_sync_at")
    def card_last_sync(self, obj: Directory) -> str:
        if obj.last_sync_at is None:
            return format_html('<span class="card-sub">{}</span>', "Never")
        return format_html(
            '{}<span class="card-sub">{}</span>',
            _ago(obj.last_sync_at),
            obj.last_sync_summary,
        )

    @admin.display(description="Next sync", ordering="next_sync_at")
    def card_next_sync(self, obj: Directory) -> str:
        next_at: datetime | None = getattr(obj, "next_sync_at", None)
        if next_at is None:
            return format_html('<span class="card-sub">{}</span>', "Not scheduled")
        return format_html(
            '<time datetime="{}">{}</time>',
            next_at.isoformat(),
            timezone.localtime(next_at).strftime("%Y-%m-%d %H:%M"),
        )

    @admin.display(description="Users / groups")
    def card_counts(self, obj: Directory) -> str:
        return format_html(
            '<span class="count">{}</span> users · <span class="count">{}</span> groups',
            getattr(obj, "present_users", 0),
            getattr(obj, "present_groups", 0),
        )

    # --- forms ---

    def get_fieldsets(self, request: HttpRequest, obj: Directory | None = None) -> Any:
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_form(
        self,
        request: HttpRequest,
        obj: Directory | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[forms.ModelForm[Directory]]:
        form = super().get_form(request, obj, change=change, **kwargs)
        if "sync_mode" in form.base_fields:
            form.base_fields["sync_mode"].help_text = MODE_HELP
        if obj is None and "name" in form.base_fields:
            form.base_fields["name"].help_text = NEW_DIRECTORY_HELP
        return form

    def response_add(
        self, request: HttpRequest, obj: Directory, post_url_continue: str | None = None
    ) -> HttpResponse:
        """Save lands on the new directory's page, where Verify Now is (as its help says)."""
        if "_addanother" in request.POST or IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        self.message_user(
            request,
            f"Added {obj.name}. Click Verify Now to connect it to its Entra ID tenant.",
            messages.SUCCESS,
        )
        return self._back(obj)

    def get_deleted_objects(
        self, objs: Sequence[Directory] | QuerySet[Directory], request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """Let whoever may delete a directory delete its synced data and history with it.

        Runs, users, groups and memberships refuse deletion in their own admins so that no
        single row is edited away; the directory's deletion is what removes them all.
        """
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        owned = {
            str(model._meta.verbose_name)
            for model in (SyncRun, SyncedUser, SyncedGroup, Membership)
        }
        return deleted, counts, set(perms_needed) - owned, protected

    # --- permissions ---

    def has_sync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERM_SYNC)

    def has_verify_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERM_VERIFY)

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERM_APPROVE)

    # --- change page ---

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        directory = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if directory is not None:
            runs = list(sync_runs_recent(directory=directory, limit=HISTORY_RUNS))
            held = runs[0] if runs and runs[0].status == SyncRun.Status.NEEDS_APPROVAL else None
            state, label = directory_badge(directory)
            context.update(
                can_verify=self.has_verify_permission(request),
                can_sync=self.has_sync_permission(request),
                can_approve=self.has_approve_permission(request),
                held_run=held,
                history=runs,
                history_chart=history_chart_svg(runs),
                badge_state=state,
                badge_label=label,
                sync_state=directory_sync_state(directory),
                status_url=reverse("admin:directories_directory_status", args=[directory.pk]),
            )
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(view)

        custom = [
            path("<path:object_id>/verify/", wrap(self.verify_view), name=self._url("verify")),
            # Where the consent flow ends: "Connected to … (tenant id …)", then Save.
            path(
                "<path:object_id>/verify/confirm/",
                wrap(verify_confirm),
                name=self._url("verify_confirm"),
            ),
            path("<path:object_id>/sync/", wrap(self.sync_view), name=self._url("sync")),
            path("<path:object_id>/approve/", wrap(self.approve_view), name=self._url("approve")),
            path("<path:object_id>/status/", wrap(self.status_view), name=self._url("status")),
        ]
        return custom + super().get_urls()

    def _url(self, suffix: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{suffix}"

    def _directory(self, request: HttpRequest, object_id: str) -> Directory:
        directory = self.get_object(request, object_id)
        if directory is None:
            raise Http404("No such directory.")
        return directory

    def _back(self, directory: Directory) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:directories_directory_change", args=[directory.pk])
        )

    @staticmethod
    def _require(allowed: bool) -> None:
        if not allowed:
            raise PermissionDenied

    # --- button views ---

    def verify_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Verify Now: hand over to the consent flow, which ends back on the change page."""
        return require_POST(self._verify)(request, object_id)

    def _verify(self, request: HttpRequest, object_id: str) -> HttpResponse:
        self._require(self.has_verify_permission(request))
        directory = self._directory(request, object_id)
        return verify_start(request, str(directory.pk))

    def sync_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Sync Now: queue a task; the page then shows its progress."""
        return require_POST(self._sync)(request, object_id)

    def _sync(self, request: HttpRequest, object_id: str) -> HttpResponse:
        self._require(self.has_sync_permission(request))
        directory = self._directory(request, object_id)
        self._enqueue_with_message(request, directory)
        return self._back(directory)

    def approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Approve a held mass deletion: run again with the guard lifted, once."""
        return require_POST(self._approve)(request, object_id)

    def _approve(self, request: HttpRequest, object_id: str) -> HttpResponse:
        self._require(self.has_approve_permission(request))
        directory = self._directory(request, object_id)
        latest = sync_runs_recent(directory=directory, limit=1).first()
        if latest is None or latest.status != SyncRun.Status.NEEDS_APPROVAL:
            self.message_user(
                request,
                "There is no held run to approve: the latest sync of this directory is not "
                "waiting for approval.",
                messages.WARNING,
            )
            return self._back(directory)
        self._enqueue_with_message(
            request,
            directory,
            trigger=SyncRun.Trigger.APPROVAL,
            allow_mass_delete=True,
            queued_text="Approved: a sync that applies the planned removals of {} is queued.",
        )
        return self._back(directory)

    def _enqueue_with_message(
        self,
        request: HttpRequest,
        directory: Directory,
        *,
        trigger: str = SyncRun.Trigger.MANUAL,
        allow_mass_delete: bool = False,
        queued_text: str = "A sync of {} is queued; its progress shows on this page.",
    ) -> bool:
        try:
            directory_sync_enqueue(
                directory=directory, trigger=trigger, allow_mass_delete=allow_mass_delete
            )
        except (SyncAlreadyQueued, SyncAlreadyRunning) as exc:
            self.message_user(request, str(exc), messages.WARNING)
            return False
        except SyncRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return False
        self.message_user(request, queued_text.format(directory.name), messages.SUCCESS)
        return True

    @admin.action(description="Sync now", permissions=["sync"])
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Directory]) -> None:
        """Queue a sync of each selected directory; say which were queued and which not."""
        queued, refused = [], []
        for directory in queryset:
            try:
                directory_sync_enqueue(directory=directory)
            except (SyncAlreadyQueued, SyncAlreadyRunning, SyncRefused) as exc:
                refused.append(f"{directory.name}: {exc}")
            else:
                queued.append(directory.name)
        if queued:
            self.message_user(
                request,
                f"Queued a sync of {len(queued)} "
                f"director{'y' if len(queued) == 1 else 'ies'}: {', '.join(queued)}.",
                messages.SUCCESS,
            )
        if refused:
            self.message_user(
                request,
                f"Not queued ({len(refused)}): " + " ".join(refused),
                messages.WARNING if queued else messages.ERROR,
            )

    def status_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Where the directory's sync is, as JSON, for the change page to poll."""
        return require_GET(self._status)(request, object_id)

    def _status(self, request: HttpRequest, object_id: str) -> HttpResponse:
        directory = self._directory(request, object_id)
        self._require(self.has_view_permission(request, directory))
        runs = list(sync_runs_recent(directory=directory, limit=2))
        current = runs[0] if runs else None
        last = next((run for run in runs if run.status != SyncRun.Status.RUNNING), None)
        state, label = directory_badge(directory)
        return JsonResponse(
            {
                "state": directory_sync_state(directory),
                "badge": {"state": state, "label": label},
                "run": None
                if current is None
                else {
                    "id": current.pk,
                    "status": current.status,
                    "groups_done": current.groups_done,
                    "groups_total": current.groups_total,
                    "users_seen": current.users_seen,
                    "started_at": current.started_at.isoformat(),
                },
                "last": None
                if last is None
                else sync_run_summary(last)
                | {"summary": last.summary(), "seconds": _seconds(last.duration)},
            }
        )


def _ago(moment: datetime) -> str:
    return format_html(
        '<time datetime="{}">{}</time>',
        moment.isoformat(),
        timezone.localtime(moment).strftime("%Y-%m-%d %H:%M"),
    )


# --- sync history ---------------------------------------------------------------------------


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin[SyncRun]):
    """The record of every run: read-only, because history that can be edited is not history."""

    list_display = (
        "started_at",
        "directory",
        "trigger",
        "status",
        "duration_display",
        "summary",
        "error_class",
        "graph_requests",
    )
    list_filter = ("directory", "status", "trigger", "started_at")
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
                )
            },
        ),
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
                    ("graph_requests", "graph_retries"),
                    ("groups_done", "groups_total", "progress_at"),
                )
            },
        ),
    )
    readonly_fields = ("duration_display", "planned_removals_display")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False

    @admin.display(description="Duration")
    def duration_display(self, obj: SyncRun) -> str:
        seconds = _seconds(obj.duration)
        return "—" if seconds is None else f"{seconds} s"

    @admin.display(description="Planned removals")
    def planned_removals_display(self, obj: SyncRun) -> str:
        return planned_removals_html(obj.planned_removals)


def planned_removals_html(planned: dict[str, Any]) -> str:
    """The users and groups a held run would remove, with the complete counts."""
    if not planned:
        return "—"
    parts = []
    for kind in ("users", "groups"):
        listed = planned.get(kind) or []
        total = planned.get(f"{kind}_count", len(listed))
        items = format_html_join(
            "",
            "<li>{} <code>{}</code></li>",
            ((i.get("name", ""), i.get("id", "")) for i in listed),
        )
        more = total - len(listed)
        parts.append(
            format_html(
                '<div class="planned"><strong>{} {}</strong><ul>{}</ul>{}</div>',
                total,
                kind,
                items,
                format_html("<p>… and {} more</p>", more) if more > 0 else "",
            )
        )
    parts.append(format_html("<p>{} memberships</p>", planned.get("memberships_count", 0)))
    return format_html_join("", "{}", ((p,) for p in parts))
