"""Rollout plans: which exact package versions go to which hosts, in which waves, and why.

A plan file is YAML that people read, review and approve. Its identity is content: the plan id is the
SHA-256 of the plan's canonical JSON form (every field except `plan_id` and `authorship`, keys sorted, no
spaces, UTF-8), so any change to what a plan does gives another id. `authorship` holds the author key's
signature over the id (the author's fingerprint is part of the content). patchbrain re-validates a plan
file in full when it loads one (names, versions and host names must match their grammars) and refuses a
file whose content does not hash to its `plan_id` (exit 5: changed since it was made).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from patchbrain import pkgspec
from patchbrain.errors import BadInput, RefusedByPolicy
from patchbrain.inventory import HOST_NAME
from patchbrain.models import FixClaim, Host, PendingUpdate, PkgManager
from patchbrain.planner import (
    HostTarget,
    PlanLayout,
    PlanPolicy,
    Scorer,
    UpdateScore,
    WaveKind,
    plan_waves,
)
from patchbrain.waves import DEFAULT_SPEC

if TYPE_CHECKING:
    from patchbrain.feeds.cvestore import CveStore

SCHEMA = "patchbrain.plan/2"
_MAX_TEXT = 2000
_ID_LEN = 64


class PlanChanged(RefusedByPolicy):
    """A plan file whose content no longer matches its id (or its approvals): refused, exit 5."""


@dataclasses.dataclass(frozen=True, slots=True)
class PlannedPackage:
    """One exact package version to install, with the CVEs it fixes and its risk (0..100).

    `cves` is what discovery found and ranking used; `claims` is every source's claim per CVE (changelog,
    dnf updateinfo, zypper patches, OSV advisories), sorted, disputes included (`disputed_cves`).
    """

    name: str
    version: str
    cves: tuple[str, ...] = ()
    installed: str | None = None
    risk: float = 0.0
    explanation: str = ""
    claims: tuple[FixClaim, ...] = ()

    def fixes(self) -> dict[str, tuple[FixClaim, ...]]:
        """{CVE id: its claims}, in CVE order."""
        out: dict[str, list[FixClaim]] = {}
        for c in self.claims:
            out.setdefault(c.cve_id, []).append(c)
        return {cve: tuple(cs) for cve, cs in sorted(out.items())}

    @property
    def disputed_cves(self) -> tuple[str, ...]:
        """CVE ids whose claims disagree (some say fixed, some not)."""
        return tuple(cve for cve, cs in self.fixes().items() if _disputed(cs))

    def fix_summary(self) -> list[str]:
        """One line per CVE: "CVE-2023-38545 (changelog, osv:DSA-5523-1)", or for a dispute
        "CVE-... DISPUTED (fixed: changelog; not fixed: osv:DSA-...)". Without claims, the bare CVE ids."""
        if not self.claims:
            return list(self.cves)
        out = []
        for cve, cs in self.fixes().items():
            fixed = ", ".join(dict.fromkeys(c.source for c in cs if c.says == "fixed"))
            if _disputed(cs):
                not_fixed = ", ".join(dict.fromkeys(c.source for c in cs if c.says == "not-fixed"))
                out.append(f"{cve} DISPUTED (fixed: {fixed}; not fixed: {not_fixed})")
            elif fixed:
                out.append(f"{cve} ({fixed})")
            else:
                sources = ", ".join(dict.fromkeys(c.source for c in cs))
                out.append(f"{cve} not fixed ({sources})")
        return out


def _disputed(claims: Iterable[FixClaim]) -> bool:
    return len({c.says for c in claims}) > 1


@dataclasses.dataclass(frozen=True, slots=True)
class PlannedHost:
    """A host and exactly what it gets, most urgent package first."""

    host: str
    pkg_mgr: PkgManager
    packages: tuple[PlannedPackage, ...]
    os_release: str = ""
    platform: str = "vm"
    risk: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class WaveSchedule:
    """When and how a wave may run: kind, earliest start (None: any time), hosts allowed to fail, bake."""

    kind: WaveKind = "wave"
    earliest_start: dt.datetime | None = None
    max_failures: int = 0
    bake_s: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """Waves of hosts; `waves[0]` is the canary. `plan_id` is the SHA-256 of the canonical content."""

    plan_id: str
    created: dt.datetime
    inventory: str
    spec: str
    waves: tuple[tuple[str, ...], ...]
    hosts: Mapping[str, PlannedHost]
    reboot_ok: bool | None = None
    schedule: tuple[WaveSchedule, ...] = ()
    excluded: Mapping[str, str] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    ranking: str = ""
    author: str | None = None
    author_name: str | None = None
    authorship: str | None = dataclasses.field(default=None, compare=False)
    source_sha256: str | None = dataclasses.field(default=None, compare=False)

    def wave_of(self, host: str) -> int:
        """The index of the wave holding `host`."""
        for i, wave in enumerate(self.waves):
            if host in wave:
                return i
        raise KeyError(host)

    def wave_schedule(self, index: int) -> WaveSchedule:
        """The schedule of wave `index` (a default one for plans without schedules)."""
        return self.schedule[index] if index < len(self.schedule) else WaveSchedule()

    def packages_by_host(self, hosts: Iterable[str]) -> dict[str, list[dict[str, str]]]:
        """`{host: [{name, version}, ...]}` as the rollout playbook takes it."""
        return {h: [{"name": p.name, "version": p.version} for p in self.hosts[h].packages] for h in hosts}

    @property
    def file_sha256(self) -> str:
        """SHA-256 of the plan file's bytes as loaded, else of the YAML `dump_plan` writes."""
        return self.source_sha256 or hashlib.sha256(dump_plan(self).encode("utf-8")).hexdigest()


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, UTF-8, no NaN: the one text a plan id is computed from."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def plan_content(plan: Plan) -> dict[str, Any]:
    """Everything the plan id covers (the document without `plan_id` and `authorship`)."""
    return {
        "schema": SCHEMA,
        "created": plan.created.isoformat(),
        "author": plan.author,
        "author_name": plan.author_name,
        "inventory": plan.inventory,
        "waves_spec": plan.spec,
        "reboot_ok": plan.reboot_ok,
        "ranking": plan.ranking,
        "schedule": [
            {
                "wave": i + 1,
                "kind": s.kind,
                "earliest_start": s.earliest_start.isoformat() if s.earliest_start else None,
                "max_failures": s.max_failures,
                "bake_s": s.bake_s,
            }
            for i, s in enumerate(plan.wave_schedule(i) for i in range(len(plan.waves)))
        ],
        "waves": [
            [
                {
                    "host": h,
                    "pkg_mgr": plan.hosts[h].pkg_mgr,
                    "os": plan.hosts[h].os_release,
                    "platform": plan.hosts[h].platform,
                    "risk": plan.hosts[h].risk,
                    "packages": [_package_content(p) for p in plan.hosts[h].packages],
                }
                for h in wave
            ]
            for wave in plan.waves
        ],
        "excluded": [{"host": h, "reason": r} for h, r in sorted(plan.excluded.items())],
        "warnings": list(plan.warnings),
    }


def _package_content(p: PlannedPackage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": p.name,
        "version": p.version,
        "installed": p.installed,
        "cves": list(p.cves),
        "risk": p.risk,
        "explanation": p.explanation,
    }
    if p.claims:  # only when there are claims: plans made before claims were kept keep their ids
        out["fixes"] = [
            {
                "cve": cve,
                "disputed": _disputed(cs),
                "claims": [{"says": c.says, "source": c.source, "detail": c.detail} for c in cs],
            }
            for cve, cs in p.fixes().items()
        ]
    return out


def compute_plan_id(content: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a plan's content."""
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def with_id(plan: Plan) -> Plan:
    """`plan` with its id recomputed from its content (any authorship signature is dropped)."""
    return dataclasses.replace(plan, plan_id=compute_plan_id(plan_content(plan)), authorship=None)


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as plain data (what the YAML file holds): `plan_id` first for people, then the content."""
    content = plan_content(plan)
    doc: dict[str, Any] = {"schema": content.pop("schema"), "plan_id": plan.plan_id}
    doc.update(content)
    doc["authorship"] = plan.authorship
    return doc


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10,000-host plans
_KEY = re.compile(r"^[a-z_]+$")


def _scalar(value: Any) -> str:
    """A YAML scalar: strings as JSON strings with every non-ASCII character escaped (a JSON string is a
    valid YAML double-quoted scalar, and escaping keeps YAML 1.1 line breaks such as U+0085 out)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return json.dumps(value, allow_nan=False)
    return json.dumps(str(value), ensure_ascii=True)


def _leaf(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def _emit(value: Any, indent: str, out: list[str]) -> None:
    """Block-style YAML for plain data whose keys are fixed identifiers (the plan document)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not _KEY.match(k):
                raise ValueError(f"unexpected key {k!r}")
            if isinstance(v, Mapping | list) and v:
                out.append(f"{indent}{k}:\n")
                _emit(v, indent + "  ", out)
            else:
                out.append(f"{indent}{k}: {_leaf(v)}\n")
        return
    for item in value:
        if isinstance(item, Mapping | list) and item:
            nested: list[str] = []
            _emit(item, indent + "  ", nested)
            out.append(f"{indent}- {nested[0][len(indent) + 2 :]}")
            out.extend(nested[1:])
        else:
            out.append(f"{indent}- {_leaf(item)}\n")


def dump_plan(plan: Plan) -> str:
    """The plan as reviewable YAML (block style, every string quoted; fast enough for 10,000 hosts)."""
    out: list[str] = []
    _emit(plan_document(plan), "", out)
    return "".join(out)


def _round_risk(risk: float) -> float:
    return round(100.0 * risk, 2)


def _claim_order(c: FixClaim) -> tuple[str, str, str, str]:
    return (c.cve_id, c.says, c.source, c.detail)


def _plan_claims(claims: Iterable[FixClaim]) -> tuple[FixClaim, ...]:
    """Sorted, without duplicates, texts cut to what a plan file may hold (so the plan always loads)."""
    cut = {dataclasses.replace(c, source=c.source[:_MAX_TEXT], detail=c.detail[:_MAX_TEXT]) for c in claims}
    return tuple(sorted(cut, key=_claim_order))


def plan_from_layout(
    layout: PlanLayout,
    *,
    inventory: str,
    spec: str,
    reboot_ok: bool | None,
    ranking: str,
    now: dt.datetime,
    author: str | None = None,
    author_name: str | None = None,
) -> Plan:
    """A Plan (with its id) from the planner's layout."""
    hosts = {
        name: PlannedHost(
            name,
            r.pkg_mgr,
            tuple(
                PlannedPackage(
                    p.name,
                    p.version,
                    p.cves,
                    p.installed,
                    _round_risk(p.risk),
                    p.explanation,
                    _plan_claims(p.claims),
                )
                for p in r.packages
            ),
            r.os_release,
            r.platform,
            _round_risk(r.risk),
        )
        for name, r in layout.hosts.items()
    }
    plan = Plan(
        plan_id="",
        created=now,
        inventory=inventory,
        spec=spec,
        waves=tuple(w.hosts for w in layout.waves),
        hosts=hosts,
        reboot_ok=reboot_ok,
        schedule=tuple(
            WaveSchedule(w.kind, w.earliest_start, w.max_failures, int(w.bake.total_seconds()))
            for w in layout.waves
        ),
        excluded=dict(layout.excluded),
        warnings=layout.warnings,
        ranking=ranking,
        author=author,
        author_name=author_name,
    )
    return with_id(plan)


FALLBACK_RANKING = (
    "fallback: no prioritizer scores were given; risk = host weight x (1 - 0.9^CVEs fixed), "
    "a CVE count, not a model"
)


def fallback_scorer(hosts: Mapping[str, Host]) -> Scorer:
    """Risk from the number of CVEs an update fixes and the host's criticality and exposure (labelled
    as such in the plan). Used only when no prioritizer scores are available."""

    def score(u: PendingUpdate) -> UpdateScore:
        h = hosts.get(u.host)
        crit, expo = (h.criticality, h.exposure) if h else (3, 3)
        weight = ((crit + 1) / 6) * ((expo + 1) / 6)
        risk = weight * (1.0 - 0.9 ** len(u.cves))
        return UpdateScore(
            risk, f"{len(u.cves)} CVE(s) fixed; host criticality {crit}/5, exposure {expo}/5 (fallback)"
        )

    return score


def targets_from(
    pending: Sequence[PendingUpdate],
    hosts: Sequence[Host] = (),
    releases: Mapping[str, str] | None = None,
    packages: Sequence[str] = (),
) -> list[HostTarget]:
    """Planner input from discovery: validated updates grouped per host (only `packages` if given)."""
    by_host: dict[str, list[PendingUpdate]] = {}
    mgr: dict[str, PkgManager] = {}
    for p in pending:
        if packages and p.package not in packages:
            continue
        family = pkgspec.family_of(p.pkg_mgr)
        pkgspec.check_name(p.package, family, source=p.host, field="package")
        pkgspec.check_version(p.candidate, family, source=p.host, field="candidate")
        by_host.setdefault(p.host, []).append(p)
        mgr[p.host] = p.pkg_mgr
    known = {h.name: h for h in hosts}
    releases = releases or {}
    return [
        HostTarget(known.get(name) or Host(name, name), releases.get(name, ""), mgr[name], tuple(ups))
        for name, ups in sorted(by_host.items())
    ]


def updates_from_discovery(
    host_docs: Iterable[Mapping[str, Any]], cves: CveStore | None = None
) -> list[PendingUpdate]:
    """The pending updates of the journal's discovery host documents, each with its sources' claims, and
    the claims of the OSV advisories loaded in `cves` joined (`feeds.matching.with_osv_claims`)."""
    from patchbrain.feeds.matching import with_osv_claims

    docs = list(host_docs)
    pending = [PendingUpdate.from_dict(p) for d in docs for p in d.get("pending", [])]
    systems = {str(d.get("host")): (str(d.get("distribution", "")), str(d.get("release", ""))) for d in docs}
    return with_osv_claims(pending, cves, systems)


def make_plan(
    pending: Sequence[PendingUpdate],
    *,
    inventory: str,
    hosts: Sequence[Host] = (),
    spec: str = DEFAULT_SPEC,
    reboot_ok: bool | None = None,
    packages: Sequence[str] = (),
    now: dt.datetime | None = None,
    releases: Mapping[str, str] | None = None,
    scores: Scorer | Mapping[tuple[str, str], UpdateScore] | None = None,
    ranking: str | None = None,
    policy: PlanPolicy | None = None,
    author: str | None = None,
    author_name: str | None = None,
) -> Plan:
    """A plan installing every pending update (or only `packages`) at its discovered candidate version,
    ranked by `scores` (else the labelled fallback) and cut into waves by the planner."""
    now = now or dt.datetime.now(dt.UTC)
    targets = targets_from(pending, hosts, releases, packages)
    policy = policy or PlanPolicy(spec=spec)
    if scores is None:
        scores = fallback_scorer({t.host.name: t.host for t in targets})
        ranking = FALLBACK_RANKING
    layout = plan_waves(targets, scores, policy, now=now)
    return plan_from_layout(
        layout,
        inventory=inventory,
        spec=policy.spec,
        reboot_ok=reboot_ok,
        ranking=ranking or "",
        now=now,
        author=author,
        author_name=author_name,
    )


# -- reading ------------------------------------------------------------------------------------------


def _need(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], source: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadInput(f"missing or of the wrong type ({type(value).__name__})", source=source, field=key)
    return value


def _text(value: Any, source: str, field: str, *, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise BadInput(f"a string of at most {_MAX_TEXT} characters", source=source, field=field)
    return value


def _risk(value: Any, source: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise BadInput("a number from 0 to 100", source=source, field=field)
    if not math.isfinite(value):
        raise BadInput("a number from 0 to 100", source=source, field=field)
    return float(value)


def _time(value: Any, source: str, field: str, *, allow_none: bool = False) -> dt.datetime | None:
    if value is None and allow_none:
        return None
    try:
        when = dt.datetime.fromisoformat(_text(value, source, field))
    except ValueError as exc:
        raise BadInput("not an ISO 8601 time", source=source, field=field) from exc
    if when.tzinfo is None:
        raise BadInput("a time with a UTC offset", source=source, field=field)
    return when


def _host_entry(entry: Any, source: str, where: str) -> PlannedHost:
    if not isinstance(entry, Mapping):
        raise BadInput("must be a mapping", source=source, field=where)
    host = entry.get("host")
    if not isinstance(host, str) or not HOST_NAME.match(host):
        raise BadInput("bad host name", source=source, field=f"{where}.host")
    pkg_mgr = entry.get("pkg_mgr")
    if pkg_mgr not in ("apt", "dnf", "zypper"):
        raise BadInput("must be apt, dnf or zypper", source=source, field=f"{where}.pkg_mgr")
    family = pkgspec.family_of(str(pkg_mgr))
    platform = entry.get("platform", "vm")
    if platform not in ("vm", "baremetal"):
        raise BadInput("must be vm or baremetal", source=source, field=f"{where}.platform")
    pkgs = []
    raw_pkgs = entry.get("packages")
    if not isinstance(raw_pkgs, list) or not raw_pkgs:
        raise BadInput("a non-empty list", source=source, field=f"{where}.packages")
    for pi, pkg in enumerate(raw_pkgs):
        field = f"{where}.packages[{pi}]"
        if not isinstance(pkg, Mapping):
            raise BadInput("must be a mapping", source=source, field=field)
        name = pkgspec.check_name(pkg.get("name"), family, source=source, field=f"{field}.name")
        version = pkgspec.check_version(pkg.get("version"), family, source=source, field=f"{field}.version")
        installed = pkg.get("installed")
        if installed is not None:
            installed = pkgspec.check_version(installed, family, source=source, field=f"{field}.installed")
        cves = pkg.get("cves", [])
        if not isinstance(cves, list) or not all(pkgspec.is_cve(c) for c in cves):
            raise BadInput("a list of CVE IDs", source=source, field=f"{field}.cves")
        pkgs.append(
            PlannedPackage(
                name,
                version,
                tuple(cves),
                installed,
                _risk(pkg.get("risk", 0.0), source, f"{field}.risk"),
                _text(pkg.get("explanation", ""), source, f"{field}.explanation"),
                _fixes(pkg.get("fixes", []), source, f"{field}.fixes"),
            )
        )
    return PlannedHost(
        host,
        cast(PkgManager, pkg_mgr),
        tuple(pkgs),
        _text(entry.get("os", ""), source, f"{where}.os"),
        str(platform),
        _risk(entry.get("risk", 0.0), source, f"{where}.risk"),
    )


def _fixes(raw: Any, source: str, where: str) -> tuple[FixClaim, ...]:
    """The claims of a package's `fixes` list; each `disputed` flag must be what its claims say."""
    if not isinstance(raw, list):
        raise BadInput("a list of {cve, disputed, claims}", source=source, field=where)
    out = []
    for i, fix in enumerate(raw):
        field = f"{where}[{i}]"
        if not isinstance(fix, Mapping) or not pkgspec.is_cve(fix.get("cve")):
            raise BadInput("a mapping with a CVE ID as cve", source=source, field=f"{field}.cve")
        claims = fix.get("claims")
        if not isinstance(claims, list) or not claims:
            raise BadInput("a non-empty list of claims", source=source, field=f"{field}.claims")
        for j, c in enumerate(claims):
            cf = f"{field}.claims[{j}]"
            if not isinstance(c, Mapping) or c.get("says") not in ("fixed", "not-fixed"):
                raise BadInput("a claim whose says is fixed or not-fixed", source=source, field=f"{cf}.says")
            out.append(
                FixClaim(
                    fix["cve"],
                    c["says"],
                    _text(c.get("source"), source, f"{cf}.source"),
                    _text(c.get("detail", ""), source, f"{cf}.detail"),
                )
            )
        if fix.get("disputed") is not _disputed(out[-len(claims) :]):
            raise BadInput("does not match its claims", source=source, field=f"{field}.disputed")
    return tuple(out)


def _schedule(raw: Any, n_waves: int, source: str) -> tuple[WaveSchedule, ...]:
    if not isinstance(raw, list) or len(raw) != n_waves:
        raise BadInput(f"a list of {n_waves} wave schedules", source=source, field="schedule")
    out = []
    for i, s in enumerate(raw):
        where = f"schedule[{i}]"
        if not isinstance(s, Mapping) or s.get("wave") != i + 1:
            raise BadInput(f"a mapping with wave: {i + 1}", source=source, field=where)
        kind = s.get("kind")
        if kind not in ("canary", "wave"):
            raise BadInput("canary or wave", source=source, field=f"{where}.kind")
        start = _time(s.get("earliest_start"), source, f"{where}.earliest_start", allow_none=True)
        numbers = []
        for key in ("max_failures", "bake_s"):
            value = s.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadInput("a non-negative integer", source=source, field=f"{where}.{key}")
            numbers.append(value)
        out.append(WaveSchedule(cast(WaveKind, kind), start, numbers[0], numbers[1]))
    return tuple(out)


def parse_plan(data: Any, *, source: str, file_sha256: str | None = None, check_id: bool = True) -> Plan:
    """Validate a plan document completely; BadInput names the file and field of the first problem;
    PlanChanged if the content does not hash to its `plan_id` (unless `check_id` is false: for tools
    that edit a plan and then give it its new id with `with_id`)."""
    if not isinstance(data, Mapping):
        raise BadInput("a plan must be a mapping", source=source)
    if data.get("schema") != SCHEMA:
        raise BadInput(f"expected {SCHEMA!r}", source=source, field="schema")
    plan_id = _need(data, "plan_id", str, source)
    if len(plan_id) != _ID_LEN or any(c not in "0123456789abcdef" for c in plan_id):
        raise BadInput(
            "the SHA-256 (64 lowercase hex digits) of the plan's content", source=source, field="plan_id"
        )
    created = _time(data.get("created"), source, "created")
    assert created is not None
    reboot_ok = data.get("reboot_ok")
    if reboot_ok is not None and not isinstance(reboot_ok, bool):
        raise BadInput("must be true, false or null", source=source, field="reboot_ok")
    author = data.get("author")
    if author is not None and (
        not isinstance(author, str) or not author.startswith("sha256:") or len(author) != 71
    ):
        raise BadInput("a key fingerprint sha256:<64 hex> or null", source=source, field="author")
    author_name = _text(data.get("author_name"), source, "author_name", allow_none=True)
    waves: list[tuple[str, ...]] = []
    hosts: dict[str, PlannedHost] = {}
    for wi, wave in enumerate(_need(data, "waves", list, source)):
        if not isinstance(wave, list) or not wave:
            raise BadInput("each wave is a non-empty list of hosts", source=source, field=f"waves[{wi}]")
        names = []
        for hi, entry in enumerate(wave):
            planned = _host_entry(entry, source, f"waves[{wi}][{hi}]")
            if planned.host in hosts:
                raise BadInput(
                    f"host {planned.host} appears twice", source=source, field=f"waves[{wi}][{hi}].host"
                )
            hosts[planned.host] = planned
            names.append(planned.host)
        waves.append(tuple(names))
    excluded: dict[str, str] = {}
    for i, e in enumerate(data.get("excluded") or []):
        if not isinstance(e, Mapping) or not isinstance(e.get("host"), str) or not HOST_NAME.match(e["host"]):
            raise BadInput("a mapping with a host name and a reason", source=source, field=f"excluded[{i}]")
        excluded[e["host"]] = _text(e.get("reason", ""), source, f"excluded[{i}].reason")
    warnings = data.get("warnings") or []
    if not isinstance(warnings, list):
        raise BadInput("a list of strings", source=source, field="warnings")
    authorship = data.get("authorship")
    if authorship is not None and (not isinstance(authorship, str) or len(authorship) > 8000):
        raise BadInput("a signature (JSON text) or null", source=source, field="authorship")
    plan = Plan(
        plan_id=plan_id,
        created=created,
        inventory=_text(data.get("inventory", ""), source, "inventory"),
        spec=_text(data.get("waves_spec", ""), source, "waves_spec"),
        waves=tuple(waves),
        hosts=hosts,
        reboot_ok=reboot_ok,
        schedule=_schedule(data.get("schedule"), len(waves), source),
        excluded=excluded,
        warnings=tuple(_text(w, source, f"warnings[{i}]") for i, w in enumerate(warnings)),
        ranking=_text(data.get("ranking", ""), source, "ranking"),
        author=author,
        author_name=author_name,
        authorship=authorship,
        source_sha256=file_sha256,
    )
    actual = compute_plan_id(plan_content(plan))
    if check_id and actual != plan_id:
        raise PlanChanged(
            f"{source}: the plan's content hashes to {actual[:16]}..., not its plan_id {plan_id[:16]}...: "
            "it was changed after it was made (make and approve a new plan)"
        )
    return plan


def load_plan(path: Path) -> Plan:
    """Read and validate a plan file (its bytes' SHA-256 is kept for the approval check)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise BadInput("no such plan file", source=str(path)) from exc
    except IsADirectoryError as exc:
        raise BadInput("a directory, not a plan file", source=str(path)) from exc
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_Loader)  # noqa: S506 (a safe loader)
    except UnicodeDecodeError as exc:
        raise BadInput("not UTF-8 text", source=str(path)) from exc
    except yaml.YAMLError as exc:
        raise BadInput(f"not valid YAML: {exc}", source=str(path)) from exc
    return parse_plan(data, source=str(path), file_sha256=hashlib.sha256(raw).hexdigest())
