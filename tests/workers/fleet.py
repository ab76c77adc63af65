"""The Django side of the many-workers test, run as a process of its own on the test's database.

The test process keeps pytest-django's settings and databases; the directories, their runs and
their data live in a PostgreSQL database of the test's own, which only processes started with
its DATABASE_URL (these commands and the qclusters) open.

    python -m tests.workers.fleet setup   < [{"name", "mode", "tenant_id"}, ...]
    python -m tests.workers.fleet race
    python -m tests.workers.fleet report

`setup` adds and verifies each directory as an operator does (`directory_add`, then
`directory_verify`, whose probe really reads the emulated tenant) and prints their ids; verifying
puts each one on its django-q2 schedule. `race` queues, for every directory, a Sync Now
and right behind it the task its schedule queues, so that two workers take the same directory
at the same moment. `report` prints every run, the task queue's results,
every directory's lock and the present users, groups and memberships, as JSON.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any


def setup(directories: list[dict[str, str]]) -> dict[str, int]:
    from directories.services.directories import directory_add
    from directories.services.verify import directory_verify

    ids = {}
    for wanted in directories:
        directory = directory_add(name=wanted["name"], mode=wanted["mode"])
        directory_verify(directory=directory, tenant_id=wanted["tenant_id"])
        ids[directory.name] = directory.pk
    return ids


def race() -> int:
    """Sync Now (as the admin's button queues it) and the scheduled sync (as django-q2's
    scheduler queues it) of each directory, side by side in the queue; the tasks queued."""
    from django_q.tasks import async_task

    from directories.models import Directory, SyncRun
    from directories.services.schedules import SYNC_TASK
    from directories.services.sync_now import directory_sync_enqueue

    queued = 0
    for directory in Directory.objects.order_by("pk"):
        directory_sync_enqueue(directory=directory)
        async_task(SYNC_TASK, directory.pk, str(SyncRun.Trigger.SCHEDULE))
        queued += 2
    return queued


def report() -> dict[str, Any]:
    from django_q.models import Task

    from directories.models import Directory, SyncRun
    from identities.selectors import directory_present_state

    runs = [
        {
            "id": run.pk,
            "directory_id": run.directory_id,
            "trigger": run.trigger,
            "status": run.status,
            "error_class": run.error_class,
            "error_message": run.error_message,
            "read_mode": run.read_mode,
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "lock_token": run.lock_token,
        }
        for run in SyncRun.objects.order_by("pk")
    ]
    # What each task returned: a run summary's "status", "already_running", "reclaimed" ...
    outcomes: Counter[str] = Counter()
    failed_tasks = []
    reclaimed_by_schedule: list[int] = []
    for task in Task.objects.all():
        if not task.success:
            failed_tasks.append({"func": task.func, "result": str(task.result)[:500]})
            continue
        result = task.result if isinstance(task.result, dict) else {}
        if task.func.endswith("run_reclaim_interrupted"):
            reclaimed_by_schedule += result.get("reclaimed", [])
        else:
            outcomes[f"{task.func.rsplit('.', 1)[-1]}: {result.get('status')}"] += 1
    directories = []
    for directory in Directory.objects.order_by("pk"):
        state = directory_present_state(directory=directory)
        directories.append(
            {
                "id": directory.pk,
                "name": directory.name,
                "tenant_id": directory.tenant_id,
                "mode": directory.sync_mode,
                "lock_token": directory.sync_lock_token,
                "sync_now_queued": directory.sync_requested_at is not None,
                "last_sync_status": directory.last_sync_status,
                "user_ids": sorted(state.user_ids),
                "group_ids": sorted(state.group_ids),
                "memberships": sorted(state.memberships),
            }
        )
    return {
        "runs": runs,
        "task_outcomes": dict(outcomes),
        "failed_tasks": failed_tasks,
        "reclaimed_by_schedule": reclaimed_by_schedule,
        "directories": directories,
    }


def main(argv: list[str]) -> int:
    import django

    django.setup()
    if argv[1:] == ["setup"]:
        result: Any = setup(json.load(sys.stdin))
    elif argv[1:] == ["race"]:
        result = race()
    elif argv[1:] == ["report"]:
        result = report()
    else:
        sys.stderr.write("usage: python -m tests.workers.fleet (setup | race | report)\n")
        return 2
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
