"""Tie each pending update (host, package, installed -> candidate) to the CVEs it fixes, and say who says so.

Three kinds of evidence, each kept as its own `FixClaim`:
- the package's own changelog (Debian changelog or RPM %changelog) between the two versions;
- OSV advisories: the installed version is inside an affected range and the candidate is outside it,
  compared with the distro's real version ordering (dpkg or rpm);
- the package manager's advisories (`dnf updateinfo list --with-cve` / `dnf updateinfo list`).
A claim can also say "not fixed" (an OSV range says the candidate is still affected, or the fix came
before the installed version). A CVE with claims both ways is `disputed`: the claims are shown, never
merged silently.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from patchbrain.errors import BadInput
from patchbrain.feeds.osv import ECOSYSTEM_ORDERING
from patchbrain.feeds.versions import compare, dpkg_valid, split_evr
from patchbrain.models import FixClaim as FixClaim  # re-exported: it lived here first
from patchbrain.models import PendingUpdate

if TYPE_CHECKING:
    from patchbrain.feeds.cvestore import CveStore

log = logging.getLogger(__name__)

Ordering = Literal["dpkg", "rpm"]
_CVE_RE = re.compile(r"\bCVE-[0-9]{4}-[0-9]{4,19}\b", re.IGNORECASE)
_DEB_HEADER_RE = re.compile(r"^(?P<pkg>[a-z0-9][a-z0-9.+-]*) \((?P<version>[^()\s]+)\)(?P<rest>.*)$")
_RPM_HEADER_RE = re.compile(r"^\*\s+\S+\s+\S+\s+[0-9]+\s+[0-9]{4}\s+(?P<who>.*)$")
_EVR_TOKEN_RE = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9._+~^]*(?:-[A-Za-z0-9._+~^]+)?$")
_PKG_MGR_ORDERING: dict[str, Ordering] = {"apt": "dpkg", "dnf": "rpm", "zypper": "rpm"}


@dataclasses.dataclass(frozen=True, slots=True)
class CveFix:
    """One CVE and every claim about it for one update."""

    cve_id: str
    claims: tuple[FixClaim, ...]

    @property
    def fixed(self) -> bool:
        """True when at least one claim says this update fixes the CVE."""
        return any(c.says == "fixed" for c in self.claims)

    @property
    def disputed(self) -> bool:
        """True when claims disagree (some say fixed, some say not)."""
        return len({c.says for c in self.claims}) > 1


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateMatch:
    """The CVEs tied to one pending update, each with its claims."""

    host: str
    package: str
    installed: str | None
    candidate: str
    ordering: Ordering
    cves: tuple[CveFix, ...]

    @property
    def fixed_cves(self) -> tuple[str, ...]:
        """CVE ids at least one source says this update fixes (disputed ones included)."""
        return tuple(c.cve_id for c in self.cves if c.fixed)

    @property
    def disputed_cves(self) -> tuple[str, ...]:
        """CVE ids on which sources disagree."""
        return tuple(c.cve_id for c in self.cves if c.disputed)


# --- changelogs --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ChangelogEntry:
    """One changelog entry: its version (None when the RPM header names none) and the CVEs it mentions."""

    version: str | None
    cves: tuple[str, ...]


def parse_changelog(text: str, fmt: Literal["deb", "rpm"]) -> list[ChangelogEntry]:
    """Split a Debian changelog or RPM %changelog (`rpm -q --changelog`) into entries, newest first."""
    if fmt not in ("deb", "rpm"):
        raise BadInput(f"unknown changelog format {fmt!r}", field="fmt")
    entries: list[ChangelogEntry] = []
    version: str | None = None
    cves: list[str] = []
    started = False

    def flush() -> None:
        if started:
            entries.append(ChangelogEntry(version, tuple(dict.fromkeys(cves))))

    for line in text.splitlines():
        header_version: str | None = None
        is_header = False
        if fmt == "deb":
            m = _DEB_HEADER_RE.match(line)
            if m:
                is_header, header_version = True, m.group("version")
        else:
            m = _RPM_HEADER_RE.match(line)
            if m:
                is_header, header_version = True, _rpm_header_version(m.group("who"))
        if is_header:
            flush()
            started, version, cves = True, header_version, []
            # An RPM header can itself name CVEs after the version; a Debian header cannot.
            if fmt == "rpm":
                cves.extend(c.upper() for c in _CVE_RE.findall(line))
            continue
        if started:
            cves.extend(c.upper() for c in _CVE_RE.findall(line))
    flush()
    return entries


def parse_changelog_source(text: str) -> str | None:
    """The source package a Debian changelog's newest entry names ("curl (7.88.1-10+deb12u5) ..."), if any."""
    for line in text.splitlines():
        m = _DEB_HEADER_RE.match(line)
        if m:
            return m.group("pkg")
    return None


def _rpm_header_version(who: str) -> str | None:
    """The [epoch:]version-release an RPM changelog header ends with ("Name <mail> - 1.2-3"), if any."""
    tokens = who.replace(" - ", " ").split()
    for token in reversed(tokens[-2:]):
        token = token.strip("[]()")
        if _EVR_TOKEN_RE.fullmatch(token):
            return token
    return None


def changelog_cves(
    text: str,
    fmt: Literal["deb", "rpm"],
    installed: str | None,
    candidate: str,
) -> dict[str, list[str]]:
    """CVE ids mentioned by the changelog entries newer than `installed`, up to and including `candidate`.

    Returns {CVE id: [versions of the entries that mention it]}. Entries whose version cannot be read (RPM
    headers without one) are left out: their place in history is unknown. This is the function discovery
    calls on `apt-get changelog` / `rpm -q --changelog` output.
    """
    ordering: Ordering = "dpkg" if fmt == "deb" else "rpm"
    out: dict[str, list[str]] = {}
    for entry in parse_changelog(text, fmt):
        if entry.version is None or not entry.cves:
            continue
        version = entry.version
        if ordering == "rpm":
            version = _with_epoch_of(version, candidate)
        elif not dpkg_valid(version):
            log.debug("skipping changelog entry with invalid version %r", version[:60])
            continue
        if not _in_range(ordering, version, installed, candidate):
            continue
        for cve in entry.cves:
            out.setdefault(cve, []).append(entry.version)
    return out


def _with_epoch_of(version: str, reference: str) -> str:
    """RPM changelogs omit the epoch: borrow the reference's so that 1:2.3-4 compares with 2.3-5."""
    epoch, _, _ = split_evr(version)
    ref_epoch, _, _ = split_evr(reference)
    if epoch is None and ref_epoch is not None:
        return f"{ref_epoch}:{version}"
    return version


def _in_range(ordering: Ordering, version: str, installed: str | None, candidate: str) -> bool:
    """installed < version <= candidate."""
    try:
        above = installed is None or compare(ordering, version, installed) > 0
        return above and compare(ordering, version, candidate) <= 0
    except BadInput:
        return False


# --- OSV ---------------------------------------------------------------------------------------------------


def osv_affected(ordering: Ordering, version: str, ranges: Sequence[Sequence[tuple[str, str]]]) -> bool:
    """OSV ECOSYSTEM-range semantics: inside [introduced, fixed) or [introduced, last_affected]."""
    for events in ranges:
        affected = False
        for kind, at in _sorted_events(ordering, events):
            if kind == "introduced":
                if at == "0" or compare(ordering, version, at) >= 0:
                    affected = True
            elif kind in ("fixed", "limit"):
                if compare(ordering, version, at) >= 0:
                    affected = False
            elif kind == "last_affected" and compare(ordering, version, at) > 0:
                affected = False
        if affected:
            return True
    return False


def _sorted_events(ordering: Ordering, events: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    import functools

    def key_cmp(a: tuple[str, str], b: tuple[str, str]) -> int:
        if a[1] == "0" or b[1] == "0":
            return (a[1] != "0") - (b[1] != "0")
        return compare(ordering, a[1], b[1])

    return sorted(events, key=functools.cmp_to_key(key_cmp))


def _release_matches(ecosystem_release: str | None, host_release: str | None) -> bool:
    if host_release is None or ecosystem_release is None:
        return True
    return ecosystem_release == host_release or ecosystem_release.startswith(f"{host_release}:")


def osv_claims(
    store: CveStore,
    *,
    distro: str,
    release: str | None,
    packages: Sequence[str],
    installed: str | None,
    candidate: str,
    ordering: Ordering,
) -> Iterator[FixClaim]:
    """Claims from the OSV advisories loaded in `store` for these package names on this distro release."""
    for name in dict.fromkeys(packages):
        for adv in store.advisory_ranges(distro, name):
            if adv["withdrawn"] or not _release_matches(adv["release"], release):
                continue
            where = f"{adv['ecosystem']} {name}, from {adv['file']}"
            try:
                was = installed is not None and (
                    osv_affected(ordering, installed, adv["ranges"]) or installed in adv["versions"]
                )
                still = osv_affected(ordering, candidate, adv["ranges"]) or candidate in adv["versions"]
            except BadInput as exc:
                log.warning("skipping %s for %s: %s", adv["advisory_id"], name, exc)
                continue
            fixed_at = [at for rng in adv["ranges"] for kind, at in rng if kind == "fixed"]
            for cve in adv["cve_ids"]:
                source = f"osv:{adv['advisory_id']}"
                if was and not still:
                    yield FixClaim(cve, "fixed", source, f"fixed in {', '.join(fixed_at) or '?'} ({where})")
                elif still:
                    detail = f"{candidate} is still inside an affected range ({where})"
                    yield FixClaim(cve, "not-fixed", source, detail)
                elif installed is not None:
                    detail = f"{installed} is already outside the affected ranges ({where})"
                    yield FixClaim(cve, "not-fixed", source, detail)


# --- dnf updateinfo ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateinfoLine:
    """One line of `dnf updateinfo list [--with-cve]`: advisory or CVE id, its kind, the package NEVRA."""

    id: str
    kind: str
    name: str
    evr: str
    arch: str


_UPDATEINFO_RE = re.compile(r"^(?P<id>\S+)\s+(?P<kind>\S+)\s+(?P<nevra>\S+)\s*$")
_ARCHES = {"noarch", "x86_64", "i686", "i386", "aarch64", "ppc64le", "s390x", "src", "armv7hl"}


def split_nevra(nevra: str) -> tuple[str, str, str]:
    """("curl", "7.76.1-26.el9_3.2", "x86_64") from "curl-7.76.1-26.el9_3.2.x86_64" (epoch kept if given)."""
    base, dot, arch = nevra.rpartition(".")
    if not dot or arch not in _ARCHES:
        base, arch = nevra, ""
    name_version, dash, release = base.rpartition("-")
    name, dash2, version = name_version.rpartition("-")
    if not dash or not dash2 or not name:
        raise BadInput(f"not a package NEVRA: {nevra[:80]!r}", field="nevra")
    return name, f"{version}-{release}", arch


def parse_dnf_updateinfo(text: str) -> list[UpdateinfoLine]:
    """Lines of `dnf updateinfo list` / `dnf updateinfo list --with-cve` output (headers are skipped)."""
    out = []
    for line in text.splitlines():
        m = _UPDATEINFO_RE.match(line.strip())
        if not m or m.group("kind").endswith(":"):
            continue
        try:
            name, evr, arch = split_nevra(m.group("nevra"))
        except BadInput:
            continue  # "Last metadata expiration check: ..." and other chatter
        out.append(UpdateinfoLine(m.group("id"), m.group("kind"), name, evr, arch))
    return out


def updateinfo_claims(
    lines: Sequence[UpdateinfoLine],
    store: CveStore | None,
    *,
    package: str,
    installed: str | None,
    candidate: str,
) -> Iterator[FixClaim]:
    """Claims from dnf's own advisories: an entry for this package within (installed, candidate]."""
    for line in lines:
        if line.name != package:
            continue
        evr = _with_epoch_of(line.evr, candidate)
        if not _in_range("rpm", evr, installed, candidate):
            continue
        if _CVE_RE.fullmatch(line.id):
            yield FixClaim(
                line.id.upper(), "fixed", "dnf-updateinfo", f"{line.kind} in {line.name}-{line.evr}"
            )
            continue
        for cve in _advisory_cves(store, line.id):
            detail = f"{line.kind} in {line.name}-{line.evr}"
            yield FixClaim(cve, "fixed", f"dnf-updateinfo:{line.id}", detail)


def _advisory_cves(store: CveStore | None, advisory_id: str) -> list[str]:
    if store is None:
        return []
    rows = store.store.connection().execute(
        "SELECT cve_id FROM advisory_cves WHERE advisory_id = ? ORDER BY cve_id", (advisory_id,)
    )
    return [r[0] for r in rows]


# --- one update --------------------------------------------------------------------------------------------


def match_update(
    update: PendingUpdate,
    store: CveStore | None = None,
    *,
    distro: str | None = None,
    release: str | None = None,
    source_package: str | None = None,
    changelog: str | None = None,
    updateinfo: str | None = None,
) -> UpdateMatch:
    """Every CVE claim for one pending update, from its changelog, OSV advisories and dnf updateinfo.

    `distro` is the OSV ecosystem name ("Debian", "Ubuntu", "AlmaLinux", "Rocky Linux"); `source_package`
    the source package name OSV files Debian and Ubuntu advisories under; `changelog` the text of
    `apt-get changelog` / `rpm -q --changelog`; `updateinfo` the output of `dnf updateinfo list --with-cve`.
    Without a changelog, the claims discovery attached to the update (`update.claims`) count; an update
    with CVEs but no claims (a discovery recorded before claims were kept) gets claims from "discovery".
    `source_package` defaults to the one discovery read from the changelog.
    """
    ordering = _PKG_MGR_ORDERING.get(update.pkg_mgr)
    if ordering is None:
        raise BadInput(f"unknown package manager {update.pkg_mgr!r}", source=update.host, field="pkg_mgr")
    claims: list[FixClaim] = []
    if changelog is not None:
        fmt: Literal["deb", "rpm"] = "deb" if ordering == "dpkg" else "rpm"
        for cve, versions in changelog_cves(changelog, fmt, update.installed, update.candidate).items():
            claims.append(FixClaim(cve, "fixed", "changelog", f"changelog entry {', '.join(versions)}"))
    elif update.claims:
        claims.extend(update.claims)
    else:
        claims.extend(FixClaim(c, "fixed", "discovery", "reported by discovery") for c in update.cves)
    source_package = source_package or update.source_package
    if store is not None and distro is not None:
        names = [update.package] + ([source_package] if source_package else [])
        claims.extend(
            osv_claims(
                store,
                distro=distro,
                release=release,
                packages=names,
                installed=update.installed,
                candidate=update.candidate,
                ordering=ordering,
            )
        )
    if updateinfo is not None:
        lines = parse_dnf_updateinfo(updateinfo)
        claims.extend(
            updateinfo_claims(
                lines, store, package=update.package, installed=update.installed, candidate=update.candidate
            )
        )
    by_cve: dict[str, list[FixClaim]] = {}
    for claim in claims:
        bucket = by_cve.setdefault(claim.cve_id, [])
        if claim not in bucket:
            bucket.append(claim)
    cves = tuple(CveFix(cve, tuple(cs)) for cve, cs in sorted(by_cve.items()))
    return UpdateMatch(update.host, update.package, update.installed, update.candidate, ordering, cves)


# --- discovery's updates, with OSV's claims joined ------------------------------------------------------

# Ansible's distribution names -> OSV ecosystems, and how many leading release components OSV uses
# (Debian "12.15" -> "12"; Ubuntu "22.04" stays; AlmaLinux/Rocky "9.3" -> "9").
_OSV_DISTROS: dict[str, tuple[str, int | None]] = {
    "Debian": ("Debian", 1),
    "Ubuntu": ("Ubuntu", None),
    "AlmaLinux": ("AlmaLinux", 1),
    "Rocky": ("Rocky Linux", 1),
    "Rocky Linux": ("Rocky Linux", 1),
}


def osv_system(distribution: str, release: str, pkg_mgr: str) -> tuple[str, str | None] | None:
    """(OSV ecosystem, release) for a host as discovery describes it, or None when OSV does not apply:
    an unknown distro, or a package manager whose version ordering is not the distro's own (the lab's
    dnf and zypper hosts run on Debian)."""
    known = _OSV_DISTROS.get(distribution)
    if known is None:
        return None
    ecosystem, parts = known
    if ECOSYSTEM_ORDERING[ecosystem] != _PKG_MGR_ORDERING.get(pkg_mgr):
        return None
    rel = ".".join(release.split(".")[:parts]) if parts else release
    return ecosystem, rel or None


def has_advisories(store: CveStore) -> bool:
    """True when any OSV advisory is loaded."""
    return store.store.connection().execute("SELECT 1 FROM advisories LIMIT 1").fetchone() is not None


def with_osv_claims(
    updates: Sequence[PendingUpdate],
    store: CveStore | None,
    systems: Mapping[str, tuple[str, str]],
) -> list[PendingUpdate]:
    """`updates` with the OSV advisories' claims in `store` joined to discovery's claims (changelog,
    dnf updateinfo, zypper patches). `systems` maps each host to (distribution, release) as discovery
    read them. `cves` is left as discovery found it (ranking uses it); the claims say who says what,
    disputes included. A CVE no source says this update fixes is left out (OSV's "not fixed" claims for
    every older advisory of the package would bury the plan). Identical updates on many hosts are
    matched once."""
    if store is None or not has_advisories(store):
        return list(updates)
    memo: dict[tuple[object, ...], tuple[FixClaim, ...]] = {}
    out = []
    for u in updates:
        distribution, release = systems.get(u.host, ("", ""))
        system = osv_system(distribution, release, u.pkg_mgr)
        if system is None:
            out.append(u)
            continue
        key = (system, u.pkg_mgr, u.package, u.source_package, u.installed, u.candidate, u.cves, u.claims)
        claims = memo.get(key)
        if claims is None:
            match = match_update(u, store, distro=system[0], release=system[1])
            claims = memo[key] = tuple(c for fix in match.cves if fix.fixed for c in fix.claims)
        out.append(dataclasses.replace(u, claims=claims))
    return out
