"""The directory console: cards, Verify Now, Sync Now, live progress, history and approvals.

The admin is a thin caller: every button ends in a service (`directories.services`), so that a
click, the schedule and a management command behave alike. Every page is served from
`DirectoryAdmin.get_urls` through one wrapper (`_page`) that checks the HTTP method and a real
permission, because a hidden button is not a refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import (
    CharField,
    Count,
    IntegerField,
    JSONField,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods
from django_q.models import Schedule

from directories.models import (
    Directory,
    DirectoryPermission,
    RunStatus,
    SyncMode,
    SyncRun,
    removals_summary,
)
from directories.selectors import sync_run_summary, sync_runs_recent
from directories.services import consent
from directories.services.directories import directory_delete, directory_save
from directories.services.schedules import SCHEDULE_PREFIX
from directories.services.sync_now import SyncAlreadyQueued, directory_sync_enqueue
from directories.sync import SyncAlreadyRunning, SyncRefused
from directories.sync.engine import Approval
from directories.templatetags.entra_time import moment_html
from identities.models import Membership, SyncedGroup, SyncedUser

from .charts import history_chart_svg, seconds_rounded
from .runs import choices_filter, planned_removals_context

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

Permission = Callable[[HttpRequest], bool]


def _next_sync_subquery() -> Subquery:
    """The django-q2 schedule's next run, found by its name (SCHEDULE_PREFIX + pk)."""
    name = Concat(
        Value(SCHEDULE_PREFIX), Cast(OuterRef("pk"), CharField()), output_field=CharField()
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


def _person(request: HttpRequest) -> AbstractBaseUser | None:
    """The admin behind a request, to be recorded on the run their click starts."""
    user = request.user
    return user if isinstance(user, AbstractBaseUser) and user.is_authenticated else None


def _latest_planned_removals() -> Subquery:
    """The latest run's planned removals: what a held directory's card says it would remove."""
    latest = SyncRun.objects.filter(directory=OuterRef("pk")).order_by("-started_at", "-pk")
    return Subquery(latest.values("planned_removals")[:1], output_field=JSONField())


class EnabledFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "is_enabled__exact"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [("1", "Enabled"), ("0", "Disabled")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("0", "1"):
            return queryset.filter(is_enabled=self.value() == "1")
        return queryset


LastSyncFilter = choices_filter(
    "last_sync_status",
    title="last sync",
    choices=[
        (RunStatus.SUCCEEDED, "Succeeded"),
        (RunStatus.FAILED, "Failed"),
        (RunStatus.NEEDS_APPROVAL, "Held: needs approval"),
        ("", "Never synced"),
    ],
)


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
    list_filter = (
        choices_filter("sync_mode", title="mode", choices=SyncMode.choices),
        EnabledFilter,
        LastSyncFilter,
    )
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
                latest_planned_removals=_latest_planned_removals(),
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
        status = obj.status()
        badge = format_html(
            '<span class="badge badge-{}" title="{}">{}</span>',
            status.value,
            obj.attention_reason or obj.error_message or self._last_sync_words(obj),
            status.label,
        )
        if not obj.needs_attention:
            return badge
        # Why its schedule is paused, in a line; the badge's title has what to do.
        cause = (obj.attention_reason.splitlines() or [""])[0]
        return format_html('{}<span class="card-sub attention-reason">{}</span>', badge, cause)

    @admin.display(description="Last sync", ordering="last_sync_at")
    def card_last_sync(self, obj: Directory) -> str:
        if obj.last_sync_at is None:
            return format_html('<span class="card-sub">{}</span>', "Never")
        return format_html(
            '{}<span class="card-sub">{}</span>',
            moment_html(obj.last_sync_at),
            self._last_sync_words(obj),
        )

    @staticmethod
    def _last_sync_words(obj: Directory) -> str:
        return obj.last_sync_words(planned_removals=getattr(obj, "latest_planned_removals", None))

    @admin.display(description="Next sync", ordering="next_sync_at")
    def card_next_sync(self, obj: Directory) -> str:
        next_at: datetime | None = getattr(obj, "next_sync_at", None)
        if obj.needs_attention:
            return format_html('<span class="card-sub">{}</span>', "Paused: needs attention")
        if next_at is None:
            return format_html('<span class="card-sub">{}</span>', "Not scheduled")
        return moment_html(next_at)

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
        return self._back(obj.pk)

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

    def save_model(
        self, request: HttpRequest, obj: Directory, form: forms.ModelForm[Directory], change: bool
    ) -> None:
        directory_save(directory=obj)

    def delete_model(self, request: HttpRequest, obj: Directory) -> None:
        directory_delete(directory=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Directory]) -> None:
        for directory in queryset:
            directory_delete(directory=directory)

    # --- permissions ---

    def has_sync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(DirectoryPermission.SYNC.perm)

    def has_verify_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(DirectoryPermission.VERIFY.perm)

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(DirectoryPermission.APPROVE.perm)

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
            status = directory.status()
            context.update(
                can_verify=self.has_verify_permission(request),
                can_sync=self.has_sync_permission(request),
                can_approve=self.has_approve_permission(request),
                held_run=held,
                held_removals=planned_removals_context(held.planned_removals) if held else None,
                history=runs,
                history_chart=history_chart_svg(runs),
                badge_state=status.value,
                badge_label=status.label,
                last_sync_words=directory.last_sync_words(
                    planned_removals=held.planned_removals if held else None
                ),
                sync_state=directory.sync_state().value,
                status_url=reverse(self._url_name("status"), args=[directory.pk]),
            )
        return super().change_view(request, object_id, form_url, context)

    # --- pages and buttons ---

    def get_urls(self) -> list[URLPattern]:
        object_pages: Sequence[tuple[str, Callable[..., HttpResponse], str, Permission]] = (
            ("verify", self.verify_view, "POST", self.has_verify_permission),
            # Where Verify Now ends: "Connected to … (tenant id …)", then Save.
            ("verify/confirm", self.verify_confirm_view, "GET POST", self.has_verify_permission),
            ("sync", self.sync_view, "POST", self.has_sync_permission),
            ("approve", self.approve_view, "POST", self.has_approve_permission),
            ("status", self.status_view, "GET", self.has_view_permission),
        )
        pages = [
            # Verify Now's redirect URI, registered with Entra ID: names no directory, because
            # Microsoft sends back only the signed state.
            path(
                "verify/callback/",
                self._page(self.verify_callback_view, "GET", self.has_verify_permission),
                name=self._url("verify_callback"),
            ),
            *(
                path(
                    f"<path:object_id>/{suffix}/",
                    self._page(view, methods, allowed),
                    name=self._url(suffix.replace("/", "_")),
                )
                for suffix, view, methods, allowed in object_pages
            ),
        ]
        return pages + super().get_urls()

    def _page(
        self, view: Callable[..., HttpResponse], methods: str, allowed: Permission
    ) -> Callable[..., HttpResponse]:
        """The one wrapper of every page: admin login, HTTP methods, then the permission."""

        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not allowed(request):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return self.admin_site.admin_view(require_http_methods(methods.split())(checked))

    def _url(self, suffix: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{suffix}"

    def _url_name(self, suffix: str) -> str:
        return f"{self.admin_site.name}:{self._url(suffix)}"

    def _directory(self, request: HttpRequest, object_id: str) -> Directory:
        directory = self.get_object(request, object_id)
        if directory is None:
            raise Http404("No such directory.")
        return directory

    def _back(self, directory_id: int | None) -> HttpResponseRedirect:
        if directory_id is None:
            return HttpResponseRedirect(reverse(self._url_name("changelist")))
        return HttpResponseRedirect(reverse(self._url_name("change"), args=[directory_id]))

    def _callback_url(self, request: HttpRequest) -> str:
        return request.build_absolute_uri(reverse(self._url_name("verify_callback")))

    # Verify Now: admin consent, sign-in, probe, confirm (`directories.services.consent`).

    def verify_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The Verify Now button: send the admin to Microsoft's admin consent page."""
        directory = self._directory(request, object_id)
        try:
            url = consent.directory_verify_start(
                directory=directory,
                request_session=request.session,
                callback_url=self._callback_url(request),
            )
        except consent.VerifyFailed as failure:
            messages.error(request, str(failure))
            return self._back(directory.pk)
        return HttpResponseRedirect(url)

    def verify_callback_view(self, request: HttpRequest) -> HttpResponse:
        """Microsoft's redirect after admin consent and again after the sign-in."""
        try:
            step = consent.directory_verify_callback(
                request_session=request.session,
                params=request.GET.dict(),
                callback_url=self._callback_url(request),
            )
        except consent.VerifyFailed as failure:
            messages.error(request, str(failure))
            return self._back(failure.directory_id)
        if step.sign_in_url is not None:
            return HttpResponseRedirect(step.sign_in_url)
        return HttpResponseRedirect(
            reverse(self._url_name("verify_confirm"), args=[step.directory_id])
        )

    def verify_confirm_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Show the tenant the admin connected (GET) so a wrong one is caught before Save (POST)."""
        directory = self._directory(request, object_id)
        if request.method == "POST":
            try:
                directory = consent.directory_verify_confirm(
                    directory=directory, request_session=request.session
                )
            except consent.VerifyFailed as failure:
                messages.error(request, str(failure))
                return self._back(directory.pk)
            messages.success(
                request,
                f"Verified: {directory.name} is connected to {directory.tenant_name} "
                f"(tenant id {directory.tenant_id}) and syncs on its schedule from now on.",
            )
            self.log_change(
                request,
                directory,
                f"Verified with Verify Now: connected to {directory.tenant_name} "
                f"(tenant id {directory.tenant_id}).",
            )
            return self._back(directory.pk)
        pending = consent.directory_verify_pending(
            directory=directory, request_session=request.session
        )
        if pending is None:
            messages.error(
                request,
                "Verify Now stopped at saving: there is no checked tenant to confirm. "
                + consent.START_AGAIN,
            )
            return self._back(directory.pk)
        return render(
            request,
            "directories/verify_result.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Connect {directory.name}",
                "opts": self.opts,
                "directory": directory,
                "pending": pending,
                "probe": pending.probe,
                "change_url": reverse(self._url_name("change"), args=[directory.pk]),
            },
        )

    def sync_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Sync Now: queue a task; the page then shows its progress."""
        directory = self._directory(request, object_id)
        self._enqueue_with_message(request, directory, log_text="Sync Now: queued a sync.")
        return self._back(directory.pk)

    def approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Approve a held mass deletion: run again, allowed to remove what the held run would.

        Removals beyond the reviewed ones are guarded as usual (held again, the difference
        shown); the approver is recorded on both runs.
        """
        directory = self._directory(request, object_id)
        latest = sync_runs_recent(directory=directory, limit=1).first()
        if latest is None or latest.status != SyncRun.Status.NEEDS_APPROVAL:
            self.message_user(
                request,
                "There is no held run to approve: the latest sync of this directory is not "
                "waiting for approval.",
                messages.WARNING,
            )
            return self._back(directory.pk)
        self._enqueue_with_message(
            request,
            directory,
            trigger=SyncRun.Trigger.APPROVAL,
            approval=Approval(run_id=latest.pk, user_id=request.user.pk),
            queued_text="Approved: a sync that applies the planned removals of {} is queued.",
            log_text=(
                f"Approved the mass deletion held by sync run {latest.pk} "
                f"({timezone.localtime(latest.started_at):%Y-%m-%d %H:%M}): "
                f"{removals_summary(latest.planned_removals)} to be removed; queued the sync "
                "that applies it."
            ),
        )
        return self._back(directory.pk)

    def _enqueue_with_message(
        self,
        request: HttpRequest,
        directory: Directory,
        *,
        trigger: str = SyncRun.Trigger.MANUAL,
        approval: Approval | None = None,
        queued_text: str = "A sync of {} is queued; its progress shows on this page.",
        log_text: str,
    ) -> bool:
        """Queue the sync as the admin who clicked, tell them, and log it in the directory's
        history (the admin log) when it was queued."""
        try:
            directory_sync_enqueue(
                directory=directory,
                trigger=trigger,
                approval=approval,
                triggered_by=_person(request),
            )
        except (SyncAlreadyQueued, SyncAlreadyRunning) as exc:
            self.message_user(request, str(exc), messages.WARNING)
            return False
        except SyncRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return False
        self.message_user(request, queued_text.format(directory.name), messages.SUCCESS)
        self.log_change(request, directory, log_text)
        return True

    @admin.action(description="Sync now", permissions=["sync"])
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Directory]) -> None:
        """Queue a sync of each selected directory; say which were queued and which not."""
        queued, refused = [], []
        for directory in queryset:
            try:
                directory_sync_enqueue(directory=directory, triggered_by=_person(request))
            except (SyncAlreadyQueued, SyncAlreadyRunning, SyncRefused) as exc:
                refused.append(f"{directory.name}: {exc}")
            else:
                queued.append(directory.name)
                self.log_change(request, directory, "Sync Now (list action): queued a sync.")
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
        directory = self._directory(request, object_id)
        runs = list(sync_runs_recent(directory=directory, limit=2))
        current = runs[0] if runs else None
        last = next((run for run in runs if run.status != SyncRun.Status.RUNNING), None)
        status = directory.status()
        return JsonResponse(
            {
                "state": directory.sync_state().value,
                "badge": {"state": status.value, "label": status.label},
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
                | {"summary": last.summary(), "seconds": seconds_rounded(last.duration)},
            }
        )
