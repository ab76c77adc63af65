"""The project's URLs plus Verify Now's admin pages, mounted as DirectoryAdmin.get_urls will."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns
from directories.consent_views import verify_confirm, verify_start

admin_urlpatterns, app_name, namespace = admin.site.urls
verify_urlpatterns = [
    path(
        "directories/directory/<path:object_id>/verify/",
        admin.site.admin_view(verify_start),
        name="directories_directory_verify",
    ),
    path(
        "directories/directory/<path:object_id>/verify/confirm/",
        admin.site.admin_view(verify_confirm),
        name="directories_directory_verify_confirm",
    ),
]

urlpatterns = [
    path(
        "admin/", include((verify_urlpatterns + admin_urlpatterns, app_name), namespace=namespace)
    ),
    *[p for p in project_urlpatterns if str(p.pattern) != "admin/"],
]
