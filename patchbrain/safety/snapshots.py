"""Controller-side VM snapshot hooks, declared per host (VMs only; bare metal gets package rollback only).

    patchbrain_snapshot_pre: [/usr/local/bin/vm-snap, take]       # run before the host's wave patches
    patchbrain_snapshot_revert: [/usr/local/bin/vm-snap, revert]  # run when package rollback cannot restore

Each is an argv list run on the controller without a shell; patchbrain appends the inventory host name as
the last argument. Both must be declared, or neither.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
from collections.abc import Mapping
from typing import Any

from patchbrain.errors import BadInput

log = logging.getLogger(__name__)

PRE, REVERT = "patchbrain_snapshot_pre", "patchbrain_snapshot_revert"
TIMEOUT_S = 900


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotHook:
    """A host's pre-patch snapshot command and its matching revert."""

    pre: tuple[str, ...]
    revert: tuple[str, ...]


def _argv(value: Any, where: str, field: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(a, str) and a and "\0" not in a for a in value)
    ):
        raise BadInput("must be a non-empty argv list of strings", source=where, field=field)
    return tuple(value)


def hooks_from_listing(
    data: Mapping[str, Any], platforms: Mapping[str, str], *, source: str
) -> dict[str, SnapshotHook]:
    """Snapshot hooks per host; BadInput for half a pair, a bad argv, or a hook on a bare-metal host."""
    hostvars: Mapping[str, Mapping[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    out = {}
    for host, hv in hostvars.items():
        where = f"{source}: host {host}"
        if PRE not in hv and REVERT not in hv:
            continue
        if PRE not in hv or REVERT not in hv:
            raise BadInput(f"declare both {PRE} and {REVERT}, or neither", source=where, field=PRE)
        if platforms.get(host, "vm") != "vm":
            raise BadInput(
                "snapshot hooks are for VMs; bare metal gets package rollback only", source=where, field=PRE
            )
        out[host] = SnapshotHook(_argv(hv[PRE], where, PRE), _argv(hv[REVERT], where, REVERT))
    return out


def run_hook(argv: tuple[str, ...], host: str, *, timeout: int = TIMEOUT_S) -> tuple[bool, str]:
    """Run one hook with the host name appended; (ok, what it said)."""
    try:
        proc = subprocess.run(
            [*argv, host],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    said = (proc.stderr.strip() or proc.stdout.strip())[-500:]
    return proc.returncode == 0, f"exit {proc.returncode}" + (f": {said}" if said else "")
