"""Screens against poisoned feed data, run on every sync before anything reaches the CVE store.

Each screen looks at one incoming item (a CVE claim or a KEV entry) against `History` (what the store
knew before this sync) and the rest of the batch, and returns `Flag`s with a reason. Flagged items are
quarantined by the sync (never dropped); the screens themselves are pure functions of their inputs.

Screens (names are stable: they appear in the quarantine table and the audit log):

- `score_mismatch`: the base score the feed states disagrees with the score the `cvss` library computes
  from the vector the feed gives.
- `severity_raised`: a CVE already known from the same source comes back with a higher score but no
  new reference (a real re-analysis cites something; an inflation does not need to).
- `burst`: an assigner's new CVEs in a 30-day window far above its own busiest window so far (or many
  from an assigner never seen before).
- `near_duplicate`: a new CVE id whose description (MinHash of word pairs), references or affected
  products copy an existing record of another assigner or from weeks earlier (same-day siblings of one
  advisory are normal and not flagged).
- `uncorroborated`: a CVE that would drive priority (CVSS >= 7 or KEV-listed) that no second source
  family (NVD, CVE 5 / CNA, KEV, EPSS, OSV) knows.
- `domain_not_allowed`: a reference tagged as a patch on a domain neither allow-listed (default: domains
  that >= 3 real NVD records cite) nor the CPE vendor's or product's own; or a record claiming critical
  severity (>= 9) with no reference on such a domain.
- `kev_unknown`: a KEV entry for a CVE no other feed knows.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import importlib.resources
import itertools
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from patchbrain.feeds.kev import KevEntry
from patchbrain.feeds.records import CveRecord

SCREENS = (
    "score_mismatch",
    "severity_raised",
    "burst",
    "near_duplicate",
    "uncorroborated",
    "domain_not_allowed",
    "kev_unknown",
)
FAMILIES = ("nvd", "cve5", "kev", "epss", "osv")

_WORD_RE = re.compile(r"[a-z0-9]+")
_NUM_PERM = 64
_BANDS = 16
_ROWS = _NUM_PERM // _BANDS
_PRIME = np.uint64((1 << 31) - 1)
_rng = np.random.default_rng(20240630)  # fixed: signatures must be comparable across runs
_PERM_A = _rng.integers(1, (1 << 31) - 1, size=_NUM_PERM, dtype=np.uint64)
_PERM_B = _rng.integers(0, (1 << 31) - 1, size=_NUM_PERM, dtype=np.uint64)
_EPOCH = dt.date(2000, 1, 1)
_SECOND_LEVEL = {"co", "com", "org", "net", "ac", "gov", "edu", "or", "ne", "go", "gob", "gv"}


@dataclasses.dataclass(frozen=True, slots=True)
class Flag:
    """One screen's reason to hold an item back."""

    screen: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"screen": self.screen, "detail": self.detail}


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """One incoming item: a CVE claim (`record`, `source` like "nvd" or "cve5/cna:x") or a KEV entry."""

    cve_id: str
    source: str
    file: str
    record: CveRecord | None = None
    kev: KevEntry | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.cve_id, self.source)


@dataclasses.dataclass(frozen=True, slots=True)
class ScreenConfig:
    """Thresholds of the screens (defaults measured on real NVD data: see docs/feeds-trust.md)."""

    allow_domains: frozenset[str]
    priority_score: float = 7.0
    critical_score: float = 9.0
    require_corroboration: bool = True
    score_tolerance: float = 0.05
    burst_window_days: int = 30
    burst_factor: float = 4.0
    burst_min: int = 100
    near_dup_text: float = 0.9
    near_dup_refs: float = 0.5
    near_dup_days: int = 14
    max_posting: int = 40
    disabled: frozenset[str] = frozenset()


def family(source: str) -> str:
    """The source family of a claim source ("cve5/cna:redhat" -> "cve5")."""
    return source.split("/", 1)[0]


# --- domains ----------------------------------------------------------------------------------------


def registrable_domain(url: str) -> str | None:
    """The registrable part of a URL's host ("www.securityfocus.com" -> "securityfocus.com")."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.rstrip(".").lower()
    labels = host.split(".")
    if len(labels) <= 2 or host.replace(".", "").isdigit():
        return host
    if len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def default_allow_domains() -> frozenset[str]:
    """The shipped allow-list: registrable domains cited by real NVD records (see the data file's header)."""
    text = importlib.resources.files("patchbrain.feeds").joinpath("data/reference_domains.txt").read_text()
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def load_allow_domains(path: Any) -> frozenset[str]:
    """An allow-list file: one domain per line, '#' comments."""
    with open(path, encoding="utf-8") as fh:
        return frozenset(
            line.split("#", 1)[0].strip().lower() for line in fh if line.split("#", 1)[0].strip()
        )


# --- similarity -------------------------------------------------------------------------------------


def _shingles(text: str) -> np.ndarray:
    words = _WORD_RE.findall(text.lower())
    grams = words if len(words) < 2 else [f"{a} {b}" for a, b in itertools.pairwise(words)]
    if not grams:
        return np.zeros(0, dtype=np.uint64)
    return np.fromiter({zlib.crc32(g.encode()) for g in grams}, dtype=np.uint64)


def minhash(text: str) -> np.ndarray:
    """A 64-value MinHash signature of the description's word pairs (all-max for empty text)."""
    sh = _shingles(text)
    if sh.size == 0:
        return np.full(_NUM_PERM, np.uint32(0xFFFFFFFF), dtype=np.uint32)
    vals = (_PERM_A[:, None] * sh[None, :] + _PERM_B[:, None]) % _PRIME
    sig: np.ndarray = vals.min(axis=1).astype(np.uint32)
    return sig


def minhash_many(texts: Sequence[str]) -> np.ndarray:
    """MinHash signatures of many texts (one row per text). Per text, numpy does the work: measured
    faster here than one big concatenated array, whose temporaries outgrow the CPU caches."""
    out = np.empty((len(texts), _NUM_PERM), dtype=np.uint32)
    for i, t in enumerate(texts):
        out[i] = minhash(t)
    return out


def _norm_url(url: str) -> int:
    u = url.strip().lower()
    for prefix in ("https://", "http://"):
        if u.startswith(prefix):
            u = u[len(prefix) :]
    if u.startswith("www."):
        u = u[4:]
    return hash(u.rstrip("/"))


def _url_set(rec: CveRecord) -> frozenset[int]:
    return frozenset(_norm_url(r.url) for r in rec.references)


def _product_set(rec: CveRecord) -> frozenset[int]:
    out = set()
    for cpe in rec.cpes:
        parts = cpe.split(":")
        if len(parts) > 5:
            out.add(hash(":".join(parts[3:6])))  # vendor:product:version
    return frozenset(out)


def _jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def _day(when: dt.datetime | None) -> int | None:
    return (when.date() - _EPOCH).days if when is not None else None


def _max_score(rec: CveRecord) -> float | None:
    scores = [s for s in (rec.cvss3_score, rec.cvss2_score, rec.cvss4_score) if s is not None]
    return max(scores) if scores else None


# --- history ----------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Known:
    score: float | None
    urls: frozenset[int]


class History:
    """What was known before this sync: records per (CVE, source), ids per source family, per-assigner
    activity, and a near-duplicate index (MinHash LSH over descriptions, inverted index over references)."""

    def __init__(self) -> None:
        self.known: dict[tuple[str, str], _Known] = {}
        self.families: dict[str, set[str]] = collections.defaultdict(set)
        self.assigner_windows: dict[str, collections.Counter[int]] = collections.defaultdict(
            collections.Counter
        )
        self._ids: list[str] = []
        self._assigner: list[str] = []
        self._day: list[int | None] = []
        self._urls: list[frozenset[int]] = []
        self._products: list[frozenset[int]] = []
        self._texts: list[str] = []
        self._sig_matrix: np.ndarray = np.zeros((0, _NUM_PERM), dtype=np.uint32)
        self._bands: list[dict[bytes, list[int]]] = [{} for _ in range(_BANDS)]
        self._url_index: dict[int, list[int]] = collections.defaultdict(list)
        self.window_days = 30

    # -- building ------------------------------------------------------------------------------------

    def add_record(self, rec: CveRecord, source: str, *, index: bool = True) -> None:
        """Add one known claim."""
        urls = _url_set(rec)
        self.known[(rec.cve_id, source)] = _Known(_max_score(rec), urls)
        self.families[rec.cve_id].add(family(source))
        day = _day(rec.published)
        if rec.assigner and day is not None:
            self.assigner_windows[rec.assigner][day // self.window_days] += 1
        if index and not rec.rejected:
            self._index(rec, urls, day)

    def add_ids(self, fam: str, ids: Iterable[str]) -> None:
        """Record that source family `fam` knows these CVE ids (EPSS, KEV, OSV)."""
        for cve_id in ids:
            self.families[cve_id].add(fam)

    def _index(self, rec: CveRecord, urls: frozenset[int], day: int | None) -> None:
        i = len(self._ids)
        self._ids.append(rec.cve_id)
        self._assigner.append(rec.assigner or "")
        self._day.append(day)
        self._urls.append(urls)
        self._products.append(_product_set(rec))
        self._texts.append(rec.description)
        for u in urls:
            self._url_index[u].append(i)

    def knows(self, cve_id: str) -> set[str]:
        """The source families that know `cve_id`."""
        return self.families.get(cve_id, set())

    def prepare(self) -> None:
        """Sign and band the records added since the last call (done lazily on the first lookup)."""
        done = len(self._sig_matrix)
        if done == len(self._texts):
            return
        sigs = minhash_many(self._texts[done:])
        self._sig_matrix = np.vstack([self._sig_matrix, sigs])
        for k, sig in enumerate(sigs):
            if not self._texts[done + k]:
                continue
            for b in range(_BANDS):
                self._bands[b].setdefault(sig[b * _ROWS : (b + 1) * _ROWS].tobytes(), []).append(done + k)

    # -- near duplicates -----------------------------------------------------------------------------

    def candidates(self, sig: np.ndarray, urls: frozenset[int], max_posting: int) -> set[int]:
        out: set[int] = set()
        for b in range(_BANDS):
            hit = self._bands[b].get(sig[b * _ROWS : (b + 1) * _ROWS].tobytes())
            if hit and len(hit) <= 4 * max_posting:
                out.update(hit)
        for u in urls:
            posting = self._url_index.get(u)
            if posting and len(posting) <= max_posting:
                out.update(posting)
        return out

    def twin(
        self, rec: CveRecord, sig: np.ndarray, cfg: ScreenConfig
    ) -> tuple[str, float, float, float] | None:
        """The most similar indexed record that looks copied: (id, text, refs, products similarity)."""
        self.prepare()
        urls = _url_set(rec)
        cand = self.candidates(sig, urls, cfg.max_posting)
        if not cand:
            return None
        idx = np.fromiter(cand, dtype=np.int64)
        text = (self._sig_matrix[idx] == sig[None, :]).mean(axis=1) if rec.description else np.zeros(len(idx))
        day = _day(rec.published)
        prods = _product_set(rec)
        best: tuple[str, float, float, float] | None = None
        for j, i in enumerate(idx.tolist()):
            if self._ids[i] == rec.cve_id:
                continue
            same_batch = (
                self._assigner[i] == (rec.assigner or "")
                and day is not None
                and self._day[i] is not None
                and abs(day - (self._day[i] or 0)) <= cfg.near_dup_days
            )
            if same_batch:
                continue  # siblings from one advisory, published together by one assigner
            t = float(text[j])
            r = _jaccard(urls, self._urls[i])
            p = _jaccard(prods, self._products[i])
            # Copied text with copied references, or a copied reference list with similar text.
            copied = (t >= cfg.near_dup_text and r >= cfg.near_dup_refs) or (
                r >= 0.8 and len(urls) >= 2 and t >= 0.6
            )
            if copied and (best is None or t + r + p > best[1] + best[2] + best[3]):
                best = (self._ids[i], t, r, p)
        return best


# --- the screens ------------------------------------------------------------------------------------


def _score_mismatch(rec: CveRecord, cfg: ScreenConfig) -> Iterator[Flag]:
    computed = {"cvss3": rec.cvss3_score, "cvss2": rec.cvss2_score, "cvss4": rec.cvss4_score}
    vectors = {"cvss3": rec.cvss3_vector, "cvss2": rec.cvss2_vector, "cvss4": rec.cvss4_vector}
    for kind, stated in rec.stated_scores:
        got = computed.get(kind)
        if got is not None and abs(stated - got) > cfg.score_tolerance:
            yield Flag(
                "score_mismatch",
                f"{kind} base score stated {stated} but its vector {vectors[kind]} scores {got}",
            )


def _severity_raised(rec: CveRecord, source: str, history: History) -> Iterator[Flag]:
    old = history.known.get((rec.cve_id, source))
    new_score = _max_score(rec)
    stated = max((s for _, s in rec.stated_scores), default=None)
    if old is None or old.score is None:
        return
    raised = [s for s in (new_score, stated) if s is not None and s > old.score + 0.05]
    if raised and not (_url_set(rec) - old.urls):
        yield Flag(
            "severity_raised",
            f"known CVE's score raised from {old.score} to {max(raised)} without a new reference",
        )


def _vendor_labels(rec: CveRecord) -> set[str]:
    """CPE vendor and product names, squashed ("hongcms_project" -> "hongcms")."""
    out = set()
    for cpe in rec.cpes:
        parts = cpe.split(":")
        for name in parts[3:5]:
            name = re.sub(r"_(project|foundation|team|inc)$", "", name.lower())
            out.add(re.sub(r"[^a-z0-9]", "", name))
    out.discard("")
    return out


def _domains(rec: CveRecord, cfg: ScreenConfig, critical: bool) -> Iterator[Flag]:
    """Patch links must point to allow-listed domains or the vendor's own; a record claiming critical
    severity needs at least one reference on such a domain."""
    if not rec.references:
        return
    vendors = _vendor_labels(rec)
    foreign = []
    for ref in rec.references:
        dom = registrable_domain(ref.url)
        if dom is None or (
            dom not in cfg.allow_domains and re.sub(r"[^a-z0-9]", "", dom.split(".")[0]) not in vendors
        ):
            foreign.append((ref, dom))
    patches = [(r, d) for r, d in foreign if "Patch" in r.tags]
    if patches:
        yield Flag(
            "domain_not_allowed",
            "patch source on a domain neither allow-listed nor the vendor's: "
            + ", ".join(sorted({str(d) for _, d in patches})),
        )
    elif critical and len(foreign) == len(rec.references):
        yield Flag(
            "domain_not_allowed",
            "no reference on an allow-listed or vendor domain: "
            + ", ".join(sorted({str(d) for _, d in foreign})[:5]),
        )


def screen(items: Sequence[Item], history: History, cfg: ScreenConfig) -> dict[tuple[str, str], list[Flag]]:
    """Run every enabled screen over a batch; returns the flags of each flagged item (by key)."""
    flags: dict[tuple[str, str], list[Flag]] = collections.defaultdict(list)
    on = [s for s in SCREENS if s not in cfg.disabled]

    batch_families: dict[str, set[str]] = collections.defaultdict(set)
    kev_ids = set()
    for it in items:
        batch_families[it.cve_id].add(family(it.source))
        if it.kev is not None:
            kev_ids.add(it.cve_id)

    def others(cve_id: str, own: str) -> set[str]:
        return (history.knows(cve_id) | batch_families.get(cve_id, set())) - {own}

    # burst: new ids per assigner per window, against that assigner's busiest window in history
    new_by_window: dict[tuple[str, int], list[tuple[str, str]]] = collections.defaultdict(list)
    for it in items:
        rec = it.record
        if rec is None or rec.rejected or (it.cve_id, it.source) in history.known:
            continue
        day = _day(rec.published)
        if rec.assigner and day is not None:
            new_by_window[(rec.assigner, day // history.window_days)].append(it.key)
    if "burst" in on:
        for (assigner, _w), keys in new_by_window.items():
            past = history.assigner_windows.get(assigner)
            baseline = max(past.values()) if past else 0
            limit = max(cfg.burst_min, cfg.burst_factor * baseline)
            if len(keys) > limit:
                for k in keys:
                    flags[k].append(
                        Flag(
                            "burst",
                            f"{len(keys)} new CVEs from {assigner} in {history.window_days} days; "
                            f"its busiest window before had {baseline}",
                        )
                    )

    records = [it for it in items if it.record is not None and not it.record.rejected]
    sigs = minhash_many([it.record.description for it in records if it.record is not None])
    sig_of = {id(it): sigs[i] for i, it in enumerate(records)}
    for it in items:
        rec = it.record
        if rec is not None:
            if rec.rejected:
                continue
            if "score_mismatch" in on:
                flags[it.key].extend(_score_mismatch(rec, cfg))
            if "severity_raised" in on:
                flags[it.key].extend(_severity_raised(rec, it.source, history))
            is_new = (it.cve_id, it.source) not in history.known
            if "near_duplicate" in on and is_new:
                twin = history.twin(rec, sig_of[id(it)], cfg)
                if twin is not None:
                    flags[it.key].append(
                        Flag(
                            "near_duplicate",
                            f"copies {twin[0]} (text {twin[1]:.2f}, references {twin[2]:.2f}, "
                            f"products {twin[3]:.2f})",
                        )
                    )
            score = _max_score(rec)
            drives = (score is not None and score >= cfg.priority_score) or it.cve_id in kev_ids
            if "domain_not_allowed" in on:
                critical = score is not None and score >= cfg.critical_score
                flags[it.key].extend(_domains(rec, cfg, critical))
            corroborate = "uncorroborated" in on and cfg.require_corroboration and drives
            if corroborate and not others(it.cve_id, family(it.source)):
                flags[it.key].append(
                    Flag(
                        "uncorroborated",
                        f"score {score} would drive priority but no second source knows {it.cve_id}",
                    )
                )
        elif it.kev is not None and "kev_unknown" in on and not others(it.cve_id, "kev"):
            flags[it.key].append(Flag("kev_unknown", f"KEV lists {it.cve_id} but no other feed knows it"))
    return {k: v for k, v in flags.items() if v}
