"""Raw documents, the policy file and the gate built on them."""

from __future__ import annotations

import json

import pytest
from posture_helpers import document, fixture, probe, recorded_getenforce, selinux_recorded

from patchbrain.errors import BadInput
from patchbrain.posture import gate, policy, snapshot


def web(nft: str = "base", ss: str = "base", boolean: str = "baseline", host: str = "web1"):
    return document(
        host,
        nft_ruleset=fixture(f"nft/{nft}.json"),
        ss=fixture(f"ss/{ss}.txt"),
        getenforce=recorded_getenforce("enforcing"),
        getsebool=selinux_recorded(boolean, "getsebool"),
    )


def test_document_parses_every_present_source():
    s = snapshot.parse_document(web())
    assert s.host == "web1" and s.sources == ("getenforce", "getsebool", "nft_ruleset", "ss")
    assert s.firewalld is None and s.ufw is None  # absent tools stay absent


def test_missing_tool_is_skipped_but_a_failing_one_is_bad_input():
    doc = web()
    doc["probes"]["ufw_status"] = {"rc": None, "stdout": "", "missing": True}
    assert snapshot.parse_document(doc).ufw is None
    doc["probes"]["nft_ruleset"] = probe("", rc=1, stderr="netlink: Error: Operation not permitted")
    with pytest.raises(BadInput) as exc:
        snapshot.parse_document(doc)
    assert "web1: nft_ruleset" in str(exc.value) and "Operation not permitted" in str(exc.value)


def test_tool_that_vanished_is_unknown():
    after = web()
    del after["probes"]["nft_ruleset"]
    report = gate.compare({"web1": web()}, {"web1": after})
    assert [(c.effect, c.subject) for c in report.changes] == [("unknown", "nft_ruleset")]
    assert not report.ok


def test_gate_blocks_weakening_and_passes_neutral():
    assert gate.compare({"web1": web()}, {"web1": web(nft="reordered")}).ok
    report = gate.compare({"web1": web()}, {"web1": web(nft="open_port")})
    assert not report.ok and report.blocking[0].kind == "firewall.admits"


def test_missing_host_is_unknown_not_skipped():
    report = gate.compare({"web1": web(), "web2": web(host="web2")}, {"web1": web()})
    assert [c.kind for c in report.blocking] == ["sources.host_missing"]


def test_truncated_document_in_gate_is_bad_input_naming_host():
    bad = web()
    bad["probes"]["nft_ruleset"]["stdout"] = bad["probes"]["nft_ruleset"]["stdout"][:50]
    with pytest.raises(BadInput, match="web1: nft -j list ruleset"):
        gate.compare({"web1": web()}, {"web1": bad})


POLICY = """\
version: 1
allow:
  - package: labdemo
    ports: ["8080/tcp"]
    selinux_booleans: [httpd_can_network_connect]
"""


def test_policy_allows_expected_weakenings_for_that_package_only():
    pol = policy.parse(POLICY, "drift.yml")
    before = {"web1": web()}
    after = {"web1": web(nft="open_port", ss="new_listener", boolean="boolean_httpd_on")}
    report = gate.compare(before, after, policy=pol, packages=["labdemo"])
    assert report.ok, report.blocking
    assert {c.allowed_by for c in report.changes if c.effect == "weakens"} == {"drift.yml:3"}
    assert not gate.compare(before, after, policy=pol, packages=["otherpkg"]).ok


def test_policy_does_not_cover_a_wider_opening():
    pol = policy.parse(POLICY, "drift.yml")
    report = gate.compare({"web1": web()}, {"web1": web(nft="wide_range")}, policy=pol, packages=["labdemo"])
    assert not report.ok


def test_unknown_can_be_downgraded_to_a_warning():
    pol = policy.parse("version: 1\nunknown: warn\n", "p.yml")
    report = gate.compare({"web1": web()}, {"web1": web(nft="outside_model")}, policy=pol)
    assert report.ok and report.counts()["unknown"] == 1


@pytest.mark.parametrize(
    ("text", "where", "field"),
    [
        ("version: 1\nalow: []\n", "p.yml:2", "alow"),
        ("version: 2\n", "p.yml:1", "version"),
        ("allow: []\n", "p.yml:1", "version"),
        ("version: 1\nallow:\n  - package: x\n    ports: [8080]\n", "p.yml:4", "allow[].ports"),
        ("version: 1\nallow:\n  - ports: ['99999/tcp']\n", "p.yml:3", "allow[].ports"),
        ("version: 1\nallow:\n  - pakage: x\n", "p.yml:3", "allow[].pakage"),
        ("version: 1\nunknown: maybe\n", "p.yml:2", "unknown"),
        ("version: 1\nallow: [\n", "p.yml:", None),
    ],
)
def test_policy_errors_name_file_line_and_field(text, where, field):
    with pytest.raises(BadInput) as exc:
        policy.parse(text, "p.yml")
    assert where in str(exc.value)
    if field:
        assert f"field {field!r}" in str(exc.value)


def test_snapshot_file_roundtrip_and_bad_files(tmp_path):
    good = tmp_path / "s.json"
    good.write_text(json.dumps(snapshot.file_document({"web1": web()})))
    assert list(snapshot.load_file(good)) == ["web1"]
    garbage = tmp_path / "g.json"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(BadInput, match=str(garbage)):
        snapshot.load_file(garbage)
    trunc = tmp_path / "t.json"
    trunc.write_text(good.read_text()[:100])
    with pytest.raises(BadInput, match="not a JSON snapshot file"):
        snapshot.load_file(trunc)
