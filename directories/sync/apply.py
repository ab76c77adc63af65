"""Apply: write a plan in one transaction with bulk statements."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar

from django.db import models, transaction

from directories.models import Directory
from identities.models import Membership, SyncedGroup, SyncedUser

from .bulk import insert_rows
from .plan import GROUP_COLUMNS, USER_COLUMNS, ObjectChanges, SyncPlan

BATCH = 500
T = TypeVar("T")


def _chunks(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _apply_objects(
    model: type[models.Model],
    directory: Directory,
    changes: ObjectChanges,
    fields: tuple[str, ...],
    now: datetime,
) -> dict[str, int]:
    """Create, update, revive and mark removed; return the pk of every row by Entra id."""
    manager: Any = model._default_manager
    # New rows go in as plain tuples (COPY / executemany): a first sync creates 100,000 users,
    # and a model instance per row costs more than the database does.
    insert_rows(
        model,
        ("directory_id", "entra_id", *fields, "first_synced_at", "changed_at", "removed_at"),
        (
            (directory.pk, entra_id, *(values[f] for f in fields), now, now, None)
            for entra_id, values in changes.create.items()
        ),
    )
    changed = [
        model(pk=pk, changed_at=now, removed_at=None, **values)
        for pk, values in (*changes.update.items(), *changes.revive.items())
    ]
    manager.bulk_update(changed, [*fields, "changed_at", "removed_at"], batch_size=BATCH)
    for pks in _chunks(changes.remove):
        manager.filter(pk__in=pks).update(removed_at=now)

    pk_by_entra_id = dict(changes.pk_by_entra_id)
    rows = manager.filter(directory=directory)
    if len(changes.create) <= BATCH:
        rows = rows.filter(entra_id__in=list(changes.create))
    if changes.create:
        pk_by_entra_id.update(rows.values_list("entra_id", "pk").iterator(chunk_size=5000))
    return pk_by_entra_id


def apply_plan(*, directory: Directory, plan: SyncPlan, now: datetime) -> None:
    """Write everything or nothing."""
    with transaction.atomic():
        user_pks = _apply_objects(SyncedUser, directory, plan.users, USER_COLUMNS, now)
        group_pks = _apply_objects(SyncedGroup, directory, plan.groups, GROUP_COLUMNS, now)
        insert_rows(
            Membership,
            ("directory_id", "group_id", "user_id", "first_synced_at"),
            (
                (directory.pk, group_pks[group_id], user_pks[user_id], now)
                for group_id, user_ids in plan.memberships_create.items()
                for user_id in user_ids
            ),
        )
        for pks in _chunks(plan.memberships_revive):
            Membership.objects.filter(pk__in=pks).update(removed_at=None)
        for pks in _chunks(plan.memberships_remove):
            Membership.objects.filter(pk__in=pks).update(removed_at=now)
