"""The troubleshooting pages; mounted under `admin/troubleshooting/`, staff only."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from . import troubleshooting_views as views

urlpatterns = [
    path("", admin.site.admin_view(views.troubleshooting), name="troubleshooting"),
    path("user/", admin.site.admin_view(views.troubleshooting_user), name="troubleshooting-user"),
]
