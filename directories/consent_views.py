"""Verify Now's views: parse the request, call `directories.consent`, report the outcome.

`verify_start` and `verify_confirm` are mounted by DirectoryAdmin.get_urls (wrapped in
`admin_site.admin_view`); `verify_callback` is the redirect URI registered with Entra ID,
mounted in config/urls.py.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import consent
from .models import Directory

VERIFY_PERMISSION = "directories.verify_directory"
CALLBACK_URL_NAME = "directory-verify-callback"
CONFIRM_URL_NAME = "admin:directories_directory_verify_confirm"
CHANGE_URL_NAME = "admin:directories_directory_change"


def _require_permission(request: HttpRequest) -> None:
    # Superusers have every permission, including one not migrated yet.
    if not request.user.has_perm(VERIFY_PERMISSION):
        raise PermissionDenied


def _directory_or_404(object_id: str) -> Directory:
    directory = Directory.objects.filter(pk=int(object_id)).first() if object_id.isdigit() else None
    if directory is None:
        raise Http404("No such directory.")
    return directory


def _back_to_directory(directory_id: int | None) -> HttpResponseRedirect:
    if directory_id is None:
        return HttpResponseRedirect(reverse("admin:directories_directory_changelist"))
    return HttpResponseRedirect(reverse(CHANGE_URL_NAME, args=[directory_id]))


def _callback_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse(CALLBACK_URL_NAME))


@require_POST
def verify_start(request: HttpRequest, object_id: str) -> HttpResponse:
    """The Verify Now button: send the admin to Microsoft's admin consent page."""
    _require_permission(request)
    directory = _directory_or_404(object_id)
    try:
        url = consent.directory_verify_start(
            directory=directory,
            request_session=request.session,
            callback_url=_callback_url(request),
        )
    except consent.VerifyFailed as failure:
        messages.error(request, str(failure))
        return _back_to_directory(directory.pk)
    return HttpResponseRedirect(url)


@never_cache
@staff_member_required
@require_GET
def verify_callback(request: HttpRequest) -> HttpResponse:
    """Microsoft's redirect after admin consent and again after the sign-in."""
    _require_permission(request)
    try:
        step = consent.directory_verify_callback(
            request_session=request.session,
            params=request.GET.dict(),
            callback_url=_callback_url(request),
        )
    except consent.VerifyFailed as failure:
        messages.error(request, str(failure))
        return _back_to_directory(failure.directory_id)
    if step.sign_in_url is not None:
        return HttpResponseRedirect(step.sign_in_url)
    return HttpResponseRedirect(reverse(CONFIRM_URL_NAME, args=[step.directory_id]))


@never_cache
@require_http_methods(["GET", "POST"])
def verify_confirm(request: HttpRequest, object_id: str) -> HttpResponse:
    """Show the tenant the admin connected (GET) so a wrong one is caught before Save (POST)."""
    _require_permission(request)
    directory = _directory_or_404(object_id)
    if request.method == "POST":
        try:
            directory = consent.directory_verify_confirm(
                directory=directory, request_session=request.session
            )
        except consent.VerifyFailed as failure:
            messages.error(request, str(failure))
            return _back_to_directory(directory.pk)
        messages.success(
            request,
            f"Verified: {directory.name} is connected to {directory.tenant_name} "
            f"(tenant id {directory.tenant_id}) and syncs on its schedule from now on.",
        )
        return _back_to_directory(directory.pk)
    pending = consent.directory_verify_pending(directory=directory, request_session=request.session)
    if pending is None:
        messages.error(
            request,
            "Verify Now stopped at saving: there is no checked tenant to confirm. "
            + consent.START_AGAIN,
        )
        return _back_to_directory(directory.pk)
    return render(
        request,
        "directories/verify_result.html",
        {
            **admin.site.each_context(request),
            "title": f"Connect {directory.name}",
            "opts": Directory._meta,
            "directory": directory,
            "pending": pending,
            "probe": pending.probe,
            "change_url": reverse(CHANGE_URL_NAME, args=[directory.pk]),
        },
    )
