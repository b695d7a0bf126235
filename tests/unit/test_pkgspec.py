"""Package names and versions: only the Debian/RPM grammars pass, never shell or Jinja syntax."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchbrain import pkgspec
from patchbrain.errors import BadInput

HOSTILE = [
    "{{ lookup('pipe','id') }}",
    "; touch /tmp/pwned",
    "labdemo; touch /tmp/pwned",
    "$(id)",
    "`id`",
    "-oDebug::Foo=1",
    "--allow-unauthenticated",
    "labdemo\nInst evil",
    "a b",
    "{% raw %}",
    "",
    "labdemo|id",
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("family", ["deb", "rpm"])
def test_hostile_strings_are_neither_names_nor_versions(value, family):
    assert not pkgspec.is_name(value, family)
    assert not pkgspec.is_version(value, family)
    with pytest.raises(BadInput, match="field 'version'"):
        pkgspec.check_version(value, family, source="plan.yaml")


@pytest.mark.parametrize("name", ["labdemo", "libc6", "g++", "libstdc++6", "python3.11", "lib64-z1"])
def test_debian_names(name):
    assert pkgspec.check_name(name, "deb") == name


@pytest.mark.parametrize("name", ["Labdemo", "a", "-x", "labdemo_1"])
def test_bad_debian_names(name):
    assert not pkgspec.is_name(name, "deb")


@pytest.mark.parametrize(
    "version", ["1.1", "1:2.36-9+deb12u4", "2.0~rc1-1", "1.0+dfsg-2~bpo12+1", "0.9.8g-15+lenny5", "7"]
)
def test_debian_versions(version):
    assert pkgspec.is_version(version, "deb")


@pytest.mark.parametrize("version", ["a1.0", "1.0-", "1:", ":1.0", "1.0--1", "1.0-1:2"])
def test_bad_debian_versions(version):
    assert not pkgspec.is_version(version, "deb")


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("labdemo", "1.1-1"),
        ("kernel-core", "5.14.0-362.8.1.el9_3"),
        ("NetworkManager", "1:1.42.2-8.el9"),
        ("python3.11-libs", "3.11.5-1.el9_3"),
        ("git", "2.43.0^20240101git1234-1"),
    ],
)
def test_rpm_names_and_versions(name, version):
    assert pkgspec.is_name(name, "rpm") and pkgspec.is_version(version, "rpm")


def test_families_and_cves():
    assert pkgspec.family_of("apt") == "deb" and pkgspec.family_of("zypper") == "rpm"
    with pytest.raises(BadInput):
        pkgspec.family_of("pip")
    assert pkgspec.is_cve("CVE-2026-12345") and not pkgspec.is_cve("CVE-2026-1; id")


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40))
def test_nothing_with_template_or_shell_metacharacters_passes(value):
    for family in ("deb", "rpm"):
        if pkgspec.is_name(value, family) or pkgspec.is_version(value, family):
            assert not set(value) & set(" \t\n{}%$;|&`'\"\\<>()*?[]!#=,/")
            assert not value.startswith("-")
