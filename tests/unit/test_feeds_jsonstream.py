"""The streaming array reader gives exactly what json.load gives, whatever the chunk size."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchbrain.feeds.common import Ctx, FeedError
from patchbrain.feeds.jsonstream import iter_array

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
)
_values = st.recursive(
    _scalars | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@given(
    items=st.lists(_values, max_size=8),
    before=st.dictionaries(st.text(max_size=5).filter(lambda k: k != "items"), _values, max_size=3),
    after=st.dictionaries(st.text(max_size=5).filter(lambda k: k != "items"), _values, max_size=3),
    chunk=st.integers(1, 64),
    indent=st.sampled_from([None, 1]),
)
def test_stream_equals_json_load(items, before, after, chunk, indent):
    doc = {**before, "items": items, **{k: v for k, v in after.items() if k not in before}}
    text = json.dumps(doc, indent=indent)
    header: dict = {}
    got = list(iter_array(io.StringIO(text), "items", Ctx("t"), on_header=header.__setitem__, chunk=chunk))
    assert got == items
    assert header == {k: v for k, v in doc.items() if k != "items"}


@given(text=st.text(max_size=60), chunk=st.integers(1, 16))
def test_garbage_is_a_feed_error_and_anything_accepted_is_valid_json(text, chunk):
    try:
        got = list(iter_array(io.StringIO(text), "items", Ctx("t"), chunk=chunk))
    except FeedError:
        return
    doc = json.loads(text)  # accepted input must be a real JSON object...
    assert isinstance(doc, dict)
    assert got == (doc["items"] if isinstance(doc.get("items"), list) else [])  # ...read the same way


def test_deep_nesting_is_refused_quickly():
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(FeedError, match="nested too deeply"):
        list(iter_array(io.StringIO('{"items": [' + deep + "]}"), "items", Ctx("t")))


def test_oversized_element_is_refused():
    text = '{"items": ["' + "x" * 5000 + '"]}'
    with pytest.raises(FeedError, match="larger than"):
        list(iter_array(io.StringIO(text), "items", Ctx("t"), chunk=100, max_element_chars=1000))


def test_errors_name_the_element():
    with pytest.raises(FeedError, match="#2"):
        list(iter_array(io.StringIO('{"items": [1, 2, {"a": }]}'), "items", Ctx("t")))
    with pytest.raises(FeedError, match="after the end"):
        list(iter_array(io.StringIO('{"items": []} x'), "items", Ctx("t")))
