"""Resume an interrupted rollout from the journal: re-verify the interrupted wave, never patch a host twice.

`prepare_resume` reads the plan's journal record, finds the first wave that did not finish (`running` after a
controller crash, `halted`, `canceled`, or never started), and re-reads every host of that wave the last run
touched over the second channel (SSH outside Ansible, read-only: installed versions of the planned packages).
Each such host goes `verifying`, then:

  at the planned versions      -> patched (or unchanged, if the journal already said so): never run again
  older version, reachable     -> pending: the wave runs again for these hosts only
  unreachable                  -> unreachable: counts against the wave's failure threshold, never patched
  newer than planned           -> mismatch

Hosts of earlier, finished waves are left as they are. A plan halted by the drift gate or the pre-scan gate is
not resumed (the same content would meet the same gate): make a new plan.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from patchbrain import pkgspec
from patchbrain.errors import BadInput, RefusedByPolicy
from patchbrain.executor.discovery import parse_dpkg_installed, parse_rpm_installed
from patchbrain.feeds.versions import compare
from patchbrain.journal import Journal, PlanRecord
from patchbrain.plans import Plan

log = logging.getLogger(__name__)

# Host states a resumed wave leaves alone (the safety loop's rollback owns them).
ROLLBACK_STATES = frozenset({"rolling_back", "restored", "not_restored"})
UNTOUCHED = frozenset({"pending", "skipped"})
NOT_RESUMABLE_HALTS = frozenset({"drift", "prescan"})
ENV = ("env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C")
DPKG_QUERY = ("/usr/bin/dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n")
RPM_QUERY = ("/usr/bin/rpm", "-q", "--qf", "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n")


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


def _ssh_argv(hostvars: Mapping[str, Any], name: str, timeout: float) -> list[str]:
    address = str(hostvars.get("ansible_host") or name)
    argv = ["ssh", *shlex.split(str(hostvars.get("ansible_ssh_common_args") or ""))]
    if hostvars.get("ansible_ssh_private_key_file"):
        argv += ["-i", str(hostvars["ansible_ssh_private_key_file"])]
    if hostvars.get("ansible_port"):
        argv += ["-p", str(int(hostvars["ansible_port"]))]
    argv += ["-o", f"ConnectTimeout={max(1, int(timeout))}", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
    return [*argv, f"{hostvars.get('ansible_user') or 'root'}@{address}"]


def reverify_hosts(
    plan: Plan, hosts: Sequence[str], inventory: Path, *, timeout: float = 30.0, workers: int = 8
) -> dict[str, Reading]:
    """Read the planned packages' installed versions on `hosts` over SSH, outside Ansible (read-only).

    Interim second channel (OpenSSH with the inventory's connection variables and host keys); it moves to
    `patchbrain.verify.read_hosts` (paramiko) once that lands.
    """
    from patchbrain.inventory import read_inventory, unwrap_unsafe

    data = unwrap_unsafe(read_inventory(inventory))
    hostvars: Mapping[str, Any] = data.get("_meta", {}).get("hostvars", {})

    def one(name: str) -> Reading:
        planned = plan.hosts[name]
        family = pkgspec.family_of(planned.pkg_mgr)
        names = [pkgspec.check_name(p.name, family, source=f"plan host {name}") for p in planned.packages]
        query = shlex.join([*ENV, *(DPKG_QUERY if family == "deb" else RPM_QUERY), *names])
        argv = [*_ssh_argv(hostvars.get(name, {}), name, timeout), "--", query]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * 2, check=False)
        except subprocess.TimeoutExpired:
            return Reading(name, False, error=f"no answer within {timeout * 2:.0f} s")
        if proc.returncode == 255:
            return Reading(name, False, error=(proc.stderr.strip().splitlines() or ["ssh failed"])[-1])
        found = parse_dpkg_installed(proc.stdout) if family == "deb" else parse_rpm_installed(proc.stdout)
        return Reading(name, True, {n: found.get(n) for n in names})

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(hosts) or 1))) as pool:
        return dict(zip(hosts, pool.map(one, hosts), strict=True))


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
