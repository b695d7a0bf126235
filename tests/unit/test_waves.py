"""The project's one wave rule: first item = canary size, later items = cumulative shares of the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchbrain.errors import BadInput
from patchbrain.waves import parse_spec, wave_sizes


@pytest.mark.parametrize(
    ("n", "spec", "sizes"),
    [
        (30, "1,10%,50%,100%", [1, 3, 12, 14]),
        (12, "1,3,100%", [1, 3, 8]),
        (6, "1,50%,100%", [1, 3, 2]),
        (1, "1,10%,50%,100%", [1]),
        (2, "1,10%,50%,100%", [1, 1]),
        (0, "1,100%", []),
        (10, "20%,100%", [2, 8]),
        (5, "10,100%", [5]),
        (10, "2,100%,100%", [2, 8]),
    ],
)
def test_examples(n, spec, sizes):
    assert wave_sizes(n, spec) == sizes


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "item 1"),
        ("1,x", "item 2"),
        ("1,150%", "from 1 to 100"),
        ("0,100%", "at least 1"),
        ("1,50%,10%,100%", "cumulative"),
        ("1,10%", "left out"),
        ("1;rm -rf /", "item 1"),
    ],
)
def test_bad_specs_name_the_item(spec, match):
    with pytest.raises(BadInput, match=match):
        wave_sizes(20, spec)


@given(
    n=st.integers(min_value=0, max_value=500),
    canary=st.integers(min_value=1, max_value=20),
    shares=st.lists(st.integers(min_value=1, max_value=100), max_size=4),
)
def test_every_host_in_exactly_one_wave(n, canary, shares):
    spec = ",".join([str(canary), *(f"{s}%" for s in sorted(shares)), "100%"])
    sizes = wave_sizes(n, spec)
    assert sum(sizes) == n
    assert all(s > 0 for s in sizes)
    if n:
        assert sizes[0] == min(n, canary)
        assert len(sizes) <= len(parse_spec(spec))
