"""Pre-scan over tiny real packages built with dpkg-deb (and rpmbuild) in a temporary directory."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from patchbrain.errors import BadInput
from patchbrain.posture import prescan

BENIGN_POSTINST = """#!/bin/sh
set -e
# nft and setenforce in a comment are not findings
if [ "$1" = "configure" ]; then
    adduser --system --group --no-create-home labdemo >/dev/null 2>&1 || true
    update-alternatives --install /usr/bin/labdemo labdemo /usr/lib/labdemo/labdemo 10
    echo "labdemo configured at $(date)" > /var/log/labdemo-install.log
    deb-systemd-helper enable labdemo.service >/dev/null || true
fi
exit 0
"""

SABOTAGE = {
    "nft-accept": ("nft insert rule inet filter input counter accept", {"firewall"}),
    "setenforce": ("setenforce 0 || true", {"selinux"}),
    "selinux-config": (
        "sed -i 's/^SELINUX=.*/SELINUX=permissive/' /etc/selinux/config",
        {"control-config"},
    ),
    "sebool": ("/usr/sbin/setsebool -P httpd_can_network_connect on", {"selinux"}),
    "delayed-flush": ("( sleep 600; nft flush ruleset ) >/dev/null 2>&1 &", {"firewall", "deferred"}),
    "at-job": ('echo "nft flush ruleset" | at now + 10 minutes', {"firewall", "deferred"}),
    "systemd-run": ("systemd-run --on-active=5m /usr/sbin/nft flush ruleset", {"firewall", "deferred"}),
    "iptables-output": ("iptables -P OUTPUT ACCEPT", {"firewall"}),
    "firewalld": ("firewall-cmd --zone=public --add-port=8080/tcp", {"firewall"}),
    "ufw": ("ufw allow 8080/tcp", {"firewall"}),
    "cron": ("echo '*/5 * * * * root nft flush ruleset' > /etc/cron.d/labdemo", {"firewall", "deferred"}),
    "nftables-conf": ("cat /usr/share/labdemo/open.nft >> /etc/nftables.conf", {"control-config"}),
}


def build_deb(tmp: Path, name: str, postinst: str, version: str = "1.0-1") -> Path:
    root = tmp / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: lab <lab@example.invalid>\n"
        "Description: test package\n"
    )
    script = root / "DEBIAN" / "postinst"
    script.write_text(postinst)
    script.chmod(0o755)
    out = tmp / f"{name}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(root), str(out)], check=True, capture_output=True
    )
    return out


def test_benign_package_has_no_findings(tmp_path):
    report = prescan.scan_file(build_deb(tmp_path, "labdemo", BENIGN_POSTINST))
    assert (report.package, report.version, report.scripts) == ("labdemo", "1.0-1", ("postinst",))
    assert report.findings == ()


@pytest.mark.parametrize("variant", sorted(SABOTAGE))
def test_every_sabotaged_scriptlet_is_reported(tmp_path, variant):
    line, categories = SABOTAGE[variant]
    body = BENIGN_POSTINST.replace("exit 0\n", f"{line}\nexit 0\n")
    report = prescan.scan_file(build_deb(tmp_path, "labdemo", body))
    found = {f.category for f in report.findings}
    assert categories <= found, report.findings
    assert all(f.script == "postinst" and f.line == 10 for f in report.findings)
    if "control-config" in categories:
        assert any(f.writes for f in report.findings)


def test_not_a_package_is_bad_input(tmp_path):
    junk = tmp_path / "junk.deb"
    junk.write_bytes(b"\x00\x01garbage")
    with pytest.raises(BadInput, match=r"junk\.deb"):
        prescan.scan_file(junk)
    with pytest.raises(BadInput, match=r"not a \.deb or \.rpm"):
        prescan.scan_file(Path(__file__))


@pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild is not installed")
def test_rpm_scriptlets_are_read(tmp_path):
    spec = tmp_path / "labdemo.spec"
    spec.write_text(
        "Name: labdemo\nVersion: 1.0\nRelease: 2\nSummary: t\nLicense: MIT\nBuildArch: noarch\n\n"
        "%description\nt\n\n%files\n\n"
        "%post\nsystemd-run --on-active=60 /usr/sbin/setenforce 0\n\n"
        "%postun\necho removed\n"
    )
    subprocess.run(
        ["rpmbuild", "-bb", "--define", f"_topdir {tmp_path / 'top'}", str(spec)],
        check=True,
        capture_output=True,
    )
    (rpm,) = (tmp_path / "top" / "RPMS" / "noarch").glob("*.rpm")
    report = prescan.scan_file(rpm)
    assert (report.package, report.version) == ("labdemo", "1.0-2")
    assert {f.category for f in report.findings} == {"selinux", "deferred"}
    assert {f.script for f in report.findings} == {"postinstall"}
