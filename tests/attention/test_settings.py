"""SYNC_ATTENTION_AFTER_HOURS: 24 unless set; a bad value stops start-up with one line."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.config.test_startup import new_key, one_line_refusal, start


def test_a_day_by_default() -> None:
    assert settings.SYNC_ATTENTION_AFTER_HOURS == 24


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "0",
            "SYNC_ATTENTION_AFTER_HOURS='0' is out of range (hours: 1 or more); "
            "set e.g. SYNC_ATTENTION_AFTER_HOURS=24",
        ),
        (
            "a day",
            "SYNC_ATTENTION_AFTER_HOURS='a day' is not a whole number of hours; "
            "set e.g. SYNC_ATTENTION_AFTER_HOURS=24",
        ),
    ],
)
def test_a_bad_value_stops_manage_py_with_one_line(value: str, expected: str) -> None:
    result = start(
        "manage.py", "check", env={"SECRET_KEY": new_key(), "SYNC_ATTENTION_AFTER_HOURS": value}
    )

    assert one_line_refusal(result) == expected


def test_a_good_value_is_read_in_hours() -> None:
    result = start(
        "manage.py",
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; print(settings.SYNC_ATTENTION_AFTER_HOURS)",
        env={"SECRET_KEY": new_key(), "SYNC_ATTENTION_AFTER_HOURS": "6"},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "6"
