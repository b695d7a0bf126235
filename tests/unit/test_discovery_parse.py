"""Discovery parsing on real `patch_facts` output recorded from lab hosts (apt, dnf, zypper), and on
hostile output: whatever a host prints, only grammar-valid names, versions and CVE IDs come out.

tests/fixtures/discovery/lab-discover.json: the role's set_stats documents from a discover run on three lab
hosts (Debian 12 base; apt, dnf 4.14, zypper 1.14) with labdemo 1.0 installed and 1.1 published.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchbrain.executor import discovery

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "discovery" / "lab-discover.json"


@pytest.fixture
def docs():
    return json.loads(FIXTURE.read_text())


def test_recorded_documents_parse_per_package_manager(docs):
    found = {d.host: d for d in discovery.parse_run_data({"patchbrain_facts": docs})}
    assert {h: d.pkg_mgr for h, d in found.items()} == {"h01": "apt", "h02": "dnf", "h03": "zypper"}
    for host, (old, new) in {
        "h01": ("1.0", "1.1"),
        "h02": ("1.0-1", "1.1-1"),
        "h03": ("1.0-1", "1.1-1"),
    }.items():
        d = found[host]
        assert d.problems == ()
        assert [(p.package, p.installed, p.candidate, p.cves) for p in d.pending] == [
            ("labdemo", old, new, ("CVE-2019-14287",))
        ]
        assert d.installed["labdemo"] == old
        assert d.reboot_required is False
        assert d.distribution == "Debian"
    assert len(found["h01"].installed) > 100  # every dpkg package


def test_without_a_changelog_the_gap_is_reported(docs):
    doc = dict(docs["h01"], changelogs={})
    d = discovery.parse_host_doc("h01", doc)
    assert d.pending[0].cves == ()
    assert d.problems == ("labdemo: no changelog read from the candidate; CVEs from advisories only",)


@pytest.mark.parametrize(
    "line",
    [
        "Inst {{lookup('pipe','id')}} [1.0] (1.1 lab:lab [all])",
        "Inst labdemo [1.0] ({{lookup('pipe','id')}} lab:lab [all])",
        "Inst labdemo [1.0] (1.1;touch/tmp/pwned lab:lab [all])",
        "Inst -oAPT::Evil=1 [1.0] (1.1 lab:lab [all])",
    ],
)
def test_hostile_apt_output_is_dropped_and_reported(docs, line):
    doc = dict(docs["h01"], simulate=line + "\n" + docs["h01"]["simulate"])
    d = discovery.parse_host_doc("h01", doc)
    assert [p.package for p in d.pending] == ["labdemo"]
    assert len(d.problems) == 1 and "invalid name or version" in d.problems[0]


def test_hostile_changelog_yields_only_cve_ids(docs):
    evil = "labdemo (1.1) lab; urgency=low\n\n  * {{ lookup('pipe','id') }} CVE-2026-1234; touch /tmp/pwned\n"
    doc = dict(docs["h01"], changelogs={"labdemo=1.1": evil})
    assert discovery.parse_host_doc("h01", doc).pending[0].cves == ("CVE-2026-1234",)


def test_zypper_xml_and_patches():
    xml = (
        '<?xml version="1.0"?><stream><update-status><update-list>'
        '<update kind="package" name="labdemo" edition="1.1-1" edition-old="1.0-1" arch="noarch"/>'
        '<update kind="package" name="bad name" edition="1" edition-old="0" arch="noarch"/>'
        "</update-list></update-status></stream>"
    )
    assert discovery.parse_zypper_updates(xml) == [("labdemo", "1.0-1", "1.1-1"), ("bad name", "0", "1")]
    assert discovery.parse_zypper_updates("<not xml") == []
    patches = (
        '<stream><update-status><update-list><update kind="patch" name="SUSE-2026-1">'
        '<issue-list><issue type="cve" id="CVE-2026-0001"/><issue type="bugzilla" id="1"/></issue-list>'
        '<source><solvable name="labdemo"/></source></update></update-list></update-status></stream>'
    )
    assert discovery.parse_zypper_patch_cves(patches) == {"labdemo": {"CVE-2026-0001"}}


def test_dnf_check_update_stops_at_obsoletes():
    text = "\nlabdemo.noarch   1.1-1   patchbrain-lab\nObsoleting Packages\nfoo.x86_64  2-1  r\n"
    assert discovery.parse_dnf_check_update(text) == [("labdemo", "noarch", "1.1-1")]


def test_unknown_package_manager_is_refused():
    with pytest.raises(ValueError, match="unknown package manager"):
        discovery.parse_host_doc("h1", {"pkg_mgr": "{{ x }}"})
    assert discovery.parse_run_data({"patchbrain_facts": {"bad host!": {}}}) == []
