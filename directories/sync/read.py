"""Read a directory's scope from Graph: a full read, or a delta round on the stored mirror.

Design (fewest requests):
- A **full read** first takes `$deltatoken=latest` links for users and groups (2 requests),
  then reads every user (`/users`, 999 a page) and every group (`/groups`), then the direct
  members of the groups in scope through `$batch` (20 groups a request, several requests at
  a time). Transitive membership is computed locally. Whatever changes during the read is
  replayed by the next delta round, because its links were taken before the read began.
- A **delta round** re-reads the Authentication app's assignments (1 request: they are
  cheap and decide the scope) and follows the stored users and groups delta links (at least 1
  request each). With no change anywhere the run costs 3 requests and writes nothing; with
  changes, only groups that newly enter the scope have their members read.
- An expired delta link (410 / syncStateNotFound / resyncRequired) falls back to a full read,
  and a full read also runs every SYNC_FULL_RECONCILE_HOURS to heal any drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.utils import timezone

from directories.graph import GraphDeltaExpired
from directories.models import Directory, SyncRun

from .mirror import (
    Mirror,
    apply_group_changes,
    apply_user_changes,
    groups_missing_members,
    snapshot_from,
)
from .mirror_store import mirror_load, mirror_replace, mirror_save_changes
from .reader import DirectoryReader
from .scope import SyncScope, read_scope, require_groups
from .snapshot import FetchProgress, ProgressCallback, Snapshot

BATCH_GROUPS = 20  # Graph's JSON batching limit


@dataclass
class ReadResult:
    """What a read found, and how to make it durable inside the apply transaction."""

    read_mode: str
    snapshot: Snapshot | None  # None: nothing changed since the last applied run
    save: Callable[[], None]


def read_mode_for(directory: Directory) -> str:
    """Delta when the stored links and mirror allow it; a full read otherwise."""
    if not (directory.users_delta_link and directory.groups_delta_link and directory.full_read_at):
        return SyncRun.ReadMode.FULL
    hours = settings.SYNC_FULL_RECONCILE_HOURS
    if hours and timezone.now() - directory.full_read_at > timedelta(hours=hours):
        return SyncRun.ReadMode.FULL_RECONCILE
    return SyncRun.ReadMode.DELTA


def directory_read(
    *,
    directory: Directory,
    client: DirectoryReader,
    auth_app_id: str | None = None,
    progress: ProgressCallback | None = None,
    workers: int = 4,
    force_full: bool = False,
) -> ReadResult:
    scope = read_scope(client, directory=directory, auth_app_id=auth_app_id)
    if scope.assigned_only:
        require_groups(scope)
    mode = SyncRun.ReadMode.FULL if force_full else read_mode_for(directory)
    if mode == SyncRun.ReadMode.DELTA:
        try:
            return _delta_read(directory, client, scope, progress, workers)
        except GraphDeltaExpired:
            mode = SyncRun.ReadMode.FULL_EXPIRED
    return _full_read(directory, client, scope, progress, workers, mode)


def _scope_key(scope: SyncScope) -> list[str] | None:
    return None if scope.group_ids is None else sorted(scope.group_ids)


def _read_missing_members(
    mirror: Mirror,
    client: DirectoryReader,
    scope: SyncScope,
    progress: ProgressCallback | None,
    workers: int,
) -> None:
    """Read the direct members of every scoped group not read yet, level by level."""
    done = 0
    while missing := sorted(groups_missing_members(mirror, scope)):
        chunks = [missing[i : i + BATCH_GROUPS] for i in range(0, len(missing), BATCH_GROUPS)]
        total = done + len(missing)
        if progress:
            progress(FetchProgress(total, done, len(mirror.users)))  # the page learns the total
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for members_by_group, chunk in zip(
                pool.map(client.group_members, chunks), chunks, strict=True
            ):
                for group_id in chunk:
                    # A group deleted while we read is simply out of scope.
                    mirror.set_members(group_id, members_by_group.get(group_id, []))
                done += len(chunk)
                if progress:
                    progress(FetchProgress(total, done, len(mirror.users)))


def _read_newcomers_groups(mirror: Mirror, client: DirectoryReader, user_ids: list[str]) -> None:
    """Memberships of users new to the mirror, which no `members@delta` may have reported.

    A restored user gets its memberships back silently, and a group read while one of its
    members was deleted did not list it: without this read, such a membership would only
    come back at the next full read.
    """
    if not user_ids:
        return
    for user_id, groups in client.users_member_of(user_ids).items():
        for ref in groups:
            if ref.kind == "group":
                mirror.add_user_member(ref.id, user_id)


def _full_read(
    directory: Directory,
    client: DirectoryReader,
    scope: SyncScope,
    progress: ProgressCallback | None,
    workers: int,
    mode: str,
) -> ReadResult:
    # Taken first, so the next delta round replays whatever changes during this read.
    users_link = client.latest_delta_link("users")
    groups_link = client.latest_delta_link("groups")
    mirror = Mirror(journaling=False)
    mirror.users = {u.id: u for u in _reported(client.users(), progress)}
    mirror.groups = {g.id: g for g in _reported(client.groups(), progress)}
    _read_missing_members(mirror, client, scope, progress, workers)
    snapshot = snapshot_from(mirror, scope)

    def save() -> None:
        mirror_replace(directory, mirror)
        _save_links(directory, users_link, groups_link, scope, full=True)

    return ReadResult(read_mode=mode, snapshot=snapshot, save=save)


T = TypeVar("T")
REPORT_EVERY = 5000


def _reported(items: Iterable[T], progress: ProgressCallback | None) -> Iterator[T]:
    """Items as they are read, with progress every REPORT_EVERY of them.

    The engine renews the directory's lock on progress: a tenant whose listing takes longer
    than the lock's TTL must not lose it to another worker halfway through.
    """
    for count, item in enumerate(items, start=1):
        if progress and count % REPORT_EVERY == 0:
            progress(FetchProgress(0, 0, count))
        yield item


def _delta_read(
    directory: Directory,
    client: DirectoryReader,
    scope: SyncScope,
    progress: ProgressCallback | None,
    workers: int,
) -> ReadResult:
    users_round = client.users_delta(directory.users_delta_link)
    groups_round = client.groups_delta(directory.groups_delta_link)
    unchanged_scope = _scope_key(scope) == directory.delta_scope
    if not users_round.changes and not groups_round.changes and unchanged_scope:

        def advance_links() -> None:
            _save_links(directory, users_round.delta_link, groups_round.delta_link, scope)

        return ReadResult(read_mode=SyncRun.ReadMode.DELTA, snapshot=None, save=advance_links)
    mirror = mirror_load(directory)
    newcomers = [c.id for c in users_round.changes if not c.removed and c.id not in mirror.users]
    apply_user_changes(mirror, users_round.changes)
    apply_group_changes(mirror, groups_round.changes)
    _read_newcomers_groups(mirror, client, newcomers)
    _read_missing_members(mirror, client, scope, progress, workers)
    snapshot = snapshot_from(mirror, scope)

    def save() -> None:
        mirror_save_changes(directory, mirror)
        _save_links(directory, users_round.delta_link, groups_round.delta_link, scope)

    return ReadResult(read_mode=SyncRun.ReadMode.DELTA, snapshot=snapshot, save=save)


def _save_links(
    directory: Directory, users_link: str, groups_link: str, scope: SyncScope, *, full: bool = False
) -> None:
    fields: dict[str, object] = {
        "users_delta_link": users_link,
        "groups_delta_link": groups_link,
        "delta_scope": _scope_key(scope),
    }
    if full:
        fields["full_read_at"] = timezone.now()
    Directory.objects.filter(pk=directory.pk).update(**fields)
