"""Load the mirror of a tenant from the database, and write back what a run changed in it.

Writes happen inside the run's apply transaction, with the delta links, so the mirror and
the links only move together with the synced copy: a held or failed run leaves all three.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from directories.graph import GraphGroup, GraphUser
from directories.models import Directory, MirroredEdge, MirroredGroup, MirroredUser

from .bulk import insert_rows
from .mirror import Mirror
from .plan import GROUP_COLUMNS, USER_COLUMNS

BATCH = 2000
T = TypeVar("T")


def _chunks(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def mirror_load(directory: Directory) -> Mirror:
    """The tenant as the last applied run left it (empty before the first one)."""
    intern = sys.intern  # a million edges share ten thousand group ids
    mirror = Mirror()
    for row in MirroredUser.objects.filter(directory=directory).values_list(
        "entra_id", *USER_COLUMNS
    ):
        user_id = intern(row[0])
        upn, mail, name, given, surname, enabled, user_type = row[1:]
        mirror.users[user_id] = GraphUser(
            user_id, upn, mail or None, name, given or None, surname or None, enabled, user_type
        )
    for entra_id, known, *values in MirroredGroup.objects.filter(directory=directory).values_list(
        "entra_id", "members_known", *GROUP_COLUMNS
    ):
        group_id = intern(entra_id)
        name, description, mail, mail_enabled, security_enabled, types = values
        mirror.groups[group_id] = GraphGroup(
            group_id,
            name,
            description or None,
            mail or None,
            mail_enabled,
            security_enabled,
            tuple(types or ()),
        )
        if known:
            mirror.members_known.add(group_id)
            mirror.user_members[group_id] = set()
            mirror.group_members[group_id] = set()
    edges = MirroredEdge.objects.filter(directory=directory).values_list(
        "group_id", "member_id", "member_kind"
    )
    for group_id, member_id, kind in edges.iterator(chunk_size=BATCH):
        target = mirror.user_members if kind == MirroredEdge.Kind.USER else mirror.group_members
        target.setdefault(intern(group_id), set()).add(intern(member_id))
    return mirror


def _user_values(directory: Directory, user: GraphUser) -> tuple[object, ...]:
    values = (getattr(user, c) for c in USER_COLUMNS)
    return (directory.pk, user.id, *("" if v is None else v for v in values))


def _group_values(directory: Directory, group: GraphGroup, known: bool) -> tuple[object, ...]:
    values = ("" if getattr(group, c) is None else getattr(group, c) for c in GROUP_COLUMNS[:-1])
    return (directory.pk, group.id, *values, list(group.group_types), known)


USER_FIELDS = ("directory_id", "entra_id", *USER_COLUMNS)
GROUP_FIELDS = ("directory_id", "entra_id", *GROUP_COLUMNS, "members_known")
EDGE_FIELDS = ("directory_id", "group_id", "member_id", "member_kind")


def _edge_values(
    directory: Directory, edges: Iterable[tuple[str, str, str]]
) -> Iterator[tuple[object, ...]]:
    return ((directory.pk, g, m, kind) for g, m, kind in edges)


def mirror_replace(directory: Directory, mirror: Mirror) -> None:
    """Write a mirror read in full, replacing the stored one (call inside a transaction)."""
    for model in (MirroredEdge, MirroredUser, MirroredGroup):
        model._default_manager.filter(directory=directory)._raw_delete(using="default")
    insert_rows(
        MirroredUser, USER_FIELDS, (_user_values(directory, u) for u in mirror.users.values())
    )
    insert_rows(
        MirroredGroup,
        GROUP_FIELDS,
        (_group_values(directory, g, g.id in mirror.members_known) for g in mirror.groups.values()),
    )
    edges = (
        (g, m, kind)
        for kind, members in (("user", mirror.user_members), ("group", mirror.group_members))
        for g, ids in members.items()
        for m in ids
    )
    insert_rows(MirroredEdge, EDGE_FIELDS, _edge_values(directory, edges))
    mirror.journal = type(mirror.journal)()


def mirror_save_changes(directory: Directory, mirror: Mirror) -> None:
    """Write what the journal says changed since the mirror was loaded (inside a transaction)."""
    journal = mirror.journal
    if journal.users_removed:
        for ids in _chunks(journal.users_removed):
            MirroredUser.objects.filter(directory=directory, entra_id__in=ids).delete()
    if journal.users_upserted:
        for ids in _chunks(journal.users_upserted):
            MirroredUser.objects.filter(directory=directory, entra_id__in=ids).delete()
            insert_rows(
                MirroredUser, USER_FIELDS, (_user_values(directory, mirror.users[i]) for i in ids)
            )
    for ids in _chunks(journal.groups_removed | journal.groups_upserted):
        MirroredGroup.objects.filter(directory=directory, entra_id__in=ids).delete()
    insert_rows(
        MirroredGroup,
        GROUP_FIELDS,
        (
            _group_values(directory, mirror.groups[g], g in mirror.members_known)
            for g in journal.groups_upserted
            if g in mirror.groups
        ),
    )
    # An added edge replaces whatever row (group, member) had (a member whose kind changed),
    # so its row goes too before the insert.
    removed_by_group: dict[str, list[str]] = {}
    for group_id, member_id in journal.edges_removed | journal.edges_added.keys():
        removed_by_group.setdefault(group_id, []).append(member_id)
    for group_id, member_ids in removed_by_group.items():
        for ids in _chunks(member_ids):
            MirroredEdge.objects.filter(
                directory=directory, group_id=group_id, member_id__in=ids
            ).delete()
    insert_rows(
        MirroredEdge,
        EDGE_FIELDS,
        _edge_values(directory, ((g, m, kind) for (g, m), kind in journal.edges_added.items())),
    )
    mirror.journal = type(mirror.journal)()
