"""NVD JSON 1.1 year feeds: real records sampled from the NVD feed (tests/fixtures/nvd), streamed."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchbrain.errors import BadInput
from patchbrain.feeds.common import FeedError
from patchbrain.feeds.nvd import iter_nvd11, read_nvd11_header

FIXTURE = Path(__file__).parents[1] / "fixtures" / "nvd" / "nvdcve-1.1-sample.json.gz"


def _doc() -> dict:
    return json.loads(gzip.decompress(FIXTURE.read_bytes()))


def _write(tmp_path: Path, doc: object, name: str = "feed.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_real_records_parse_with_values_from_the_feed():
    records = {r.cve_id: r for r in iter_nvd11(FIXTURE)}
    assert len(records) == 16
    bluekeep = records["CVE-2019-0708"]
    assert bluekeep.cvss3_vector == "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    assert bluekeep.cvss3_score == 9.8
    assert bluekeep.cvss2_vector == "AV:N/AC:L/Au:N/C:C/I:C/A:C"
    assert bluekeep.cvss2_score == 10.0
    assert bluekeep.cwes == ("CWE-416",)
    assert bluekeep.assigner == "secure@microsoft.com"
    assert bluekeep.published == dt.datetime(2019, 5, 16, 19, 29, tzinfo=dt.UTC)
    assert "Remote Desktop" in bluekeep.description
    assert any("cpe:2.3:o:microsoft:windows_7" in c for c in bluekeep.cpes)
    heartbleed = records["CVE-2014-0160"]
    assert heartbleed.cvss3_score == 7.5 and heartbleed.cvss2_score == 5.0
    assert len(heartbleed.references) == 127
    assert any("Third Party Advisory" in r.tags for r in heartbleed.references)
    # A CVE scored only under CVSS v2.
    old = records["CVE-2002-0001"]
    assert old.cvss3_vector is None and old.cvss3_score is None and old.cvss2_score == 7.5


def test_rejected_cves_are_flagged_and_carry_no_scores():
    records = list(iter_nvd11(FIXTURE))
    rejected = {r.cve_id for r in records if r.rejected}
    assert rejected == {"CVE-2019-0034", "CVE-2017-0605", "CVE-2014-0025", "CVE-1999-0020"}
    assert all(r.cvss3_score is None and r.cvss2_score is None for r in records if r.rejected)


def test_every_present_field_has_provenance_from_the_feed():
    rec = next(r for r in iter_nvd11(FIXTURE) if r.cve_id == "CVE-2019-0001")
    for name in ("description", "cvss3_vector", "cvss3_score", "cvss2_score", "cwes", "cpes", "published"):
        prov = rec.provenance[name]
        assert prov.feed == "nvd-1.1" and prov.version == "1.1"
        assert prov.time == dt.datetime(2020, 12, 8, 14, 26, tzinfo=dt.UTC)  # the record's lastModifiedDate
    assert "cvss4_vector" not in rec.provenance


def test_header_is_read_without_reading_the_records():
    header = read_nvd11_header(FIXTURE)
    assert header.timestamp == dt.datetime(2021, 5, 10, 8, 48, tzinfo=dt.UTC)
    assert header.count == 16


def test_plain_json_and_gzip_give_the_same_records(tmp_path):
    plain = tmp_path / "nvdcve-1.1-sample.json"
    plain.write_bytes(gzip.decompress(FIXTURE.read_bytes()))
    assert list(iter_nvd11(plain)) == list(iter_nvd11(FIXTURE))


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "cut.json.gz"
    path.write_bytes(FIXTURE.read_bytes()[: len(FIXTURE.read_bytes()) // 2])
    with pytest.raises(FeedError, match=r"cut\.json\.gz") as info:
        list(iter_nvd11(path))
    assert isinstance(info.value, BadInput)


def test_a_bad_record_is_named_by_index_and_id(tmp_path):
    doc = _doc()
    doc["CVE_Items"][3]["impact"] = {"baseMetricV3": {"cvssV3": {"vectorString": "CVSS:3.1/AV:X"}}}
    doc["CVE_Items"][3]["cve"]["description"]["description_data"] = []
    path = _write(tmp_path, doc)
    with pytest.raises(FeedError) as info:
        list(iter_nvd11(path))
    msg = str(info.value)
    assert str(path) in msg and "#3" in msg and "CVE-2019-0034" in msg and "CVSS v3" in msg


def test_a_bad_cve_id_is_refused(tmp_path):
    doc = _doc()
    doc["CVE_Items"][0]["cve"]["CVE_data_meta"]["ID"] = "CVE-2019-1; rm -rf /"
    with pytest.raises(FeedError, match="not a CVE identifier"):
        list(iter_nvd11(_write(tmp_path, doc)))


def test_not_json_is_a_feed_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("<html>502 Bad Gateway</html>")
    with pytest.raises(FeedError, match="not valid JSON"):
        list(iter_nvd11(path))


# --- fuzzing ---

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_paths = st.sampled_from(
    [
        ("cve",),
        ("cve", "CVE_data_meta"),
        ("cve", "CVE_data_meta", "ID"),
        ("cve", "problemtype", "problemtype_data"),
        ("cve", "references", "reference_data"),
        ("cve", "description", "description_data"),
        ("configurations", "nodes"),
        ("impact",),
        ("impact", "baseMetricV3", "cvssV3", "vectorString"),
        ("impact", "baseMetricV2", "cvssV2"),
        ("publishedDate",),
        ("lastModifiedDate",),
    ]
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 15), path=_paths, value=_json_values)
def test_fuzz_structure_either_parses_or_raises_feed_error(tmp_path, index, path, value):
    doc = _doc()
    target = doc["CVE_Items"][index]
    for key in path[:-1]:
        target = target.setdefault(key, {}) if isinstance(target, dict) else target
    if isinstance(target, dict):
        target[path[-1]] = value
    try:
        records = list(iter_nvd11(_write(tmp_path, doc)))
    except FeedError as exc:
        assert str(tmp_path) in str(exc)
        assert f"record #{index}" in str(exc)  # the mutated CVE_Items entry
    else:
        assert len(records) == 16


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_bytes_either_parses_or_raises_feed_error(tmp_path, data):
    raw = bytearray(gzip.decompress(FIXTURE.read_bytes())[:6000])
    for _ in range(data.draw(st.integers(1, 5))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    path = tmp_path / "fuzz.json"
    path.write_bytes(bytes(raw))
    with pytest.raises(FeedError):  # cut at 6000 bytes: never a complete document
        list(iter_nvd11(path))


@pytest.mark.skipif(not Path("/work/shared/data/nvd").is_dir(), reason="shared data not present")
def test_a_full_real_year_feed_streams_completely():
    path = Path("/work/shared/data/nvd/nvdcve-1.1-2003.json.gz")
    header = read_nvd11_header(path)
    records = list(iter_nvd11(path))
    assert len(records) == header.count
    assert len({r.cve_id for r in records}) == len(records)


@pytest.mark.parametrize("text", ["{}x", '{} {"CVE_Items": []}', '{"CVE_Items": []}]'])
def test_data_after_the_document_is_refused(tmp_path, text):
    path = tmp_path / "trailing.json"
    path.write_text(text)
    with pytest.raises(FeedError, match="after the end"):
        list(iter_nvd11(path))
