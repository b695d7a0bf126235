"""Shared, frozen domain objects passed between discovery, planning, execution and verification."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from patchbrain.windows import MaintenanceWindow

Platform = Literal["vm", "baremetal"]
PkgManager = Literal["apt", "dnf", "zypper"]


@dataclasses.dataclass(frozen=True, slots=True)
class Host:
    """One managed host as the inventory describes it."""

    name: str
    address: str
    groups: tuple[str, ...] = ()
    platform: Platform = "vm"
    criticality: int = 3
    exposure: int = 3
    canary: bool | None = None
    pkg_mgr: PkgManager | None = None
    windows: tuple[MaintenanceWindow, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class FixClaim:
    """One piece of evidence about one CVE for one update.

    `says` is "fixed" (this update fixes it) or "not-fixed" (the evidence says it does not); `source` names
    who said it ("changelog", "osv:DSA-5523-1", "dnf-updateinfo:ALSA-2023:5763", "zypper-patch:SUSE-...",
    "discovery"), `detail` says where exactly (the changelog entry's version, the OSV range and ecosystem).
    """

    cve_id: str
    says: Literal["fixed", "not-fixed"]
    source: str
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class PendingUpdate:
    """An update discovery found on a host: a package, its installed and candidate versions, CVEs fixed.

    `cves` is the union of the CVEs discovery's sources say the update fixes (what ranking uses); `claims`
    keeps each source's claim (`patchbrain.feeds.matching`); `source_package` is the source package the
    candidate's Debian changelog names (OSV files Debian and Ubuntu advisories under it).
    """

    host: str
    package: str
    installed: str | None
    candidate: str
    pkg_mgr: PkgManager
    cves: tuple[str, ...] = ()
    source_package: str | None = None
    claims: tuple[FixClaim, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingUpdate:
        """Back from `dataclasses.asdict` (the journal's discovery documents, older ones without claims)."""
        claims = tuple(
            FixClaim(
                str(c["cve_id"]),
                "not-fixed" if c.get("says") == "not-fixed" else "fixed",
                str(c["source"]),
                str(c.get("detail", "")),
            )
            for c in data.get("claims") or ()
        )
        fields = {k: data[k] for k in ("host", "package", "installed", "candidate", "pkg_mgr")}
        return cls(
            **fields,
            cves=tuple(data.get("cves") or ()),
            source_package=data.get("source_package"),
            claims=claims,
        )
