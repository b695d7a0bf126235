"""Discovery parsing on real `patch_facts` output recorded from lab hosts (apt, dnf, zypper), and on
hostile output: whatever a host prints, only grammar-valid names, versions and CVE IDs come out.

tests/fixtures/discovery/lab-discover.json: the role's set_stats documents from a discover run on three lab
hosts (Debian 12 base; apt, dnf 4.14, zypper 1.14) with labdemo 1.0 installed and 1.1 published.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from patchbrain.executor import discovery
from patchbrain.models import FixClaim, PendingUpdate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FIXTURE = FIXTURES / "discovery" / "lab-discover.json"


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


def test_each_cve_keeps_the_source_that_claims_it(docs):
    found = {d.host: d for d in discovery.parse_run_data({"patchbrain_facts": docs})}
    entry = {"h01": "1.1", "h02": "1.1-1", "h03": "1.1-1"}
    for host, version in entry.items():
        [update] = found[host].pending
        assert update.claims == (
            FixClaim("CVE-2019-14287", "fixed", "changelog", f"changelog entry {version}"),
        )
    # The Debian changelog names the source package (OSV files Debian advisories under it); RPM's cannot.
    assert found["h01"].pending[0].source_package == "labdemo"
    assert found["h02"].pending[0].source_package is None


def test_dnf_updateinfo_and_changelog_claims_stay_apart(docs):
    """Real `dnf updateinfo list --with-cve` output and an RPM changelog for the same update: each CVE
    lists both sources; an advisory line for a version already installed claims nothing."""
    stale = "CVE-2022-11111 Moderate/Sec. democurl-7.76.1-20.el9.noarch\n"
    doc = dict(
        docs["h02"],
        installed="democurl\t0:7.76.1-26.el9\tnoarch\n",
        check_update="\ndemocurl.noarch   7.76.1-26.el9_3.2   lab\n",
        updateinfo=(FIXTURES / "dnf" / "updateinfo-list-with-cve.txt").read_text() + stale,
        changelogs={
            "democurl-7.76.1-26.el9_3.2": (FIXTURES / "changelog" / "curl.rpm-changelog").read_text()
        },
    )
    [update] = discovery.parse_host_doc("h02", doc).pending
    assert update.installed == "7.76.1-26.el9"
    by_cve: dict[str, set[str]] = {}
    for c in update.claims:
        by_cve.setdefault(c.cve_id, set()).add(c.source)
    assert by_cve == {
        "CVE-2023-38545": {"changelog", "dnf-updateinfo"},
        "CVE-2023-38546": {"changelog", "dnf-updateinfo"},
    }
    assert update.cves == ("CVE-2023-38545", "CVE-2023-38546")  # the union, as before
    assert all(c.says == "fixed" for c in update.claims)


def test_zypper_patch_claims_name_the_patch(docs):
    patches = (
        '<stream><update-status><update-list><update kind="patch" name="SUSE-2026-1">'
        '<issue-list><issue type="cve" id="CVE-2026-0001"/></issue-list>'
        '<source><solvable name="labdemo"/></source></update></update-list></update-status></stream>'
    )
    [update] = discovery.parse_host_doc("h03", dict(docs["h03"], list_patches_xml=patches)).pending
    assert {(c.cve_id, c.source) for c in update.claims} == {
        ("CVE-2019-14287", "changelog"),
        ("CVE-2026-0001", "zypper-patch:SUSE-2026-1"),
    }
    assert update.cves == ("CVE-2019-14287", "CVE-2026-0001")


def test_journal_round_trip_keeps_claims(docs):
    [d] = discovery.parse_run_data({"patchbrain_facts": {"h01": docs["h01"]}})
    doc = json.loads(json.dumps(dataclasses.asdict(d)))
    assert [PendingUpdate.from_dict(p) for p in doc["pending"]] == list(d.pending)
    # A discovery recorded before claims were kept still loads (no claims, its CVEs as they were).
    old = {k: v for k, v in doc["pending"][0].items() if k not in ("claims", "source_package")}
    assert PendingUpdate.from_dict(old) == dataclasses.replace(d.pending[0], claims=(), source_package=None)


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


def test_hostile_updateinfo_lines_claim_nothing(docs):
    evil = (
        "CVE-2023-38545 {{lookup('pipe','id')}} democurl-7.76.1-26.el9_3.2.noarch\n"
        f"CVE-2023-38546 {'A' * 5000} democurl-7.76.1-26.el9_3.2.noarch\n"
        "CVE-2023-38547 Important/Sec. democurl-7.76.1-26.el9_3;id.noarch\n"
        "CVE-2023-38548 Important/Sec. democurl-7.76.1-26.el9_3.2.noarch\n"
    )
    doc = dict(
        docs["h02"],
        installed="democurl\t0:7.76.1-26.el9\tnoarch\n",
        check_update="\ndemocurl.noarch   7.76.1-26.el9_3.2   lab\n",
        updateinfo=evil,
        changelogs={},
    )
    [update] = discovery.parse_host_doc("h02", doc).pending
    assert update.claims == (
        FixClaim("CVE-2023-38548", "fixed", "dnf-updateinfo", "Important/Sec. in democurl-7.76.1-26.el9_3.2"),
    )
