"""URLs: the admin is the whole user interface."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from directories.consent_views import verify_callback

urlpatterns = [
    # Before admin.site.urls, whose catch-all would otherwise take these paths.
    path("admin/troubleshooting/", include("directories.troubleshooting_urls")),
    path("admin/", admin.site.urls),
    # The redirect URI registered with Entra ID for Verify Now (consent and sign-in).
    path("verify/callback/", verify_callback, name="directory-verify-callback"),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
