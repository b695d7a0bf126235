"""The backend over patchbrain's public API.

Fleet: the inventory plus the latest discovery (OS release, pending updates). Plans: `plans.make_plan` over
the latest discovery, written to `$PATCHBRAIN_HOME/plans/`. Rollouts: `executor.rollout.rollout` with
`WaveHooks` mapped to the TUI's events (the safety loop runs inside `rollout()`, as for the CLI).
Approvals go through `approvals.record_approval` with the real policy. Keys, the audit log and the active
model come from their modules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from patchbrain import config
from patchbrain.approvals import sign_authorship
from patchbrain.audit import open_audit_log
from patchbrain.errors import PatchbrainError
from patchbrain.feeds.cvestore import CveStore
from patchbrain.inventory import load_hosts
from patchbrain.journal import Journal
from patchbrain.keys import KeyStore
from patchbrain.models import Host
from patchbrain.plans import Plan, dump_plan, load_plan, make_plan, updates_from_discovery
from patchbrain.store import Store
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
    PostureSource,
    Refused,
    RolloutEnd,
    RolloutEvent,
    TaskEvent,
    Unavailable,
    WaveState,
    WaveView,
)

_APPROVAL_TTL = dt.timedelta(hours=8)
_STATUS = {
    "TaskStarted": "started",
    "TaskOk": "ok",
    "TaskChanged": "changed",
    "TaskSkipped": "skipped",
    "TaskFailed": "failed",
    "HostUnreachable": "unreachable",
}


class RealBackend:
    """Reads and drives this machine's patchbrain state."""

    def __init__(
        self, inventory: Path | None = None, store: Store | None = None, author_key: str | None = None
    ) -> None:
        self._inventory = inventory
        self._store = store
        # Plans made here are signed by this key as their author (it then cannot approve them).
        self._author_key = (
            author_key if author_key is not None else os.environ.get("PATCHBRAIN_TUI_AUTHOR_KEY")
        )
        self._hosts: dict[str, Host] = {}
        self._discovered: dict[str, Mapping[str, Any]] = {}
        self._plan: Plan | None = None
        self._plan_view: PlanView | None = None
        self._plan_file: Path | None = None

    def store(self) -> Store:
        if self._store is None:
            self._store = Store()
        return self._store

    def inventory(self) -> Path:
        if self._inventory is not None:
            return self._inventory
        from patchbrain.lab import running_inventory

        found = running_inventory()
        if found is None:
            raise Unavailable("no inventory: start patchbrain-tui with -i INVENTORY, or bring the lab up")
        return found

    def _discovery(self) -> tuple[str, dict[str, Mapping[str, Any]]] | None:
        latest = Journal(self.store()).latest_discovery()
        if latest is None:
            return None
        _taken, inventory, doc = latest
        return inventory, {str(h["host"]): h for h in doc.get("hosts", [])}

    def fleet(self) -> list[HostRow]:
        try:
            hosts = load_hosts(self.inventory())
        except PatchbrainError as exc:
            raise Unavailable(str(exc)) from exc
        found = self._discovery()
        self._discovered = found[1] if found else {}
        self._hosts = {h.name: h for h in hosts}
        outcome, posture = self._last_rollout()
        rows = []
        for h in hosts:
            row = _row(h, self._discovered.get(h.name))
            # the source is read from the host's own snapshot: simulated where it carried the lab
            # stand-in's marker /etc/selinux/SIMULATED
            selinux, firewall, source = posture.get(h.name, ("?", "?", "unknown"))
            rows.append(
                dataclasses.replace(
                    row,
                    last_outcome=outcome.get(h.name, ""),
                    selinux=selinux,
                    firewall=firewall,
                    posture_source=source,
                )
            )
        return rows

    def _last_rollout(self) -> tuple[dict[str, str], dict[str, tuple[str, str, PostureSource]]]:
        """Host states of the latest plan run, and each host's latest posture snapshot (post, else pre)."""
        journal = Journal(self.store())
        ids = journal.plan_ids(1)
        record = journal.plan(ids[0]) if ids else None
        if record is None:
            return {}, {}
        posture: dict[str, tuple[str, str, PostureSource]] = {}
        for wave in record.waves:
            docs = journal.snapshots(record.plan_id, wave.wave, "post") or journal.snapshots(
                record.plan_id, wave.wave, "pre"
            )
            for host, doc in docs.items():
                posture[host] = posture_summary(host, doc)
        return dict(record.hosts), posture

    def host_detail(self, name: str) -> HostDetail:
        host = self._hosts.get(name)
        if host is None:
            raise Unavailable(f"no host named {name}")
        doc = self._discovered.get(name) or {}
        pending = tuple(
            PendingView(
                str(p["package"]),
                str(p.get("installed") or "-"),
                str(p["candidate"]),
                tuple(p.get("cves", ())),
                None,
            )
            for p in doc.get("pending", [])
        )
        return HostDetail(
            row=_row(host, doc or None),
            groups=host.groups,
            criticality=host.criticality,
            exposure=host.exposure,
            canary=host.canary,
            windows=tuple(str(w) for w in host.windows),
            pending=pending,
        )

    @property
    def plan(self) -> Plan | None:
        """The plan created in this session (what a rollout runs)."""
        return self._plan

    def current_plan(self) -> PlanView | None:
        return self._plan_view

    def create_plan(self) -> PlanView:
        found = self._discovery()
        if found is None:
            raise Unavailable("no discovery on record: run `patchbrain discover` first")
        inventory, docs = found
        pending = updates_from_discovery(docs.values(), CveStore(self.store()))
        if not pending:
            raise Unavailable("the latest discovery found nothing pending; nothing to plan")
        try:
            hosts = load_hosts(Path(inventory)) if Path(inventory).exists() else []
            key = KeyStore().load_private(self._author_key) if self._author_key else None
            plan = make_plan(
                pending,
                inventory=inventory,
                hosts=hosts,
                author=key.public.fingerprint if key else None,
                author_name=key.name if key else None,
            )
            if key is not None:
                plan = sign_authorship(plan, key)
            folder = config.state_dir() / "plans"
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = folder / f"{plan.plan_id}.yaml"
            path.write_text(dump_plan(plan), encoding="utf-8")
            plan = load_plan(path)  # as approvers see it: the file's exact bytes are what gets signed
        except PatchbrainError as exc:
            raise Refused(str(exc)) from exc
        self._plan, self._plan_view, self._plan_file = plan, plan_view(plan), path
        return self._plan_view

    def approvals(self) -> list[ApprovalView]:
        plan = self._plan
        if plan is None:
            return []
        return [self._approval_view(plan)]

    def _approval_view(self, plan: Plan, refusals: tuple[tuple[str, str], ...] = ()) -> ApprovalView:
        from patchbrain.approvals import check_approvals, gather, policy_from_env

        entries = len({(p.name, p.version) for h in plan.hosts.values() for p in h.packages})
        try:
            verdict = check_approvals(
                plan,
                gather(plan, self.store(), self._plan_file),
                keystore=KeyStore(),
                policy=policy_from_env(),
            )
        except PatchbrainError as exc:
            return ApprovalView(plan.plan_id, len(plan.hosts), entries, (), 1, f"refused: {exc}", refusals)
        names = tuple(str(v.get("approver", "?")) for v in verdict.valid)
        state = "approved" if verdict.ok else f"waiting: {len(names)} of {verdict.required} approvals"
        return ApprovalView(plan.plan_id, len(plan.hosts), entries, names, verdict.required, state, refusals)

    def approve(self, plan_id: str, key_name: str) -> ApprovalView:
        from patchbrain.approvals import policy_from_env, record_approval
        from patchbrain.audit import default_actor

        plan = self._plan
        if plan is None or plan.plan_id != plan_id:
            raise Refused(f"no plan {plan_id} in this session")
        keystore = KeyStore()
        try:
            key = keystore.load_private(key_name)
        except PatchbrainError as exc:
            open_audit_log(self.store()).append(
                default_actor(), "plan.approve.refused", plan_id, {"key": key_name, "reason": str(exc)}
            )
            raise Refused(str(exc)) from exc
        try:
            record_approval(
                plan,
                key,
                keystore=keystore,
                store=self.store(),
                plan_file=self._plan_file,
                ttl=_APPROVAL_TTL,
                policy=policy_from_env(),
            )
        except PatchbrainError as exc:
            raise Refused(str(exc)) from exc
        return self._approval_view(plan)

    def key_names(self) -> list[str]:
        return [k.name for k in KeyStore().list() if k.has_private and k.problem is None]

    def rollout(
        self, plan_id: str, emit: Callable[[RolloutEvent], None], cancel: Callable[[], bool]
    ) -> RolloutEnd:
        from patchbrain.executor.rollout import RolloutOptions, WaveHooks, rollout

        plan = self._plan
        if plan is None or plan.plan_id != plan_id:
            raise Refused(f"no plan {plan_id} in this session")
        inventory = Path(plan.inventory) if Path(plan.inventory).exists() else self.inventory()
        hooks = WaveHooks(
            on_wave_state=lambda index, state: emit(WaveState(index + 1, state)),
            on_host_state=lambda host, state, detail: emit(
                HostState(plan.wave_of(host) + 1, host, state, detail)
            ),
            on_event=lambda ev: emit(
                TaskEvent(
                    plan.wave_of(ev.host) + 1 if ev.host in plan.hosts else 0,
                    ev.host,
                    ev.task,
                    _STATUS.get(type(ev).__name__, type(ev).__name__),
                    {"type": type(ev).__name__, **dataclasses.asdict(ev)},
                )
            ),
            cancel=cancel,
        )
        try:
            result = rollout(
                plan, inventory=inventory, store=self.store(), hooks=hooks, options=RolloutOptions()
            )
        except PatchbrainError as exc:
            raise Refused(str(exc)) from exc
        for finding in drift_findings(result.waves):
            emit(finding)
        states = {h.host: h.state for w in result.waves for h in w.hosts}
        restored = tuple(h for h, s in states.items() if s == "restored")
        not_restored = tuple(h for h, s in states.items() if s == "not_restored")
        state = "done" if result.state == "done" else result.state
        reason = result.halt.reason if result.halt is not None else ""
        return RolloutEnd(plan_id, state, reason, restored, not_restored)

    def audit(self, limit: int = 500) -> tuple[list[AuditRow], AuditStatus]:
        log = open_audit_log(self.store())
        result = log.verify()
        records = list(log.records(after_seq=max(0, result.last_seq - limit)))
        rows = [AuditRow(r.seq, r.time, r.actor, r.action, r.subject) for r in records]
        problems = (result.problem.detail,) if result.problem is not None else ()
        return rows, AuditStatus(result.ok, result.records, result.last_hash, problems + result.notes)

    def model(self) -> ModelInfo:
        from patchbrain.prioritizer.governance import active_bundle

        try:
            bundle = active_bundle(self._store)
        except PatchbrainError as exc:
            raise Unavailable(f"no usable model: {exc}") from exc
        return model_info(bundle.bundle_id, bundle.metadata, bundle.booster)


def drift_findings(waves: Any) -> list[DriftFinding]:
    """The safety loop's blocking drift changes (after the wave and after the bake) as TUI findings."""
    out = []
    for outcome in waves:
        safety = outcome.extra.get("safety") if isinstance(outcome.extra, Mapping) else None
        if not isinstance(safety, Mapping):
            continue
        changes: list[Any] = []
        for phase in ("drift", "bake"):
            found = safety.get(phase)
            if isinstance(found, Mapping) and isinstance(found.get("blocking"), list):
                changes += found["blocking"]
        for change in changes:
            if isinstance(change, Mapping):
                out.append(
                    DriftFinding(
                        outcome.index + 1,
                        str(change.get("host", "?")),
                        str(change.get("kind", "?")),
                        f"{change.get('effect', '?')}: {change.get('reason', '')}",
                    )
                )
    return out


def posture_summary(host: str, doc: Any) -> tuple[str, str, PostureSource]:
    """(SELinux runtime mode, `fw drop` or `fw accept`: the input base chains' policy, and where the
    SELinux reading comes from: `simulated` when the snapshot carried the lab stand-in's marker, `real`
    otherwise, `unknown` when the snapshot cannot be read) from a snapshot."""
    from patchbrain.posture.snapshot import parse_document

    try:
        snap = parse_document(doc, host=host)
    except PatchbrainError:
        return "?", "?", "unknown"
    selinux = (snap.selinux.runtime_mode or "?") if snap.selinux is not None else "absent"
    source: PostureSource = "simulated" if snap.selinux is not None and snap.selinux.simulated else "real"
    inputs = [
        chain
        for table in snap.ruleset.tables
        for chain in table.chains
        if chain.hook == "input" and chain.type == "filter"
    ]
    policies = {chain.policy or "accept" for chain in inputs}
    # a packet must pass every input base chain: one dropping by policy makes the default drop
    firewall = "fw none" if not policies else ("fw drop" if "drop" in policies else "fw accept")
    if any(not r.constraints and r.verdict == "accept" for chain in inputs for r in chain.rules):
        firewall = "fw accept (rule accepts all)"  # an unconditional accept voids a drop policy
    return selinux, firewall, source


def plan_view(plan: Plan) -> PlanView:
    """Entries: one per package version, ranked by the plan's own risk scores (then CVEs, hosts); waves
    with the schedule the planner gave them (earliest start inside every member's window, after the
    previous wave; bake; failures allowed)."""
    groups: dict[tuple[str, str], tuple[set[str], set[str], list[tuple[float, str]]]] = {}
    disputes: dict[tuple[str, str], set[str]] = {}
    for h in plan.hosts.values():
        for p in h.packages:
            hosts, cves, scored = groups.setdefault((p.name, p.version), (set(), set(), []))
            hosts.add(h.host)
            cves.update(p.cves)
            scored.append((p.risk, p.explanation))
            disputes.setdefault((p.name, p.version), set()).update(
                line for line in p.fix_summary() if " DISPUTED " in line
            )
    ranked = sorted(groups.items(), key=lambda kv: (-max(kv[1][2])[0], -len(kv[1][1]), -len(kv[1][0]), kv[0]))
    entries = []
    for rank, ((name, version), (hosts, cves, scored)) in enumerate(ranked, start=1):
        risk, why = max(scored)  # the host where this update matters most
        entries.append(
            PlanEntry(
                rank,
                name,
                version,
                len(hosts),
                round(risk / 100.0, 4),  # plans keep risk as 0..100; the TUI shows 0..1
                tuple(sorted(cves)),
                KEV_MARK in why,
                tuple(
                    t
                    for t in (
                        f"fixes {len(cves)} CVE(s) on {len(hosts)} host(s)",
                        *sorted(disputes.get((name, version), ())),
                        why,
                        plan.ranking,
                    )
                    if t
                ),
            )
        )
    waves = tuple(WaveView(i + 1, w, _wave_when(plan, i)) for i, w in enumerate(plan.waves))
    return PlanView(plan.plan_id, plan.created.isoformat(timespec="seconds"), "new", tuple(entries), waves)


KEV_MARK = "known exploited (KEV)"  # how patchbrain.plan_scores explains a KEV-listed update


def _wave_when(plan: Plan, index: int) -> str:
    sched = plan.wave_schedule(index)
    when = (
        f"not before {sched.earliest_start.isoformat(timespec='minutes')}"
        if sched.earliest_start is not None
        else "any time (no window)"
    )
    extras: list[str] = [sched.kind]
    if sched.bake_s:
        extras.append(f"bake {sched.bake_s} s")
    extras.append(f"{sched.max_failures} may fail")
    return f"{when}; {', '.join(extras)}"


def model_info(bundle_id: str, meta: dict[str, Any], booster: Any) -> ModelInfo:
    """Version, validation metrics (model beside the CVSS sort) and gain importance shares."""
    val = meta.get("validation", {})
    model, cvss = val.get("model", {}), val.get("cvss_baseline", {})
    metrics: list[tuple[str, str]] = []
    for key, label in (("average_precision", "avg precision"), ("recall_top5pct", "recall in top 5%")):
        if key in model:
            metrics.append((label, f"{model[key]:.3f} (CVSS sort {cvss.get(key, float('nan')):.3f})"))
    if "ap_ratio_to_cvss" in val:
        metrics.append(("AP ratio to CVSS", f"{val['ap_ratio_to_cvss']:.2f}x"))
    window = meta.get("training", {}).get("window")
    if window:
        metrics.append(("training window", str(window)))
    gains = booster.feature_importance(importance_type="gain")
    names = booster.feature_name()
    total = float(sum(gains)) or 1.0
    top = sorted(zip(names, (float(g) / total for g in gains), strict=True), key=lambda t: -t[1])[:8]
    return ModelInfo(
        version=f"{bundle_id} (patchbrain {meta.get('patchbrain_version', '?')})",
        trained=str(meta.get("created", "?")),
        lightgbm=str(meta.get("lightgbm_version", "?")),
        metrics=tuple(metrics),
        top_features=tuple(top),
    )


def _row(host: Host, doc: Mapping[str, Any] | None) -> HostRow:
    release = f"{doc.get('distribution', '')} {doc.get('release', '')}".strip() if doc else "?"
    return HostRow(
        name=host.name,
        group=host.groups[0] if host.groups else "ungrouped",
        address=host.address,
        os_release=release or "?",
        pkg_mgr=host.pkg_mgr or (str(doc.get("pkg_mgr")) if doc else "?"),
        pending=len(doc.get("pending", [])) if doc else None,
        highest_risk=None,
        selinux="?",
        firewall="?",
        posture_source="unknown",
    )
