"""Keep each directory's django-q2 schedule in step with the directory.

Saves that go through `.update()` (the sync engine's summary, the lock) send no signal, so a
sync does not rewrite its own schedule; services that change verification or enablement with
`.update()` call `directory_schedule_sync` themselves.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save

from .models import Directory
from .schedules import directory_schedule_remove, directory_schedule_sync, schedules_sync_all


def directory_saved(sender: type[Directory], instance: Directory, raw: bool, **kwargs: Any) -> None:
    if raw:  # loaddata: the schedules are repaired after migrate / by schedules_sync_all
        return
    directory_schedule_sync(directory=instance)


def directory_deleted(sender: type[Directory], instance: Directory, **kwargs: Any) -> None:
    directory_schedule_remove(directory_id=instance.pk)


def schedules_repair_after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    """A deploy (migrate) picks up a changed SYNC_INTERVAL_MINUTES and heals lost schedules."""
    if sender.name != "directories" or kwargs.get("using", "default") != "default":
        return  # post_migrate is sent once per app: repair once
    schedules_sync_all()


def connect() -> None:
    post_save.connect(directory_saved, sender=Directory, dispatch_uid="directory_schedule_save")
    post_delete.connect(
        directory_deleted, sender=Directory, dispatch_uid="directory_schedule_delete"
    )
    post_migrate.connect(schedules_repair_after_migrate, dispatch_uid="directory_schedules_repair")
