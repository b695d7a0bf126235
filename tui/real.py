"""The backend over patchbrain's public API.

Fleet (inventory), keys and the audit log come from what patchbrain has today. Discovery results, plans,
approvals, rollouts and the model answer `Unavailable` with the reason until those parts land; the screens
show that reason instead of made-up data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from patchbrain.audit import open_audit_log
from patchbrain.errors import PatchbrainError
from patchbrain.inventory import load_hosts
from patchbrain.keys import KeyStore
from patchbrain.models import Host
from patchbrain.store import Store
from tui.backend import (
    ApprovalView,
    AuditRow,
    AuditStatus,
    HostDetail,
    HostRow,
    ModelInfo,
    PlanView,
    RolloutEnd,
    RolloutEvent,
    Unavailable,
)

_NOT_YET = "not available yet: {what} has not landed in patchbrain"


class RealBackend:
    """Reads the inventory, keys and audit log of this machine's patchbrain state."""

    def __init__(self, inventory: Path | None = None, store: Store | None = None) -> None:
        self._inventory = inventory
        self._store = store
        self._hosts: dict[str, Host] = {}

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

    def fleet(self) -> list[HostRow]:
        try:
            hosts = load_hosts(self.inventory())
        except PatchbrainError as exc:
            raise Unavailable(str(exc)) from exc
        self._hosts = {h.name: h for h in hosts}
        return [_row(h) for h in hosts]

    def host_detail(self, name: str) -> HostDetail:
        host = self._hosts.get(name)
        if host is None:
            raise Unavailable(f"no host named {name}")
        return HostDetail(
            row=_row(host),
            groups=host.groups,
            criticality=host.criticality,
            exposure=host.exposure,
            canary=host.canary,
            windows=tuple(str(w) for w in host.windows),
            pending=(),
        )

    def current_plan(self) -> PlanView | None:
        return None

    def create_plan(self) -> PlanView:
        raise Unavailable(_NOT_YET.format(what="the planner"))

    def approvals(self) -> list[ApprovalView]:
        return []

    def approve(self, plan_id: str, key_name: str) -> ApprovalView:
        raise Unavailable(_NOT_YET.format(what="approvals"))

    def key_names(self) -> list[str]:
        return [k.name for k in KeyStore().list() if k.has_private and k.problem is None]

    def rollout(
        self, plan_id: str, emit: Callable[[RolloutEvent], None], cancel: Callable[[], bool]
    ) -> RolloutEnd:
        raise Unavailable(_NOT_YET.format(what="the executor"))

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


def _row(host: Host) -> HostRow:
    return HostRow(
        name=host.name,
        group=host.groups[0] if host.groups else "ungrouped",
        address=host.address,
        os_release="?",
        pkg_mgr=host.pkg_mgr or "?",
        pending=None,
        highest_risk=None,
        selinux="?",
        firewall="?",
        posture_source="unknown",
    )
