from __future__ import annotations

from django.apps import AppConfig


class IdentitiesConfig(AppConfig):
    name = "identities"
    verbose_name = "Synced identities"
    default_auto_field = "django.db.models.BigAutoField"
