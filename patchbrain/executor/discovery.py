"""Turn the `patch_facts` role's raw per-host documents into validated discovery results.

The role returns raw tool output (apt-get -s, dpkg-query, dnf check-update, zypper -x, changelogs) via
set_stats; everything here treats it as untrusted text from the host. A package name or version that does
not match the Debian/RPM grammar is dropped and reported as a problem, never passed on.
"""

from __future__ import annotations

import dataclasses
import re

# expat resolves no external entities; inputs are size-capped before parsing
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any, cast

from patchbrain import pkgspec
from patchbrain.feeds.matching import (
    UpdateinfoLine,
    changelog_cves,
    parse_changelog_source,
    parse_dnf_updateinfo,
    updateinfo_claims,
)
from patchbrain.inventory import HOST_NAME
from patchbrain.models import FixClaim, PendingUpdate, PkgManager

STATS_KEY = "patchbrain_facts"
_MAX_XML = 5_000_000
_APT_INST = re.compile(r"^Inst (\S+) \[(\S+)\] \((\S+) ")
_DNF_LINE = re.compile(r"^(\S+)\.([A-Za-z0-9_]+)\s+(\S+)\s+(\S+)\s*$")


@dataclasses.dataclass(frozen=True, slots=True)
class HostDiscovery:
    """What discovery found on one host."""

    host: str
    pkg_mgr: PkgManager
    os_family: str
    distribution: str
    release: str
    installed: Mapping[str, str]
    pending: tuple[PendingUpdate, ...]
    reboot_required: bool | None
    problems: tuple[str, ...] = ()


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    return value if isinstance(value, str) else ""


def parse_dpkg_installed(text: str) -> dict[str, str]:
    """Installed packages from `dpkg-query -W` (package, version, arch, status abbreviation)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[-1].strip()[1:2] == "i":
            name, version = parts[0], parts[1]
            if pkgspec.is_name(name, "deb") and pkgspec.is_version(version, "deb"):
                out[name] = version
    return out


def parse_rpm_installed(text: str) -> dict[str, str]:
    """`rpm -qa --qf '%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\t%{ARCH}\\n'` (epoch 0 dropped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            name, evr = parts[0], parts[1].removeprefix("0:")
            if pkgspec.is_name(name, "rpm") and pkgspec.is_version(evr, "rpm"):
                out[name] = evr
    return out


def parse_apt_simulate(text: str) -> list[tuple[str, str, str]]:
    """(name, installed, candidate) for each upgrade in `apt-get -s dist-upgrade` output."""
    return [(m.group(1), m.group(2), m.group(3)) for m in map(_APT_INST.match, text.splitlines()) if m]


def parse_dnf_check_update(text: str) -> list[tuple[str, str, str]]:
    """(name, arch, candidate) for each line of `dnf check-update` (stops at "Obsoleting Packages")."""
    out = []
    for line in text.splitlines():
        if line.strip().lower().startswith("obsoleting"):
            break
        m = _DNF_LINE.match(line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3).removeprefix("0:")))
    return out


def parse_zypper_updates(xml_text: str) -> list[tuple[str, str, str]]:
    """(name, installed, candidate) for each package update in `zypper -x list-updates`."""
    if not xml_text.strip() or len(xml_text) > _MAX_XML:
        return []
    try:
        root = ET.fromstring(xml_text)  # noqa: S314 - see the import note
    except ET.ParseError:
        return []
    out = []
    for update in root.iter("update"):
        if update.get("kind", "package") != "package":
            continue
        name, edition, old = update.get("name"), update.get("edition"), update.get("edition-old")
        if name and edition:
            out.append((name, old or "", edition))
    return out


_PATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")
_UPDATEINFO_KIND = re.compile(r"^[A-Za-z][A-Za-z/.-]{0,39}$")  # "Important/Sec.", "bugfix", ...


def parse_zypper_patch_claims(xml_text: str) -> dict[str, list[FixClaim]]:
    """{package name: claims} from the issue lists of patches in `zypper -x list-patches` (source
    "zypper-patch:<patch name>")."""
    if not xml_text.strip() or len(xml_text) > _MAX_XML:
        return {}
    try:
        root = ET.fromstring(xml_text)  # noqa: S314 - see the import note
    except ET.ParseError:
        return {}
    out: dict[str, list[FixClaim]] = {}
    for update in root.iter("update"):
        if update.get("kind") != "patch":
            continue
        patch = update.get("name", "")
        source = f"zypper-patch:{patch}" if _PATCH_ID.match(patch) else "zypper-patch"
        cves = {i.get("id", "") for i in update.iter("issue") if i.get("type") == "cve"}
        cves = {c if c.startswith("CVE-") else f"CVE-{c}" for c in cves if c}
        for src in update.iter("solvable"):
            name = src.get("name")
            if name:
                claims = out.setdefault(name, [])
                for cve in sorted(c for c in cves if pkgspec.is_cve(c)):
                    claims.append(FixClaim(cve, "fixed", source, "zypper list-patches"))
    return out


def parse_zypper_patch_cves(xml_text: str) -> dict[str, set[str]]:
    """{package name: CVE IDs} from the issue lists of patches in `zypper -x list-patches`."""
    return {n: {c.cve_id for c in cs} for n, cs in parse_zypper_patch_claims(xml_text).items()}


def _changelog_for(doc: Mapping[str, Any], name: str, candidate: str) -> str | None:
    """The changelog the role read for this update (keyed name=version, name-version or name)."""
    logs = doc.get("changelogs")
    if not isinstance(logs, Mapping):
        return None
    for key in (f"{name}={candidate}", f"{name}-{candidate}", name):
        text = logs.get(key)
        if isinstance(text, str) and text.strip():
            return text
    return None


def parse_host_doc(host: str, doc: Mapping[str, Any]) -> HostDiscovery:
    """Validate and parse one host's `patch_facts` document."""
    problems: list[str] = []
    pkg_mgr = doc.get("pkg_mgr")
    if pkg_mgr not in ("apt", "dnf", "zypper"):
        raise ValueError(f"{host}: unknown package manager {str(pkg_mgr)[:40]!r}")
    family = pkgspec.family_of(str(pkg_mgr))
    installed = (parse_dpkg_installed if family == "deb" else parse_rpm_installed)(_text(doc, "installed"))

    raw: list[tuple[str, str, str]]
    updateinfo: list[UpdateinfoLine] = []
    patch_claims: dict[str, list[FixClaim]] = {}
    if pkg_mgr == "apt":
        raw = parse_apt_simulate(_text(doc, "simulate"))
    elif pkg_mgr == "dnf":
        raw = [
            (n, installed.get(n, ""), c) for n, _arch, c in parse_dnf_check_update(_text(doc, "check_update"))
        ]
        updateinfo = [
            line
            for line in parse_dnf_updateinfo(_text(doc, "updateinfo"))
            if pkgspec.is_cve(line.id)
            and _UPDATEINFO_KIND.match(line.kind)
            and pkgspec.is_version(line.evr, "rpm")
        ]
    else:
        raw = parse_zypper_updates(_text(doc, "list_updates_xml"))
        patch_claims = parse_zypper_patch_claims(_text(doc, "list_patches_xml"))

    pending: list[PendingUpdate] = []
    for name, old, new in raw:
        old = old.removeprefix("0:") if family == "rpm" else old
        if not pkgspec.is_name(name, family) or not pkgspec.is_version(new, family):
            problems.append(f"dropped an update with an invalid name or version: {name[:60]!r} {new[:60]!r}")
            continue
        installed_version = old if old and pkgspec.is_version(old, family) else installed.get(name)
        claims: list[FixClaim] = []
        source_package = None
        text = _changelog_for(doc, name, new)
        if text is None:
            problems.append(f"{name}: no changelog read from the candidate; CVEs from advisories only")
        else:
            for cve, versions in changelog_cves(text, family, installed_version, new).items():
                if pkgspec.is_cve(cve):
                    claims.append(
                        FixClaim(cve, "fixed", "changelog", f"changelog entry {', '.join(versions)}")
                    )
            if family == "deb":
                named = parse_changelog_source(text)
                source_package = named if named and pkgspec.is_name(named, "deb") else None
        claims.extend(
            updateinfo_claims(updateinfo, None, package=name, installed=installed_version, candidate=new)
        )
        claims.extend(patch_claims.get(name, ()))
        claims = sorted(dict.fromkeys(claims), key=lambda c: (c.cve_id, c.source))
        pending.append(
            PendingUpdate(
                host=host,
                package=name,
                installed=installed_version,
                candidate=new,
                pkg_mgr=cast(PkgManager, pkg_mgr),
                cves=tuple(sorted({c.cve_id for c in claims})),
                source_package=source_package,
                claims=tuple(claims),
            )
        )
    reboot = doc.get("reboot_required")
    return HostDiscovery(
        host=host,
        pkg_mgr=cast(PkgManager, pkg_mgr),
        os_family=_text(doc, "os_family")[:64],
        distribution=_text(doc, "distribution")[:64],
        release=_text(doc, "distribution_version")[:64],
        installed=installed,
        pending=tuple(sorted(pending, key=lambda p: p.package)),
        reboot_required=reboot if isinstance(reboot, bool) else None,
        problems=tuple(problems),
    )


def parse_run_data(data: Mapping[str, Any]) -> list[HostDiscovery]:
    """Every host document under the `patchbrain_facts` set_stats key of a discover run."""
    docs = data.get(STATS_KEY)
    if not isinstance(docs, Mapping):
        return []
    out = []
    for host, doc in sorted(docs.items()):
        if isinstance(host, str) and HOST_NAME.match(host) and isinstance(doc, Mapping):
            out.append(parse_host_doc(host, doc))
    return out
