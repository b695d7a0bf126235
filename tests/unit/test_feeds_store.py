"""The CVE store: per-source claims, conflicts kept, per-file transactions, freshness, and the CLI."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchbrain.cli import main
from patchbrain.feeds.common import FeedError
from patchbrain.feeds.cvestore import CveStore
from patchbrain.feeds.detect import detect_format
from patchbrain.store import Store

FIX = Path(__file__).parents[1] / "fixtures"
NVD11 = FIX / "nvd" / "nvdcve-1.1-sample.json.gz"
NVD2 = FIX / "nvd2" / "nvd-api-2.0-sample.json"
KEV_CSV = FIX / "kev" / "known_exploited_vulnerabilities-sample.csv"
KEV_JSON = FIX / "kev" / "known_exploited_vulnerabilities-sample.json"
EPSS = FIX / "epss" / "epss_scores-2024-06-30-sample.csv.gz"


@pytest.fixture
def cves(tmp_path):
    return CveStore(Store(tmp_path / "pb.db"))


def _counts(store: CveStore) -> dict:
    return store.status()["counts"]


def test_formats_are_detected_from_content(tmp_path):
    assert detect_format(NVD11) == "nvd-1.1"
    assert detect_format(NVD2) == "nvd-2.0"
    assert detect_format(FIX / "cve5") == "cve5"
    assert detect_format(FIX / "osv") == "osv"
    assert detect_format(KEV_CSV) == "kev" and detect_format(KEV_JSON) == "kev"
    assert detect_format(EPSS) == "epss"
    renamed = tmp_path / "feed.bin"
    shutil.copy(NVD11, renamed)
    assert detect_format(renamed) == "nvd-1.1"
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    with pytest.raises(FeedError, match="unrecognised"):
        detect_format(junk)


def test_sources_disagreeing_are_kept_and_shown(cves):
    cves.load(NVD2)
    cves.load(FIX / "cve5")
    claims = {c.source: c.record.cvss3_score for c in cves.claims("CVE-2023-38545")}
    assert claims == {"nvd": 9.8, "cve5/cna:hackerone": 8.1, "cve5/adp:CISA-ADP": 9.8, "cve5/adp:CVE": None}
    conflicts = {c.field: c.values for c in cves.conflicts("CVE-2023-38545")}
    assert conflicts["cvss3_score"]["cve5/cna:hackerone"] == 8.1
    assert conflicts["cwes"]["cve5/cna:hackerone"] == ("CWE-122",)
    merged = cves.record("CVE-2023-38545")
    assert merged.cvss3_score == 9.8 and merged.provenance["cvss3_score"].feed == "nvd-api-2.0"
    adp = next(c for c in cves.claims("CVE-2023-38545") if c.source == "cve5/adp:CISA-ADP")
    assert adp.extra["ssvc"]["Exploitation"] == "poc"


def test_a_bad_record_late_in_a_file_leaves_the_store_untouched(cves, tmp_path):
    cves.load(NVD11)
    before = _counts(cves)
    doc = json.loads(gzip.decompress(NVD11.read_bytes()))
    for item in doc["CVE_Items"]:  # a newer copy of every record...
        item["lastModifiedDate"] = "2030-01-01T00:00Z"
        item["impact"] = {}
    doc["CVE_Items"][-1]["publishedDate"] = "yesterday"  # ...whose last record is broken
    bad = tmp_path / "nvdcve-1.1-bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(FeedError, match="yesterday"):
        cves.load(bad)
    assert _counts(cves) == before
    assert cves.record("CVE-2019-0708").cvss3_score == 9.8  # the first records were not applied either
    assert len(cves.status()["files"]) == 1


def test_an_older_file_does_not_overwrite_newer_claims(cves, tmp_path):
    doc = json.loads(gzip.decompress(NVD11.read_bytes()))
    newer = json.loads(json.dumps(doc))
    for item in newer["CVE_Items"]:
        item["lastModifiedDate"] = "2030-01-01T00:00Z"
    item = next(i for i in newer["CVE_Items"] if i["cve"]["CVE_data_meta"]["ID"] == "CVE-2019-0708")
    item["impact"]["baseMetricV3"]["cvssV3"]["vectorString"] = "CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"
    path = tmp_path / "newer.json"
    path.write_text(json.dumps(newer))
    cves.load(path)
    cves.load(NVD11)  # older snapshot loaded afterwards
    assert cves.record("CVE-2019-0708").cvss3_score == 1.8


def test_loading_the_same_file_twice_is_a_no_op(cves):
    first = cves.load(KEV_CSV)
    second = cves.load(KEV_CSV)
    assert not first.skipped and second.skipped and second.records == 20
    assert len(cves.status()["files"]) == 1


def test_kev_epss_and_rejected(cves):
    cves.load(KEV_JSON)
    cves.load(EPSS)
    cves.load(NVD11)
    assert cves.kev("CVE-2019-0708").known_ransomware is True
    assert "CVE-2014-0160" in cves.kev_ids()
    score, model, date = cves.epss("CVE-2017-0144")
    assert score.epss > 0.9 and model == "v2023.03.01" and date.year == 2024
    assert cves.record("CVE-2019-0034").rejected is True
    ids = [r.cve_id for r in cves.iter_records()]
    assert ids == sorted(ids) and len(ids) == 16
    status = cves.status()
    assert status["counts"]["rejected"] == 4
    assert status["newest_by_format"]["kev"].startswith("2025-08-25")
    assert status["age_days"]["kev"] > 0


def test_cli_load_and_status_json(pb_home, capsys):
    assert main(["feeds", "load", str(NVD11), str(KEV_CSV), str(FIX / "osv"), "--json"]) == 0
    loaded = json.loads(capsys.readouterr().out)["loaded"]
    assert [(x["format"], x["records"]) for x in loaded] == [("nvd-1.1", 16), ("kev", 20), ("osv", 4)]
    assert main(["feeds", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"]["cves"] == 16 and status["counts"]["advisories"] == 4
    assert main(["feeds", "status"]) == 0
    assert "KEV: 20" in capsys.readouterr().out


def test_cli_bad_path_exits_2_before_loading_anything(pb_home, tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert main(["feeds", "load", str(KEV_CSV), str(missing)]) == 2
    assert "nope.json" in capsys.readouterr().err
    assert main(["feeds", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["kev"] == 0


_values = st.none() | st.integers() | st.text(max_size=12) | st.lists(st.text(max_size=4), max_size=2)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    index=st.integers(0, 3),
    field=st.sampled_from(["id", "modified", "affected", "aliases", "severity", "published", "upstream"]),
    value=_values,
)
def test_fuzz_a_load_either_applies_whole_or_not_at_all(tmp_path_factory, index, field, value):
    tmp = tmp_path_factory.mktemp("fuzzstore")
    store = CveStore(Store(tmp / "pb.db"))
    store.load(KEV_CSV)
    before = _counts(store)
    docs = [json.loads(p.read_text()) for p in sorted((FIX / "osv").glob("*.json"))]
    docs[index][field] = value
    path = tmp / "osv-all.json"
    path.write_text(json.dumps(docs))
    try:
        store.load(path, fmt="osv")
    except FeedError as exc:
        assert str(path) in str(exc)
        assert _counts(store) == before
        assert len(store.status()["files"]) == 1
    else:
        assert _counts(store)["advisories"] in (3, 4)  # 3 if the mutated id duplicates another


def test_cli_show_lists_claims_conflicts_and_advisories(pb_home, capsys):
    assert main(["feeds", "load", str(NVD2), str(FIX / "cve5"), str(FIX / "osv"), str(KEV_JSON)]) == 0
    capsys.readouterr()
    assert main(["feeds", "show", "CVE-2023-38545", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {c["source"] for c in doc["claims"]} >= {"nvd", "cve5/cna:hackerone", "cve5/adp:CISA-ADP"}
    assert {c["field"] for c in doc["conflicts"]} >= {"cvss3_score", "cwes"}
    assert {a["id"] for a in doc["advisories"]} == {"DSA-5523-1", "UBUNTU-CVE-2023-38545", "ALSA-2023:5763"}
    assert main(["feeds", "show", "cve-2023-38545"]) == 0
    assert "CONFLICT cvss3_score" in capsys.readouterr().out
    assert main(["feeds", "show", "CVE-1990-0001"]) == 2
    assert main(["feeds", "show", "x; ls"]) == 2


_FILES = {
    "nvd-1.1": NVD11,
    "nvd-2.0": NVD2,
    "kev": KEV_JSON,
    "kev-csv": KEV_CSV,
    "epss": EPSS,
    "cve5": FIX / "cve5" / "cves" / "2023" / "38xxx" / "CVE-2023-38545.json",
    "osv": FIX / "osv" / "DSA-5523-1.json",
}


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(_FILES)), data=st.data())
def test_fuzz_bytes_of_every_format_through_the_store(tmp_path_factory, name, data):
    tmp = tmp_path_factory.mktemp("fuzzbytes")
    store = CveStore(Store(tmp / "pb.db"))
    store.load(KEV_CSV)
    before = _counts(store)
    raw = FIX.joinpath(_FILES[name]).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    raw = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.sampled_from(b'{}[]",:0a\\\n\x00\xff'))
    path = tmp / f"mutated-{name}"
    path.write_bytes(bytes(raw))
    try:
        store.load(path)
    except FeedError as exc:
        assert str(path) in str(exc)
        assert _counts(store) == before
        assert len(store.status()["files"]) == 1
