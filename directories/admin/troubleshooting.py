"""The troubleshooting pages: thin views over `directories.services.troubleshooting`.

Served by `EntraSyncAdminSite.get_urls`. Each page needs its own permission: the failures page
shows every directory's errors, and the user page asks Microsoft Graph about any user.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from directories.models import Directory, DirectoryPermission
from directories.services.troubleshooting import (
    ERROR_KINDS,
    GUIDE_GROUPS_ASSIGNED,
    GUIDE_UNAUTHORIZED,
    GUIDE_USERS,
    GUIDE_WRONG_TENANT,
    ErrorKind,
    default_since,
    directories_needing_attention,
    sync_failures_recent,
    user_sync_diagnosis,
)

PERIODS = {1: "Last 24 hours", 7: "Last 7 days", 30: "Last 30 days", 90: "Last 90 days"}

# Where the page's guide answers each topic a failure group refers to (`ErrorKind.guide_topics`):
# the anchor of a guide entry, `guide-<kind key>`, or the entry for users not syncing.
GUIDE_ANCHORS = {
    GUIDE_UNAUTHORIZED: "guide-unauthorized",  # followed by the forbidden entry
    GUIDE_GROUPS_ASSIGNED: "guide-not_assigned",
    GUIDE_USERS: "guide-users",
    GUIDE_WRONG_TENANT: "guide-wrong_tenant",
}


def guide_links(kind: ErrorKind) -> list[tuple[str, str]]:
    """A failure group's guide topics, each with the anchor of its entry in the page's guide."""
    return [(topic, GUIDE_ANCHORS[topic]) for topic in kind.guide_topics]


class FailureFilterForm(forms.Form):
    directory = forms.ModelChoiceField(
        queryset=Directory.objects.all(), required=False, empty_label="All directories"
    )
    days = forms.TypedChoiceField(
        choices=list(PERIODS.items()), coerce=int, required=False, empty_value=None, initial=7
    )


class UserDiagnosisForm(forms.Form):
    directory = forms.ModelChoiceField(queryset=Directory.objects.all())
    query = forms.CharField(
        label="User", max_length=320, help_text="User principal name, mail or object id."
    )


def _require(request: HttpRequest, permission: DirectoryPermission) -> None:
    if not request.user.has_perm(permission.perm):
        raise PermissionDenied


@require_GET
def troubleshooting(request: HttpRequest) -> HttpResponse:
    """Recent failures grouped by error class, each with what to do about it."""
    _require(request, DirectoryPermission.VIEW_TROUBLESHOOTING)
    form = FailureFilterForm(request.GET or None)
    directory, days = None, 7
    if form.is_valid():
        directory = form.cleaned_data["directory"]
        days = form.cleaned_data["days"] or 7
    groups = sync_failures_recent(since=default_since(days), directory=directory)
    can_diagnose = request.user.has_perm(DirectoryPermission.DIAGNOSE_USER.perm)
    context = {
        **admin.site.each_context(request),
        "title": "Troubleshooting",
        "form": form,
        "groups": [(group, guide_links(group.kind)) for group in groups],
        "needing_attention": directories_needing_attention(directory=directory),
        "kinds": ERROR_KINDS,
        "period": PERIODS.get(days, f"Last {days} days"),
        # Its own ids: the filter form above has a `directory` field too.
        "user_form": (
            UserDiagnosisForm(initial={"directory": directory}, auto_id="id_user_%s")
            if can_diagnose
            else None
        ),
    }
    return render(request, "admin/troubleshooting/index.html", context)


@require_GET
def troubleshooting_user(request: HttpRequest) -> HttpResponse:
    """'Why isn't this user syncing?': asks Graph about one user and explains the answer."""
    _require(request, DirectoryPermission.DIAGNOSE_USER)
    form = UserDiagnosisForm(request.GET or None)
    diagnosis = None
    if form.is_valid():
        diagnosis = user_sync_diagnosis(
            directory=form.cleaned_data["directory"], query=form.cleaned_data["query"]
        )
    context = {
        **admin.site.each_context(request),
        "title": "Why isn't this user syncing?",
        "form": form,
        "diagnosis": diagnosis,
    }
    return render(request, "admin/troubleshooting/user.html", context)
