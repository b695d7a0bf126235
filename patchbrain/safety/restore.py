"""Roll hosts back to their pre-flight state and decide, from fresh evidence, whether they are restored.

Order (playbooks/rollback.yml, role `rollback`): pre-flight package versions first, then the nftables
ruleset and SELinux (config and runtime mode) from the pre-flight snapshot, listeners the pre-flight
snapshot did not have stopped, a settle time, a posture snapshot. A host is `restored` only when both
that snapshot (through Ansible) and the verifier's own reading (paramiko) show a neutral diff against
pre-flight and the verifier reads the pre-flight versions; otherwise `not_restored`, loudly. A VM with a
snapshot hook is reverted with it when the package rollback could not restore it, then checked the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from patchbrain.errors import BadInput
from patchbrain.posture.gate import compare
from patchbrain.posture.snapshot import parse_document
from patchbrain.verify.read import HostReading

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class RestoreResult:
    """One host after a rollback."""

    host: str
    restored: bool
    method: str  # packages | snapshot-hook
    reason: str
    differences: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


def restore_state(pre_doc: Mapping[str, Any], *, host: str) -> dict[str, Any]:
    """What the rollback role restores, from a raw pre-flight posture document."""
    probes = pre_doc.get("probes") if isinstance(pre_doc, Mapping) else None
    probes = probes if isinstance(probes, Mapping) else {}

    def text(name: str) -> str | None:
        p = probes.get(name)
        if (
            isinstance(p, Mapping)
            and not p.get("missing")
            and p.get("rc") == 0
            and isinstance(p.get("stdout"), str)
        ):
            return str(p["stdout"])
        return None

    mode = None
    booleans: dict[str, bool] | None = None
    try:
        snap = parse_document(dict(pre_doc), host=host)
        if snap.selinux is not None and snap.selinux.runtime_mode in ("enforcing", "permissive"):
            mode = snap.selinux.runtime_mode
        if snap.selinux is not None and snap.selinux.booleans:
            booleans = {name: bool(on) for name, on in snap.selinux.booleans}
    except BadInput as exc:
        log.warning("rollback of %s: pre-flight snapshot unreadable: %s", host, exc)
    ss = text("ss")
    listeners = None
    if ss is not None:
        listeners = sorted(
            {f"{c[0]} {c[4]}" for c in (line.split() for line in ss.splitlines()) if len(c) > 4}
        )
    return {
        "nft_ruleset": text("nft_ruleset"),
        "selinux_mode": mode,
        "selinux_config": text("selinux_config"),
        "selinux_booleans": booleans,
        "listeners": listeners,
    }


def non_neutral(pre: Mapping[str, Any], now: Mapping[str, Any], host: str, label: str) -> list[str]:
    """Every change between two raw documents that is not neutral, as text (unreadable: one entry)."""
    try:
        report = compare({host: pre}, {host: now})
    except BadInput as exc:
        return [f"{label}: cannot compare: {exc}"]
    return [
        f"{label}: {c.effect} {c.kind} {c.subject}: {c.reason}"
        for c in report.changes
        if c.effect != "neutral"
    ]


def judge(
    host: str,
    *,
    pre_ansible: Mapping[str, Any] | None,
    after_ansible: Mapping[str, Any] | None,
    pre_verifier: Mapping[str, Any] | None,
    reading: HostReading | None,
    versions: Mapping[str, str | None],
    same_version: Callable[[str | None, str | None], bool],
) -> list[str]:
    """Reasons the host is NOT back at pre-flight (empty: restored), over both channels."""
    why: list[str] = []
    if pre_ansible is not None:
        if after_ansible is None:
            why.append("ansible: no post-rollback snapshot")
        else:
            why += non_neutral(pre_ansible, after_ansible, host, "ansible")
    if reading is None or not reading.reachable:
        why.append(f"verifier: host not readable ({reading.error if reading else 'not read'})")
        return why
    base = pre_verifier if pre_verifier is not None else pre_ansible
    if base is not None:
        why += non_neutral(base, reading.posture, host, "verifier")
    for name, want in sorted(versions.items()):
        got = reading.versions.get(name)
        if not same_version(got, want):
            why.append(
                f"verifier: {name} is {got or 'not installed'}, pre-flight was {want or 'not installed'}"
            )
    return why


def wait_readable(
    read: Callable[[], HostReading], *, deadline_s: float, cancel: Callable[[], bool] | None
) -> HostReading:
    """Poll the verifier until the host answers (after a snapshot revert), up to `deadline_s`."""
    end = time.monotonic() + deadline_s
    reading = read()
    while not reading.reachable and time.monotonic() < end and not (cancel and cancel()):
        time.sleep(5)
        reading = read()
    return reading


def rollback_vars(
    hosts: Sequence[str],
    *,
    versions: Mapping[str, Mapping[str, str | None]],
    pre_docs: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The `patchbrain_rollback` extravar: per host, packages to return to, to remove, and the state."""
    out: dict[str, Any] = {}
    for host in hosts:
        vs = versions.get(host, {})
        state = restore_state(pre_docs[host], host=host) if host in pre_docs else {}
        out[host] = {
            "packages": [{"name": n, "version": v} for n, v in sorted(vs.items()) if v is not None],
            "remove": sorted(n for n, v in vs.items() if v is None),
            **state,
        }
    return out
