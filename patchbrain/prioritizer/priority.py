"""Patch priority: one risk score per (host, pending update), vectorised for millions of pairs.

For an update that fixes CVEs with exploitation probabilities p_1..p_n (the model's scores):

    p_any  = 1 - prod_i (1 - p_i)                       # P(at least one of them is exploited)
    p_eff  = 1 - (1 - p_any) * (1 - 0.9 * kev)          # kev = 1 if any of them is in the KEV catalog
    weight = ((criticality + 1) / 6) * ((exposure + 1) / 6)   # host context, each an int 1..5
    risk   = p_eff * weight                             # in [0, 1]; shown as 0..100

Every term is non-decreasing in each input (a KEV listing, a higher criticality or exposure, a higher CVE
score never lowers risk), a host's name plays no part, and ties keep the input order. An update whose
CVEs the feeds do not know uses the model's base rate for each. See docs/prioritizer.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from patchbrain.errors import BadInput
from patchbrain.models import Host, PendingUpdate

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

LEVELS = (1, 5)
KEV_WEIGHT = 0.9
_P_MAX = 1.0 - 1e-12


@dataclasses.dataclass(frozen=True, slots=True)
class HostContext:
    """What the risk formula needs of a host: how much it matters and how exposed it is (1..5 each)."""

    name: str
    criticality: int = 3
    exposure: int = 3

    def __post_init__(self) -> None:
        for field in ("criticality", "exposure"):
            _check_level(getattr(self, field), source=self.name, field=f"patchbrain_{field}")

    @classmethod
    def from_vars(cls, name: str, hostvars: Mapping[str, Any]) -> HostContext:
        """From inventory variables `patchbrain_criticality` / `patchbrain_exposure` (default 3)."""
        return cls(
            name=name,
            criticality=_check_level(
                hostvars.get("patchbrain_criticality", 3), name, "patchbrain_criticality"
            ),
            exposure=_check_level(hostvars.get("patchbrain_exposure", 3), name, "patchbrain_exposure"),
        )

    @classmethod
    def from_host(cls, host: Host) -> HostContext:
        return cls(name=host.name, criticality=host.criticality, exposure=host.exposure)

    @property
    def weight(self) -> float:
        return float(host_weight(np.array([self.criticality]), np.array([self.exposure]))[0])


def _check_level(value: Any, source: str, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise BadInput(
            f"must be an integer {LEVELS[0]}..{LEVELS[1]}, got {value!r:.40}", source=source, field=field
        )
    if not LEVELS[0] <= int(value) <= LEVELS[1]:
        raise BadInput(f"must be {LEVELS[0]}..{LEVELS[1]}, got {value}", source=source, field=field)
    return int(value)


def host_weight(criticality: npt.ArrayLike, exposure: npt.ArrayLike) -> FloatArray:
    """((c + 1) / 6) * ((e + 1) / 6): 1/9 for a 1/1 host, 1 for a 5/5 host."""
    c = np.asarray(criticality, dtype=np.float64)
    e = np.asarray(exposure, dtype=np.float64)
    return np.asarray(((c + 1.0) / 6.0) * ((e + 1.0) / 6.0), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class PairRisk:
    """Per pair: P(any CVE exploited), KEV flag, and the risk."""

    p_any: FloatArray
    kev: npt.NDArray[np.bool_]
    risk: FloatArray


def _segment_sum(values: FloatArray, offsets: IntArray) -> FloatArray:
    """Sum of values[offsets[i]:offsets[i+1]] for each i (0 for an empty segment), exact per segment.

    reduceat needs every start inside the array, so a 0 is appended for segments that start at its end."""
    if len(offsets) <= 1:
        return np.zeros(0, dtype=np.float64)
    starts = offsets[:-1]
    sums = np.add.reduceat(np.append(values, 0.0), starts)
    sums[offsets[1:] == starts] = 0.0
    return np.asarray(sums, dtype=np.float64)


def _segment_any(values: npt.NDArray[np.bool_], offsets: IntArray) -> npt.NDArray[np.bool_]:
    """Whether any of values[offsets[i]:offsets[i+1]] is true (False for an empty segment)."""
    if len(offsets) <= 1:
        return np.zeros(0, dtype=bool)
    starts = offsets[:-1]
    out = np.logical_or.reduceat(np.append(values, False), starts)
    out[offsets[1:] == starts] = False
    return np.asarray(out, dtype=bool)


def pair_risk(
    cve_p: npt.ArrayLike,
    cve_kev: npt.ArrayLike,
    offsets: npt.ArrayLike,
    criticality: npt.ArrayLike,
    exposure: npt.ArrayLike,
) -> PairRisk:
    """Risk of n pairs; pair i's CVEs are cve_p[offsets[i]:offsets[i+1]] (CSR layout, n + 1 offsets)."""
    p = np.clip(np.asarray(cve_p, dtype=np.float64), 0.0, _P_MAX)
    k = np.asarray(cve_kev, dtype=bool)
    off = np.asarray(offsets, dtype=np.int64)
    if p.shape != k.shape or off.ndim != 1 or len(off) < 1 or off[0] != 0 or off[-1] != len(p):
        raise ValueError("offsets must start at 0, end at len(cve_p), and cve_p/cve_kev must match")
    if np.any(np.diff(off) < 0):
        raise ValueError("offsets must be non-decreasing")
    p_any = -np.expm1(_segment_sum(np.log1p(-p), off))
    kev = _segment_any(k, off)
    p_eff = 1.0 - (1.0 - p_any) * (1.0 - KEV_WEIGHT * kev)
    risk = p_eff * host_weight(criticality, exposure)
    return PairRisk(p_any=np.asarray(p_any), kev=kev, risk=np.asarray(risk, dtype=np.float64))


def rank(risk: FloatArray) -> npt.NDArray[np.intp]:
    """Indices, most urgent first; ties keep input order."""
    return np.argsort(-np.asarray(risk), kind="stable")


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateRisk:
    """One (host, pending update) with its risk and what drives it."""

    host: str
    package: str
    candidate: str
    cves: tuple[str, ...]
    cve_scores: tuple[float, ...]
    kev_cves: tuple[str, ...]
    p_any: float
    risk: float

    @property
    def risk_100(self) -> float:
        return round(100.0 * self.risk, 2)


def score_updates(
    hosts: Mapping[str, HostContext],
    updates: Sequence[PendingUpdate],
    cve_scores: Mapping[str, float],
    kev_ids: set[str] | frozenset[str],
    *,
    unknown_p: float,
) -> list[UpdateRisk]:
    """Risk of every (host, update), most urgent first. BadInput if an update names an unknown host."""
    offsets = np.zeros(len(updates) + 1, dtype=np.int64)
    ps: list[float] = []
    ks: list[bool] = []
    crit = np.empty(len(updates), dtype=np.int64)
    expo = np.empty(len(updates), dtype=np.int64)
    for i, u in enumerate(updates):
        ctx = hosts.get(u.host)
        if ctx is None:
            raise BadInput("pending update for a host with no context", source=u.host, field="host")
        crit[i], expo[i] = ctx.criticality, ctx.exposure
        for c in u.cves:
            ps.append(float(cve_scores.get(c, unknown_p)))
            ks.append(c in kev_ids)
        offsets[i + 1] = len(ps)
    pr = pair_risk(np.array(ps), np.array(ks, dtype=bool), offsets, crit, expo)
    out = []
    for i in rank(pr.risk):
        u = updates[i]
        scores = tuple(ps[offsets[i] : offsets[i + 1]])
        out.append(
            UpdateRisk(
                host=u.host,
                package=u.package,
                candidate=u.candidate,
                cves=u.cves,
                cve_scores=scores,
                kev_cves=tuple(c for c in u.cves if c in kev_ids),
                p_any=float(pr.p_any[i]),
                risk=float(pr.risk[i]),
            )
        )
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class HostExplanation:
    """Why a host's pending updates rank as they do, in words."""

    host: str
    criticality: int
    exposure: int
    weight: float
    risk: float
    lines: tuple[str, ...]
    updates: tuple[UpdateRisk, ...]


def explain_host(
    host: HostContext,
    updates: Sequence[PendingUpdate],
    *,
    cve_scores: Mapping[str, float],
    kev_ids: set[str] | frozenset[str],
    unknown_p: float,
    top: int = 5,
) -> HostExplanation:
    """The planner's host explanation: the host's weight, then its riskiest updates and their CVEs."""
    mine = [u for u in updates if u.host == host.name]
    risks = score_updates({host.name: host}, mine, cve_scores, kev_ids, unknown_p=unknown_p)
    lines = [
        f"{host.name}: criticality {host.criticality}/5, exposure {host.exposure}/5 -> host weight "
        f"{host.weight:.2f} (1.00 for the most critical, most exposed host)"
    ]
    for r in risks[:top]:
        ranked = sorted(zip(r.cves, r.cve_scores, strict=True), key=lambda t: (-t[1], t[0]))
        worst = ", ".join(f"{c} ({p:.3f}{', KEV' if c in r.kev_cves else ''})" for c, p in ranked[:3])
        why = "listed as known exploited (KEV)" if r.kev_cves else f"P(any CVE exploited) {r.p_any:.3f}"
        lines.append(
            f"{r.package} {r.candidate}: risk {r.risk_100:.1f}/100, {why}; fixes {len(r.cves)} CVE(s)"
            + (f", chiefly {worst}" if worst else "")
        )
    if not risks:
        lines.append("no pending update")
    total = -np.expm1(np.sum(np.log1p(-np.clip([r.risk for r in risks], 0.0, _P_MAX)))) if risks else 0.0
    return HostExplanation(
        host=host.name,
        criticality=host.criticality,
        exposure=host.exposure,
        weight=host.weight,
        risk=float(total),
        lines=tuple(lines),
        updates=tuple(risks),
    )
