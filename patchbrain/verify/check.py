"""Compare what the verifier read with what the plan expected and what Ansible reported, per host."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from patchbrain.errors import BadInput
from patchbrain.feeds.versions import compare
from patchbrain.verify.read import HostReading

Verdict = Literal["ok", "disagrees", "unreachable"]


@dataclasses.dataclass(frozen=True, slots=True)
class Difference:
    """One disagreement: `against` is "plan" (the version the plan expects) or "report" (what Ansible
    said was installed); `found` is what the verifier read (None: not installed)."""

    package: str
    against: Literal["plan", "report"]
    expected: str | None
    found: str | None

    def __str__(self) -> str:
        who = "the plan expects" if self.against == "plan" else "Ansible reported"
        return f"{self.package}: {who} {self.expected or 'nothing'}, the host has {self.found or 'nothing'}"


@dataclasses.dataclass(frozen=True, slots=True)
class HostVerdict:
    """One host's verdict with the differences named."""

    host: str
    verdict: Verdict
    differences: tuple[Difference, ...] = ()
    error: str = ""

    @property
    def lied(self) -> bool:
        """True if the host's own report (through Ansible) disagrees with what the verifier read."""
        return any(d.against == "report" for d in self.differences)

    def describe(self) -> str:
        if self.verdict == "unreachable":
            return f"not reachable over the verifier's channel: {self.error}"
        return "; ".join(map(str, self.differences)) or "versions as planned and as reported"


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyReport:
    """Per-host verdicts of one wave."""

    hosts: Mapping[str, HostVerdict]

    @property
    def ok(self) -> bool:
        return all(v.verdict == "ok" for v in self.hosts.values())

    def in_verdict(self, verdict: Verdict) -> tuple[str, ...]:
        return tuple(sorted(h for h, v in self.hosts.items() if v.verdict == verdict))

    def lying(self) -> tuple[str, ...]:
        """Hosts whose self-report disagrees with the verifier."""
        return tuple(sorted(h for h, v in self.hosts.items() if v.lied))

    def as_dict(self) -> dict[str, Any]:
        return {
            h: {
                "verdict": v.verdict,
                "lied": v.lied,
                "detail": v.describe(),
                "differences": [dataclasses.asdict(d) for d in v.differences],
            }
            for h, v in sorted(self.hosts.items())
        }


def _same(ordering: str, a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    try:
        return compare(ordering, a, b) == 0
    except BadInput:
        return a == b


def check_wave(
    readings: Mapping[str, HostReading],
    expected: Mapping[str, Mapping[str, str]],
    reported: Mapping[str, Mapping[str, str]],
) -> VerifyReport:
    """Judge each host of `expected` ({host: {package: version}} from the plan): `ok` when the verifier
    read exactly the planned versions and they agree with Ansible's report ({host: {package: version}};
    a host absent from `reported` is judged against the plan only), `disagrees` otherwise, `unreachable`
    when the verifier could not read the host."""
    out: dict[str, HostVerdict] = {}
    for host, want in sorted(expected.items()):
        reading = readings.get(host)
        if reading is None or not reading.reachable:
            error = reading.error if reading is not None else "not read"
            out[host] = HostVerdict(host, "unreachable", error=error)
            continue
        ordering = "dpkg" if reading.family == "deb" else "rpm"
        diffs: list[Difference] = []
        said = reported.get(host)
        for package, version in sorted(want.items()):
            found = reading.versions.get(package)
            if not _same(ordering, found, version):
                diffs.append(Difference(package, "plan", version, found))
            if said is not None and not _same(ordering, found, said.get(package)):
                diffs.append(Difference(package, "report", said.get(package), found))
        out[host] = HostVerdict(host, "disagrees" if diffs else "ok", tuple(diffs))
    return VerifyReport(out)
