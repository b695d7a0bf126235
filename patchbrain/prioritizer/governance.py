"""Governance against model poisoning: the golden set, the promotion gate, approvals, promote and revert.

- The golden set is a fixed slice of real NVD 1.1 records with their KEV labels, shipped in the package and
  pinned by the SHA-256 values below (a swapped golden file is refused). Its records were published before
  the training window (2010-2014) and `model train` leaves them out whatever the window, so the gate
  measures how a model generalises, which is what poisoning damages.
- `validate(candidate, current)` is the gate: the candidate must not regress on the golden set beyond a
  tolerance versus the current model, its predictions must not shift abnormally, and more severity must
  never lower its score. Each failed check is a `Reason` with a code.
- `promote` runs the gate, then needs valid signatures over the candidate's `metadata.json` (which pins
  `model.txt` by hash) from two distinct approvers' keys; it copies the bundle into the state dir and moves
  the active-model pointer (a table in the store). `revert` moves the pointer back one step.
- Every step is written to the audit log.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import logging
import shutil
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from patchbrain import config
from patchbrain.errors import BadInput, RefusedByPolicy
from patchbrain.feeds.records import CveRecord
from patchbrain.prioritizer import evaluate
from patchbrain.prioritizer import features as F
from patchbrain.prioritizer.bundle import (
    METADATA_FILE,
    MODEL_FILE,
    Bundle,
    load_bundle,
    load_default,
    sha256_bytes,
)
from patchbrain.prioritizer.predict import score_matrix
from patchbrain.store import Store

log = logging.getLogger(__name__)

GOLDEN_NVD = "nvd-golden.json.gz"
GOLDEN_LABELS = "labels.csv"
# Pinned here, in code, so replacing the packaged files is detected. scripts/build_golden.py prints them.
GOLDEN_SHA256 = {
    GOLDEN_NVD: "e9676ca95c6be4a46bcd12f90109531865c4cb9bb5b6dc7e60615d120a50e058",
    GOLDEN_LABELS: "e430da748fcfcef4dd9ac02c633b1891567fddf12c3678de81e4bfc72b735ac2",
}

# Gate tolerances (see docs/prioritizer.md for how they were calibrated).
AP_RELATIVE_TOLERANCE = 0.20  # candidate AP >= (1 - 0.20) * current AP
RECALL_TOLERANCE = 0.10  # candidate recall in the top 5% >= current - 0.10
MIN_RANK_CORRELATION = 0.80  # Spearman correlation of golden-set scores, candidate vs current
MAX_KEV_PERCENTILE_DROP = 0.10  # median percentile of the golden KEV CVEs may not fall by more
MONOTONE_SLACK = 1e-9
SIGNATURE_GLOB = f"{METADATA_FILE}.sig.*"
REQUIRED_APPROVERS = 2
DEFAULT_ID = "default"


class GateRefused(RefusedByPolicy):
    """The gate refused a candidate; `result` holds the reasons."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        super().__init__("model refused: " + "; ".join(f"{r.code}: {r.message}" for r in result.reasons))


@dataclasses.dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str


@dataclasses.dataclass(frozen=True)
class GateResult:
    """The gate's verdict, with the numbers behind it."""

    candidate: str
    current: str
    passed: bool
    reasons: tuple[Reason, ...]
    candidate_metrics: dict[str, Any]
    current_metrics: dict[str, Any]
    shift: dict[str, float]
    golden: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- golden set ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GoldenSet:
    """Real records with trusted labels, and the hashes they were checked against."""

    records: tuple[CveRecord, ...]
    labels: npt.NDArray[np.float64]
    sha256: dict[str, str]

    @property
    def cve_ids(self) -> list[str]:
        return [r.cve_id for r in self.records]


def _golden_dir() -> Path:
    return Path(str(resources.files("patchbrain.prioritizer") / "golden"))


def load_golden(directory: Path | None = None, expected: dict[str, str] | None = None) -> GoldenSet:
    """The golden set, verified against its pinned hashes (RefusedByPolicy if a file differs)."""
    from patchbrain.feeds.nvd import iter_nvd11

    directory = Path(directory) if directory is not None else _golden_dir()
    expected = GOLDEN_SHA256 if expected is None else expected
    hashes: dict[str, str] = {}
    for name in (GOLDEN_NVD, GOLDEN_LABELS):
        path = directory / name
        if not path.is_file():
            raise BadInput("the golden set is missing", source=str(path))
        hashes[name] = sha256_bytes(path.read_bytes())
        if hashes[name] != expected.get(name):
            raise RefusedByPolicy(
                f"{path}: golden set file has SHA-256 {hashes[name]}, expected {expected.get(name)!r}"
            )
    labels: dict[str, float] = {}
    text = (directory / GOLDEN_LABELS).read_text(encoding="utf-8")
    for row in csv.DictReader(io.StringIO(text)):
        labels[row["cve_id"]] = float(row["in_kev"])
    records = tuple(sorted((r for r in iter_nvd11(directory / GOLDEN_NVD)), key=lambda r: r.cve_id))
    if {r.cve_id for r in records} != set(labels):
        raise RefusedByPolicy(f"{directory}: golden records and labels name different CVEs")
    return GoldenSet(records, np.array([labels[r.cve_id] for r in records]), hashes)


def golden_ids(directory: Path | None = None) -> frozenset[str]:
    """The golden set's CVE ids (from its pinned labels file), which training leaves out."""
    directory = Path(directory) if directory is not None else _golden_dir()
    data = (directory / GOLDEN_LABELS).read_bytes()
    if sha256_bytes(data) != GOLDEN_SHA256[GOLDEN_LABELS]:
        raise RefusedByPolicy(f"{directory / GOLDEN_LABELS}: golden set file does not match its pinned hash")
    return frozenset(row["cve_id"] for row in csv.DictReader(io.StringIO(data.decode("utf-8"))))


@cache
def _golden_default() -> GoldenSet:
    return load_golden()


# --- the gate --------------------------------------------------------------------------------------------


def _spearman(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    ra = _percentile_ranks(a)
    rb = _percentile_ranks(b)
    if np.std(ra) == 0 or np.std(rb) == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _percentile_ranks(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Average-rank percentiles in [0, 1] (ties share their mean rank)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = sums[inv] / counts[inv]
    return ranks / max(len(x) - 1, 1)


def _monotone_violations(bundle: Bundle, x: npt.NDArray[np.float64]) -> int:
    """Rows whose score falls when one monotone (severity) feature is raised by one step."""
    base = score_matrix(bundle, x)
    bad = np.zeros(len(x), dtype=bool)
    for j, feat in enumerate(F.FEATURES):
        if feat.monotone != 1:
            continue
        col = x[:, j]
        present = ~np.isnan(col)
        if not present.any():
            continue
        bumped = x.copy()
        bumped[present, j] = col[present] + (0.5 if feat.name.endswith(("score", "exploitability")) else 1.0)
        after = score_matrix(bundle, bumped)
        bad |= present & (after < base - MONOTONE_SLACK)
    return int(bad.sum())


def validate(candidate: Bundle, current: Bundle, golden: GoldenSet | None = None) -> GateResult:
    """Run the gate: metric regression, prediction shift, monotonicity. Never raises for a bad candidate."""
    golden = golden if golden is not None else _golden_default()
    y = golden.labels
    x_cand = F.matrix(golden.records, candidate.vocab)
    x_cur = F.matrix(golden.records, current.vocab)
    s_cand = score_matrix(candidate, x_cand)
    s_cur = score_matrix(current, x_cur)
    m_cand = evaluate.metrics(y, s_cand)
    m_cur = evaluate.metrics(y, s_cur)
    reasons: list[Reason] = []

    floor = (1.0 - AP_RELATIVE_TOLERANCE) * m_cur.average_precision
    if m_cand.average_precision < floor:
        reasons.append(
            Reason(
                "metric-regression:average_precision",
                f"golden-set average precision {m_cand.average_precision:.4f} < {floor:.4f} "
                f"(current {m_cur.average_precision:.4f}, tolerance {AP_RELATIVE_TOLERANCE:.0%})",
            )
        )
    if m_cand.recall_top5pct < m_cur.recall_top5pct - RECALL_TOLERANCE:
        reasons.append(
            Reason(
                "metric-regression:recall_top5pct",
                f"golden-set KEV recall in the top 5% {m_cand.recall_top5pct:.3f} < current "
                f"{m_cur.recall_top5pct:.3f} - {RECALL_TOLERANCE}",
            )
        )
    rho = _spearman(s_cand, s_cur)
    pc, pu = _percentile_ranks(s_cand), _percentile_ranks(s_cur)
    pos = y == 1
    kev_drop = float(np.median(pu[pos]) - np.median(pc[pos])) if pos.any() else 0.0
    mean_shift = float(np.mean(np.abs(pc - pu)))
    if rho < MIN_RANK_CORRELATION:
        reasons.append(
            Reason(
                "prediction-shift:rank-correlation",
                f"golden-set scores correlate {rho:.3f} with the current model's "
                f"(minimum {MIN_RANK_CORRELATION})",
            )
        )
    if kev_drop > MAX_KEV_PERCENTILE_DROP:
        reasons.append(
            Reason(
                "prediction-shift:kev-demoted",
                f"the golden KEV CVEs' median percentile fell by {kev_drop:.3f} "
                f"(maximum {MAX_KEV_PERCENTILE_DROP})",
            )
        )
    violations = _monotone_violations(candidate, x_cand)
    if violations:
        reasons.append(
            Reason(
                "behaviour:monotonicity",
                f"{violations} golden CVEs score lower when a severity feature is raised",
            )
        )
    return GateResult(
        candidate=candidate.bundle_id,
        current=current.bundle_id,
        passed=not reasons,
        reasons=tuple(reasons),
        candidate_metrics=m_cand.as_dict(),
        current_metrics=m_cur.as_dict(),
        shift={
            "rank_correlation": rho,
            "mean_percentile_shift": mean_shift,
            "kev_median_percentile_drop": kev_drop,
        },
        golden={"records": len(golden.records), "positives": int(y.sum()), "sha256": golden.sha256},
    )


# --- approvals -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Approval:
    key_name: str
    fingerprint: str
    signature_file: str


def signature_path(bundle_dir: Path, key_name: str) -> Path:
    return Path(bundle_dir) / f"{METADATA_FILE}.sig.{key_name}"


def sign_bundle(bundle_dir: Path, key_name: str, passphrase: bytes | None = None) -> Path:
    """Sign the bundle's metadata.json with key `key_name`; writes metadata.json.sig.<key_name>."""
    from patchbrain.keys import KeyStore, sign

    bundle = load_bundle(Path(bundle_dir))
    data = (Path(bundle_dir) / METADATA_FILE).read_bytes()
    if sha256_bytes(data) != bundle.metadata_sha256:
        raise RefusedByPolicy(f"{bundle_dir}: {METADATA_FILE} changed while it was being signed")
    key = KeyStore().load_private(key_name, passphrase)
    out = signature_path(Path(bundle_dir), key_name)
    out.write_bytes(sign(key, data))
    return out


def verify_approvals(bundle_dir: Path, extra: Sequence[Path] = ()) -> list[Approval]:
    """Every signature over the bundle's metadata.json; RefusedByPolicy on any invalid one or on fewer than
    two distinct approvers' keys."""
    from patchbrain.keys import KeyStore, SignatureError, decode_signature, verify

    bundle_dir = Path(bundle_dir)
    data = (bundle_dir / METADATA_FILE).read_bytes()
    ks = KeyStore()
    approvals: dict[str, Approval] = {}
    files = sorted(bundle_dir.glob(SIGNATURE_GLOB)) + [Path(p) for p in extra]
    for sig_file in files:
        try:
            raw = sig_file.read_bytes()
        except OSError as exc:
            raise BadInput(f"cannot read signature: {exc}", source=str(sig_file)) from exc
        decoded = decode_signature(raw)
        public = ks.by_fingerprint(decoded.key_fingerprint)
        if public is None:
            raise RefusedByPolicy(f"{sig_file}: signed by unknown key {decoded.key_fingerprint}")
        try:
            verify(public, data, raw)
        except SignatureError as exc:
            raise RefusedByPolicy(f"{sig_file}: {exc}") from exc
        approvals.setdefault(public.fingerprint, Approval(public.name, public.fingerprint, str(sig_file)))
    if len(approvals) < REQUIRED_APPROVERS:
        raise RefusedByPolicy(
            f"{bundle_dir}: promotion needs signatures from {REQUIRED_APPROVERS} distinct approvers' keys "
            "over "
            f"{METADATA_FILE}, found {len(approvals)} (sign with `patchbrain model sign BUNDLE --key NAME`)"
        )
    return sorted(approvals.values(), key=lambda a: a.fingerprint)


# --- the active-model pointer ----------------------------------------------------------------------------

MIGRATIONS = [
    """
    CREATE TABLE model_pointer (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('promote', 'revert')),
        bundle_id TEXT NOT NULL,
        previous TEXT NOT NULL,
        path TEXT,
        model_sha256 TEXT,
        metadata_sha256 TEXT,
        approvers TEXT NOT NULL DEFAULT '[]'
    );
    """
]


def models_dir() -> Path:
    """Where promoted bundles are kept: <state dir>/models/<bundle id>/."""
    return config.state_dir() / "models"


class Registry:
    """The active model pointer and its history, in the store."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store if store is not None else Store()
        self.store.migrate("prioritizer", MIGRATIONS)

    def history(self) -> list[dict[str, Any]]:
        rows = self.store.connection().execute("SELECT * FROM model_pointer ORDER BY seq").fetchall()
        return [dict(r) for r in rows]

    def current(self) -> dict[str, Any] | None:
        row = (
            self.store.connection()
            .execute("SELECT * FROM model_pointer ORDER BY seq DESC LIMIT 1")
            .fetchone()
        )
        return dict(row) if row else None

    def active_id(self) -> str:
        cur = self.current()
        return str(cur["bundle_id"]) if cur else DEFAULT_ID

    def _path_of(self, bundle_id: str) -> str | None:
        row = (
            self.store.connection()
            .execute(
                "SELECT path FROM model_pointer WHERE bundle_id = ? AND path IS NOT NULL"
                " ORDER BY seq DESC LIMIT 1",
                (bundle_id,),
            )
            .fetchone()
        )
        return str(row["path"]) if row else None

    def load(self, bundle_id: str) -> Bundle:
        """A promoted bundle (or the packaged default), verified against the hashes recorded at promotion."""
        if bundle_id == DEFAULT_ID:
            return load_default()
        row = (
            self.store.connection()
            .execute(
                "SELECT * FROM model_pointer WHERE bundle_id = ? AND path IS NOT NULL"
                " ORDER BY seq DESC LIMIT 1",
                (bundle_id,),
            )
            .fetchone()
        )
        if row is None:
            raise BadInput("no such promoted model", source=bundle_id)
        bundle = load_bundle(Path(row["path"]))
        if bundle.model_sha256 != row["model_sha256"] or bundle.metadata_sha256 != row["metadata_sha256"]:
            raise RefusedByPolicy(f"{row['path']}: the promoted bundle changed on disk since its promotion")
        return bundle

    def active(self) -> Bundle:
        return self.load(self.active_id())

    def record(
        self,
        action: str,
        bundle: Bundle | None,
        bundle_id: str,
        previous: str,
        approvers: Sequence[Approval] = (),
    ) -> dict[str, Any]:
        path = self._path_of(bundle_id) if bundle is None or bundle_id == DEFAULT_ID else bundle.source
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO model_pointer(time, action, bundle_id, previous, path, model_sha256,"
                " metadata_sha256, approvers) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    dt.datetime.now(dt.UTC).isoformat(),
                    action,
                    bundle_id,
                    previous,
                    None if bundle_id == DEFAULT_ID else path,
                    bundle.model_sha256 if bundle is not None else None,
                    bundle.metadata_sha256 if bundle is not None else None,
                    json.dumps([dataclasses.asdict(a) for a in approvers], sort_keys=True),
                ),
            )
        cur = self.current()
        assert cur is not None
        return cur


def _audit(store: Store, action: str, subject: str, payload: dict[str, Any]) -> None:
    from patchbrain.audit import default_actor, open_audit_log

    open_audit_log(store).append(default_actor(), action, subject, payload)


def audit(action: str, subject: str, payload: dict[str, Any], store: Store | None = None) -> None:
    """Write one prioritizer event to the audit log."""
    _audit(
        store if store is not None else Store(), action, subject, json.loads(json.dumps(payload, default=str))
    )


def validate_bundle(
    candidate_dir: Path, *, store: Store | None = None, golden: GoldenSet | None = None
) -> GateResult:
    """Load the candidate (integrity checks) and run the gate against the active model; audited."""
    store = store if store is not None else Store()
    registry = Registry(store)
    try:
        candidate = load_bundle(Path(candidate_dir))
    except RefusedByPolicy as exc:
        audit("model.validate", str(candidate_dir), {"passed": False, "reasons": [str(exc)]}, store)
        raise
    current = registry.active()
    result = validate(candidate, current, golden)
    audit(
        "model.validate",
        candidate.bundle_id,
        {
            "passed": result.passed,
            "current": current.bundle_id,
            "reasons": [dataclasses.asdict(r) for r in result.reasons],
            "candidate_metrics": result.candidate_metrics,
            "shift": result.shift,
            "model_sha256": candidate.model_sha256,
        },
        store,
    )
    return result


def promote(
    candidate_dir: Path,
    *,
    extra_signatures: Sequence[Path] = (),
    store: Store | None = None,
    golden: GoldenSet | None = None,
) -> tuple[GateResult, dict[str, Any]]:
    """Gate, then two approvers, then copy into the state dir and move the pointer. Audited either way."""
    store = store if store is not None else Store()
    registry = Registry(store)
    result = validate_bundle(candidate_dir, store=store, golden=golden)
    if not result.passed:
        audit("model.promote.refused", result.candidate, {"reasons": [r.code for r in result.reasons]}, store)
        raise GateRefused(result)
    try:
        approvals = verify_approvals(Path(candidate_dir), extra_signatures)
    except RefusedByPolicy as exc:
        audit("model.promote.refused", result.candidate, {"reasons": [str(exc)]}, store)
        raise
    candidate = load_bundle(Path(candidate_dir))
    dest = models_dir() / candidate.bundle_id
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, mode=0o755)
    for name in (MODEL_FILE, METADATA_FILE):
        shutil.copy2(Path(candidate_dir) / name, tmp / name)
    for a in approvals:
        shutil.copy2(a.signature_file, tmp / Path(a.signature_file).name)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    stored = load_bundle(dest)
    if stored.model_sha256 != candidate.model_sha256 or stored.metadata_sha256 != candidate.metadata_sha256:
        raise RefusedByPolicy(f"{candidate_dir}: the bundle changed while it was being promoted")
    previous = registry.active_id()
    row = registry.record("promote", stored, stored.bundle_id, previous, approvals)
    audit(
        "model.promote",
        stored.bundle_id,
        {
            "previous": previous,
            "path": str(dest),
            "model_sha256": stored.model_sha256,
            "metadata_sha256": stored.metadata_sha256,
            "approvers": [dataclasses.asdict(a) for a in approvals],
        },
        store,
    )
    return result, row


def revert(*, store: Store | None = None) -> dict[str, Any]:
    """Make the model that was active before the current one active again (one step). Audited."""
    store = store if store is not None else Store()
    registry = Registry(store)
    cur = registry.current()
    if cur is None:
        raise RefusedByPolicy("nothing to revert: the packaged default model has always been active")
    target = str(cur["previous"])
    bundle = registry.load(target)  # verified before the pointer moves
    row = registry.record("revert", None if target == DEFAULT_ID else bundle, target, str(cur["bundle_id"]))
    audit("model.revert", target, {"from": cur["bundle_id"], "to": target}, store)
    return row


def active_bundle(store: Store | None = None) -> Bundle:
    """The active model: the last promoted (or reverted-to) bundle, else the packaged default.

    Without a store (a fresh install) this is the packaged default, and no store is created."""
    if store is None and not config.db_path().exists():
        return load_default()
    return Registry(store).active()


def history(store: Store | None = None) -> list[dict[str, Any]]:
    """Every promote and revert, oldest first."""
    if store is None and not config.db_path().exists():
        return []
    return Registry(store).history()
