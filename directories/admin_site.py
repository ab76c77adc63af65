"""entra-sync's admin site: Django's, plus the pages that belong to no single model.

Every page of entra-sync is served by the admin: model pages and their buttons by each
ModelAdmin's `get_urls`, and the troubleshooting pages here by `AdminSite.get_urls`. Each one
is wrapped in `admin_view` (staff login, no caching, CSRF) and checks a real permission.
Installed through `EntraSyncAdminConfig` (in INSTALLED_APPS in place of django.contrib.admin).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.urls import URLPattern, URLResolver, path


class EntraSyncAdminSite(admin.AdminSite):
    site_header = "entra-sync"
    site_title = "entra-sync"
    index_title = "Directories, users and groups from Microsoft Entra ID"

    def get_urls(self) -> list[URLResolver | URLPattern]:
        # Imported here: the views use ModelAdmins that register with this very site.
        from directories.admin.troubleshooting import troubleshooting, troubleshooting_user

        pages = [
            path(
                "troubleshooting/",
                self.admin_view(troubleshooting),
                name="troubleshooting",
            ),
            path(
                "troubleshooting/user/",
                self.admin_view(troubleshooting_user),
                name="troubleshooting_user",
            ),
        ]
        # Before Django's own URLs, whose app-label catch-all would take these paths.
        return pages + super().get_urls()


class EntraSyncAdminConfig(AdminConfig):
    """django.contrib.admin with entra-sync's site (its extra pages) as `admin.site`."""

    default_site = "directories.admin_site.EntraSyncAdminSite"
