"""Features of one normalized CVE record, computed the same way at training and at prediction.

Only what a record shows at decision time is used (see docs/prioritizer.md, "Leakage"): reference tags and
domains that NVD adds once exploitation is known ("Exploit", "US Government Resource", exploit-db,
packetstorm, ...) and the record's last-modified date are never features. Vendor, product, CWE and CNA
enter as priors learnt on the training window (`Vocabularies`: each value's smoothed share of KEV-listed
CVEs, out-of-fold at training, and its CVE count), stored in the bundle, so prediction encodes exactly as
training did; a value the window did not see often enough gets the base rate and a count of 0.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from patchbrain.feeds.records import CveRecord

Kind = Literal["num", "rate", "count"]
OTHER = "(other)"


@dataclasses.dataclass(frozen=True, slots=True)
class Feature:
    """One model input: its name, kind, monotone direction (+1: more never lowers risk) and wording."""

    name: str
    kind: Kind
    monotone: int
    words: str


# Ordinal encodings: a higher code is always the more severe value, so a +1 monotone constraint means
# "more severity never means less risk".
_V3 = {
    "AV": {"P": 0, "L": 1, "A": 2, "N": 3},
    "AC": {"H": 0, "L": 1},
    "PR": {"H": 0, "L": 1, "N": 2},
    "UI": {"R": 0, "N": 1},
    "S": {"U": 0, "C": 1},
    "C": {"N": 0, "L": 1, "H": 2},
    "I": {"N": 0, "L": 1, "H": 2},
    "A": {"N": 0, "L": 1, "H": 2},
}
_V2 = {
    "AV": {"L": 0, "A": 1, "N": 2},
    "AC": {"H": 0, "M": 1, "L": 2},
    "Au": {"M": 0, "S": 1, "N": 2},
    "C": {"N": 0, "P": 1, "C": 2},
    "I": {"N": 0, "P": 1, "C": 2},
    "A": {"N": 0, "P": 1, "C": 2},
}
_V3_WORDS = {
    "AV": "attack vector",
    "AC": "attack complexity (low is easier)",
    "PR": "privileges required (none is easier)",
    "UI": "user interaction (none is easier)",
    "S": "scope change",
    "C": "confidentiality impact",
    "I": "integrity impact",
    "A": "availability impact",
}
_V2_WORDS = {
    "AV": "access vector",
    "AC": "access complexity (low is easier)",
    "Au": "authentication (none is easier)",
    "C": "confidentiality impact",
    "I": "integrity impact",
    "A": "availability impact",
}

# Reference tags NVD sets when it analyses a record. Left out on purpose: "Exploit", "US Government
# Resource", "Press/Media Coverage", "Broken Link", "Not Applicable", "Tool Signature": they are added or
# changed after the fact, often *because* a CVE was exploited (leakage).
DECISION_TIME_TAGS = (
    "Vendor Advisory",
    "Patch",
    "Third Party Advisory",
    "VDB Entry",
    "Issue Tracking",
    "Mailing List",
    "Release Notes",
    "Mitigation",
    "Technical Description",
    "Permissions Required",
    "Product",
)
LEAKY_TAGS = frozenset(
    {
        "Exploit",
        "US Government Resource",
        "Press/Media Coverage",
        "Broken Link",
        "Not Applicable",
        "Tool Signature",
    }
)
# Domains whose references are exploit write-ups or government alerts: present in later snapshots because
# the CVE was exploited. A reference on one of these (or tagged as above) is not counted at all.
LEAKY_DOMAINS = (
    "exploit-db.com",
    "packetstormsecurity.com",
    "packetstormsecurity.org",
    "packetstorm.news",
    "metasploit.com",
    "rapid7.com",
    "us-cert.gov",
    "cisa.gov",
    "kb.cert.org",
    "seclists.org",
    "twitter.com",
    "medium.com",
)
# Domains published at disclosure time, as yes/no features.
DOMAINS = (
    "securityfocus.com",
    "securitytracker.com",
    "github.com",
    "microsoft.com",
    "oracle.com",
    "apple.com",
    "adobe.com",
    "cisco.com",
    "google.com",
    "android.com",
    "chromium.org",
    "mozilla.org",
    "redhat.com",
    "debian.org",
    "ubuntu.com",
    "fedoraproject.org",
    "suse.com",
    "gentoo.org",
    "openwall.com",
    "apache.org",
    "hackerone.com",
    "wordpress.org",
    "jvn.jp",
    "ibm.com",
)

# Description signals: (feature suffix, regex, words). Phrases that tell of exploitation itself ("exploited
# in the wild") are left out: descriptions get edited after the fact.
_DESC_SIGNALS: tuple[tuple[str, str, str], ...] = (
    (
        "rce",
        r"remote code execution|execute arbitrary (?:code|commands)|arbitrary code execution",
        "code execution",
    ),
    ("remote", r"remote(?:ly)? attackers?|remote,? unauthenticated|over the network", "a remote attacker"),
    (
        "unauth",
        r"unauthenticated|without authentication|does not require authentication",
        "no authentication",
    ),
    (
        "auth_needed",
        r"\bauthenticated (?:user|attacker|remote)|requires? authentication",
        "an authenticated attacker",
    ),
    ("local", r"local (?:users?|attackers?)", "a local attacker"),
    (
        "memory",
        r"buffer overflow|heap|use[- ]after[- ]free|memory corruption"
        r"|out[- ]of[- ]bounds write|type confusion",
        "memory corruption",
    ),
    (
        "privesc",
        r"privilege escalation|elevation of privilege|gain (?:root |elevated )?privileges",
        "privilege escalation",
    ),
    (
        "injection",
        r"sql injection|command injection|os command|code injection|template injection",
        "injection",
    ),
    ("xss", r"cross[- ]site scripting|\bxss\b", "cross-site scripting"),
    ("csrf", r"cross[- ]site request forgery|\bcsrf\b", "cross-site request forgery"),
    ("dos", r"denial of service|crash", "denial of service"),
    ("bypass", r"\bbypass", "a security bypass"),
    ("traversal", r"directory traversal|path traversal|\.\./", "path traversal"),
    ("deserialization", r"deserializ", "unsafe deserialization"),
    (
        "disclosure",
        r"information disclosure|obtain sensitive information|information leak",
        "information disclosure",
    ),
    (
        "crafted",
        r"crafted (?:file|document|web ?page|website|url|packet|request|email|message|content)",
        "crafted input",
    ),
    ("browser", r"\bbrowser|internet explorer|microsoft edge|chrome|firefox|safari", "a web browser"),
    ("scripting", r"scripting engine|javascript|vbscript|flash player|\bv8\b", "a scripting engine"),
    ("kernel", r"\bkernel\b|win32k", "the kernel"),
    (
        "edge",
        r"\bvpn\b|gateway|firewall|router|appliance|remote access|load balancer|\bnas\b",
        "a network edge device",
    ),
    (
        "web_admin",
        r"web (?:interface|management|console|ui)|management interface"
        r"|admin(?:istrative)? (?:interface|panel)",
        "a management web interface",
    ),
    (
        "file_read",
        r"arbitrary files?(?: read| download| disclosure)|read arbitrary files|file disclosure",
        "arbitrary file read",
    ),
    ("upload", r"upload (?:arbitrary|malicious)|file upload|unrestricted upload", "file upload"),
)
_DESC_RES = tuple((name, re.compile(rx), words) for name, rx, words in _DESC_SIGNALS)  # on lowercased text
_CWE_RE = re.compile(r"^CWE-\d+$")
_CVE_YEAR_RE = re.compile(r"^CVE-(\d{4})-\d+$")

# Keys with a prior learnt on the training window: the smoothed share of KEV-listed CVEs among the
# window's CVEs with that key ("rate" features, out-of-fold at training), and how many CVEs had it ("count").
KEYS = ("vendor", "product", "cwe", "assigner")
_KEYED: dict[str, tuple[str, str]] = {
    "vendor_kev_rate": ("vendor", "rate"),
    "product_kev_rate": ("product", "rate"),
    "cwe_kev_rate": ("cwe", "rate"),
    "assigner_kev_rate": ("assigner", "rate"),
    "vendor_cves": ("vendor", "count"),
    "product_cves": ("product", "count"),
}
# where each table's values come from in a raw row; vendors and products may be several (the max counts)
_TABLE_SOURCE = {"vendor": "vendors", "product": "products", "cwe": "cwe", "assigner": "assigner"}
_MULTI = frozenset({"vendor", "product"})
MIN_KEY_COUNT = 3  # a key seen fewer times in the training window is "unknown": the base rate, 0 CVEs
SMOOTHING = 20.0  # pseudo-CVEs at the base rate added to every key's counts
FOLDS = 5  # out-of-fold encoding of the rates at training (row i is in fold i % FOLDS)


def _build_features() -> tuple[Feature, ...]:
    f: list[Feature] = [
        Feature("cvss3_score", "num", 1, "CVSS v3 base score"),
        Feature("cvss2_score", "num", 1, "CVSS v2 base score"),
        Feature("cvss3_exploitability", "num", 1, "CVSS v3 exploitability sub-score"),
    ]
    f += [Feature(f"cvss3_{k}", "num", 1, f"CVSS v3 {w}") for k, w in _V3_WORDS.items()]
    f += [Feature(f"cvss2_{k}", "num", 1, f"CVSS v2 {w}") for k, w in _V2_WORDS.items()]
    f += [
        Feature("vendor_kev_rate", "rate", 0, "vendor (its share of KEV-listed CVEs in the training years)"),
        Feature(
            "product_kev_rate", "rate", 0, "product (its share of KEV-listed CVEs in the training years)"
        ),
        Feature("cwe_kev_rate", "rate", 0, "weakness (CWE; its share of KEV-listed CVEs in training)"),
        Feature("assigner_kev_rate", "rate", 0, "assigning CNA (its share of KEV-listed CVEs in training)"),
        Feature("vendor_cves", "count", 0, "vendor (how many CVEs it had in the training years)"),
        Feature("product_cves", "count", 0, "product (how many CVEs it had in the training years)"),
        Feature("n_cwes", "num", 0, "number of CWEs"),
        Feature("n_cpes", "num", 0, "number of affected configurations (CPEs)"),
        Feature("n_vendors", "num", 0, "number of affected vendors"),
        Feature("n_products", "num", 0, "number of affected products"),
        Feature("cpe_os", "num", 0, "an operating system is affected"),
        Feature("cpe_app", "num", 0, "an application is affected"),
        Feature("cpe_hw", "num", 0, "hardware is affected"),
        Feature("n_refs", "num", 0, "number of references (decision-time ones)"),
        Feature("n_ref_domains", "num", 0, "number of distinct reference domains"),
    ]
    f += [
        Feature("tag_" + t.lower().replace(" ", "_").replace("/", "_"), "num", 0, f'references tagged "{t}"')
        for t in DECISION_TIME_TAGS
    ]
    f += [
        Feature("dom_" + d.replace(".", "_").replace("-", "_"), "num", 0, f"a reference on {d}")
        for d in DOMAINS
    ]
    f += [Feature("desc_len", "num", 0, "description length (log)")]
    f += [
        Feature(f"desc_{name}", "num", 0, f"the description mentions {words}")
        for name, _, words in _DESC_SIGNALS
    ]
    f += [Feature("id_age_at_publication", "num", 0, "days between the CVE id's year and its publication")]
    return tuple(f)


FEATURES: tuple[Feature, ...] = _build_features()
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_INDEX: dict[str, int] = {n: i for i, n in enumerate(FEATURE_NAMES)}
MONOTONE: tuple[int, ...] = tuple(f.monotone for f in FEATURES)
# LightGBM categorical features: none. Vendor, product, CWE and CNA enter as learnt priors instead, which
# measured better on both temporal checks (docs/prioritizer.md) and need no vocabulary cut-off.
CATEGORICAL: tuple[str, ...] = ()
CATEGORICAL_INDICES: tuple[int, ...] = ()

RawValue = float | str | None


def _parse_vector(vector: str | None, table: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    if not vector:
        return {}
    out: dict[str, int] = {}
    for part in vector.split("/"):
        key, _, value = part.partition(":")
        codes = table.get(key)
        if codes is not None and value in codes:
            out[key] = codes[value]
    return out


# CVSS v3.x exploitability weights, by ordinal code (spec section 7.4).
_V3_AV_W = (0.2, 0.55, 0.62, 0.85)
_V3_AC_W = (0.44, 0.77)
_V3_UI_W = (0.62, 0.85)


def _v3_exploitability(v3: Mapping[str, int]) -> float | None:
    if not all(k in v3 for k in ("AV", "AC", "PR", "UI", "S")):
        return None
    changed = v3["S"] == 1
    pr_w = (0.5 if changed else 0.27, 0.68 if changed else 0.62, 0.85)[v3["PR"]]
    return round(8.22 * _V3_AV_W[v3["AV"]] * _V3_AC_W[v3["AC"]] * pr_w * _V3_UI_W[v3["UI"]], 3)


def _domain(url: str) -> str:
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    return host.lower().rstrip(".")


def _suffixes(host: str) -> set[str]:
    """The host and its parent domains: "a.b.example.com" -> itself, "b.example.com", "example.com", "com"."""
    labels = host.split(".")
    return {".".join(labels[i:]) for i in range(len(labels))}


_LEAKY_DOMAINS = frozenset(LEAKY_DOMAINS)


def _cpe_parts(cpe: str) -> tuple[str, str, str] | None:
    """(part, vendor, product) of a CPE 2.3 formatted string, or None."""
    fields = cpe.split(":")
    if len(fields) < 5 or fields[0] != "cpe" or fields[1] != "2.3":
        return None
    return fields[2], fields[3].lower(), fields[4].lower()


def _most_common(values: Iterable[str]) -> str | None:
    counts = Counter(values)
    if not counts:
        return None
    best = max(counts.values())
    return min(v for v, c in counts.items() if c == best)  # ties broken by name: deterministic


def normalize_assigner(assigner: str | None) -> str | None:
    """One name per CNA whatever the format: NVD's e-mail ("secure@microsoft.com") and CVE 5's short
    name ("microsoft") both become "microsoft"."""
    if not assigner:
        return None
    text = assigner.strip().lower()
    if "@" in text:
        labels = [p for p in text.rsplit("@", 1)[1].split(".") if p]
        if len(labels) >= 2:
            return labels[-2]
        return labels[0] if labels else None
    return text


def extract(record: CveRecord) -> dict[str, RawValue]:
    """Raw feature values of one record (keys such as vendors as strings, missing as None)."""
    raw: dict[str, RawValue] = {}
    v3 = _parse_vector(record.cvss3_vector, _V3)
    v2 = _parse_vector(record.cvss2_vector, _V2)
    raw["cvss3_score"] = record.cvss3_score
    raw["cvss2_score"] = record.cvss2_score
    raw["cvss3_exploitability"] = _v3_exploitability(v3)
    for k in _V3_WORDS:
        raw[f"cvss3_{k}"] = float(v3[k]) if k in v3 else None
    for k in _V2_WORDS:
        raw[f"cvss2_{k}"] = float(v2[k]) if k in v2 else None

    parts = [p for p in (_cpe_parts(c) for c in record.cpes) if p is not None]
    keys: dict[str, str | None] = {
        "vendor": _most_common(v for _, v, _ in parts),
        "product": _most_common(f"{v}:{p}" for _, v, p in parts),
    }
    cwes = [c for c in record.cwes if _CWE_RE.match(c)]
    keys["cwe"] = cwes[0] if cwes else (record.cwes[0] if record.cwes else None)
    keys["assigner"] = normalize_assigner(record.assigner)
    raw.update(keys)
    # every vendor and product named by the CPEs (space-separated: CPE fields hold no unescaped spaces)
    raw["vendors"] = " ".join(sorted({v for _, v, _ in parts if v})) or None
    raw["products"] = " ".join(sorted({f"{v}:{p}" for _, v, p in parts if v and p})) or None
    for name, (key, _) in _KEYED.items():
        raw[name] = raw[_TABLE_SOURCE[key]]  # the key(s): `encode` maps them through the window's tables
    raw["n_cwes"] = float(len(record.cwes))
    raw["n_cpes"] = math.log1p(len(record.cpes))
    raw["n_vendors"] = float(len({v for _, v, _ in parts}))
    raw["n_products"] = float(len({(v, p) for _, v, p in parts}))
    kinds = {k for k, _, _ in parts}
    raw["cpe_os"] = float("o" in kinds)
    raw["cpe_app"] = float("a" in kinds)
    raw["cpe_hw"] = float("h" in kinds)

    kept: list[tuple[str, tuple[str, ...]]] = []
    domains_seen: set[str] = set()
    for ref in record.references:
        host = _domain(ref.url)
        suffixes = _suffixes(host) if host else set()
        if LEAKY_TAGS.intersection(ref.tags) or not _LEAKY_DOMAINS.isdisjoint(suffixes):
            continue
        kept.append((host, ref.tags))
        domains_seen |= suffixes
    raw["n_refs"] = float(len(kept))
    raw["n_ref_domains"] = float(len({h for h, _ in kept if h}))
    for tag in DECISION_TIME_TAGS:
        name = "tag_" + tag.lower().replace(" ", "_").replace("/", "_")
        raw[name] = float(sum(1 for _, tags in kept if tag in tags))
    for d in DOMAINS:
        raw["dom_" + d.replace(".", "_").replace("-", "_")] = float(d in domains_seen)

    text = (record.description or "").lower()
    raw["desc_len"] = math.log1p(len(text))
    for name, rx, _ in _DESC_RES:
        raw[f"desc_{name}"] = float(rx.search(text) is not None)

    m = _CVE_YEAR_RE.match(record.cve_id)
    if m and record.published is not None:
        start = record.published.replace(
            year=int(m.group(1)), month=1, day=1, hour=0, minute=0, second=0, microsecond=0
        )
        raw["id_age_at_publication"] = float((record.published - start).days)
    else:
        raw["id_age_at_publication"] = None
    return raw


KeyTable = dict[str, tuple[int, int]]  # key -> (KEV-listed CVEs, CVEs) in the training window


def _split(key: str, value: str) -> list[str]:
    return value.split() if key in _MULTI else [value]


def key_table(rows: Sequence[Mapping[str, RawValue]], labels: npt.ArrayLike, key: str) -> KeyTable:
    """(positives, count) per value of `key` among `rows`, for values seen at least MIN_KEY_COUNT times."""
    y = np.asarray(labels, dtype=np.float64)
    pos: Counter[str] = Counter()
    n: Counter[str] = Counter()
    source = _TABLE_SOURCE[key]
    for row, label in zip(rows, y, strict=True):
        value = row.get(source)
        if value is None:
            continue
        for v in _split(key, str(value)):
            n[v] += 1
            pos[v] += int(label > 0)
    return {v: (pos[v], c) for v, c in sorted(n.items()) if c >= MIN_KEY_COUNT}


@dataclasses.dataclass(frozen=True)
class Vocabularies:
    """What encoding learns from the training window: per key (vendor, product, CWE, CNA) the KEV-listed
    and total CVE counts of each value seen at least MIN_KEY_COUNT times, and the window's base rate."""

    tables: dict[str, KeyTable]
    prior: float

    @classmethod
    def fit(cls, rows: Sequence[Mapping[str, RawValue]], labels: npt.ArrayLike) -> Vocabularies:
        y = np.asarray(labels, dtype=np.float64)
        prior = float(y.mean()) if len(y) else 0.0
        return cls({k: key_table(rows, y, k) for k in KEYS}, prior)

    def to_json(self) -> dict[str, object]:
        return {
            "prior": self.prior,
            "tables": {k: {v: list(pc) for v, pc in t.items()} for k, t in self.tables.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Vocabularies:
        tables = data.get("tables")
        prior = data.get("prior")
        if not isinstance(tables, Mapping) or isinstance(prior, bool) or not isinstance(prior, int | float):
            raise ValueError("vocabularies need a prior and tables")
        if not 0.0 <= float(prior) <= 1.0:
            raise ValueError("the prior must be in [0, 1]")
        out: dict[str, KeyTable] = {}
        for k in KEYS:
            t = tables.get(k)
            if not isinstance(t, Mapping):
                raise ValueError(f"vocabularies lack the {k} table")
            table: KeyTable = {}
            for v, pc in t.items():
                if not (isinstance(pc, list) and len(pc) == 2 and all(type(i) is int for i in pc)):
                    raise ValueError(f"bad counts for {k} {v!r:.40}")
                if not 0 <= pc[0] <= pc[1]:
                    raise ValueError(f"bad counts for {k} {v!r:.40}")
                table[str(v)] = (pc[0], pc[1])
            out[k] = table
        return cls(out, float(prior))

    def rate(self, key: str, value: str) -> float:
        """The smoothed share of KEV-listed CVEs among the window's CVEs with this value (the highest of
        a record's vendors or products)."""
        table = self.tables[key]
        best = -1.0
        for v in _split(key, value):
            pos, n = table.get(v, (0, 0))
            best = max(best, (pos + SMOOTHING * self.prior) / (n + SMOOTHING))
        return best

    def count(self, key: str, value: str) -> float:
        """log(1 + the window's CVEs with this value), the most of a record's vendors or products."""
        table = self.tables[key]
        return math.log1p(max(table.get(v, (0, 0))[1] for v in _split(key, value)))


def encode(rows: Sequence[Mapping[str, RawValue]], vocab: Vocabularies) -> npt.NDArray[np.float64]:
    """The feature matrix (rows x FEATURES, float64; missing = NaN, keyed features through `vocab`)."""
    x = np.full((len(rows), len(FEATURES)), np.nan, dtype=np.float64)
    cache: dict[tuple[str, str], float] = {}
    for i, row in enumerate(rows):
        for j, feat in enumerate(FEATURES):
            value = row.get(feat.name)
            if value is None:
                continue
            if feat.kind == "num":
                x[i, j] = float(value)
                continue
            key, what = _KEYED[feat.name]
            ck = (feat.name, str(value))
            got = cache.get(ck)
            if got is None:
                got = vocab.rate(key, str(value)) if what == "rate" else vocab.count(key, str(value))
                cache[ck] = got
            x[i, j] = got
    return x


def encode_training(
    rows: Sequence[Mapping[str, RawValue]], labels: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], Vocabularies]:
    """The training matrix and the vocabularies to store. A row's KEV rates come from the tables of the
    other folds only (out-of-fold), so no row sees its own label; counts and every other feature are
    exactly `encode`'s."""
    y = np.asarray(labels, dtype=np.float64)
    vocab = Vocabularies.fit(rows, y)
    x = encode(rows, vocab)
    fold = np.arange(len(rows)) % FOLDS
    rate_cols = [(j, _KEYED[f.name][0]) for j, f in enumerate(FEATURES) if f.kind == "rate"]
    for k in range(FOLDS):
        inside = np.flatnonzero(fold == k).tolist()
        outside = np.flatnonzero(fold != k)
        if len(inside) == 0:
            continue
        part = Vocabularies.fit([rows[i] for i in outside.tolist()], y[outside])
        part = Vocabularies(part.tables, vocab.prior)  # one base rate for every fold
        for j, key in rate_cols:
            for i in inside:
                value = rows[i].get(FEATURES[j].name)
                if value is not None:
                    x[i, j] = part.rate(key, str(value))
    return x, vocab


def matrix(records: Sequence[CveRecord], vocab: Vocabularies) -> npt.NDArray[np.float64]:
    """Shortcut: extract then encode."""
    return encode([extract(r) for r in records], vocab)


def describe_value(name: str, raw: RawValue) -> str:
    """A feature's raw value in words, for explanations."""
    if raw is None:
        return "missing"
    feat = FEATURES[FEATURE_INDEX[name]]
    if feat.kind != "num":
        values = str(raw).split()
        more = f" (+{len(values) - 3} more)" if len(values) > 3 else ""
        return ", ".join(values[:3]) + more
    if name.startswith("cvss3_") and name[6:] in _V3:
        inv = {v: k for k, v in _V3[name[6:]].items()}
        return inv.get(int(float(raw)), str(raw))
    if name.startswith("cvss2_") and name[6:] in _V2:
        inv = {v: k for k, v in _V2[name[6:]].items()}
        return inv.get(int(float(raw)), str(raw))
    if name.startswith(("desc_", "dom_", "cpe_")) and name != "desc_len":
        return "yes" if float(raw) else "no"
    if name in ("n_cpes", "desc_len"):
        return str(round(math.expm1(float(raw))))
    value = float(raw)
    return str(int(value)) if value.is_integer() else f"{value:g}"
