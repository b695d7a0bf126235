"""The drift gate: compare before/after snapshot documents for many hosts and decide whether to stop."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from patchbrain.posture.diff import diff
from patchbrain.posture.models import Change
from patchbrain.posture.policy import Policy
from patchbrain.posture.snapshot import parse_document


@dataclasses.dataclass(frozen=True, slots=True)
class GateReport:
    """Every classified change, and the ones that stop the rollout under the policy."""

    changes: tuple[Change, ...]
    blocking: tuple[Change, ...]
    hosts: tuple[str, ...]
    # hosts whose SELinux is the lab's stand-in (the marker read in either snapshot): results are simulated
    simulated: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.blocking

    def counts(self) -> dict[str, int]:
        out = {"weakens": 0, "strengthens": 0, "neutral": 0, "unknown": 0}
        for c in self.changes:
            out[c.effect] += 1
        return out


def compare(
    before: Mapping[str, Mapping[str, Any]],
    after: Mapping[str, Mapping[str, Any]],
    *,
    policy: Policy | None = None,
    packages: Sequence[str] = (),
) -> GateReport:
    """Classify every host's changes; a host missing on either side is `unknown`, never skipped.

    Raises BadInput (naming host and source) when any document cannot be read.
    """
    policy = policy or Policy()
    changes: list[Change] = []
    hosts = sorted(set(before) | set(after))
    simulated: list[str] = []
    for host in hosts:
        if host not in before or host not in after:
            side = "before" if host not in before else "after"
            changes.append(
                Change(
                    host,
                    "sources",
                    "sources.host_missing",
                    "unknown",
                    host,
                    f"host {host} has no {side} snapshot, so its posture cannot be compared",
                )
            )
            continue
        b = parse_document(dict(before[host]), host=host)
        a = parse_document(dict(after[host]), host=host)
        changes.extend(diff(b, a))
        if any(s.selinux is not None and s.selinux.simulated for s in (b, a)):
            simulated.append(host)
    applied = policy.apply(changes, packages)
    return GateReport(tuple(applied), tuple(policy.blocking(applied)), tuple(hosts), tuple(simulated))
