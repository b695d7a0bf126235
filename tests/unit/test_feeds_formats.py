"""NVD API 2.0, CVE JSON 5, OSV and EPSS parsers: samples written from the public schemas, real EPSS rows."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchbrain.feeds.common import FeedError
from patchbrain.feeds.cve5 import iter_cve5, load_cve5_file
from patchbrain.feeds.epss import iter_epss, read_epss_header
from patchbrain.feeds.nvd import iter_nvd20
from patchbrain.feeds.osv import iter_osv, load_osv_file

FIX = Path(__file__).parents[1] / "fixtures"
NVD2 = FIX / "nvd2" / "nvd-api-2.0-sample.json"
CVE5_DIR = FIX / "cve5"
CVE5_CURL = CVE5_DIR / "cves" / "2023" / "38xxx" / "CVE-2023-38545.json"
OSV_DIR = FIX / "osv"
EPSS = FIX / "epss" / "epss_scores-2024-06-30-sample.csv.gz"
FUZZ = settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


def _mutate(doc, path_choices, data):
    """Replace one value at a path drawn from the document's own structure; returns the path changed
    (empty when nothing was)."""
    node, path = doc, []
    for _ in range(data.draw(st.integers(0, 6))):
        if isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            key = data.draw(st.integers(0, len(node) - 1))
        else:
            break
        path.append(key)
        child = node[key]
        if not isinstance(child, dict | list) or data.draw(st.booleans()):
            node[key] = data.draw(json_values)
            return path
        node = child
    if isinstance(node, dict):
        key = data.draw(st.sampled_from([*path_choices, *sorted(node)]))
        node[key] = data.draw(json_values)
        return [*path, key]
    return []


# --- NVD API 2.0 ---


def test_nvd20_prefers_nvds_primary_score_and_flags_rejected():
    recs = {r.cve_id: r for r in iter_nvd20(NVD2)}
    curl = recs["CVE-2023-38545"]
    assert curl.cvss3_vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" and curl.cvss3_score == 9.8
    assert curl.cwes == ("CWE-787",)
    assert curl.cpes == ("cpe:2.3:a:haxx:curl:*:*:*:*:*:*:*:*",)  # the non-vulnerable platform is left out
    assert curl.description.startswith("This flaw makes curl overflow")
    assert curl.provenance["cvss3_score"].feed == "nvd-api-2.0"
    assert curl.provenance["cvss3_score"].time == dt.datetime(2024, 6, 10, 17, 15, 49, 993000, tzinfo=dt.UTC)
    assert recs["CVE-2021-3999"].rejected is True
    xz = recs["CVE-2024-3094"]
    assert (xz.cvss4_score, xz.cvss2_score, xz.cvss3_score) == (9.3, 10.0, None)


@FUZZ
@given(data=st.data())
def test_fuzz_nvd20(tmp_path, data):
    doc = json.loads(NVD2.read_text())
    changed = _mutate(doc, ["vulnerabilities", "cve", "metrics"], data)
    path = tmp_path / "n.json"
    path.write_text(json.dumps(doc))
    try:
        list(iter_nvd20(path))
    except FeedError as exc:
        assert str(path) in str(exc)
        if changed[:1] == ["vulnerabilities"] and len(changed) > 1:  # inside one record: it is named
            assert f"record #{changed[1]}" in str(exc)


def test_nvd20_error_names_the_record_and_field(tmp_path):
    doc = json.loads(NVD2.read_text())
    doc["vulnerabilities"][1]["cve"]["published"] = "yesterday"
    cve_id = doc["vulnerabilities"][1]["cve"]["id"]
    path = tmp_path / "n.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(FeedError) as exc:
        list(iter_nvd20(path))
    assert str(exc.value).startswith(f"{path}, field 'record #1 {cve_id}: published'")


# --- CVE JSON 5 ---


def test_cve5_keeps_cna_and_cisa_adp_claims_apart():
    claims = {c.source: c for c in load_cve5_file(CVE5_CURL)}
    assert set(claims) == {"cna:hackerone", "adp:CVE", "adp:CISA-ADP"}
    cna, adp = claims["cna:hackerone"].record, claims["adp:CISA-ADP"].record
    assert (cna.cvss3_score, adp.cvss3_score) == (8.1, 9.8)
    assert (cna.cwes, adp.cwes) == (("CWE-122",), ("CWE-787",))
    assert claims["adp:CISA-ADP"].ssvc == {
        "Exploitation": "poc",
        "Automatable": "yes",
        "Technical Impact": "total",
    }
    assert adp.provenance["cvss3_score"].feed == "cve5/adp:CISA-ADP"
    assert adp.provenance["cvss3_score"].version == "5.1"
    assert cna.provenance["cvss3_score"].feed == "cve5/cna:hackerone"


def test_cve5_folder_walk_and_rejected_record():
    claims = list(iter_cve5(CVE5_DIR))
    rejected = [c for c in claims if c.record.rejected]
    assert [c.record.cve_id for c in rejected] == ["CVE-2021-3999"]
    assert "withdrawn" in rejected[0].record.description
    assert len(claims) == 4


def test_cve5_not_a_record(tmp_path):
    path = tmp_path / "CVE-2020-0001.json"
    path.write_text(json.dumps({"dataType": "CVE_RECORD", "cveMetadata": {"cveId": "bogus"}}))
    with pytest.raises(FeedError, match="not a CVE identifier"):
        load_cve5_file(path)


@FUZZ
@given(data=st.data())
def test_fuzz_cve5(tmp_path, data):
    doc = json.loads(CVE5_CURL.read_text())
    changed = _mutate(doc, ["containers", "cna", "adp", "metrics"], data)
    path = tmp_path / "CVE-2023-38545.json"
    path.write_text(json.dumps(doc))
    try:
        load_cve5_file(path)
    except FeedError as exc:
        assert str(path) in str(exc)
        # Past its type and id, the record is named by its id (the file holds one record).
        if changed[:1] != ["dataType"] and changed[:2] not in (["cveMetadata"], ["cveMetadata", "cveId"]):
            assert re.search(r"record CVE-[0-9]{4}-[0-9]+", str(exc))


# --- OSV ---


def test_osv_distro_records_name_their_cves_and_ranges():
    advs = {a.id: a for a in iter_osv(OSV_DIR)}
    assert set(advs) == {"DSA-5523-1", "UBUNTU-CVE-2023-38545", "ALSA-2023:5763", "RLSA-2024:1234"}
    dsa = advs["DSA-5523-1"]
    assert dsa.cve_ids == ("CVE-2023-38545", "CVE-2023-38546")
    deb12 = dsa.affected[0]
    assert (deb12.distro, deb12.release, deb12.name) == ("Debian", "12", "curl")
    assert deb12.ranges[0].events == (("introduced", "0"), ("fixed", "7.88.1-10+deb12u4"))
    ubuntu = advs["UBUNTU-CVE-2023-38545"]
    assert ubuntu.cve_ids == ("CVE-2023-38545",)
    assert ubuntu.affected[0].distro == "Ubuntu" and ubuntu.affected[0].release == "22.04:LTS"
    assert ubuntu.severity == (("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),)
    assert [a.name for a in advs["ALSA-2023:5763"].affected] == ["curl", "libcurl"]
    rocky = advs["RLSA-2024:1234"].affected[0]
    assert rocky.distro == "Rocky Linux" and rocky.ranges[0].events[-1] == ("last_affected", "1:3.0.7-24.el9")


def test_osv_array_file_and_bad_event(tmp_path):
    docs = [json.loads(p.read_text()) for p in sorted(OSV_DIR.glob("*.json"))]
    path = tmp_path / "all.json"
    path.write_text(json.dumps(docs))
    assert len(load_osv_file(path)) == 4
    docs[2]["affected"][0]["ranges"][0]["events"].append({"fixed": "1", "introduced": "2"})
    path.write_text(json.dumps(docs))
    with pytest.raises(FeedError, match=r"#2 .*exactly one"):
        load_osv_file(path)


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(p.name for p in OSV_DIR.glob("*.json"))))
def test_fuzz_osv(tmp_path, data, name):
    doc = json.loads((OSV_DIR / name).read_text())
    adv_id = doc["id"]
    changed = _mutate(doc, ["affected", "aliases", "severity"], data)
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    try:
        load_osv_file(path)
    except FeedError as exc:
        assert str(path) in str(exc)
        if changed[:1] != ["id"]:  # past its id, the advisory is named
            assert f"record {adv_id}" in str(exc)


# --- EPSS ---


def test_epss_header_and_real_rows():
    header = read_epss_header(EPSS)
    assert header.model_version == "v2023.03.01"
    assert header.score_date == dt.datetime(2024, 6, 30, tzinfo=dt.UTC)
    scores = {s.cve_id: s for s in iter_epss(EPSS)}
    assert len(scores) == 44
    assert scores["CVE-1999-1598"].epss == 0.00241 and scores["CVE-1999-1598"].percentile == 0.6445
    assert scores["CVE-2017-0144"].epss > 0.9


def test_epss_without_header_line(tmp_path):
    text = gzip.decompress(EPSS.read_bytes()).decode()
    path = tmp_path / "e.csv"
    path.write_text(text.split("\n", 1)[1])
    assert read_epss_header(path).model_version is None
    assert len(list(iter_epss(path))) == 44


def test_epss_out_of_range_probability_names_the_line(tmp_path):
    lines = gzip.decompress(EPSS.read_bytes()).decode().splitlines()
    lines[5] = lines[5].split(",")[0] + ",1.5,0.3"
    path = tmp_path / "e.csv"
    path.write_text("\n".join(lines))
    with pytest.raises(FeedError, match=r"line 6.*epss.*between 0 and 1"):
        list(iter_epss(path))


@FUZZ
@given(text=st.text(max_size=300))
def test_fuzz_epss(tmp_path, text):
    head = gzip.decompress(EPSS.read_bytes()).decode()[:200]
    path = tmp_path / "e.csv"
    path.write_text(head + text)
    try:
        list(iter_epss(path))
    except FeedError as exc:
        assert str(path) in str(exc)
        assert re.search(r"record line [0-9]+", str(exc))  # the header is intact: rows are at fault


def test_truncated_gzip_epss(tmp_path):
    path = tmp_path / "e.csv.gz"
    shutil.copy(EPSS, path)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(FeedError, match=r"e\.csv\.gz"):
        list(iter_epss(path))


SHARED = Path("/work/shared/data")


@pytest.mark.skipif(not (SHARED / "epss").is_dir(), reason="shared data not present")
def test_the_full_real_epss_file_parses():
    path = SHARED / "epss" / "epss_scores-2024-06-30.csv.gz"
    assert read_epss_header(path).model_version == "v2023.03.01"
    assert sum(1 for _ in iter_epss(path)) == 252015


def test_unparseable_epss_row_names_its_own_line(tmp_path):
    lines = gzip.decompress(EPSS.read_bytes()).decode().splitlines()
    lines[5] = 'CVE-1999-0001,"0.1"x,0.2'
    path = tmp_path / "e.csv"
    path.write_text("\n".join(lines))
    with pytest.raises(FeedError, match=r"record line 6'?: not valid CSV"):
        list(iter_epss(path))
