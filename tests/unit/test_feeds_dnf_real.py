"""Matching on real dnf and rpm output: build two RPMs, publish the newer one with an updateinfo advisory in a
local repository, install the older one in a private root, and feed `dnf updateinfo list --with-cve` and
`rpm -q --changelog` to the matcher. No root, no network: rpmbuild, createrepo_c, modifyrepo_c, rpm and dnf
from Debian (scripts/system-packages.txt). A recorded copy of the dnf output is tested where dnf is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from patchbrain.feeds.cvestore import CveStore
from patchbrain.feeds.matching import match_update, parse_dnf_updateinfo
from patchbrain.models import PendingUpdate
from patchbrain.store import Store

FIX = Path(__file__).parents[1] / "fixtures"
TOOLS = ("rpmbuild", "createrepo_c", "modifyrepo_c", "rpm", "dnf")
INSTALLED, CANDIDATE = "7.76.1-26.el9_3.1", "7.76.1-26.el9_3.2"


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode in (0, 100), f"{argv[0]} failed: {done.stderr[-500:]}"
    return done.stdout


@pytest.fixture(scope="module")
def real_outputs(tmp_path_factory) -> tuple[str, str]:
    if any(shutil.which(t) is None for t in TOOLS):
        pytest.skip("needs rpmbuild, createrepo_c, rpm and dnf (scripts/system-packages.txt)")
    w = tmp_path_factory.mktemp("dnf")
    spec = FIX / "dnf" / "democurl.spec"
    for release in (INSTALLED, CANDIDATE):
        release_only = release.split("-", 1)[1]
        defines = ["--define", f"_topdir {w / 'build'}", "--define", f"demo_release {release_only}"]
        _run("rpmbuild", "-bb", *defines, str(spec))
    rpms = w / "build" / "RPMS" / "noarch"
    (w / "repo").mkdir()
    shutil.copy(rpms / f"democurl-{CANDIDATE}.noarch.rpm", w / "repo")
    _run("createrepo_c", "-q", str(w / "repo"))
    _run("modifyrepo_c", str(FIX / "dnf" / "updateinfo.xml"), str(w / "repo" / "repodata"))
    root = w / "root"
    _run("rpm", "--root", str(root), "--initdb")
    _run("rpm", "--root", str(root), "-i", "--nodeps", str(rpms / f"democurl-{INSTALLED}.noarch.rpm"))
    repos = root / "etc" / "yum.repos.d"
    repos.mkdir(parents=True)
    (repos / "demo.repo").write_text(f"[demo]\nname=demo\nbaseurl=file://{w / 'repo'}\ngpgcheck=0\n")
    dnf = ["dnf", "--installroot", str(root), "--releasever", "9"]
    dnf += [f"--setopt=reposdir={repos}", f"--setopt=cachedir={w / 'cache'}"]
    updateinfo = _run(*dnf, "updateinfo", "list", "--with-cve")
    changelog = _run("rpm", "--root", str(root), "-q", "--changelog", "democurl")
    return updateinfo, changelog


def _check(updateinfo: str, changelog: str | None, tmp_path: Path) -> None:
    store = CveStore(Store(tmp_path / "pb.db"))
    store.load(FIX / "osv" / "ALSA-2023-5763.json")
    update = PendingUpdate("alma1", "democurl", INSTALLED, CANDIDATE, "dnf")
    match = match_update(
        update, store, distro="AlmaLinux", release="9", updateinfo=updateinfo, changelog=changelog
    )
    fix = {c.cve_id: c for c in match.cves}
    assert set(fix) >= {"CVE-2023-38545", "CVE-2023-38546"}
    sources = {c.source for c in fix["CVE-2023-38545"].claims}
    assert {"dnf-updateinfo", "dnf-updateinfo:ALSA-2023:5763"} <= sources
    assert not match.disputed_cves


def test_real_dnf_and_rpm_output(real_outputs, tmp_path):
    updateinfo, changelog = real_outputs
    ids = {line.id for line in parse_dnf_updateinfo(updateinfo)}
    assert ids == {"ALSA-2023:5763", "CVE-2023-38545", "CVE-2023-38546"}
    _check(updateinfo, changelog, tmp_path)
    assert changelog.startswith("* Tue Oct 17 2023 Example Packager")  # rpm's own changelog layout


def test_recorded_dnf_output(tmp_path):
    recorded = (FIX / "dnf" / "updateinfo-list-with-cve.txt").read_text()
    assert len(parse_dnf_updateinfo(recorded)) == 3  # the "Last metadata expiration check" line is skipped
    _check(recorded, None, tmp_path)
