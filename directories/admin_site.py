"""entra-sync's admin site: Django's, plus the pages that belong to no single model.

Every page of entra-sync is served by the admin: model pages and their buttons by each
ModelAdmin's `get_urls`, and the troubleshooting pages here by `AdminSite.get_urls`. Each one
is wrapped in `admin_view` (staff login, no caching, CSRF) and checks a real permission.
Installed through `EntraSyncAdminConfig` (in INSTALLED_APPS in place of django.contrib.admin).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.urls import URLPattern, URLResolver, path, reverse


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

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        """Django's app list (index, app index, nav sidebar), with Troubleshooting listed under
        Directories for those who may open it, as if it were one of the app's models."""
        # Imported here: this module is imported while the app registry is still loading.
        from directories.models import DirectoryPermission

        app_list: list[dict[str, Any]] = super().get_app_list(request, app_label)
        if app_label not in (None, "directories") or not request.user.has_perm(
            DirectoryPermission.VIEW_TROUBLESHOOTING.perm
        ):
            return app_list
        app = next((a for a in app_list if a["app_label"] == "directories"), None)
        if app is None:  # the permission without any of the app's model permissions
            app = {
                "name": apps.get_app_config("directories").verbose_name,
                "app_label": "directories",
                "app_url": reverse("admin:app_list", kwargs={"app_label": "directories"}),
                "has_module_perms": True,
                "models": [],
            }
            app_list = sorted([*app_list, app], key=lambda a: a["name"].lower())
        app["models"].append(
            {
                "name": "Troubleshooting",
                "object_name": "Troubleshooting",
                "perms": {"view": True},
                "admin_url": reverse("admin:troubleshooting"),
                "add_url": None,
                "view_only": True,
            }
        )
        app["models"].sort(key=lambda m: m["name"])
        return app_list


class EntraSyncAdminConfig(AdminConfig):
    """django.contrib.admin with entra-sync's site (its extra pages) as `admin.site`."""

    default_site = "directories.admin_site.EntraSyncAdminSite"
