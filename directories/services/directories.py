"""Add, find, save and delete directories; each write keeps the directory's schedule in step."""

from __future__ import annotations

import unicodedata

from django.db import IntegrityError, transaction

from directories.graph import is_guid
from directories.models import Directory, SyncMode

from .schedules import directory_schedule_remove, directory_schedule_sync


class DirectoryInputError(ValueError):
    """Bad input from a person: an unknown name, a malformed tenant id, a duplicate."""


# Control characters and line or paragraph separators: a name holding one would break the
# one-line messages that name it.
LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})
# The largest primary key any of our databases stores (a signed 64-bit integer).
MAX_ID = 2**63 - 1


def directory_get(identifier: str) -> Directory:
    """A directory by its unique name or its numeric id."""
    directory = Directory.objects.filter(name=identifier).first()
    # isdigit() alone accepts '²' and other digits int() refuses.
    if directory is None and identifier.isascii() and identifier.isdigit():
        pk = int(identifier)
        if pk <= MAX_ID:
            directory = Directory.objects.filter(pk=pk).first()
    if directory is None:
        known = ", ".join(Directory.objects.values_list("name", flat=True)[:10]) or "none yet"
        raise DirectoryInputError(f"No directory named {identifier!r} (known: {known}).")
    return directory


def directory_name_check(name: str) -> None:
    """Refuse a name the database would cut or refuse, or that would break a one-line message.

    SQLite stores a name of any length, PostgreSQL refuses one longer than the column: the
    same rule on both.
    """
    if not name:
        raise DirectoryInputError("A directory needs a name.")
    limit = Directory._meta.get_field("name").max_length or 0
    if len(name) > limit:
        raise DirectoryInputError(
            f"A directory name has at most {limit} characters (this one has {len(name)})."
        )
    if any(unicodedata.category(char) in LINE_BREAKING for char in name):
        raise DirectoryInputError("A directory name cannot hold line breaks or control characters.")


def directory_add(*, name: str, mode: str, tenant_id: str = "") -> Directory:
    """Record a directory; like one added in the admin, it syncs only once verified."""
    name = name.strip()
    directory_name_check(name)
    if mode not in SyncMode.values:
        raise DirectoryInputError(f"Unknown mode {mode!r}: use 'assigned' or 'all'.")
    if tenant_id and not is_guid(tenant_id):
        raise DirectoryInputError(f"{tenant_id!r} is not a tenant id (a GUID).")
    try:
        directory = Directory.objects.create(name=name, sync_mode=mode, tenant_id=tenant_id.lower())
    except IntegrityError as exc:
        raise DirectoryInputError(f"A directory named {name!r} already exists.") from exc
    directory_schedule_sync(directory=directory)
    return directory


def directory_save(*, directory: Directory) -> Directory:
    """Save a directory edited in the admin (name, mode, enabled) and reschedule it."""
    directory.save()
    directory_schedule_sync(directory=directory)
    return directory


def directory_delete(*, directory: Directory) -> None:
    """Delete a directory with its runs and synced data, and its schedule."""
    directory_id = directory.pk
    with transaction.atomic():
        directory.delete()
        directory_schedule_remove(directory_id=directory_id)
