"""Fixtures for the task queue: FakeGraph behind the service, and a worker run in-process."""

from __future__ import annotations

from multiprocessing import Queue, Value
from typing import Any

import pytest
from django_q.brokers import Broker
from django_q.conf import Conf
from django_q.monitor import monitor
from django_q.signing import SignedPackage
from django_q.worker import worker

from ..sync.fakes import FakeGraph


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> FakeGraph:
    """FakeGraph for every sync the tasks start; records how the client was asked for."""
    fake = FakeGraph()
    fake.client_kwargs = []  # type: ignore[attr-defined]

    def client_for(**kwargs: Any) -> FakeGraph:
        fake.client_kwargs.append(kwargs)  # type: ignore[attr-defined]
        return fake

    monkeypatch.setattr("directories.sync.engine.graph_client_for", client_for)
    return fake


@pytest.fixture
def sync_tasks(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """Run tasks inline at enqueue time, as Q_CLUSTER["sync"] = True does.

    django-q2 reads Q_CLUSTER once, into Conf's class attributes, when it is imported, so the
    settings override alone would not reach it: set the attribute too.
    """
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    monkeypatch.setattr(Conf, "SYNC", True)


def run_queued_tasks(broker: Broker) -> int:
    """Do what a qcluster does with one batch: dequeue, run in a worker, save the results."""
    task_queue: Queue[Any] = Queue()
    result_queue: Queue[Any] = Queue()
    count = 0
    for ack_id, pack in broker.dequeue() or []:
        task = SignedPackage.loads(pack)
        task["ack_id"] = ack_id
        task_queue.put(task)
        count += 1
    task_queue.put("STOP")
    worker(task_queue, result_queue, Value("f", -1))
    result_queue.put("STOP")
    monitor(result_queue, broker)
    return count
