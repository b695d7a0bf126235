"""Load an Ansible inventory (any format Ansible reads) and validate patchbrain's host variables.

Ansible itself resolves the inventory (`ansible-inventory --list`), so groups, group_vars and plugins work
as users expect; patchbrain then checks its own variables and names the host and variable on any error.

Host variables (all optional):
  patchbrain_platform     vm | baremetal (else taken from membership of the `vm` / `baremetal` groups)
  patchbrain_criticality  1 (lab, scratch) .. 5 (business-critical); default 3
  patchbrain_exposure     1 (isolated) .. 5 (internet-facing); default 3
  patchbrain_canary       true/false: may (or must never) be a canary host
  patchbrain_pkg_mgr      apt | dnf | zypper (overrides the discovered package manager)
  patchbrain_windows      list of {rrule: "FREQ=WEEKLY;BYDAY=SA;BYHOUR=2", duration: "4h", [dtstart]}
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from patchbrain.errors import BadInput, EnvironmentProblem
from patchbrain.models import Host, PkgManager, Platform
from patchbrain.windows import parse_window

HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_PLATFORMS = ("vm", "baremetal")
_PKG_MGRS = ("apt", "dnf", "zypper")
_LEVEL_VARS = ("patchbrain_criticality", "patchbrain_exposure")
_KNOWN_VARS = frozenset(
    {
        "patchbrain_platform",
        "patchbrain_canary",
        "patchbrain_pkg_mgr",
        "patchbrain_windows",
        *_LEVEL_VARS,
    }
)
# Variables later components define; accepted here, validated by their owners.
_OTHER_VARS_PREFIXES = ("patchbrain_health", "patchbrain_snapshot", "patchbrain_lab", "patchbrain_simulated")


def unwrap_unsafe(value: Any) -> Any:
    """Turn ansible-inventory's `{"__ansible_unsafe": "..."}` markers back into plain data."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap_unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_unsafe(v) for v in value]
    return value


def read_inventory(path: Path) -> dict[str, Any]:
    """Resolve an inventory with Ansible's own loader and return `ansible-inventory --list` as data."""
    exe = shutil.which("ansible-inventory", path=str(Path(sys.executable).parent)) or shutil.which(
        "ansible-inventory"
    )
    if exe is None:
        raise EnvironmentProblem("ansible-inventory is not installed (ansible-core)")
    if not path.exists():
        raise BadInput("no such inventory", source=str(path))
    proc = subprocess.run(
        [exe, "-i", str(path), "--list"],
        stdin=subprocess.DEVNULL,  # Ansible refuses a non-blocking stdin it would inherit
        capture_output=True,
        text=True,
        check=False,
        env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["ansible-inventory failed"])[-1]
        raise BadInput(f"Ansible cannot parse it: {last}", source=str(path))
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise BadInput(f"ansible-inventory printed invalid JSON: {exc}", source=str(path)) from exc
    return cast(dict[str, Any], unwrap_unsafe(data))


def _groups_of(data: Mapping[str, Any]) -> dict[str, set[str]]:
    """Map each host to every group it belongs to, directly or through child groups."""
    direct: dict[str, set[str]] = {}
    children: dict[str, list[str]] = {}
    for group, body in data.items():
        if group == "_meta" or not isinstance(body, dict):
            continue
        children[group] = list(body.get("children", []))
        for host in body.get("hosts", []):
            direct.setdefault(host, set()).add(group)

    parents: dict[str, set[str]] = {}
    for parent, kids in children.items():
        for kid in kids:
            parents.setdefault(kid, set()).add(parent)

    def ancestors(group: str, seen: set[str]) -> set[str]:
        for parent in parents.get(group, ()):
            if parent not in seen:
                seen.add(parent)
                ancestors(parent, seen)
        return seen

    result: dict[str, set[str]] = {}
    for host, groups in direct.items():
        every = set(groups)
        for g in groups:
            every |= ancestors(g, set())
        result[host] = every - {"all", "ungrouped"}
    return result


def _level(value: Any, *, source: str, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadInput(f"must be an integer from 1 to 5, got {value!r}", source=source, field=field)
    try:
        level = int(value)
    except ValueError as exc:
        raise BadInput(f"must be an integer from 1 to 5, got {value!r}", source=source, field=field) from exc
    if not 1 <= level <= 5:
        raise BadInput(f"must be from 1 to 5, got {level}", source=source, field=field)
    return level


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _boolean(value: Any, *, source: str, field: str) -> bool | None:
    """A boolean as Ansible spells it (true/false/yes/no; INI inventories give strings), or None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise BadInput(f"must be true or false, got {value!r}", source=source, field=field)


def host_from_vars(name: str, groups: set[str], hostvars: Mapping[str, Any], *, source: str) -> Host:
    """Validate one host's patchbrain variables and build its Host."""
    where = f"{source}: host {name}"
    if not HOST_NAME.match(name):
        raise BadInput(
            "host name has characters outside [A-Za-z0-9._-]", source=where, field="inventory_hostname"
        )
    for var in hostvars:
        if (
            var.startswith("patchbrain_")
            and var not in _KNOWN_VARS
            and not var.startswith(_OTHER_VARS_PREFIXES)
        ):
            raise BadInput(
                f"unknown patchbrain variable (known: {sorted(_KNOWN_VARS)})", source=where, field=var
            )

    in_groups = [p for p in _PLATFORMS if p in groups]
    platform = hostvars.get("patchbrain_platform")
    if platform is None:
        if len(in_groups) > 1:
            raise BadInput(
                "host is in both the vm and baremetal groups", source=where, field="patchbrain_platform"
            )
        platform = in_groups[0] if in_groups else "vm"
    elif platform not in _PLATFORMS:
        raise BadInput(
            f"must be 'vm' or 'baremetal', got {platform!r}", source=where, field="patchbrain_platform"
        )
    elif in_groups and in_groups != [platform]:
        raise BadInput(
            f"says {platform!r} but the host is in group {in_groups[0]!r}",
            source=where,
            field="patchbrain_platform",
        )

    canary = _boolean(hostvars.get("patchbrain_canary"), source=where, field="patchbrain_canary")

    pkg_mgr = hostvars.get("patchbrain_pkg_mgr")
    if pkg_mgr is not None and pkg_mgr not in _PKG_MGRS:
        raise BadInput(
            f"must be one of {list(_PKG_MGRS)}, got {pkg_mgr!r}", source=where, field="patchbrain_pkg_mgr"
        )

    raw_windows = hostvars.get("patchbrain_windows", [])
    if not isinstance(raw_windows, list):
        raise BadInput("must be a list of windows", source=where, field="patchbrain_windows")
    windows = tuple(
        parse_window(w, source=where, field=f"patchbrain_windows[{i}]") for i, w in enumerate(raw_windows)
    )

    address = hostvars.get("ansible_host", name)
    if not isinstance(address, str):
        raise BadInput("must be a string", source=where, field="ansible_host")

    return Host(
        name=name,
        address=address,
        groups=tuple(sorted(groups)),
        platform=cast(Platform, platform),
        criticality=_level(
            hostvars.get("patchbrain_criticality", 3), source=where, field="patchbrain_criticality"
        ),
        exposure=_level(hostvars.get("patchbrain_exposure", 3), source=where, field="patchbrain_exposure"),
        canary=canary,
        pkg_mgr=cast(PkgManager | None, pkg_mgr),
        windows=windows,
    )


def hosts_from_listing(data: Mapping[str, Any], *, source: str) -> list[Host]:
    """Validate every host of an `ansible-inventory --list` document."""
    hostvars: Mapping[str, Mapping[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    groups = _groups_of(data)
    names = sorted(set(groups) | set(hostvars))
    return [host_from_vars(n, groups.get(n, set()), hostvars.get(n, {}), source=source) for n in names]


def load_hosts(path: Path) -> list[Host]:
    """Load and validate every host of the inventory at `path`."""
    return hosts_from_listing(read_inventory(path), source=str(path))
