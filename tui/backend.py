"""What the TUI asks of patchbrain: one small interface, plain frozen view records.

Screens talk only to a `Backend`. `tui.real.RealBackend` adapts patchbrain's public API to it;
`tui.fake.FakeBackend` is a deterministic test double behind the same interface. A screen never
imports patchbrain directly, so swapping the backend (tests, benchmarks, screenshots) changes nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

PostureSource = Literal["real", "simulated", "unknown"]


class Unavailable(Exception):
    """The backend cannot answer this yet (a part of patchbrain is missing, or there is no data)."""


class Refused(Exception):
    """patchbrain refused the action (policy, quorum, a bad key); `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class HostRow:
    """One host as the fleet screen lists it."""

    name: str
    group: str
    address: str
    os_release: str
    pkg_mgr: str
    pending: int | None
    highest_risk: float | None
    selinux: str
    firewall: str
    posture_source: PostureSource
    last_outcome: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class PendingView:
    """One pending update on a host."""

    package: str
    installed: str
    candidate: str
    cves: tuple[str, ...]
    risk: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class HostDetail:
    """Everything the host detail screen shows."""

    row: HostRow
    groups: tuple[str, ...]
    criticality: int
    exposure: int
    canary: bool | None
    windows: tuple[str, ...]
    pending: tuple[PendingView, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class PlanEntry:
    """One ranked entry of a plan: a package update and why it ranks where it does."""

    rank: int
    package: str
    candidate: str
    hosts: int
    risk: float | None
    cves: tuple[str, ...]
    kev: bool
    explanation: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class WaveView:
    """One wave: its hosts and the window it may run in."""

    index: int
    hosts: tuple[str, ...]
    window: str


@dataclasses.dataclass(frozen=True, slots=True)
class PlanView:
    """A plan as the plan screen shows it."""

    plan_id: str
    created: str
    state: str
    entries: tuple[PlanEntry, ...]
    waves: tuple[WaveView, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ApprovalView:
    """A plan's approval state."""

    plan_id: str
    hosts: int
    entries: int
    approvals: tuple[str, ...]
    quorum: int
    state: str
    refusals: tuple[tuple[str, str], ...] = ()

    @property
    def approved(self) -> bool:
        return len(self.approvals) >= self.quorum


@dataclasses.dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit record."""

    seq: int
    time: str
    actor: str
    action: str
    subject: str


@dataclasses.dataclass(frozen=True, slots=True)
class AuditStatus:
    """The chain's verification result."""

    ok: bool
    records: int
    head: str
    problems: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ModelInfo:
    """The active prioritizer model."""

    version: str
    trained: str
    lightgbm: str
    metrics: tuple[tuple[str, str], ...]
    top_features: tuple[tuple[str, float], ...]


# Rollout events, posted from the worker thread as they happen.


@dataclasses.dataclass(frozen=True, slots=True)
class WaveState:
    wave: int
    state: str


@dataclasses.dataclass(frozen=True, slots=True)
class HostState:
    wave: int
    host: str
    state: str
    detail: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class TaskEvent:
    wave: int
    host: str
    task: str
    status: str
    raw: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class DriftFinding:
    wave: int
    host: str
    setting: str
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class RolloutEnd:
    plan_id: str
    state: Literal["done", "halted", "canceled", "failed"]
    reason: str = ""
    restored: tuple[str, ...] = ()
    not_restored: tuple[str, ...] = ()


RolloutEvent = WaveState | HostState | TaskEvent | DriftFinding


class Backend(Protocol):
    """The small interface every screen uses."""

    def fleet(self) -> list[HostRow]: ...

    def host_detail(self, name: str) -> HostDetail: ...

    def current_plan(self) -> PlanView | None: ...

    def create_plan(self) -> PlanView: ...

    def approvals(self) -> list[ApprovalView]: ...

    def approve(self, plan_id: str, key_name: str) -> ApprovalView: ...

    def key_names(self) -> list[str]: ...

    def rollout(
        self, plan_id: str, emit: Callable[[RolloutEvent], None], cancel: Callable[[], bool]
    ) -> RolloutEnd: ...

    def audit(self, limit: int = 500) -> tuple[list[AuditRow], AuditStatus]: ...

    def model(self) -> ModelInfo: ...
