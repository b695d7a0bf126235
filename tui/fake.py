"""A deterministic backend for tests, snapshots, screenshots and the benchmark.

Same interface as `tui.real.RealBackend`; every value derives from the host index, so two runs
render the same screen. `sabotage=True` makes the canary's update weaken the firewall, so the
rollout halts at the canary with a drift finding and restores it, as the safety loop will.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tui.backend import (
    ApprovalView,
    AuditRow,
    AuditStatus,
    DriftFinding,
    HostDetail,
    HostRow,
    HostState,
    ModelInfo,
    PendingView,
    PlanEntry,
    PlanView,
    Refused,
    RolloutEnd,
    RolloutEvent,
    TaskEvent,
    Unavailable,
    WaveState,
    WaveView,
)

_GROUPS = ("web", "db", "cache", "edge")
_OS = (
    ("Debian 12", "apt"),
    ("AlmaLinux 9.4", "dnf"),
    ("openSUSE Leap 15.6", "zypper"),
    ("Ubuntu 24.04", "apt"),
)
_PACKAGES = (
    ("openssl", "3.0.15-1~deb12u1", ("CVE-2024-5535", "CVE-2024-9143"), True, 0.94),
    ("openssh-server", "1:9.2p1-2+deb12u3", ("CVE-2024-6387",), True, 0.91),
    ("glibc", "2.36-9+deb12u8", ("CVE-2024-2961",), False, 0.77),
    ("curl", "7.88.1-10+deb12u7", ("CVE-2024-7264",), False, 0.52),
    ("nginx", "1.22.1-9+deb12u1", ("CVE-2024-7347",), False, 0.41),
    ("tzdata", "2024b-0+deb12u1", (), False, 0.03),
)
_TASKS = ("Gather minimal facts", "Snapshot posture", "Upgrade planned packages", "Snapshot posture again")


def _pending_for(i: int) -> tuple[int, ...]:
    """Indexes into _PACKAGES pending on host i."""
    return tuple(p for p in range(len(_PACKAGES)) if (i + p) % 3 != 0)


class FakeBackend:
    """Deterministic fleet, plan, approvals, audit and model; a rollout that emits real-looking events."""

    def __init__(self, hosts: int = 12, *, sabotage: bool = False, step_delay: float = 0.0) -> None:
        self.n = hosts
        self.sabotage = sabotage
        self.step_delay = step_delay
        self.plan: PlanView | None = None
        self._approvals: dict[str, list[str]] = {}
        self._refusals: dict[str, list[tuple[str, str]]] = {}
        self.quorum = 2
        self.audit_rows: list[AuditRow] = [
            AuditRow(1, "2026-11-26T09:00:00Z", "root@ops1", "keys.create", "alice"),
            AuditRow(2, "2026-11-26T09:00:05Z", "root@ops1", "keys.create", "bob"),
            AuditRow(3, "2026-11-26T09:10:00Z", "root@ops1", "discover", "fleet"),
        ]
        self._rows = [self._row(i) for i in range(hosts)]
        self._stop = threading.Event()

    def _name(self, i: int) -> str:
        return (
            f"{_GROUPS[i % len(_GROUPS)]}-{i:05d}" if self.n > 999 else f"{_GROUPS[i % len(_GROUPS)]}-{i:02d}"
        )

    def _row(self, i: int) -> HostRow:
        os_release, mgr = _OS[i % len(_OS)]
        pend = _pending_for(i)
        simulated = i % 2 == 0
        return HostRow(
            name=self._name(i),
            group=_GROUPS[i % len(_GROUPS)],
            address=f"10.77.{i // 250}.{i % 250 + 2}",
            os_release=os_release,
            pkg_mgr=mgr,
            pending=len(pend),
            highest_risk=max(_PACKAGES[p][4] for p in pend) if pend else None,
            selinux="enforcing" if mgr == "dnf" else ("permissive" if i % 5 == 0 else "disabled"),
            firewall="fw drop" if i % 7 else "fw accept",
            posture_source="simulated" if simulated else "real",
            last_outcome="patched" if i % 6 == 1 else "",
        )

    def fleet(self) -> list[HostRow]:
        return list(self._rows)

    def host_detail(self, name: str) -> HostDetail:
        for i, row in enumerate(self._rows):
            if row.name == name:
                pend = tuple(
                    PendingView(pkg, "old-" + ver.split("-")[0], ver, cves, risk)
                    for pkg, ver, cves, _kev, risk in (_PACKAGES[p] for p in _pending_for(i))
                )
                return HostDetail(
                    row=row,
                    groups=(row.group, "linux"),
                    criticality=1 + i % 5,
                    exposure=1 + (i * 3) % 5,
                    canary=i == 0,
                    windows=("Sun 02:00-04:00 UTC",),
                    pending=pend,
                )
        raise Unavailable(f"no host named {name}")

    def current_plan(self) -> PlanView | None:
        return self.plan

    def _waves(self) -> tuple[WaveView, ...]:
        names = [r.name for r in self._rows]
        sizes = [1, 3, len(names) - 4] if len(names) > 4 else [len(names)]
        out, start = [], 0
        for idx, size in enumerate(sizes):
            out.append(WaveView(idx + 1, tuple(names[start : start + size]), "Sun 02:00-04:00 UTC"))
            start += size
        return tuple(out)

    def create_plan(self) -> PlanView:
        entries = []
        for rank, (pkg, ver, cves, kev, risk) in enumerate(_PACKAGES, start=1):
            hosts = sum(1 for i in range(self.n) if _PACKAGES.index(_PACKAGES[rank - 1]) in _pending_for(i))
            why = [f"EPSS {risk * 0.8:.2f} raises risk by {risk * 0.35:+.2f}"]
            if kev:
                why.insert(0, f"listed in CISA KEV: {risk * 0.4:+.2f}")
            why.append(f"exposed on {hosts} hosts: {risk * 0.1:+.2f}")
            if not cves:
                why = ["no CVE fixed: ranked by package age only"]
            entries.append(PlanEntry(rank, pkg, ver, hosts, risk, cves, kev, tuple(why)))
        self.plan = PlanView(
            "plan-20261126-0001", "2026-11-26T10:00:00Z", "waiting", tuple(entries), self._waves()
        )
        self._approvals.setdefault(self.plan.plan_id, [])
        return self.plan

    def _view(self, plan_id: str) -> ApprovalView:
        assert self.plan is not None
        approvals = tuple(self._approvals.get(plan_id, []))
        state = "approved" if len(approvals) >= self.quorum else "waiting"
        return ApprovalView(
            plan_id,
            hosts=self.n,
            entries=len(self.plan.entries),
            approvals=approvals,
            quorum=self.quorum,
            state=state,
            refusals=tuple(self._refusals.get(plan_id, [])),
        )

    def approvals(self) -> list[ApprovalView]:
        if self.plan is None:
            return []
        return [self._view(self.plan.plan_id)]

    def key_names(self) -> list[str]:
        return ["alice", "bob", "mallory"]

    def approve(self, plan_id: str, key_name: str) -> ApprovalView:
        if self.plan is None or plan_id != self.plan.plan_id:
            raise Refused(f"no plan {plan_id}")
        done = self._approvals.setdefault(plan_id, [])
        reason = ""
        if key_name == "mallory":
            reason = "key 'mallory' is not an approver"
        elif key_name in done:
            reason = f"{key_name} already approved {plan_id}; quorum needs distinct approvers"
        if reason:
            self._refusals.setdefault(plan_id, []).append((key_name, reason))
            raise Refused(reason)
        done.append(key_name)
        return self._view(plan_id)

    def rollout(
        self, plan_id: str, emit: Callable[[RolloutEvent], None], cancel: Callable[[], bool]
    ) -> RolloutEnd:
        if self.plan is None or plan_id != self.plan.plan_id:
            raise Refused(f"no plan {plan_id}")
        if not self._view(plan_id).approved:
            raise Refused(f"{plan_id} lacks quorum")
        counter = 0
        for wave in self.plan.waves:
            if cancel():
                return RolloutEnd(plan_id, "canceled", "canceled before the wave started")
            emit(WaveState(wave.index, "running"))
            for host in wave.hosts:
                emit(HostState(wave.index, host, "running"))
                for task in _TASKS:
                    if self.step_delay:
                        self._stop.wait(self.step_delay)
                    if cancel():
                        emit(HostState(wave.index, host, "canceled"))
                        emit(WaveState(wave.index, "canceled"))
                        return RolloutEnd(plan_id, "canceled", f"canceled during wave {wave.index}")
                    counter += 1
                    status = "changed" if task.startswith("Upgrade") else "ok"
                    raw = {"counter": counter, "event": f"runner_on_{status}", "host": host, "task": task}
                    emit(TaskEvent(wave.index, host, task, status, raw))
                emit(HostState(wave.index, host, "patched"))
            if self.sabotage and wave.index == 1:
                host = wave.hosts[0]
                emit(
                    DriftFinding(
                        wave.index,
                        host,
                        "nftables inet filter input",
                        "new rule 'counter accept' at position 1 accepts all input (was policy drop)",
                    )
                )
                emit(HostState(wave.index, host, "rolling_back"))
                emit(HostState(wave.index, host, "restored", "openssl 3.0.15-1~deb12u1 -> 3.0.14-1~deb12u2"))
                emit(WaveState(wave.index, "halted"))
                return RolloutEnd(
                    plan_id,
                    "halted",
                    f"drift on canary {host}: the update weakened the firewall (input accepts all)",
                    restored=(host,),
                )
            emit(WaveState(wave.index, "done"))
        return RolloutEnd(plan_id, "done")

    def audit(self, limit: int = 500) -> tuple[list[AuditRow], AuditStatus]:
        rows = self.audit_rows[-limit:]
        return rows, AuditStatus(True, len(self.audit_rows), "9f2c1e0b7a55", ())

    def model(self) -> ModelInfo:
        return ModelInfo(
            version="2026.11.1",
            trained="2026-11-20T08:00:00Z",
            lightgbm="4.5.0",
            metrics=(
                ("AUC (validation)", "0.912"),
                ("AUC vs CVSS sort", "+0.143"),
                ("KEV recall@100", "0.87"),
            ),
            top_features=(
                ("kev_listed", 0.31),
                ("epss", 0.24),
                ("cvss_base", 0.15),
                ("exploit_public", 0.11),
                ("days_since_published", 0.08),
                ("network_vector", 0.06),
            ),
        )
