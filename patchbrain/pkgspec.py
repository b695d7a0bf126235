"""Package names and versions as Debian and RPM define them: validate before anything reaches a host.

Names and versions come from hosts (discovery output) and from plan files, so they are untrusted. Only
strings matching the package managers' own grammars pass; every pattern starts with an alphanumeric
character, so no value can be read as a command-line option, and none admits whitespace, quotes, braces,
`$`, `;`, `|` or `%`, so none can carry Jinja or shell syntax.
"""

from __future__ import annotations

import re
from typing import Literal

from patchbrain.errors import BadInput

Family = Literal["deb", "rpm"]

# Debian Policy 5.6.1 (names) and 5.6.12 (versions: [epoch:]upstream[-revision]).
DEB_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]{1,127}$")
DEB_VERSION = re.compile(r"^(?:[0-9]{1,9}:)?[0-9][A-Za-z0-9.+~]*(?:-[A-Za-z0-9.+~]+)*$")
# RPM: names of letters, digits and ._+- ; [epoch:]version[-release], neither part holding a hyphen.
RPM_NAME = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,127}$")
RPM_VERSION = re.compile(r"^(?:[0-9]{1,9}:)?[A-Za-z0-9][A-Za-z0-9._+~^]*(?:-[A-Za-z0-9][A-Za-z0-9._+~^]*)?$")
ARCH = re.compile(r"^[A-Za-z0-9_]{1,32}$")
CVE_ID = re.compile(r"^CVE-[0-9]{4}-[0-9]{4,9}$")
_MAX_VERSION = 256

PKG_FAMILY: dict[str, Family] = {"apt": "deb", "dnf": "rpm", "zypper": "rpm"}


def family_of(pkg_mgr: str) -> Family:
    """The package format a package manager installs (apt: deb; dnf, zypper: rpm)."""
    try:
        return PKG_FAMILY[pkg_mgr]
    except KeyError as exc:
        raise BadInput(f"unknown package manager {pkg_mgr!r}", field="pkg_mgr") from exc


def is_name(value: object, family: Family) -> bool:
    """True if `value` is a valid package name for `family`."""
    pattern = DEB_NAME if family == "deb" else RPM_NAME
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def is_version(value: object, family: Family) -> bool:
    """True if `value` is a valid full version (with epoch/revision) for `family`."""
    pattern = DEB_VERSION if family == "deb" else RPM_VERSION
    return isinstance(value, str) and len(value) <= _MAX_VERSION and pattern.fullmatch(value) is not None


def check_name(value: object, family: Family, *, source: str | None = None, field: str = "name") -> str:
    """Return `value` if it is a valid package name, else raise BadInput naming the source and field."""
    if not is_name(value, family):
        raise BadInput(f"not a valid {family} package name: {value!r}", source=source, field=field)
    assert isinstance(value, str)
    return value


def check_version(value: object, family: Family, *, source: str | None = None, field: str = "version") -> str:
    """Return `value` if it is a valid package version, else raise BadInput naming the source and field."""
    if not is_version(value, family):
        raise BadInput(f"not a valid {family} package version: {value!r}", source=source, field=field)
    assert isinstance(value, str)
    return value


def is_cve(value: object) -> bool:
    """True if `value` is a CVE identifier (CVE-YYYY-NNNN...)."""
    return isinstance(value, str) and CVE_ID.fullmatch(value) is not None
