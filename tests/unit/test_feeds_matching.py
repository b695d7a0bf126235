"""Update -> CVE matching: real Debian changelogs, OSV ranges under real version ordering, dnf updateinfo."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchbrain.errors import BadInput
from patchbrain.feeds.cvestore import CveStore
from patchbrain.feeds.matching import (
    changelog_cves,
    match_update,
    osv_affected,
    osv_system,
    parse_changelog,
    parse_dnf_updateinfo,
    split_nevra,
    with_osv_claims,
)
from patchbrain.models import FixClaim, PendingUpdate
from patchbrain.store import Store

FIX = Path(__file__).parents[1] / "fixtures"
CURL_DEB = (FIX / "changelog" / "curl.changelog.Debian").read_text(encoding="utf-8")
OPENSSH_DEB = (FIX / "changelog" / "openssh.changelog.Debian").read_text(encoding="utf-8")
CURL_RPM = (FIX / "changelog" / "curl.rpm-changelog").read_text(encoding="utf-8")

UPDATEINFO = """\
Last metadata expiration check: 0:12:03 ago on Thu 26 Nov 2026 10:00:00 AM UTC.
CVE-2023-38545 Important/Sec. curl-7.76.1-26.el9_3.2.x86_64
CVE-2023-38546 Low/Sec.       curl-7.76.1-26.el9_3.2.x86_64
CVE-2023-38545 Important/Sec. libcurl-7.76.1-26.el9_3.2.x86_64
CVE-2022-99999 Moderate/Sec.  curl-7.76.1-20.el9.x86_64
ALSA-2023:5763 Important/Sec. curl-7.76.1-26.el9_3.2.x86_64
"""


@pytest.fixture
def cves(tmp_path):
    store = CveStore(Store(tmp_path / "pb.db"))
    store.load(FIX / "osv")
    return store


def test_real_debian_changelog_between_two_versions():
    found = changelog_cves(CURL_DEB, "deb", "7.88.1-10+deb12u3", "7.88.1-10+deb12u5")
    assert set(found) == {"CVE-2023-38545", "CVE-2023-38546", "CVE-2023-46218", "CVE-2023-46219"}
    assert found["CVE-2023-38545"] == ["7.88.1-10+deb12u4"]
    # The lower bound is exclusive, the upper inclusive.
    assert "CVE-2023-38545" not in changelog_cves(CURL_DEB, "deb", "7.88.1-10+deb12u4", "7.88.1-10+deb12u14")
    everything = changelog_cves(CURL_DEB, "deb", None, "7.88.1-10+deb12u14")
    assert "CVE-2023-28319" in everything and "CVE-2025-0167" in everything


def test_debian_changelog_with_epochs():
    entries = parse_changelog(OPENSSH_DEB, "deb")
    assert entries[0].version == "1:9.2p1-2+deb12u10"
    found = changelog_cves(OPENSSH_DEB, "deb", "1:9.2p1-2+deb12u1", "1:9.2p1-2+deb12u3")
    assert set(found) == {"CVE-2023-28531", "CVE-2023-48795", "CVE-2023-51384", "CVE-2023-51385"}
    assert found["CVE-2023-48795"] == ["1:9.2p1-2+deb12u2"]
    assert "CVE-2023-38408" not in found  # fixed in deb12u1, already installed


def test_rpm_changelog_versions_and_borrowed_epoch():
    entries = parse_changelog(CURL_RPM, "rpm")
    assert [e.version for e in entries] == ["7.76.1-26.el9_3.2", "7.76.1-26", "7.76.1-25", None, "7.76.1-23"]
    found = changelog_cves(CURL_RPM, "rpm", "7.76.1-25", "7.76.1-26.el9_3.2")
    assert set(found) == {"CVE-2023-38545", "CVE-2023-38546", "CVE-2023-28322", "CVE-2023-28320"}
    assert "CVE-2099-0001" not in changelog_cves(CURL_RPM, "rpm", None, "9.9-9")  # no version: no claim
    # Host versions carry an epoch the changelog omits.
    assert "CVE-2023-38545" in changelog_cves(CURL_RPM, "rpm", "1:7.76.1-26", "1:7.76.1-26.el9_3.2")


def test_osv_range_semantics_with_distro_ordering():
    fixed = [[("introduced", "0"), ("fixed", "7.88.1-10+deb12u4")]]
    assert osv_affected("dpkg", "7.88.1-10+deb12u3", fixed)
    assert not osv_affected("dpkg", "7.88.1-10+deb12u4", fixed)
    assert osv_affected("dpkg", "7.88.1-10", fixed)
    assert not osv_affected("dpkg", "7.88.1-10+deb12u10", fixed)  # string order would say otherwise
    last = [[("introduced", "1:3.0.1-0"), ("last_affected", "1:3.0.7-24.el9")]]
    assert osv_affected("rpm", "1:3.0.7-24.el9", last) and not osv_affected("rpm", "1:3.0.7-25.el9", last)
    assert not osv_affected("rpm", "1:3.0.0-1", last)


def test_debian_update_claims_from_changelog_and_osv_agree(cves):
    update = PendingUpdate("web1", "libcurl4", "7.88.1-10+deb12u3", "7.88.1-10+deb12u5", "apt")
    match = match_update(
        update, cves, distro="Debian", release="12", source_package="curl", changelog=CURL_DEB
    )
    fix = {c.cve_id: c for c in match.cves}["CVE-2023-38545"]
    assert {c.source for c in fix.claims} == {"changelog", "osv:DSA-5523-1"}
    assert fix.fixed and not fix.disputed
    assert "Debian:12" in next(c.detail for c in fix.claims if c.source.startswith("osv"))
    assert "CVE-2023-46218" in match.fixed_cves  # changelog only
    assert match.disputed_cves == ()


def test_conflicting_claims_are_kept_and_shown(cves):
    # The candidate is below the fixed version OSV names, yet a (forged or mistaken) changelog claims the fix.
    forged = (
        "curl (7.88.1-10+deb12u3) bookworm; urgency=high\n\n  * Fix CVE-2023-38545.\n\n -- x <x@y>  date\n"
    )
    update = PendingUpdate("web1", "curl", "7.88.1-10+deb12u2", "7.88.1-10+deb12u3", "apt")
    match = match_update(update, cves, distro="Debian", release="12", changelog=forged)
    fix = {c.cve_id: c for c in match.cves}["CVE-2023-38545"]
    assert fix.disputed
    says = {c.source: c.says for c in fix.claims}
    assert says == {"changelog": "fixed", "osv:DSA-5523-1": "not-fixed"}
    assert "CVE-2023-38545" in match.disputed_cves


def test_other_release_advisories_do_not_apply(cves):
    update = PendingUpdate("old", "curl", "7.74.0-1.3+deb11u9", "7.74.0-1.3+deb11u10", "apt")
    on11 = match_update(update, cves, distro="Debian", release="11")
    assert on11.fixed_cves == ("CVE-2023-38545", "CVE-2023-38546")
    assert all("Debian:11" in c.detail for fix in on11.cves for c in fix.claims)
    # On a host that says it runs Debian 12, only the Debian:12 entry applies (and says: still affected).
    on12 = match_update(update, cves, distro="Debian", release="12")
    assert on12.fixed_cves == ()
    assert all("Debian:12" in c.detail and c.says == "not-fixed" for fix in on12.cves for c in fix.claims)


def test_dnf_updateinfo_and_alma_osv(cves):
    lines = parse_dnf_updateinfo(UPDATEINFO)
    assert len(lines) == 5 and lines[0].name == "curl" and lines[0].evr == "7.76.1-26.el9_3.2"
    update = PendingUpdate("db1", "curl", "7.76.1-26.el9", "7.76.1-26.el9_3.2", "dnf")
    match = match_update(update, cves, distro="AlmaLinux", release="9", updateinfo=UPDATEINFO)
    fix = {c.cve_id: c for c in match.cves}
    sources = {c.source for c in fix["CVE-2023-38545"].claims}
    assert sources == {"dnf-updateinfo", "dnf-updateinfo:ALSA-2023:5763", "osv:ALSA-2023:5763"}
    assert "CVE-2022-99999" not in fix  # an older advisory, already installed
    assert match.ordering == "rpm"


def test_discovery_cves_count_when_no_changelog():
    update = PendingUpdate(
        "h", "tar", "1.34+dfsg-1.2", "1.34+dfsg-1.2+deb12u1", "apt", cves=("CVE-2022-48303",)
    )
    match = match_update(update)
    assert match.cves[0].claims[0].source == "discovery"


def test_bad_inputs():
    with pytest.raises(BadInput):
        split_nevra("nonsense")
    with pytest.raises(BadInput):
        parse_changelog("x", "ebuild")  # type: ignore[arg-type]
    assert split_nevra("openssl-libs-1:3.0.7-24.el9.x86_64") == ("openssl-libs", "1:3.0.7-24.el9", "x86_64")


_changelog_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=200) | st.builds(
    lambda head, body: head + body,
    st.sampled_from(["curl (", "* Mon Jan 01 2024 A <a@b> - ", "openssh (1:", ""]),
    st.text(alphabet="0123456789.:-+~^abc() CVE-\n *", max_size=120),
)
_version = st.text(alphabet="0123456789.:-+~^abc", min_size=1, max_size=12)


@given(text=_changelog_text, fmt=st.sampled_from(["deb", "rpm"]), installed=_version, candidate=_version)
def test_fuzz_changelog_extraction_never_crashes(text, fmt, installed, candidate):
    try:
        found = changelog_cves(CURL_DEB[:400] + text, fmt, installed, candidate)
    except BadInput:
        return
    assert all(k.startswith("CVE-") for k in found)


@given(text=st.text(max_size=300))
def test_fuzz_updateinfo_parsing_never_crashes(text):
    for line in parse_dnf_updateinfo(UPDATEINFO + text):
        assert line.name and line.evr


def test_osv_system_from_what_discovery_read():
    assert osv_system("Debian", "12.15", "apt") == ("Debian", "12")
    assert osv_system("Ubuntu", "22.04", "apt") == ("Ubuntu", "22.04")
    assert osv_system("AlmaLinux", "9.3", "dnf") == ("AlmaLinux", "9")
    assert osv_system("Rocky", "9.4", "dnf") == ("Rocky Linux", "9")
    # The lab's dnf and zypper hosts run on Debian: Debian's advisories and dpkg ordering do not apply.
    assert osv_system("Debian", "12.15", "dnf") is None
    assert osv_system("Gentoo", "2.15", "apt") is None


def test_discovery_claims_and_osv_claims_joined(cves):
    changelog = FixClaim("CVE-2023-38545", "fixed", "changelog", "changelog entry 7.88.1-10+deb12u3")
    forged = PendingUpdate(
        "web1", "libcurl4", "7.88.1-10+deb12u2", "7.88.1-10+deb12u3", "apt",
        cves=("CVE-2023-38545",), source_package="curl", claims=(changelog,),
    )  # fmt: skip
    real = dataclasses.replace(forged, host="web2", candidate="7.88.1-10+deb12u4")
    lab = dataclasses.replace(forged, host="lab1", pkg_mgr="dnf")
    systems = {"web1": ("Debian", "12.15"), "web2": ("Debian", "12.15"), "lab1": ("Debian", "12.15")}
    joined = {u.host: u for u in with_osv_claims([forged, real, lab], cves, systems)}
    says = {(c.cve_id, c.source): c.says for c in joined["web1"].claims}
    # OSV says deb12u3 is still affected: the changelog's claim is kept beside it, not merged away. A CVE
    # only claimed "not fixed" (38546: no source says this update fixes it) is not listed.
    assert says == {
        ("CVE-2023-38545", "changelog"): "fixed",
        ("CVE-2023-38545", "osv:DSA-5523-1"): "not-fixed",
    }
    says = {(c.cve_id, c.source): c.says for c in joined["web2"].claims}
    assert says[("CVE-2023-38546", "osv:DSA-5523-1")] == "fixed"  # the changelog was silent on it
    assert says[("CVE-2023-38545", "osv:DSA-5523-1")] == "fixed"
    # Ranking's input is untouched; a host OSV does not apply to keeps discovery's claims only.
    assert joined["web1"].cves == joined["web2"].cves == ("CVE-2023-38545",)
    assert joined["lab1"] == lab
    empty = CveStore(Store(cves.store.path.parent / "empty.db"))
    assert with_osv_claims([forged], empty, systems) == [forged]
