"""Shared feed helpers: times, CVSS through the cvss library, identifiers."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchbrain.feeds.common import Ctx, FeedError, check_cve_id, cvss, parse_time


def test_times_as_the_feeds_write_them():
    utc = dt.UTC
    assert parse_time("2019-01-15T21:29Z", Ctx("f"), "t") == dt.datetime(2019, 1, 15, 21, 29, tzinfo=utc)
    assert parse_time("2024-06-30T00:00:00+0000", Ctx("f"), "t") == dt.datetime(2024, 6, 30, tzinfo=utc)
    assert parse_time("2023-10-18T04:15:11.077", Ctx("f"), "t").microsecond == 77000
    assert parse_time("2024-01-01T02:00:00+02:00", Ctx("f"), "t") == dt.datetime(2024, 1, 1, tzinfo=utc)


@pytest.mark.parametrize("text", ["yesterday", "2020-02-30T00:00Z", "0001-01-01T00:00:00+01:00"])
def test_bad_times_are_feed_errors(text):
    with pytest.raises(FeedError, match="not a time"):
        parse_time(text, Ctx("feed.json", "#3"), "published")


def test_cvss_scores_come_from_the_vector():
    assert cvss(3, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Ctx("f"), "v") == (
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        9.8,
    )
    assert cvss(2, "AV:N/AC:L/Au:N/C:P/I:P/A:P", Ctx("f"), "v")[1] == 7.5
    with pytest.raises(FeedError, match="CVSS v3"):
        cvss(3, "CVSS:3.1/AV:N", Ctx("f"), "v")


def test_a_claimed_score_that_disagrees_with_its_vector_is_logged(caplog):
    vector = "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"
    assert cvss(3, vector, Ctx("f.json", "#1 CVE-2020-0001"), "v", claimed=10.0)[1] == 1.8
    assert "claims base score 10.0" in caplog.text


@given(
    version=st.sampled_from([2, 3, 4]), text=st.text(alphabet="CVS:0123/.AVNLHPRUISXEMTDFO-~", max_size=80)
)
def test_fuzz_cvss_never_crashes(version, text):
    try:
        vector, score = cvss(version, text, Ctx("f"), "v")
        assert vector.startswith("CVSS:") or version == 2
    except FeedError:
        return
    assert 0.0 <= score <= 10.0


def test_cve_ids():
    assert check_cve_id("CVE-2024-12345", Ctx("f")) == "CVE-2024-12345"
    for bad in ("cve-2024-1234", "CVE-24-1234", "CVE-2024-123", "CVE-2024-1234\n", None):
        with pytest.raises(FeedError):
            check_cve_id(bad, Ctx("f"))


def test_only_ascii_digits_make_a_cve_id():
    with pytest.raises(FeedError):
        check_cve_id("CVE-\u0662\u0660\u0662\u0664-1234", Ctx("f"))
