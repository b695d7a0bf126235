"""Resume an interrupted rollout from the journal: re-verify the interrupted wave, never patch a host twice.

`prepare_resume` reads the plan's journal record, finds the first wave that did not finish (`running` after a
controller crash, `halted`, `canceled`, or never started), and re-reads every host of that wave the last run
touched over the second channel (`patchbrain.verify`: its own read-only SSH sessions, not Ansible; installed
versions of the planned packages).
Each such host goes `verifying`, then:

  at the planned versions      -> patched (or unchanged, if the journal already said so): never run again
  older version, reachable     -> pending: the wave runs again for these hosts only
  unreachable                  -> unreachable: counts against the wave's failure threshold, never patched
  newer than planned           -> mismatch

Hosts of earlier, finished waves are left as they are. A plan halted by the drift gate or the pre-scan gate is
not resumed (the same content would meet the same gate): make a new plan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from patchbrain import pkgspec
from patchbrain.errors import BadInput, RefusedByPolicy
from patchbrain.feeds.versions import compare
from patchbrain.journal import Journal, PlanRecord
from patchbrain.plans import Plan

log = logging.getLogger(__name__)

# Host states a resumed wave leaves alone (the safety loop's rollback owns them).
ROLLBACK_STATES = frozenset({"rolling_back", "restored", "not_restored"})
UNTOUCHED = frozenset({"pending", "skipped"})
NOT_RESUMABLE_HALTS = frozenset({"drift", "prescan"})


@dataclasses.dataclass(frozen=True, slots=True)
class Reading:
    """What the second channel read on one host: installed versions (None: not installed cleanly)."""

    host: str
    reachable: bool
    versions: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    error: str = ""


Reverify = Callable[[Plan, Sequence[str], Path], Mapping[str, Reading]]


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """One re-verified host: its new journal state and why."""

    host: str
    state: str
    detail: str
    versions: Mapping[str, str | None]


@dataclasses.dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a resumed rollout starts: wave index, the re-verified hosts of that wave, and what runs."""

    plan_id: str
    wave: int
    verdicts: Mapping[str, Verdict]
    to_run: tuple[str, ...]
    previous_state: str
    last_wave_end: dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "wave": self.wave + 1,
            "previous_state": self.previous_state,
            "reverified": {
                h: {"state": v.state, "detail": v.detail, "versions": dict(v.versions)}
                for h, v in sorted(self.verdicts.items())
            },
            "to_run": list(self.to_run),
        }


def reverify_hosts(
    plan: Plan, hosts: Sequence[str], inventory: Path, *, timeout: float = 30.0, workers: int = 8
) -> dict[str, Reading]:
    """Read the planned packages' installed versions on `hosts` over the second channel.

    `patchbrain.verify.read_hosts`: patchbrain's own read-only SSH sessions (paramiko, strict host keys from
    the inventory's known_hosts), not Ansible; each host's package family is the plan's.
    """
    from patchbrain.inventory import hosts_from_listing, read_inventory
    from patchbrain.verify import read_hosts
    from patchbrain.verify.read import access_from_listing

    listing = read_inventory(inventory)
    known = {h.name: h for h in hosts_from_listing(listing, source=str(inventory))}
    targets = [
        dataclasses.replace(known[h], pkg_mgr=plan.hosts[h].pkg_mgr) if h in known else None for h in hosts
    ]
    missing = [h for h, t in zip(hosts, targets, strict=True) if t is None]
    if missing:
        raise BadInput(f"hosts not in the inventory: {', '.join(missing)}", source=str(inventory))
    readings = read_hosts(
        [t for t in targets if t is not None],
        {h: [p.name for p in plan.hosts[h].packages] for h in hosts},
        access=access_from_listing(listing, source=str(inventory)),
        timeout=timeout,
        workers=workers,
    )
    return {
        h: Reading(h, r.reachable, dict(r.versions), r.error) if (r := readings.get(h)) else Reading(h, False)
        for h in hosts
    }


def judge(plan: Plan, reading: Reading, journal_state: str) -> Verdict:
    """The journal state a re-verified host moves to (see the module docstring)."""
    host = reading.host
    if not reading.reachable:
        return Verdict(
            host, "unreachable", f"not reachable over the second channel: {reading.error}", reading.versions
        )
    planned = plan.hosts[host]
    ordering = "dpkg" if pkgspec.family_of(planned.pkg_mgr) == "deb" else "rpm"
    newer, older = [], []
    for p in planned.packages:
        found = reading.versions.get(p.name)
        if found is None:
            older.append(f"{p.name}: not installed cleanly (planned {p.version})")
        elif (c := compare(ordering, found, p.version)) > 0:
            newer.append(f"{p.name}: found {found}, planned {p.version}")
        elif c < 0:
            older.append(f"{p.name}: {found}, planned {p.version}")
    if newer:
        return Verdict(host, "mismatch", "; ".join(newer), reading.versions)
    if older:
        return Verdict(host, "pending", "not patched yet: " + "; ".join(older), reading.versions)
    state = journal_state if journal_state in ("patched", "unchanged") else "patched"
    shown = ", ".join(f"{p.name} {p.version}" for p in planned.packages)
    return Verdict(
        host, state, f"at the planned versions ({shown}), read over the second channel", reading.versions
    )


def _halt_kind(record: PlanRecord, wave: int) -> str | None:
    halt = record.waves[wave].summary.get("halt") if wave < len(record.waves) else None
    return str(halt.get("kind")) if isinstance(halt, Mapping) and halt.get("kind") else None


def prepare_resume(
    plan: Plan, journal: Journal, inventory: Path, reverify: Reverify | None = None
) -> ResumePoint:
    """Re-verify the interrupted wave, record the verdicts in the journal; BadInput if nothing to resume."""
    record = journal.plan(plan.plan_id)
    if record is None:
        raise BadInput(f"plan {plan.plan_id} was never rolled out here: run it without --resume")
    if record.state == "done":
        raise BadInput(f"plan {plan.plan_id} already finished: nothing to resume")
    if len(record.waves) != len(plan.waves):
        raise BadInput(
            f"the journal's plan {plan.plan_id} has {len(record.waves)} waves, "
            f"the plan file {len(plan.waves)}"
        )
    index = next((w.wave for w in record.waves if w.state != "done"), len(record.waves))
    for w in record.waves[: index + 1]:
        if (kind := _halt_kind(record, w.wave)) in NOT_RESUMABLE_HALTS:
            raise RefusedByPolicy(
                f"wave {w.wave + 1} of plan {plan.plan_id} was halted by the {kind} gate; resuming "
                "would meet the same content again: make a new plan"
            )
    ended = [w.ended for w in record.waves[:index] if w.ended is not None]
    if index == len(plan.waves):  # every wave finished; only the plan's own end was not recorded
        return ResumePoint(plan.plan_id, index, {}, (), record.state, max(ended) if ended else None)
    states = record.hosts
    touched = [h for h in plan.waves[index] if states.get(h) not in UNTOUCHED | ROLLBACK_STATES]
    readings = (reverify or reverify_hosts)(plan, touched, inventory) if touched else {}
    verdicts: dict[str, Verdict] = {}
    for host in touched:
        verdict = judge(plan, readings.get(host) or Reading(host, False, error="not read"), states[host])
        journal.transition(
            plan.plan_id, host, "verifying", detail="re-verifying after an interrupted rollout"
        )
        journal.transition(plan.plan_id, host, verdict.state, detail=verdict.detail)
        verdicts[host] = verdict
    to_run = tuple(h for h in plan.waves[index] if h not in verdicts and states.get(h) in UNTOUCHED) + tuple(
        h for h, v in verdicts.items() if v.state == "pending"
    )
    order = {h: i for i, h in enumerate(plan.waves[index])}
    return ResumePoint(
        plan.plan_id,
        index,
        verdicts,
        tuple(sorted(to_run, key=order.__getitem__)),
        record.state,
        max(ended) if ended else None,
    )
