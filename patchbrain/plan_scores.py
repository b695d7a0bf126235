"""Risk scores for the planner from the prioritizer (issue 11): CVE scores (`patchbrain model score`
output: `cve_id,score` CSV) and KEV membership through `prioritizer.priority`'s documented formula.

The planner only sees a `Scorer`; this module is where scores come from. Without CVE scores the plan uses
`plans.fallback_scorer`, labelled as such in the plan's `ranking`.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from patchbrain.errors import BadInput
from patchbrain.models import Host, PendingUpdate
from patchbrain.planner import Scorer, UpdateScore


def read_cve_scores(path: Path) -> dict[str, float]:
    """`cve_id,score` rows (header first), scores in [0, 1]; BadInput names the line."""
    from patchbrain import pkgspec

    out: dict[str, float] = {}
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = csv.reader(f)
            header = next(rows, None)
            if header != ["cve_id", "score"]:
                raise BadInput("expected the header cve_id,score", source=str(path))
            for number, row in enumerate(rows, start=2):
                if len(row) != 2 or not pkgspec.is_cve(row[0]):
                    raise BadInput("expected CVE-YYYY-NNNN,score", source=f"{path}:{number}")
                try:
                    p = float(row[1])
                except ValueError:
                    p = -1.0
                if not 0.0 <= p <= 1.0:
                    raise BadInput("score must be a number in [0, 1]", source=f"{path}:{number}")
                out[row[0]] = p
    except OSError as exc:
        raise BadInput(f"cannot read ({exc.strerror})", source=str(path), field="--cve-scores") from exc
    return out


def prioritizer_scorer(
    hosts: Mapping[str, Host],
    cve_scores: Mapping[str, float],
    kev_ids: frozenset[str],
    *,
    unknown_p: float,
) -> Scorer:
    """Risk of each (host, update) by `prioritizer.priority.score_updates`, explained in words."""
    from patchbrain.prioritizer.priority import HostContext, score_updates

    def score(u: PendingUpdate) -> UpdateScore:
        h = hosts.get(u.host)
        ctx = HostContext(u.host, h.criticality, h.exposure) if h else HostContext(u.host)
        [r] = score_updates({u.host: ctx}, [u], cve_scores, kev_ids, unknown_p=unknown_p)
        ranked = sorted(zip(r.cves, r.cve_scores, strict=True), key=lambda t: (-t[1], t[0]))
        worst = ", ".join(f"{c} {p:.3f}{' KEV' if c in r.kev_cves else ''}" for c, p in ranked[:3])
        why = "listed as known exploited (KEV)" if r.kev_cves else f"P(any CVE exploited) {r.p_any:.3f}"
        return UpdateScore(
            min(1.0, max(0.0, r.risk)),
            f"{why}; host weight {ctx.weight:.2f} (criticality {ctx.criticality}/5, exposure "
            f"{ctx.exposure}/5)" + (f"; chiefly {worst}" if worst else "; fixes no known CVE"),
        )

    return score


def active_base_rate() -> tuple[float, str]:
    """The active model's base rate (for CVEs without a score) and its id."""
    from patchbrain.prioritizer.governance import Registry

    registry = Registry()
    try:
        bundle = registry.active()
        return float(bundle.base_rate), registry.active_id()
    except Exception:  # no promoted model: the shipped default
        from patchbrain.prioritizer.bundle import default_bundle_dir, load_bundle

        return float(load_bundle(default_bundle_dir()).base_rate), "default model"
