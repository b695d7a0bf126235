"""Maintenance windows: recurrence rules with a duration."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchbrain.errors import BadInput
from patchbrain.windows import parse_duration, parse_window

UTC = dt.UTC


def test_next_open_inside_and_before_a_window():
    w = parse_window({"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=0", "duration": "2h"}, source="t", field="w")
    inside = dt.datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    assert w.next_open(inside) == (inside.replace(hour=2), inside.replace(hour=4))
    before = dt.datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    assert w.next_open(before) == (before.replace(hour=2), before.replace(hour=4))
    after = dt.datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    assert w.next_open(after) == (
        dt.datetime(2026, 3, 2, 2, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 2, 4, 0, tzinfo=UTC),
    )


@pytest.mark.parametrize("text", ["", "4", "h", "-1h", "8d", "0m", "four hours"])
def test_bad_durations(text):
    with pytest.raises(BadInput):
        parse_duration(text, source="t", field="d")


@given(st.integers(min_value=0, max_value=23), st.integers(min_value=1, max_value=6 * 60))
def test_contains_agrees_with_next_open(hour, minutes):
    w = parse_window(
        {"rrule": f"FREQ=DAILY;BYHOUR={hour};BYMINUTE=0", "duration": f"{minutes}m"}, source="t", field="w"
    )
    probe = dt.datetime(2026, 5, 10, 12, 30, tzinfo=UTC)
    opened = w.next_open(probe)
    assert opened is not None
    start, end = opened
    assert w.contains(probe) == (start <= probe < end)
    assert w.contains(start) and not w.contains(end)
