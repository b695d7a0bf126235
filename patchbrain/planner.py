"""The planner: discovery results + risk scores + policy -> ranked, windowed waves. Pure: no I/O.

* Each host's package set is ordered by risk (most urgent first); hosts are ranked by their riskiest
  update, then their combined risk.
* The canary is at least the wave spec's first number and is widened to cover every distinct
  (OS release, package manager, package set) group with one host each: never a host marked
  `patchbrain_canary: false`, at most one bare-metal host. Group representatives are picked from hosts
  marked `patchbrain_canary: true` first, then the least critical and least exposed.
* The remaining hosts follow in risk order, sized by the project's wave rule (`patchbrain.waves`: later
  items are cumulative shares of the hosts remaining after the canary), cut to at most `max_per_wave`.
* Maintenance windows: a wave starts only at a time inside every member's window (a host without windows
  is always open). A wave whose members share no opening is split into waves that do; the plan gives
  each wave its earliest common start, at or after the previous wave's start plus its expected run time
  and bake time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

from patchbrain.errors import BadInput
from patchbrain.models import FixClaim, Host, PendingUpdate, PkgManager
from patchbrain.waves import DEFAULT_SPEC, Share, parse_spec, wave_sizes
from patchbrain.windows import MaintenanceWindow

WaveKind = Literal["canary", "wave"]
GroupKey = tuple[str, str, tuple[tuple[str, str], ...]]
_HORIZON = dt.timedelta(days=366)
_MAX_STEPS = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateScore:
    """The prioritizer's verdict on one (host, update): risk in [0, 1] and why, in words."""

    risk: float
    explanation: str = ""


Scorer = Callable[[PendingUpdate], UpdateScore]


@dataclasses.dataclass(frozen=True, slots=True)
class HostTarget:
    """One host with what discovery found on it."""

    host: Host
    os_release: str
    pkg_mgr: PkgManager
    updates: tuple[PendingUpdate, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class PlanPolicy:
    """How to cut waves. `max_failures_pct` is the share of a later wave's hosts that may fail before the
    rollout halts (the canary allows none); `bake` is the wait after a wave before the next one starts;
    `wave_runtime` is the expected run time of one wave, used only for the schedule."""

    spec: str = DEFAULT_SPEC
    max_per_wave: int | None = None
    excluded: frozenset[str] = frozenset()
    max_failures_pct: int = 0
    bake: dt.timedelta = dt.timedelta(0)
    wave_runtime: dt.timedelta = dt.timedelta(minutes=30)

    def __post_init__(self) -> None:
        parse_spec(self.spec)
        if self.max_per_wave is not None and self.max_per_wave < 1:
            raise BadInput("must be at least 1", field="--max-per-wave")
        if not 0 <= self.max_failures_pct <= 100:
            raise BadInput("must be a percentage 0..100", field="--max-failures")
        if self.bake < dt.timedelta(0) or self.wave_runtime < dt.timedelta(0):
            raise BadInput("must not be negative", field="--bake")


@dataclasses.dataclass(frozen=True, slots=True)
class RankedPackage:
    """One update on one host, with its score."""

    name: str
    version: str
    installed: str | None
    cves: tuple[str, ...]
    risk: float
    explanation: str
    claims: tuple[FixClaim, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class RankedHost:
    """A host's package set, most urgent first; `risk` = 1 - prod(1 - risk_i) over its updates."""

    host: str
    os_release: str
    pkg_mgr: PkgManager
    platform: str
    risk: float
    packages: tuple[RankedPackage, ...]

    @property
    def group(self) -> GroupKey:
        """The canary group: (OS release, package manager, package set)."""
        return (self.os_release, self.pkg_mgr, tuple(sorted((p.name, p.version) for p in self.packages)))


@dataclasses.dataclass(frozen=True, slots=True)
class PlannedWave:
    """One wave: its hosts, kind, earliest common start (inside every member's window, and after the
    previous wave's start + run time + bake), failure threshold (hosts that may fail before the rollout
    halts) and bake time."""

    kind: WaveKind
    hosts: tuple[str, ...]
    earliest_start: dt.datetime
    max_failures: int
    bake: dt.timedelta


@dataclasses.dataclass(frozen=True, slots=True)
class PlanLayout:
    """What the planner decided."""

    waves: tuple[PlannedWave, ...]
    hosts: Mapping[str, RankedHost]
    excluded: Mapping[str, str]
    warnings: tuple[str, ...]


def score_of(scores: Scorer | Mapping[tuple[str, str], UpdateScore]) -> Scorer:
    """A scorer from a callable or a precomputed `{(host, package): UpdateScore}` mapping."""
    if callable(scores):
        return scores
    table = scores

    def lookup(update: PendingUpdate) -> UpdateScore:
        try:
            return table[(update.host, update.package)]
        except KeyError:
            raise BadInput(
                "no risk score for this update", source=update.host, field=update.package
            ) from None

    return lookup


def rank_host(target: HostTarget, scorer: Scorer) -> RankedHost:
    """Score a host's updates and order them, most urgent first (ties by package name)."""
    packages = []
    for u in target.updates:
        s = scorer(u)
        if not 0.0 <= s.risk <= 1.0:
            raise BadInput(f"risk {s.risk!r} is outside [0, 1]", source=u.host, field=u.package)
        packages.append(
            RankedPackage(u.package, u.candidate, u.installed, u.cves, s.risk, s.explanation, u.claims)
        )
    packages.sort(key=lambda p: (-p.risk, p.name))
    keep = 1.0
    for p in packages:
        keep *= 1.0 - p.risk
    return RankedHost(
        target.host.name,
        target.os_release,
        target.pkg_mgr,
        target.host.platform,
        1.0 - keep,
        tuple(packages),
    )


def _canary_preference(host: Host) -> tuple[int, int, int, int, str]:
    return (
        0 if host.canary is True else 1,
        1 if host.platform == "baremetal" else 0,
        host.criticality,
        host.exposure,
        host.name,
    )


def choose_canary(
    ranked: Mapping[str, RankedHost], hosts: Mapping[str, Host], minimum: int
) -> tuple[list[str], list[str]]:
    """Canary hosts (one per group where possible, then filled to `minimum`) and warnings."""
    warnings: list[str] = []
    groups: dict[GroupKey, list[str]] = {}
    for name, r in ranked.items():
        groups.setdefault(r.group, []).append(name)
    chosen: list[str] = []
    baremetal_used = False

    def eligible(name: str) -> bool:
        h = hosts[name]
        return h.canary is not False and not (h.platform == "baremetal" and baremetal_used)

    # groups whose only candidates are bare metal go last, so VMs cover every group they can
    def group_order(key: GroupKey) -> tuple[int, GroupKey]:
        vm_ok = any(hosts[n].canary is not False and hosts[n].platform != "baremetal" for n in groups[key])
        return (0 if vm_ok else 1, key)

    for key in sorted(groups, key=group_order):
        candidates = sorted(
            (n for n in groups[key] if eligible(n)), key=lambda n: _canary_preference(hosts[n])
        )
        if not candidates:
            why = (
                "every host in it is marked patchbrain_canary: false"
                if all(hosts[n].canary is False for n in groups[key])
                else "its only possible canaries are bare metal and the canary already has one"
            )
            warnings.append(
                f"canary does not cover group {key[0]} / {key[1]} / "
                f"{', '.join(f'{n} {v}' for n, v in key[2])}: {why}"
            )
            continue
        pick = candidates[0]
        chosen.append(pick)
        baremetal_used = baremetal_used or hosts[pick].platform == "baremetal"
    if len(chosen) < minimum:
        rest = sorted((n for n in ranked if n not in chosen), key=lambda n: _canary_preference(hosts[n]))
        for name in rest:
            if len(chosen) >= minimum:
                break
            if eligible(name):
                chosen.append(name)
                baremetal_used = baremetal_used or hosts[name].platform == "baremetal"
        if len(chosen) < minimum:
            warnings.append(
                f"canary has {len(chosen)} host(s), fewer than the {minimum} asked: no other host may be one"
            )
    return chosen, warnings


def _is_open(windows: Sequence[MaintenanceWindow], when: dt.datetime) -> bool:
    return not windows or any(w.contains(when) for w in windows)


def _next_open(windows: Sequence[MaintenanceWindow], after: dt.datetime) -> dt.datetime | None:
    """The earliest time >= `after` inside one of `windows`."""
    starts = []
    for w in windows:
        span = w.next_open(after)
        if span is not None:
            starts.append(max(span[0], after))
    return min(starts) if starts else None


def common_start(
    window_sets: Iterable[tuple[MaintenanceWindow, ...]], not_before: dt.datetime
) -> dt.datetime | None:
    """The earliest time >= `not_before` inside every set's windows (an empty set is always open);
    `not_before` itself if no set has windows; None if there is none within a year."""
    sets = [s for s in dict.fromkeys(window_sets) if s]
    if not sets:
        return not_before
    t = not_before
    limit = not_before + _HORIZON
    for _ in range(_MAX_STEPS):
        if t > limit:
            return None
        later = t
        for s in sets:
            if _is_open(s, t):
                continue
            nxt = _next_open(s, t)
            if nxt is None:
                return None
            later = max(later, nxt)
        if later == t:
            return t
        t = later
    return None


def _split_by_windows(
    names: Sequence[str], hosts: Mapping[str, Host], not_before: dt.datetime
) -> list[list[str]]:
    """Keep `names` in order but split them into runs whose members share an opening."""
    if common_start((hosts[n].windows for n in names), not_before) is not None:
        return [list(names)]
    by_windows: dict[tuple[MaintenanceWindow, ...], list[str]] = {}
    for n in names:
        by_windows.setdefault(hosts[n].windows, []).append(n)
    parts: list[list[str]] = []
    for members in by_windows.values():
        for part in parts:
            if common_start((hosts[n].windows for n in [*part, *members]), not_before) is not None:
                part.extend(members)
                break
        else:
            parts.append(list(members))
    return parts


def _chunks(names: Sequence[str], size: int | None) -> list[list[str]]:
    if size is None:
        return [list(names)] if names else []
    return [list(names[i : i + size]) for i in range(0, len(names), size)]


def plan_waves(
    targets: Sequence[HostTarget],
    scores: Scorer | Mapping[tuple[str, str], UpdateScore],
    policy: PlanPolicy,
    *,
    now: dt.datetime,
) -> PlanLayout:
    """Rank, pick the canary, cut waves and schedule them (see the module docstring)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    scorer = score_of(scores)
    hosts: dict[str, Host] = {}
    excluded: dict[str, str] = {}
    ranked: dict[str, RankedHost] = {}
    for t in targets:
        name = t.host.name
        if name in hosts:
            raise BadInput("host listed twice", source=name)
        hosts[name] = t.host
        if name in policy.excluded:
            excluded[name] = "excluded by policy"
        elif not t.updates:
            excluded[name] = "nothing pending"
        else:
            ranked[name] = rank_host(t, scorer)
    for name in sorted(policy.excluded - set(hosts)):
        excluded[name] = "excluded by policy (not in the discovery)"
    if not ranked:
        return PlanLayout((), {}, excluded, ())

    shares = parse_spec(policy.spec)
    first = wave_sizes(len(ranked), shares)[0]
    canary, warnings = choose_canary(ranked, hosts, first)
    canary_set = set(canary)
    rest = sorted(
        (n for n in ranked if n not in canary_set),
        key=lambda n: (-max(p.risk for p in ranked[n].packages), -ranked[n].risk, n),
    )
    groups: list[tuple[WaveKind, list[str]]] = []
    if canary:
        groups.append(("canary", canary))
        sizes = wave_sizes(len(ranked), (Share(len(canary), False), *shares[1:]))[1:]
    else:
        warnings.append("no host may be a canary: the rollout runs without one")
        sizes = wave_sizes(len(rest), shares)
    offset = 0
    for size in sizes:
        groups.append(("wave", rest[offset : offset + size]))
        offset += size

    waves: list[PlannedWave] = []
    not_before = now
    for kind, names in groups:
        for chunk in _chunks(names, policy.max_per_wave):
            for part in _split_by_windows(chunk, hosts, not_before):
                start = common_start((hosts[n].windows for n in part), not_before)
                if start is None:  # a single window set with no opening within a year
                    warnings.append(f"no opening within a year for {', '.join(part)}: excluded")
                    for n in part:
                        excluded[n] = "no maintenance window opening within a year"
                        del ranked[n]
                    continue
                allowed = 0 if kind == "canary" else (len(part) * policy.max_failures_pct) // 100
                waves.append(PlannedWave(kind, tuple(part), start, allowed, policy.bake))
                not_before = start + policy.wave_runtime + policy.bake
    return PlanLayout(tuple(waves), ranked, excluded, tuple(warnings))
