"""Shared, frozen domain objects passed between discovery, planning, execution and verification."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal

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
class PendingUpdate:
    """An update discovery found on a host: a package, its installed and candidate versions, CVEs fixed."""

    host: str
    package: str
    installed: str | None
    candidate: str
    pkg_mgr: PkgManager
    cves: tuple[str, ...] = ()
