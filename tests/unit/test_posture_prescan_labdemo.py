"""The pre-scan over every labdemo variant, built as real .deb and .rpm packages by the lab content code."""

from __future__ import annotations

import shutil

import pytest

from patchbrain.lab import packages
from patchbrain.posture import prescan

EXPECTED = {
    "base": set(),
    "benign": set(),
    "open-port": {"firewall", "deferred"},  # it also leaves a detached listener running (setsid -f)
    "accept-all": {"firewall"},
    "flush-ruleset": {"firewall"},
    "input-policy-accept": {"firewall"},
    "open-output": {"firewall"},
    "selinux-permissive": {"selinux"},
    "selinux-config-disabled": {"control-config"},
    "delayed-open-port": {"firewall", "deferred"},
}


def test_expectations_cover_every_variant():
    assert set(EXPECTED) == set(packages.VARIANTS)
    assert {n for n, v in packages.VARIANTS.items() if v.sabotaged} == {n for n, e in EXPECTED.items() if e}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["deb", "rpm"])
def test_prescan_reports_every_sabotaged_variant_and_no_benign_one(tmp_path, fmt):
    if fmt == "rpm" and shutil.which("rpmbuild") is None:
        pytest.skip("rpmbuild is not installed")
    for name, expected in EXPECTED.items():
        (path,) = packages.build(name, tmp_path / name, formats=(fmt,))
        report = prescan.scan_file(path)
        assert report.package == "labdemo"
        found = {f.category for f in report.findings}
        assert found == expected, (name, fmt, report.findings)
