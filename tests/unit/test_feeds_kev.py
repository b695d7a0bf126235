"""CISA KEV catalog, CSV and JSON: real entries (tests/fixtures/kev, CC0)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchbrain.feeds.common import FeedError
from patchbrain.feeds.kev import KevEntry, load_kev, load_kev_catalog

FIX = Path(__file__).parents[1] / "fixtures" / "kev"
CSV_PATH = FIX / "known_exploited_vulnerabilities-sample.csv"
JSON_PATH = FIX / "known_exploited_vulnerabilities-sample.json"


def test_csv_entries_hold_the_catalogs_values():
    kev = load_kev(CSV_PATH)
    assert len(kev) == 20
    e = kev["CVE-2019-0708"]
    assert isinstance(e, KevEntry)
    assert (e.vendor, e.product) == ("Microsoft", "Remote Desktop Services")
    assert e.date_added == dt.date(2021, 11, 3)
    assert e.due_date == dt.date(2022, 5, 3)
    assert e.known_ransomware is True
    assert e.cwes == ("CWE-416",)
    git = kev["CVE-2025-48384"]
    assert git.known_ransomware is False and git.cwes == ("CWE-59", "CWE-436")


def test_json_and_csv_forms_agree_and_json_carries_its_version():
    cat = load_kev_catalog(JSON_PATH)
    assert cat.entries == load_kev(CSV_PATH)
    assert cat.version == "2025.08.25" and cat.format == "json"
    assert cat.released == dt.datetime(2025, 8, 25, 17, 0, 8, 115500, tzinfo=dt.UTC)


def test_missing_column_is_refused(tmp_path):
    path = tmp_path / "kev.csv"
    path.write_text("cveID,product\nCVE-2020-0001,x\n")
    with pytest.raises(FeedError, match="missing columns vendorProject, dateAdded"):
        load_kev(path)


def _rows():
    return list(csv.DictReader(io.StringIO(CSV_PATH.read_text(encoding="utf-8"))))


def _write_rows(path, rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def test_bad_date_names_the_line_and_the_cve(tmp_path):
    rows = _rows()
    rows[4]["dateAdded"] = "2021-13-45"
    with pytest.raises(FeedError) as info:
        load_kev(_write_rows(tmp_path / "k.csv", rows))
    msg = str(info.value)
    assert "line 6" in msg and rows[4]["cveID"] in msg and "dateAdded" in msg


def test_one_cve_listed_twice_with_different_claims_is_refused(tmp_path):
    rows = _rows()
    rows.append({**rows[0], "knownRansomwareCampaignUse": "Known"})
    with pytest.raises(FeedError, match="listed twice"):
        load_kev(_write_rows(tmp_path / "k.csv", rows))


def test_json_count_mismatch_is_refused(tmp_path):
    doc = json.loads(JSON_PATH.read_text(encoding="utf-8"))
    doc["count"] = 999
    path = tmp_path / "k.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(FeedError, match="999"):
        load_kev(path)


@pytest.mark.skipif(not Path("/work/shared/data/kev").is_dir(), reason="shared data not present")
def test_the_full_real_catalog_loads():
    kev = load_kev(Path("/work/shared/data/kev/known_exploited_vulnerabilities.csv"))
    assert len(kev) == 1404


_fields = st.sampled_from(
    ["cveID", "vendorProject", "dateAdded", "dueDate", "knownRansomwareCampaignUse", "cwes", "notes"]
)
_values = st.none() | st.integers() | st.text(max_size=30) | st.lists(st.text(max_size=5), max_size=3)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 19), field=_fields, value=_values)
def test_fuzz_json_entries_parse_or_raise_feed_error(tmp_path, index, field, value):
    doc = json.loads(JSON_PATH.read_text(encoding="utf-8"))
    doc["vulnerabilities"][index][field] = value
    path = tmp_path / "k.json"
    path.write_text(json.dumps(doc))
    try:
        kev = load_kev(path)
    except FeedError as exc:
        assert str(path) in str(exc)
        # The entry at fault is named: this one, or the other entry a changed cveID now duplicates.
        if "listed twice" in str(exc):
            assert re.search(r"record #[0-9]+ CVE-", str(exc))
        else:
            assert f"record #{index}" in str(exc)
    else:
        assert len(kev) in (19, 20)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=400))
def test_fuzz_csv_text_parses_or_raises_feed_error(tmp_path, text):
    path = tmp_path / "k.csv"
    path.write_text(CSV_PATH.read_text(encoding="utf-8")[:300] + text, encoding="utf-8")
    try:
        load_kev(path)
    except FeedError as exc:
        assert str(path) in str(exc)
        assert re.search(r"record line [0-9]+", str(exc))  # the header is intact: rows are at fault


def test_unparseable_csv_row_names_its_own_line(tmp_path):
    lines = CSV_PATH.read_text(encoding="utf-8").split("\n")
    lines[4] = 'CVE-2020-0001,"Ve"ndor' + lines[4][lines[4].index(",", 14) :]
    path = tmp_path / "k.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(FeedError, match=r"record line 5'?: not valid CSV"):
        load_kev(path)
