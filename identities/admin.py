"""Synced users, groups and memberships in the admin: searchable, filterable and read-only.

Entra ID is the source of truth, so nobody adds, edits or deletes these rows here (a local edit
would be silently overwritten by the next sync); staff with view permission can browse them.
Lists show present objects by default (DESIGN.md), and a group's members are paginated rather
than shown as an inline, because a group can have 100,000 members.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db import models
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, reverse

from directories.models import Directory
from identities.export import (
    GROUP_EXPORT_COLUMNS,
    MEMBERSHIP_EXPORT_COLUMNS,
    USER_EXPORT_COLUMNS,
    export_filename,
    groups_export_rows,
    memberships_export_rows,
    stream_csv,
    stream_json,
    users_export_rows,
)

from .models import Membership, SyncedGroup, SyncedUser

if TYPE_CHECKING:
    from django.contrib.admin.filters import _ListFilterChoices

_M = TypeVar("_M", bound=models.Model)

# Rows per page of a group's members or a user's groups on their change pages.
RELATED_PER_PAGE = 50

# The export formats, written by identities.export's stream_csv and stream_json.
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


class ReadOnlyAdmin(admin.ModelAdmin[_M]):
    """View permission only: synced rows are written by the sync engine and nothing else."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False


class ExportableAdmin(ReadOnlyAdmin[_M]):
    """CSV and JSON exports of a changelist: its selected rows (the actions) or every row that
    matches its filters and search (the object-tools links, `export/<format>/`).

    Both need only the model's view permission: an export shows what the list already shows.
    Filtering the list by directory exports that directory; the presence filter's default
    keeps removed objects out unless asked for. Responses stream (see identities.export).
    """

    export_kind = ""
    export_columns: list[str] = []
    actions = ["export_csv", "export_json"]

    def export_rows(self, queryset: QuerySet[_M]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    @admin.action(
        description="Export selected %(verbose_name_plural)s as CSV", permissions=["view"]
    )
    def export_csv(self, request: HttpRequest, queryset: QuerySet[_M]) -> StreamingHttpResponse:
        return self._export(queryset, "csv")

    @admin.action(
        description="Export selected %(verbose_name_plural)s as JSON", permissions=["view"]
    )
    def export_json(self, request: HttpRequest, queryset: QuerySet[_M]) -> StreamingHttpResponse:
        return self._export(queryset, "json")

    def get_urls(self) -> list[URLPattern]:
        pages = [
            path(
                f"export/{fmt}/",
                self.admin_site.admin_view(self.export_view),
                {"fmt": fmt},
                name=f"{self.opts.app_label}_{self.opts.model_name}_export_{fmt}",
            )
            for fmt in CONTENT_TYPES
        ]
        # Before the defaults, whose "<path:object_id>/" would take "export/csv/".
        return pages + super().get_urls()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Add the export links' context: the formats, and the directory the list is filtered
        to, so the link says whose export it is."""
        directory_pk = request.GET.get("directory__id__exact", "")
        context = {
            "export_formats": list(CONTENT_TYPES),
            "export_directory": Directory.objects.filter(pk=directory_pk)
            .values_list("name", flat=True)
            .first()
            if directory_pk.isdigit()
            else None,
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def export_view(self, request: HttpRequest, fmt: str) -> HttpResponseBase:
        """Every row the changelist with this query string lists, on every page of it."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("These filters are not valid for this list.")
        return self._export(changelist.queryset, fmt)

    def _export(self, queryset: QuerySet[_M], fmt: str) -> StreamingHttpResponse:
        rows = self.export_rows(queryset)
        content = stream_csv(rows, self.export_columns) if fmt == "csv" else stream_json(rows)
        response = StreamingHttpResponse(content, content_type=CONTENT_TYPES[fmt])
        filename = export_filename(
            kind=self.export_kind, directory_name=self._single_directory(queryset), fmt=fmt
        )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def _single_directory(self, queryset: QuerySet[_M]) -> str | None:
        """The directory's name when every exported row is in one, for the file name."""
        names = list(queryset.order_by().values_list("directory__name", flat=True).distinct()[:2])
        return names[0] if len(names) == 1 else None


class PresenceFilter(admin.SimpleListFilter):
    """Present objects by default, as DESIGN.md asks; removed ones stay one click away.

    Removed objects keep their rows for history, so a plain list would mix people who left
    the directory with people who are in it. There is no "All" entry on top: the default
    (no parameter) is "Present", and "All" is an explicit choice.
    """

    title = "presence"
    parameter_name = "presence"
    default = "present"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("present", "Present"), ("removed", "Removed"), ("all", "All")]

    def current(self) -> str:
        value = self.value()
        return value if value in {"present", "removed", "all"} else self.default

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        current = self.current()
        if current == "present":
            return queryset.filter(removed_at__isnull=True)
        if current == "removed":
            return queryset.filter(removed_at__isnull=False)
        return queryset

    def choices(self, changelist: ChangeList) -> Iterator[_ListFilterChoices]:
        facet_counts = self.get_facet_queryset(changelist) if changelist.add_facets else None
        current = self.current()
        for index, (lookup, title) in enumerate(self.lookup_choices):
            if facet_counts is not None:
                title = f"{title} ({facet_counts.get(f'{index}__c', '-')})"
            # The default is the bare URL, so "Clear all filters" lands on present objects.
            query_string = (
                changelist.get_query_string(remove=[self.parameter_name])
                if lookup == self.default
                else changelist.get_query_string({self.parameter_name: lookup})
            )
            yield {"selected": current == lookup, "query_string": query_string, "display": title}


class GuestFilter(admin.SimpleListFilter):
    """Guests are users whose Entra `userType` is "Guest"; anything else is a member."""

    title = "guest"
    parameter_name = "guest"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Guests"), ("no", "Members")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(user_type="Guest")
        if self.value() == "no":
            return queryset.exclude(user_type="Guest")
        return queryset


def _page(
    request: HttpRequest, rows: QuerySet[Any], parameter: str, count: QuerySet[Any]
) -> Page[dict[str, Any]]:
    """One page of an ordered values() queryset: a count and a LIMIT query, whatever its size.

    The total comes from `count`, the same filter without the values() joins, so counting a
    group's 100,000 members does not join the users table. `get_page` turns a missing,
    malformed or out-of-range page number into a valid page, so a stale link never errors.
    """
    paginator = Paginator(rows, RELATED_PER_PAGE)
    paginator.count = count.count()  # seeds Paginator's cached_property
    return paginator.get_page(request.GET.get(parameter))


def _rows_with_links(
    request: HttpRequest, page: Page[dict[str, Any]], model_admin: admin.ModelAdmin[Any], key: str
) -> list[dict[str, Any]]:
    """The page's rows, each with the URL of the related object's page if the viewer may open it.

    Staff who may see groups but not users get names without links rather than links to 403s.
    """
    may_view = model_admin.has_view_or_change_permission(request)
    pattern = f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}_change"
    rows = list(page.object_list)
    for row in rows:
        row["url"] = reverse(pattern, args=[row[key]]) if may_view else None
    return rows


@admin.register(SyncedUser)
class SyncedUserAdmin(ExportableAdmin[SyncedUser]):
    export_kind = "users"
    export_columns = USER_EXPORT_COLUMNS
    list_display = (
        "display_name",
        "user_principal_name",
        "mail",
        "enabled",
        "guest",
        "directory",
        "first_synced_at",
        "removed_at",
    )
    list_filter = ("directory", "account_enabled", GuestFilter, PresenceFilter)
    search_fields = ("display_name", "user_principal_name", "mail", "=entra_id")
    search_help_text = "Search by display name, user principal name, mail, or exact object id."
    list_select_related = ("directory",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[SyncedUser]:
        # The change page shows the directory as a link; fetch it with the user.
        return super().get_queryset(request).select_related("directory")

    def export_rows(self, queryset: QuerySet[SyncedUser]) -> Iterator[dict[str, Any]]:
        return users_export_rows(users=queryset)

    @admin.display(description="enabled", boolean=True, ordering="account_enabled")
    def enabled(self, user: SyncedUser) -> bool:
        return user.account_enabled

    @admin.display(description="guest", boolean=True, ordering="user_type")
    def guest(self, user: SyncedUser) -> bool:
        return user.is_guest

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: SyncedUser | None = None,
    ) -> HttpResponse:
        """Add the user's present groups, one page at a time, linked to the groups' pages."""
        if obj is not None:
            memberships = Membership.objects.present().filter(user=obj)
            groups = memberships.order_by("group__display_name", "group_id").values(
                "group_id",
                "group__display_name",
                "group__entra_id",
                "group__mail",
                "group__security_enabled",
                "group__mail_enabled",
                "first_synced_at",
            )
            page = _page(request, groups, "groups_page", count=memberships)
            group_admin = self.admin_site.get_model_admin(SyncedGroup)
            context["groups_page"] = page
            context["group_rows"] = _rows_with_links(request, page, group_admin, "group_id")
            context["groups_page_range"] = page.paginator.get_elided_page_range(page.number)
        return super().render_change_form(request, context, add, change, form_url, obj)


def _member_count() -> Coalesce:
    """Present members per group as a correlated subquery, evaluated only for listed rows.

    A subquery rather than `Count("memberships")` keeps the changelist's COUNT(*) free of a
    GROUP BY over every membership of the directory.
    """
    members = (
        Membership.objects.filter(group=OuterRef("pk"), removed_at__isnull=True)
        .order_by()
        .values("group")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return Coalesce(Subquery(members), 0)


@admin.register(SyncedGroup)
class SyncedGroupAdmin(ExportableAdmin[SyncedGroup]):
    export_kind = "groups"
    export_columns = GROUP_EXPORT_COLUMNS
    list_display = (
        "display_name",
        "mail",
        "security_enabled",
        "mail_enabled",
        "member_count",
        "directory",
        "first_synced_at",
        "removed_at",
    )
    list_filter = ("directory", "security_enabled", "mail_enabled", PresenceFilter)
    search_fields = ("display_name", "mail", "=entra_id")
    search_help_text = "Search by display name, mail, or exact object id."
    list_select_related = ("directory",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[SyncedGroup]:
        return (
            super()
            .get_queryset(request)
            .select_related("directory")
            .annotate(member_count=_member_count())
        )

    def export_rows(self, queryset: QuerySet[SyncedGroup]) -> Iterator[dict[str, Any]]:
        return groups_export_rows(groups=queryset)

    @admin.display(description="members", ordering="member_count")
    def member_count(self, group: SyncedGroup) -> int:
        return getattr(group, "member_count", 0)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: SyncedGroup | None = None,
    ) -> HttpResponse:
        """Add one page of the group's present members, optionally narrowed by a search.

        Members come as a values() queryset behind a Paginator (a count and one page), never
        as an inline, which would build a form for every one of 100,000 members.
        """
        if obj is not None:
            query = request.GET.get("members_q", "").strip()
            matching = (
                Q(user__display_name__icontains=query)
                | Q(user__user_principal_name__icontains=query)
                | Q(user__mail__icontains=query)
                | Q(user__entra_id=query)
                if query
                else Q()
            )
            memberships = Membership.objects.present().filter(matching, group=obj)
            members = memberships.order_by(
                "user__display_name", "user__user_principal_name", "user_id"
            ).values(
                "user_id",
                "user__display_name",
                "user__user_principal_name",
                "user__mail",
                "user__account_enabled",
                "user__user_type",
                "first_synced_at",
            )
            page = _page(request, members, "members_page", count=memberships)
            user_admin = self.admin_site.get_model_admin(SyncedUser)
            context["members_page"] = page
            context["member_rows"] = _rows_with_links(request, page, user_admin, "user_id")
            context["members_page_range"] = page.paginator.get_elided_page_range(page.number)
            context["members_query"] = query
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(Membership)
class MembershipAdmin(ExportableAdmin[Membership]):
    export_kind = "memberships"
    export_columns = MEMBERSHIP_EXPORT_COLUMNS
    list_display = ("user", "group", "directory", "first_synced_at", "removed_at")
    list_filter = ("directory", PresenceFilter)
    search_fields = (
        "user__display_name",
        "user__user_principal_name",
        "user__mail",
        "group__display_name",
        "=user__entra_id",
        "=group__entra_id",
    )
    search_help_text = (
        "Search by the user's name, user principal name or mail, the group's name, "
        "or either's exact object id."
    )
    list_select_related = ("user", "group", "directory")
    # Memberships are the largest table; skip the second, unfiltered COUNT(*) on every page.
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).select_related("user", "group", "directory")

    def export_rows(self, queryset: QuerySet[Membership]) -> Iterator[dict[str, Any]]:
        return memberships_export_rows(memberships=queryset)
