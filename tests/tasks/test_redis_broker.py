"""With REDIS_URL set, Sync Now goes through django-q2's Redis broker to a worker.

Runs only where a Redis server answers on 127.0.0.1:6379 (database 15 is used and emptied).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf
from django_q.models import Task

from directories.models import SyncRun
from directories.services.sync_now import directory_sync_enqueue
from tests.factories import DirectoryFactory

from ..sync.fakes import FakeGraph, make_group, make_user
from .conftest import run_queued_tasks

REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_answers() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


pytestmark = pytest.mark.skipif(not redis_answers(), reason="no Redis on 127.0.0.1:6379")


@pytest.fixture
def redis_broker(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Broker]:
    """Switch django-q2 to Redis for this test, as REDIS_URL does at start-up.

    django-q2 copies Q_CLUSTER into Conf's class attributes when it is imported, and
    get_broker() picks the ORM broker whenever Conf.ORM is set: override both.
    """
    settings.Q_CLUSTER = {"name": "entra-sync-test", "redis": REDIS_URL, "max_attempts": 1}
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", REDIS_URL)
    monkeypatch.setattr(Conf, "PREFIX", "entra-sync-test")
    monkeypatch.setattr(Conf, "CLUSTER_NAME", "entra-sync-test")
    broker = get_broker()
    broker.purge_queue()
    yield broker
    broker.purge_queue()


@pytest.mark.django_db(transaction=True)
def test_sync_now_through_the_redis_broker_is_run_by_a_worker(
    redis_broker: Broker, graph: FakeGraph
) -> None:
    assert type(redis_broker).__name__ == "Redis"
    directory = DirectoryFactory(name="Contoso")
    graph.add_group(make_group("Engineering"), [make_user("Ada"), make_user("Bob")])

    task_id = directory_sync_enqueue(directory=directory)

    assert redis_broker.queue_size() == 1
    assert not SyncRun.objects.exists()
    assert run_queued_tasks(redis_broker) == 1
    run = SyncRun.objects.get(directory=directory)
    assert (run.trigger, run.status, run.users_created) == ("manual", "succeeded", 2)
    assert Task.objects.get(id=task_id).result["run_id"] == run.pk
    assert redis_broker.queue_size() == 0
