"""The admin plus the troubleshooting pages at the prefix config/urls.py mounts them under."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/troubleshooting/", include("directories.troubleshooting_urls")),
    path("admin/", admin.site.urls),
]
