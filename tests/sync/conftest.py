"""Fixtures shared by the engine tests."""

from __future__ import annotations

import pytest

from .fakes import FakeGraph


@pytest.fixture
def graph() -> FakeGraph:
    return FakeGraph()
