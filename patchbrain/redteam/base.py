"""What a red-team scenario is, what it returns, and the context it runs in."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from patchbrain.lab import Lab

Status = Literal["passed", "failed", "unavailable", "error"]


class Unavailable(Exception):
    """The scenario cannot run here: a part of patchbrain it attacks is missing, or it needs hosts."""


@dataclasses.dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of evidence: an audit record, a refusal message, a diff, a verifier's output, a file."""

    kind: str  # audit | refusal | quarantine | verifier | diff | file | note
    text: str
    ref: str | None = None  # audit seq, quarantine id, path

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One attack inside a scenario: what was done and whether patchbrain stopped it."""

    attack: str
    passed: bool
    outcome: str  # what patchbrain did
    evidence: tuple[Evidence, ...] = ()
    # hosts whose SELinux results in this check are simulated: the verifier read the lab stand-in's marker
    # /etc/selinux/SIMULATED on them
    selinux_simulated: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "passed": self.passed,
            "outcome": self.outcome,
            "evidence": [e.to_dict() for e in self.evidence],
            "selinux_simulated": list(self.selinux_simulated),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class ScenarioResult:
    """A scenario's score: passed only when every check passed (and there was at least one)."""

    name: str
    status: Status
    attacked: str
    checks: tuple[Check, ...] = ()
    detail: str = ""  # why unavailable, or the error
    seconds: float = 0.0
    disabled: tuple[str, ...] = ()  # defences switched off by the test-only hook for this run

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        return tuple(e for c in self.checks for e in c.evidence)

    @property
    def selinux_simulated(self) -> tuple[str, ...]:
        """Hosts whose SELinux results in any check are simulated, sorted."""
        return tuple(sorted({h for c in self.checks for h in c.selinux_simulated}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "passed": self.passed,
            "attacked": self.attacked,
            "detail": self.detail,
            "seconds": round(self.seconds, 2),
            "disabled_defences": list(self.disabled),
            "selinux_simulated": list(self.selinux_simulated),
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclasses.dataclass
class Context:
    """Where a scenario runs: its own scratch folder and PATCHBRAIN_HOME (set by the runner), and how it may
    reach hosts. `lab` is a running lab chosen with explicit flags; else `own_lab` says a scenario that needs
    hosts may bring up its own instance (named `lab_instance`) and must tear it down. `staging_inventory`
    (explicitly confirmed) replaces both for the scenarios that can run on a staging fleet."""

    workdir: Path
    home: Path
    lab: Lab | None = None
    own_lab: bool = True
    lab_instance: str = "redteam"
    staging_inventory: Path | None = None
    staging_target: str | None = None  # the staging host the attacks aim at (default: the first by name)
    log: Callable[[str], None] = lambda _msg: None


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    """A named attack family: `run(ctx)` returns the checks it made (raise Unavailable when it cannot run)."""

    name: str
    number: int  # the numbering of the seed's attacks
    title: str
    attacked: str  # what part of patchbrain is attacked
    defences: tuple[str, ...]  # names in patchbrain.redteam.defences that this scenario relies on
    needs_hosts: bool
    run: Callable[[Context], list[Check]]
    hosts: int = 0  # how many lab hosts it attacks (the runner's shared lab has as many as the most needs)
