"""labdemo packages: real .deb and .rpm files built with dpkg-deb and rpmbuild, inspected with the tools."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patchbrain.errors import BadInput
from patchbrain.lab import packages

pytestmark = pytest.mark.skipif(
    not (shutil.which("dpkg-deb") and shutil.which("rpmbuild")), reason="needs dpkg-deb and rpmbuild"
)

# What each sabotaged maintainer script must contain: the command that weakens the control.
WEAKENING = {
    "open-port": "nft insert rule inet filter input tcp dport 4444 counter accept",
    "accept-all": "nft insert rule inet filter input counter accept",
    "flush-ruleset": "nft flush ruleset",
    "input-policy-accept": "nft 'chain inet filter input { policy accept; }'",
    "open-output": "nft 'chain inet filter output { policy accept; }'",
    "selinux-permissive": "setenforce 0",
    "selinux-config-disabled": "s/^SELINUX=.*/SELINUX=disabled/",
    "delayed-open-port": "sleep 20; nft insert rule inet filter input tcp dport 4446 counter accept",
}


def _q(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("pkgs")
    return packages.build_set(out)


def test_every_variant_is_built_in_both_formats(built):
    assert set(built) == set(packages.VARIANTS) | {packages.PROVIDES_PACKAGE}
    for name in packages.VARIANTS:
        deb, rpm = built[name]
        version = packages.VARIANTS[name].default_version
        assert deb.name == f"labdemo_{version}_all.deb"
        assert rpm.name == f"labdemo-{version}-1.noarch.rpm"


def test_the_sabotaged_set_covers_every_weakening_the_issue_lists():
    assert set(packages.SABOTAGED) == set(WEAKENING)
    assert not packages.VARIANTS["base"].sabotaged
    assert not packages.VARIANTS["benign"].sabotaged


@pytest.mark.parametrize("name", sorted(packages.VARIANTS))
def test_deb_control_postinst_and_changelog(built, name):
    deb = built[name][0]
    v = packages.VARIANTS[name]
    assert _q("dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture").split() == [
        "Package:",
        "labdemo",
        "Version:",
        v.default_version,
        "Architecture:",
        "all",
    ]
    postinst = _q("dpkg-deb", "-I", str(deb), "postinst")
    assert postinst.startswith("#!/bin/sh\n")
    if name in WEAKENING:
        assert WEAKENING[name] in postinst
    else:
        assert "nft" not in postinst and "setenforce" not in postinst and "selinux" not in postinst
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("./usr/share/doc/labdemo/changelog.gz")
        assert member is not None
        text = gzip.decompress(member.read()).decode()
        owners = {(m.uname, m.gname) for m in tar.getmembers()}
    assert owners == {("root", "root")}
    assert text.startswith(f"labdemo ({v.default_version}) bookworm-security; urgency=")
    for cve in v.cves:
        assert cve in text
    # dpkg itself must accept the changelog's format
    parsed = subprocess.run(
        ["dpkg-parsechangelog", "-l-", "-SVersion"], input=text, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert parsed == v.default_version


@pytest.mark.parametrize("name", sorted(packages.VARIANTS))
def test_rpm_header_scripts_and_changelog(built, name):
    rpm = built[name][1]
    v = packages.VARIANTS[name]
    qf = _q("rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}", str(rpm))
    assert qf == f"labdemo {v.default_version} 1 noarch"
    scripts = _q("rpm", "-qp", "--scripts", str(rpm))
    assert "postinstall scriptlet (using /bin/sh)" in scripts
    if name in WEAKENING:
        assert WEAKENING[name] in scripts
    log = _q("rpm", "-qp", "--changelog", str(rpm))
    for cve in v.cves:
        assert cve in log
    # Only what the virtual-provides package declares may be required, or dnf refuses on the Debian base.
    requires = {
        line.split()[0]
        for line in _q("rpm", "-qp", "--requires", str(rpm)).splitlines()
        if not line.startswith("rpmlib(")
    }
    assert requires <= set(packages.BASE_PROVIDES)


def test_history_is_kept_below_the_built_version(tmp_path):
    entries = packages.changelog(packages.variant("accept-all"), "1.7")
    assert [e.version for e in entries] == ["1.7", "1.1", "1.0"]
    assert [e.version for e in packages.changelog(packages.variant("benign"), "1.1")] == ["1.1", "1.0"]
    deb = packages.build_deb("accept-all", tmp_path, version="1.7")
    assert _q("dpkg-deb", "-f", str(deb), "Version").strip() == "1.7"


def test_provides_rpm_declares_the_debian_base(built):
    rpm = built[packages.PROVIDES_PACKAGE][0]
    provides = _q("rpm", "-qp", "--provides", str(rpm))
    assert "/bin/sh" in provides.split()
    assert "/usr/bin/python3" in provides.split()
    assert _q("rpm", "-qpl", str(rpm)).strip() in ("", "(contains no files)")


def test_builds_are_reproducible(tmp_path):
    a = packages.build("open-port", tmp_path / "a")
    b = packages.build("open-port", tmp_path / "b")
    assert a[0].read_bytes() == b[0].read_bytes()
    assert _q("rpm", "-qp", "--qf", "%{SHA256HEADER}", str(a[1])) == _q(
        "rpm", "-qp", "--qf", "%{SHA256HEADER}", str(b[1])
    )


def test_port_and_delay_overrides_reach_the_script():
    v = packages.variant("delayed-open-port", port=5005, delay=3)
    assert "sleep 3; nft insert rule inet filter input tcp dport 5005" in v.script()
    with pytest.raises(BadInput):
        packages.variant("accept-all", port=5005)
    with pytest.raises(BadInput):
        packages.variant("open-port", port=70000)
    with pytest.raises(BadInput):
        packages.variant("no-such-variant")


@pytest.mark.parametrize("bad", ["1", "1.2-1", "1.2+sab", "1.2; rm -rf /", "", "01.a"])
def test_bad_versions_are_refused(bad):
    with pytest.raises(BadInput):
        packages.check_version(bad)


def test_next_version_is_above_everything_published():
    assert packages.next_version([]) == "1.2"
    assert packages.next_version(["1.0", "1.1"]) == "1.2"
    assert packages.next_version(["1.0", "1.1", "1.2", "1.9"]) == "1.10"


@settings(max_examples=25)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 30)), min_size=1, max_size=4))
def test_next_version_sorts_above_for_dpkg(pairs):
    published = [f"{a}.{b}" for a, b in pairs]
    nxt = packages.next_version(published)
    for old in published:
        subprocess.run(["dpkg", "--compare-versions", nxt, "gt", old], check=True)
