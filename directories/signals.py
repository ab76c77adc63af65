"""The one signal left: repair the django-q2 schedules after `migrate`.

Directory changes do not rely on signals: the services that verify, enable, save or delete a
directory call `directory_schedule_sync` themselves (see `directories.services.schedules`).
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from .services.housekeeping import reclaim_schedule_sync
from .services.retention import history_prune_schedule_sync
from .services.schedules import schedules_sync_all


def schedules_repair_after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    """A deploy (migrate) picks up a changed SYNC_INTERVAL_MINUTES and heals lost schedules.

    It also creates the install-wide schedules: the daily prune of old history and the
    reclaim of runs whose worker died.
    """
    if sender.name != "directories" or kwargs.get("using", "default") != "default":
        return  # post_migrate is sent once per app: repair once
    schedules_sync_all()
    history_prune_schedule_sync()
    reclaim_schedule_sync()


def connect() -> None:
    post_migrate.connect(schedules_repair_after_migrate, dispatch_uid="directory_schedules_repair")
