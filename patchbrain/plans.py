"""Minimal rollout plans: which exact package versions go to which hosts, in which waves.

A plan file is YAML that people read and review, and that patchbrain re-validates in full when it loads
one (a plan file is input like any other: names, versions and host names must match their grammars).
The planner issue later ranks, windows and approves plans; the file format stays this one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import yaml

from patchbrain import pkgspec
from patchbrain.errors import BadInput
from patchbrain.executor.request import IDENT
from patchbrain.inventory import HOST_NAME
from patchbrain.models import Host, PendingUpdate, PkgManager
from patchbrain.waves import DEFAULT_SPEC, wave_sizes

SCHEMA = "patchbrain.plan/1"


@dataclasses.dataclass(frozen=True, slots=True)
class PlannedPackage:
    """One exact package version to install."""

    name: str
    version: str
    cves: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class PlannedHost:
    """A host and exactly what it gets."""

    host: str
    pkg_mgr: PkgManager
    packages: tuple[PlannedPackage, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """Waves of hosts; `waves[0]` is the canary."""

    plan_id: str
    created: dt.datetime
    inventory: str
    spec: str
    waves: tuple[tuple[str, ...], ...]
    hosts: Mapping[str, PlannedHost]
    reboot_ok: bool | None = None

    def wave_of(self, host: str) -> int:
        """The index of the wave holding `host`."""
        for i, wave in enumerate(self.waves):
            if host in wave:
                return i
        raise KeyError(host)

    def packages_by_host(self, hosts: Iterable[str]) -> dict[str, list[dict[str, str]]]:
        """`{host: [{name, version}, ...]}` as the rollout playbook takes it."""
        return {h: [{"name": p.name, "version": p.version} for p in self.hosts[h].packages] for h in hosts}


def new_plan_id(now: dt.datetime | None = None) -> str:
    """`p20261126T114500-3fa2`: sortable by time, unique by its random tail."""
    now = now or dt.datetime.now(dt.UTC)
    return f"p{now:%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"


def _canary_order(host: Host | None, name: str) -> tuple[int, int, int, str]:
    if host is None:
        return (1, 3, 3, name)
    rank = 0 if host.canary is True else 2 if host.canary is False else 1
    return (rank, host.criticality, host.exposure, name)


def make_plan(
    pending: Sequence[PendingUpdate],
    *,
    inventory: str,
    hosts: Sequence[Host] = (),
    spec: str = DEFAULT_SPEC,
    reboot_ok: bool | None = None,
    packages: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> Plan:
    """A plan installing every pending update (or only `packages`) at its discovered candidate version.

    Canaries first: hosts marked `patchbrain_canary: true`, then unmarked ones, never those marked false
    while others remain; lower criticality and exposure first, then by name.
    """
    by_host: dict[str, list[PlannedPackage]] = {}
    mgr: dict[str, PkgManager] = {}
    for p in pending:
        if packages and p.package not in packages:
            continue
        family = pkgspec.family_of(p.pkg_mgr)
        pkgspec.check_name(p.package, family, source=p.host, field="package")
        pkgspec.check_version(p.candidate, family, source=p.host, field="candidate")
        by_host.setdefault(p.host, []).append(PlannedPackage(p.package, p.candidate, p.cves))
        mgr[p.host] = p.pkg_mgr
    known = {h.name: h for h in hosts}
    order = sorted(by_host, key=lambda n: _canary_order(known.get(n), n))
    waves: list[tuple[str, ...]] = []
    start = 0
    for size in wave_sizes(len(order), spec):
        waves.append(tuple(order[start : start + size]))
        start += size
    now = now or dt.datetime.now(dt.UTC)
    return Plan(
        plan_id=new_plan_id(now),
        created=now,
        inventory=inventory,
        spec=spec,
        waves=tuple(waves),
        hosts={h: PlannedHost(h, mgr[h], tuple(sorted(by_host[h], key=lambda p: p.name))) for h in order},
        reboot_ok=reboot_ok,
    )


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as plain data (what the YAML file holds)."""
    return {
        "schema": SCHEMA,
        "plan_id": plan.plan_id,
        "created": plan.created.isoformat(),
        "inventory": plan.inventory,
        "waves_spec": plan.spec,
        "reboot_ok": plan.reboot_ok,
        "waves": [
            [
                {
                    "host": h,
                    "pkg_mgr": plan.hosts[h].pkg_mgr,
                    "packages": [
                        {"name": p.name, "version": p.version, "cves": list(p.cves)}
                        for p in plan.hosts[h].packages
                    ],
                }
                for h in wave
            ]
            for wave in plan.waves
        ],
    }


def dump_plan(plan: Plan) -> str:
    """The plan as reviewable YAML."""
    return yaml.safe_dump(plan_document(plan), sort_keys=False, allow_unicode=True)


def _need(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], source: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        raise BadInput(f"missing or of the wrong type ({type(value).__name__})", source=source, field=key)
    return value


def parse_plan(data: Any, *, source: str) -> Plan:
    """Validate a plan document completely; BadInput names the file and field of the first problem."""
    if not isinstance(data, Mapping):
        raise BadInput("a plan must be a mapping", source=source)
    if data.get("schema") != SCHEMA:
        raise BadInput(f"expected {SCHEMA!r}", source=source, field="schema")
    plan_id = _need(data, "plan_id", str, source)
    if not IDENT.match(plan_id):
        raise BadInput("letters, digits, . _ - only", source=source, field="plan_id")
    try:
        created = dt.datetime.fromisoformat(_need(data, "created", str, source))
    except ValueError as exc:
        raise BadInput("not an ISO 8601 time", source=source, field="created") from exc
    reboot_ok = data.get("reboot_ok")
    if reboot_ok is not None and not isinstance(reboot_ok, bool):
        raise BadInput("must be true, false or null", source=source, field="reboot_ok")
    waves: list[tuple[str, ...]] = []
    hosts: dict[str, PlannedHost] = {}
    for wi, wave in enumerate(_need(data, "waves", list, source)):
        if not isinstance(wave, list) or not wave:
            raise BadInput("each wave is a non-empty list of hosts", source=source, field=f"waves[{wi}]")
        names = []
        for hi, entry in enumerate(wave):
            where = f"waves[{wi}][{hi}]"
            if not isinstance(entry, Mapping):
                raise BadInput("must be a mapping", source=source, field=where)
            host = entry.get("host")
            if not isinstance(host, str) or not HOST_NAME.match(host):
                raise BadInput("bad host name", source=source, field=f"{where}.host")
            if host in hosts:
                raise BadInput(f"host {host} appears twice", source=source, field=f"{where}.host")
            pkg_mgr = entry.get("pkg_mgr")
            if pkg_mgr not in ("apt", "dnf", "zypper"):
                raise BadInput("must be apt, dnf or zypper", source=source, field=f"{where}.pkg_mgr")
            family = pkgspec.family_of(str(pkg_mgr))
            pkgs = []
            raw_pkgs = entry.get("packages")
            if not isinstance(raw_pkgs, list) or not raw_pkgs:
                raise BadInput("a non-empty list", source=source, field=f"{where}.packages")
            for pi, pkg in enumerate(raw_pkgs):
                field = f"{where}.packages[{pi}]"
                if not isinstance(pkg, Mapping):
                    raise BadInput("must be a mapping", source=source, field=field)
                name = pkgspec.check_name(pkg.get("name"), family, source=source, field=f"{field}.name")
                version = pkgspec.check_version(
                    pkg.get("version"), family, source=source, field=f"{field}.version"
                )
                cves = pkg.get("cves", [])
                if not isinstance(cves, list) or not all(pkgspec.is_cve(c) for c in cves):
                    raise BadInput("a list of CVE IDs", source=source, field=f"{field}.cves")
                pkgs.append(PlannedPackage(name, version, tuple(cves)))
            hosts[host] = PlannedHost(host, cast(PkgManager, pkg_mgr), tuple(pkgs))
            names.append(host)
        waves.append(tuple(names))
    return Plan(
        plan_id=plan_id,
        created=created,
        inventory=str(data.get("inventory", "")),
        spec=str(data.get("waves_spec", "")),
        waves=tuple(waves),
        hosts=hosts,
        reboot_ok=reboot_ok,
    )


def load_plan(path: Path) -> Plan:
    """Read and validate a plan file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BadInput("no such plan file", source=str(path)) from exc
    except yaml.YAMLError as exc:
        raise BadInput(f"not valid YAML: {exc}", source=str(path)) from exc
    return parse_plan(data, source=str(path))
