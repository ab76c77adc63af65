"""The history chart on a directory's page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from directories.admin.charts import history_chart_svg
from tests.factories import SyncRunFactory

pytestmark = pytest.mark.django_db


def test_runs_that_took_no_measurable_time_still_get_a_chart() -> None:
    now = timezone.now()
    runs = [SyncRunFactory(started_at=now, finished_at=now) for _ in range(3)]

    chart = history_chart_svg(runs)

    assert chart.startswith("<svg") and chart.count("<rect") >= 3


def test_a_run_whose_clock_went_backwards_does_not_break_the_scale() -> None:
    now = timezone.now()
    run = SyncRunFactory(started_at=now, finished_at=now - timedelta(seconds=5))

    assert history_chart_svg([run]).startswith("<svg")
