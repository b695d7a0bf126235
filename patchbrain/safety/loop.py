"""The safety loop: the executor's `WaveHooks` that halt on drift, bake, verify over a second channel,
check health, distrust external failure signals, and roll back.

After each wave: the drift gate over Ansible's pre/post snapshots and over the verifier's own reading;
the verifier's versions against the plan and against Ansible's report (a host whose self-report disagrees
counts as failed); health checks (a failure counts when seen twice); external signals, acted on only
when a health check confirms them. Weakening (or unknown, by policy) halts and rolls the wave back;
confirmed health failures are rolled back; more failures than the wave allows halt. After the canary's
bake, the canary is read again and compared with pre-flight before the next wave starts.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from patchbrain import config, pkgspec
from patchbrain.errors import BadInput, RefusedByPolicy
from patchbrain.executor import runner
from patchbrain.executor.request import RunHooks, RunRequest
from patchbrain.executor.rollout import Halt, WaveContext, WaveHooks, WaveOutcome, posture_available
from patchbrain.feeds.versions import compare as compare_versions
from patchbrain.journal import Journal
from patchbrain.models import Host
from patchbrain.plans import Plan
from patchbrain.posture.gate import compare
from patchbrain.posture.models import Change
from patchbrain.posture.prescan import Finding
from patchbrain.safety import health, restore, snapshots
from patchbrain.safety.options import SafetyOptions
from patchbrain.safety.signals import SignalIntake
from patchbrain.store import Store
from patchbrain.verify import commands
from patchbrain.verify.check import check_wave
from patchbrain.verify.read import HostReading, SshAccess, access_from_listing, read_hosts

log = logging.getLogger(__name__)

DONE = ("patched", "unchanged", "mismatch")
BAD = ("failed", "unreachable", "mismatch", "canceled")
ROLLBACKABLE = ("patched", "unchanged", "failed", "mismatch", "canceled")
# Journal states of hosts a resumed wave carries as they are (re-verified by `executor.resume`, not run again)
CARRIED = ("patched", "unchanged", "mismatch", "unreachable")


def _change_text(c: Change) -> str:
    return f"{c.host}: {c.effect} {c.kind} ({c.subject}): {c.reason}"


def _change_dict(c: Change) -> dict[str, Any]:
    return {
        "host": c.host,
        "effect": c.effect,
        "kind": c.kind,
        "subject": c.subject,
        "reason": c.reason,
        "allowed_by": c.allowed_by,
    }


class SafetyLoop:
    """One rollout's safety loop. Build it with `SafetyLoop.create(...)`, attach with `hooks(base)`."""

    def __init__(
        self,
        plan: Plan,
        *,
        inventory: Path,
        store: Store,
        options: SafetyOptions,
        hosts: Mapping[str, Host],
        access: Mapping[str, SshAccess],
        checks: Mapping[str, tuple[health.HealthCheck, ...]],
        vm_hooks: Mapping[str, snapshots.SnapshotHook],
        artifacts_root: Path | None = None,
        forks: int = 10,
        cancel: Callable[[], bool] | None = None,
    ) -> None:
        self.plan, self.inventory, self.store, self.opts = plan, inventory, store, options
        self.journal = Journal(store)
        self.hosts, self.access, self.checks, self.vm_hooks = hosts, access, checks, vm_hooks
        self.root = artifacts_root if artifacts_root is not None else config.artifacts_dir()
        self.forks = forks
        self.cancel = cancel
        self.intake = SignalIntake(options.signals_file, options.signals_socket)
        self.verify_pre: dict[str, HostReading] = {}
        # the verifier's pre-patch read of the wave, running while Ansible's preflight run goes on
        self._pre_read: tuple[int, concurrent.futures.Future[dict[str, HostReading]]] | None = None
        self.carried: set[str] = set()  # hosts a resumed wave does not run again
        self.snapshotted: set[str] = set()
        self.records: dict[int, dict[str, Any]] = {}
        self.outcomes: dict[int, WaveOutcome] = {}
        self._rollback_runs = 0
        self.started = False

    @classmethod
    def create(
        cls,
        plan: Plan,
        *,
        inventory: Path,
        store: Store,
        options: SafetyOptions,
        artifacts_root: Path | None = None,
        forks: int = 10,
        cancel: Callable[[], bool] | None = None,
    ) -> SafetyLoop:
        """Read the inventory once (hosts, SSH access, health checks, snapshot hooks) and build the loop."""
        from patchbrain.inventory import hosts_from_listing, read_inventory

        data = read_inventory(inventory)
        source = str(inventory)
        hosts = {h.name: h for h in hosts_from_listing(data, source=source)}
        return cls(
            plan,
            inventory=inventory,
            store=store,
            options=options,
            hosts=hosts,
            access=access_from_listing(data, source=source),
            checks=health.checks_from_listing(data, source=source),
            vm_hooks=snapshots.hooks_from_listing(
                data, {n: h.platform for n, h in hosts.items()}, source=source
            ),
            artifacts_root=artifacts_root,
            forks=forks,
            cancel=cancel,
        )

    # -- wiring -----------------------------------------------------------------------------------------

    def hooks(self, base: WaveHooks) -> WaveHooks:
        """`base` (progress, cancel, a caller's own gates) with the safety loop's hooks added after them."""

        def before(ctx: WaveContext) -> None:
            if base.before_wave is not None:
                base.before_wave(ctx)
            self.before_wave(ctx)

        def gate(ctx: WaveContext, findings: Mapping[str, tuple[Finding, ...]]) -> Halt | None:
            self.join_pre_read()  # the verifier's baseline is in before anything is installed
            return base.prescan_gate(ctx, findings) if base.prescan_gate is not None else None

        def after(outcome: WaveOutcome) -> Halt | None:
            halt = base.after_wave(outcome) if base.after_wave is not None else None
            mine = self.after_wave(outcome, halted=halt)
            return halt or mine

        def after_bake(outcome: WaveOutcome) -> Halt | None:
            halt = base.after_bake(outcome) if base.after_bake is not None else None
            return halt or self.after_bake(outcome)

        def bake(index: int) -> int:
            return max(self.bake_s(index), base.bake_s(index) if base.bake_s is not None else 0)

        def summary(index: int) -> Mapping[str, Any]:
            return {**(base.wave_summary(index) if base.wave_summary else {}), **self.wave_summary(index)}

        self.cancel = self.cancel or base.cancel
        return dataclasses.replace(
            base,
            before_wave=before,
            prescan_gate=gate,
            after_wave=after,
            after_bake=after_bake,
            bake_s=bake,
            wave_summary=summary,
        )

    def start(self) -> None:
        if not self.started:
            self.intake.start()
            self.started = True

    def close(self) -> None:
        if self._pre_read is not None:  # a wave that ended before its gate: the read is not needed
            self._pre_read[1].cancel()
            concurrent.futures.wait([self._pre_read[1]])
            self._pre_read = None
        self.intake.stop()

    # -- helpers ----------------------------------------------------------------------------------------

    def _audit(self, action: str, subject: str, payload: dict[str, Any]) -> None:
        from patchbrain.audit import default_actor, open_audit_log

        open_audit_log(self.store).append(default_actor(), action, subject, payload)

    def _record(self, index: int) -> dict[str, Any]:
        return self.records.setdefault(
            index,
            {
                "drift": {"blocking": [], "changes": 0},
                "verify": {},
                "health": {},
                "signals": [],
                "rollback": {},
                "bake": None,
            },
        )

    def _names(self, host: str) -> list[str]:
        return [p.name for p in self.plan.hosts[host].packages]

    def _family(self, host: str) -> pkgspec.Family:
        return pkgspec.family_of(self.plan.hosts[host].pkg_mgr)

    def _same(self, host: str) -> Callable[[str | None, str | None], bool]:
        ordering = "dpkg" if self._family(host) == "deb" else "rpm"

        def same(a: str | None, b: str | None) -> bool:
            if a is None or b is None:
                return a is b
            try:
                return compare_versions(ordering, a, b) == 0
            except BadInput:
                return a == b

        return same

    def _read(self, hosts: Sequence[str]) -> dict[str, HostReading]:
        if not hosts:
            return {}
        inv = [self.hosts[h] if h in self.hosts else Host(h, h) for h in hosts]
        # the plan's package manager decides which database to read
        inv = [dataclasses.replace(h, pkg_mgr=self.plan.hosts[h.name].pkg_mgr) for h in inv]
        return read_hosts(
            inv,
            {h: self._names(h) for h in hosts},
            access=self.access,
            timeout=self.opts.verify_timeout_s,
            workers=self.opts.workers,
        )

    def _baseline(self, host: str, index: int, outcome: WaveOutcome) -> Any | None:
        """A host's pre-flight posture for wave `index`: this run's verifier reading, else Ansible's, else
        what the journal kept from an interrupted run (verifier first); None when no run ever took one.
        A host an execution node ran (`outcome.remote`) has only the verifier's readings: Ansible's
        snapshot of it is the node's word."""
        if host in self.verify_pre:
            return self.verify_pre[host].posture
        remote = host in outcome.remote
        if host in outcome.posture_pre and not remote:
            return outcome.posture_pre[host]
        for phase in ("verify-pre",) if remote else ("verify-pre", "pre"):
            doc = self.journal.snapshots(self.plan.plan_id, index, phase).get(host)
            if doc is not None:
                return doc
        return None

    def _baselines(
        self, hosts: Sequence[str], index: int, outcome: WaveOutcome, rec: dict[str, Any]
    ) -> dict[str, Any]:
        """`{host: baseline}` of `hosts`. A resumed wave's re-verified (carried) host with none (its
        interrupted run never snapshotted it) cannot be compared: it is named in the wave's record
        (`no_baseline`) and left to the verifier's version check, neither drift nor unknown. Any other host
        without one gets an empty baseline, which the gate reads as unknown (it halts by policy)."""
        out: dict[str, Any] = {}
        for host in hosts:
            doc = self._baseline(host, index, outcome)
            if doc is None and host not in self.carried:
                out[host] = {}
            elif doc is None:
                missing = rec.setdefault("no_baseline", [])
                if host not in missing:
                    missing.append(host)
                    log.warning(
                        "%s: no pre-flight snapshot from any run of wave %d; posture not compared",
                        host,
                        index + 1,
                    )
            else:
                out[host] = doc
        return out

    def _gate(
        self, before: Mapping[str, Any], after: Mapping[str, Any], hosts: Sequence[str], label: str
    ) -> tuple[list[Change], int]:
        """Blocking changes over `hosts` (unreadable documents block, as unknown) and the change count."""
        pkgs = sorted({n for h in hosts for n in self._names(h)})
        blocking: list[Change] = []
        count = 0
        for host in hosts:
            try:
                report = compare(
                    {host: before[host]} if host in before else {},
                    {host: after[host]} if host in after else {},
                    policy=self.opts.policy,
                    packages=pkgs,
                )
            except BadInput as exc:
                blocking.append(Change(host, "sources", "sources.unreadable", "unknown", label, str(exc)))
                continue
            count += len(report.changes)
            blocking += [dataclasses.replace(c, subject=f"{c.subject} [{label}]") for c in report.blocking]
        return blocking, count

    def _packages_text(self, hosts: Sequence[str]) -> str:
        return ", ".join(
            sorted(
                {
                    f"{p.name} {p.version}"
                    for h in hosts
                    if h in self.plan.hosts
                    for p in self.plan.hosts[h].packages
                }
            )
        )

    def _move(self, host: str, state: str, detail: str) -> None:
        self.journal.transition(self.plan.plan_id, host, state, detail=detail)

    def _state(self, host: str) -> str:
        return self.journal.host_states(self.plan.plan_id).get(host, "pending")

    # -- hooks ------------------------------------------------------------------------------------------

    def bake_s(self, index: int) -> int:
        """The safety loop's minimum bake after wave `index`: the canary's (longer with bare metal)."""
        if index != 0:
            return 0
        bare = any(self.plan.hosts[h].platform == "baremetal" for h in self.plan.waves[0])
        return max(self.opts.canary_bake_s, self.opts.baremetal_bake_s if bare else 0)

    def before_wave(self, ctx: WaveContext) -> None:
        """Refuse a canary with too much bare metal; take VM snapshots; read the hosts before patching."""
        self.start()
        if ctx.index == 0:
            bare = [h for h in ctx.hosts if self.plan.hosts[h].platform == "baremetal"]
            if len(bare) > self.opts.max_baremetal_canary:
                raise RefusedByPolicy(
                    f"the canary holds {len(bare)} bare-metal hosts ({', '.join(bare)}); at most "
                    f"{self.opts.max_baremetal_canary} allowed (bare metal has package-level rollback only)"
                )
        for host in ctx.hosts:
            hook = self.vm_hooks.get(host)
            if hook is None:
                continue
            ok, said = snapshots.run_hook(hook.pre, host)
            self._audit("safety.snapshot.pre", host, {"ok": ok, "argv": list(hook.pre), "result": said})
            if not ok:
                raise RefusedByPolicy(f"the snapshot hook of {host} failed ({said}); not patching without it")
            self.snapshotted.add(host)
        # a resumed wave's re-verified hosts are not run again: reading them now would take their patched
        # posture as the baseline; their baseline is the interrupted run's pre-flight (`_baseline`)
        states = self.journal.host_states(self.plan.plan_id)
        self.carried |= {h for h in ctx.hosts if states.get(h) in CARRIED}
        if self.opts.verify:
            # read while Ansible's preflight runs (it changes nothing); `join_pre_read` waits for it before
            # the patch run (the pre-scan gate) or the drift gate, whichever comes first
            todo = [h for h in ctx.hosts if h not in self.carried]
            for host in todo:  # a bad name refuses the wave now (BadInput), before anything runs
                if self._names(host):
                    commands.versions_line(self._family(host), self._names(host))
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-pre")
            self._pre_read = (ctx.index, pool.submit(self._read, todo))
            pool.shutdown(wait=False)

    def join_pre_read(self) -> None:
        """Wait for the verifier's pre-patch read of the wave and keep it (journal snapshot `verify-pre`)."""
        if self._pre_read is None:
            return
        index, future = self._pre_read
        self._pre_read = None
        for host, r in future.result().items():
            if r.reachable:
                self.verify_pre[host] = r
                self.journal.save_snapshot(self.plan.plan_id, index, host, "verify-pre", r.posture)

    def after_wave(self, outcome: WaveOutcome, *, halted: Halt | None = None) -> Halt | None:
        """Drift gate, verifier, health checks, signals; roll back what must be; halt or let it go on."""
        self.join_pre_read()
        index = outcome.index
        self.outcomes[index] = outcome
        rec = self._record(index)
        subject = f"{self.plan.plan_id}/w{index + 1}"
        states = {h.host: h.state for h in outcome.hosts}
        results = {h.host: h for h in outcome.hosts}
        done = [h for h in states if states[h] in DONE]

        # 1. drift, as Ansible saw it; hosts an execution node ran are judged from the verifier's own
        # readings alone (step 2): the node's snapshots could hide a change or invent one, and a node lost
        # mid-slice sent none
        by_verifier = sorted(h for h in done if h in outcome.remote) if self.opts.verify else []
        if by_verifier:
            rec["drift"]["verifier_only"] = by_verifier
        ansible = [h for h in done if h not in by_verifier]
        blocking, count = self._gate(outcome.posture_pre, outcome.posture_post, ansible, "ansible")

        # 2. the verifier: versions against the plan and the report; posture against pre-flight
        failed_by_verifier: dict[str, str] = {}
        readings: dict[str, HostReading] = {}
        if self.opts.verify and done:
            readings = self._read(done)
            expected = {h: {p.name: p.version for p in self.plan.hosts[h].packages} for h in done}
            reported = {h: {n: v for n, v in results[h].after.items() if n in expected[h]} for h in done}
            report = check_wave(readings, expected, reported)
            rec["verify"] = report.as_dict()
            for host, r in readings.items():
                if r.reachable:
                    self.journal.save_snapshot(self.plan.plan_id, index, host, "verify", r.posture)
            self._audit("verify.wave", subject, {"hosts": report.as_dict()})
            for host, verdict in report.hosts.items():
                if verdict.verdict == "ok":
                    continue
                detail = f"verifier: {verdict.describe()}"
                if verdict.lied:
                    self._audit(
                        "verify.disagreement",
                        host,
                        {"plan_id": self.plan.plan_id, "wave": index + 1, "detail": verdict.describe()},
                    )
                    log.error(
                        "%s: the host's own report disagrees with the verifier: %s", host, verdict.describe()
                    )
                new = "unreachable" if verdict.verdict == "unreachable" else "mismatch"
                if states[host] in ("patched", "unchanged"):
                    self._move(host, new, detail)
                    states[host] = new
                failed_by_verifier[host] = detail
            base = self._baselines(
                [h for h in done if h in readings and readings[h].reachable], index, outcome, rec
            )
            second = list(base)
            more, n = self._gate(base, {h: readings[h].posture for h in second}, second, "verifier")
            count += n
            seen = {(c.host, c.kind, c.subject.split(" [")[0]) for c in blocking}
            blocking += [c for c in more if (c.host, c.kind, c.subject.split(" [")[0]) not in seen]
        rec["drift"] = {**rec["drift"], "blocking": [_change_dict(c) for c in blocking], "changes": count}

        # 3. health checks, run by patchbrain over its own channel
        unhealthy = self._health(index, [h for h in done if states[h] in ("patched", "unchanged")], rec)
        # 4. external signals: acted on only when confirmed
        unhealthy |= self._signals(index, rec, unhealthy)
        for host, why in sorted(unhealthy.items()):
            if self._state(host) in ("patched", "unchanged"):
                self._move(host, "failed", why)
                states[host] = "failed"

        # 5. decide
        halt: Halt | None = halted
        if blocking:
            hosts = tuple(sorted({c.host for c in blocking}))
            first = blocking[0]
            reason = (
                f"wave {index + 1}: {len(blocking)} change(s) weaken security or cannot be proven safe on "
                f"{', '.join(hosts)} after {self._packages_text(hosts)}; first: {_change_text(first)}"
            )
            halt = Halt("drift", reason, hosts, {"changes": [_change_dict(c) for c in blocking]})
            self._audit("safety.drift", subject, {"reason": reason, "changes": rec["drift"]["blocking"]})
            log.error("drift halt: %s", reason)
            # a resumed wave's carried hosts did not run pre-flight in this run: their pre-flight
            # documents come from the interrupted run's journal, so a drifted one is rolled back too;
            # a host an execution node ran is restored to the verifier's own pre-flight (`_pre_doc`)
            targets = [
                h for h in states if states[h] in ROLLBACKABLE and self._pre_doc(h, outcome) is not None
            ]
            rec["rollback"] = self.rollback(index, targets, outcome, f"drift: {reason}")
        elif unhealthy:
            rec["rollback"] = self.rollback(
                index,
                sorted(unhealthy),
                outcome,
                "confirmed health failure: " + "; ".join(unhealthy.values()),
            )
        if halt is None:
            bad = sorted(
                {h for h, s in states.items() if s in BAD} | set(unhealthy) | set(failed_by_verifier)
            )
            allowed = self.plan.wave_schedule(index).max_failures
            if len(bad) > allowed:
                halt = Halt(
                    "failures",
                    f"{len(bad)} host(s) of wave {index + 1} failed or could not be verified "
                    f"(allowed: {allowed}): "
                    + "; ".join(
                        f"{h}: {failed_by_verifier.get(h) or unhealthy.get(h) or states[h]}" for h in bad
                    ),
                    tuple(bad),
                )
        return halt

    def after_bake(self, outcome: WaveOutcome) -> Halt | None:
        """Read the baked wave's hosts again and compare with pre-flight; weakening halts and rolls back."""
        index = outcome.index
        rec = self._record(index)
        states = self.journal.host_states(self.plan.plan_id)
        hosts = [h.host for h in outcome.hosts if states.get(h.host) in ("patched", "unchanged")]
        if not hosts:
            return None
        readings = self._read(hosts)
        after: dict[str, Any] = {}
        for host, r in readings.items():
            if r.reachable:
                after[host] = r.posture
                self.journal.save_snapshot(self.plan.plan_id, index, host, "bake", r.posture)
        base = self._baselines(hosts, index, outcome, rec)
        hosts = [h for h in hosts if h in base]
        blocking, count = self._gate(base, {h: after[h] for h in hosts if h in after}, hosts, "bake")
        rec["bake"] = {"hosts": hosts, "changes": count, "blocking": [_change_dict(c) for c in blocking]}
        subject = f"{self.plan.plan_id}/w{index + 1}"
        self._audit("safety.bake", subject, rec["bake"])
        halt = None
        if blocking:
            bad = tuple(sorted({c.host for c in blocking}))
            reason = (
                f"after the bake of wave {index + 1}: {len(blocking)} change(s) weaken security on "
                f"{', '.join(bad)} after {self._packages_text(bad)}; first: {_change_text(blocking[0])}"
            )
            halt = Halt("drift", reason, bad, {"changes": rec["bake"]["blocking"], "phase": "bake"})
            self._audit(
                "safety.drift",
                subject,
                {"reason": reason, "phase": "bake", "changes": rec["bake"]["blocking"]},
            )
            log.error("drift halt after bake: %s", reason)
            targets = [h for h in hosts if self._pre_doc(h, outcome) is not None]
            rec["rollback"] = {
                **rec["rollback"],
                **self.rollback(index, targets, outcome, f"drift after bake: {reason}"),
            }
        return halt

    def wave_summary(self, index: int) -> Mapping[str, Any]:
        """The safety loop's record of wave `index` (journal summary, audit, `rollout --json`)."""
        return {"safety": self.records[index]} if index in self.records else {}

    # -- health and signals -----------------------------------------------------------------------------

    def _run_checks(self, host: str) -> list[health.CheckResult]:
        access = self.access.get(host) or SshAccess(self.hosts[host].address if host in self.hosts else host)
        return health.run_checks(host, access, self.checks[host], timeout=self.opts.verify_timeout_s)

    def _confirmed_failure(self, host: str) -> tuple[bool, list[dict[str, Any]]]:
        """Run the host's checks; a failing one is run again after `health_confirm_s` and must fail again."""
        first = self._run_checks(host)
        seen = [dataclasses.asdict(r) for r in first]
        if all(r.ok for r in first):
            return False, seen
        time.sleep(self.opts.health_confirm_s)
        again = self._run_checks(host)
        seen += [{**dataclasses.asdict(r), "recheck": True} for r in again]
        failing = {r.check for r in first if not r.ok} & {r.check for r in again if not r.ok}
        return bool(failing), seen

    def _health(self, index: int, hosts: Sequence[str], rec: dict[str, Any]) -> dict[str, str]:
        unhealthy: dict[str, str] = {}
        for host in hosts:
            if host not in self.checks:
                continue
            failed, seen = self._confirmed_failure(host)
            rec["health"][host] = {"ok": not failed, "results": seen}
            if failed:
                why = "; ".join(
                    f"{r['check']}: {r['detail']}" for r in seen if not r["ok"] and r.get("recheck")
                )
                unhealthy[host] = f"health check failed twice: {why}"
                self._audit(
                    "safety.health.failed",
                    host,
                    {"plan_id": self.plan.plan_id, "wave": index + 1, "results": seen},
                )
        return unhealthy

    def _signals(self, index: int, rec: dict[str, Any], unhealthy: Mapping[str, str]) -> dict[str, str]:
        confirmed: dict[str, str] = {}
        states = self.journal.host_states(self.plan.plan_id)
        for err in self.intake.take_errors():
            self._audit("safety.signal.unreadable", self.plan.plan_id, {"error": err})
        for sig in self.intake.drain():
            entry: dict[str, Any] = {"signal": sig.as_dict()}
            state = states.get(sig.host)
            if not sig.failing:
                entry["verdict"], entry["why"] = "ignored", f"status {sig.status!r} is not a failure"
            elif sig.host not in self.plan.hosts:
                entry["verdict"], entry["why"] = "suspicious", "not a host of this rollout"
            elif state not in ("patched", "unchanged", "failed", "mismatch"):
                entry["verdict"], entry["why"] = (
                    "suspicious",
                    f"the host is {state}: this update cannot have caused it",
                )
            elif sig.host in unhealthy:
                entry["verdict"], entry["why"] = "confirmed", unhealthy[sig.host]
            elif sig.host not in self.checks:
                entry["verdict"], entry["why"] = (
                    "suspicious",
                    "no health check is declared to confirm it with",
                )
            else:
                failed, seen = self._confirmed_failure(sig.host)
                entry["checks"] = seen
                if failed:
                    entry["verdict"] = "confirmed"
                    entry["why"] = "the host's own health checks fail: " + "; ".join(
                        f"{r['check']}: {r['detail']}" for r in seen if not r["ok"]
                    )
                    if state in ("patched", "unchanged"):
                        confirmed[sig.host] = f"external signal confirmed: {entry['why']}"
                else:
                    entry["verdict"], entry["why"] = (
                        "suspicious",
                        "the host's health checks pass over patchbrain's channel",
                    )
            rec["signals"].append(entry)
            action = {"suspicious": "safety.signal.suspicious", "confirmed": "safety.signal.confirmed"}.get(
                entry["verdict"], "safety.signal.ignored"
            )
            self._audit(action, sig.host, {"plan_id": self.plan.plan_id, "wave": index + 1, **entry})
            if entry["verdict"] == "suspicious":
                log.warning(
                    "suspicious failure signal for %s (%s), not acted on: %s",
                    sig.host,
                    sig.origin,
                    entry["why"],
                )
        return confirmed

    # -- rollback ---------------------------------------------------------------------------------------

    def _pre_doc(self, host: str, outcome: WaveOutcome) -> Mapping[str, Any] | None:
        """The pre-flight posture a rollback restores and is judged against: Ansible's snapshot, except
        for a host an execution node ran, whose pre-flight is the verifier's own reading. A resumed wave's
        carried host took none in this run: the interrupted run's, as the journal kept it (Ansible's first,
        else the verifier's)."""
        if host in outcome.remote:
            return self.verify_pre[host].posture if host in self.verify_pre else None
        doc = outcome.posture_pre.get(host)
        if doc is None and host in self.carried:
            for phase in ("pre", "verify-pre"):
                doc = self.journal.snapshots(self.plan.plan_id, outcome.index, phase).get(host)
                if doc is not None:
                    break
        return doc if isinstance(doc, Mapping) else None

    def _pre_versions(self, host: str, outcome: WaveOutcome) -> dict[str, str | None]:
        """Versions to return to: the verifier's pre-wave reading, else Ansible's, else the plan's."""
        names = self._names(host)
        if host in self.verify_pre:
            return {n: self.verify_pre[host].versions.get(n) for n in names}
        # an execution node's "before" is its word: never downgrade to a version only a node named
        before = next((h.before for h in outcome.hosts if h.host == host), {})
        if host in outcome.remote:
            before = {}
        if before:
            return {n: before.get(n) for n in names}
        return {p.name: p.installed for p in self.plan.hosts[host].packages}

    def rollback(
        self, index: int, hosts: Sequence[str], outcome: WaveOutcome, reason: str
    ) -> dict[str, dict[str, Any]]:
        """Roll `hosts` of wave `index` back; journal rolling_back -> restored | not_restored; audited."""
        hosts = [h for h in hosts if self._state(h) in ROLLBACKABLE]
        if not hosts:
            return {}
        plan_id = self.plan.plan_id
        subject = f"{plan_id}/w{index + 1}"
        versions = {h: self._pre_versions(h, outcome) for h in hosts}
        pre_docs = {h: doc for h in hosts if (doc := self._pre_doc(h, outcome)) is not None}
        for host in hosts:
            self._move(host, "rolling_back", reason)
        self._audit("rollback.start", subject, {"hosts": hosts, "reason": reason, "versions": versions})
        # a host that cannot be reached (it died, its SSH is cut) is not handed to Ansible: it would only
        # wait out its timeouts; it stays not_restored (or its VM snapshot is reverted) and says why
        reach = self._read(hosts)
        gone = {h: reach[h].error or "no answer" for h in hosts if h in reach and not reach[h].reachable}
        running = [h for h in hosts if h not in gone]
        result: runner.RunResult | None = None
        if running:
            self._rollback_runs += 1
            group = f"{plan_id}-w{index + 1}"
            req = RunRequest(
                playbook="rollback.yml",
                inventory=self.inventory,
                ident=f"{group}-rollback{self._rollback_runs}",
                group=group,
                artifacts_root=self.root,
                limit=tuple(running),
                forks=self.forks,
                idle_timeout_s=1800,
                extravars={
                    "patchbrain_rollback": restore.rollback_vars(
                        running, versions=versions, pre_docs=pre_docs
                    ),
                    "patchbrain_rollback_settle_s": self.opts.settle_s,
                    "patchbrain_posture": posture_available(),
                },
            )
            result = runner.run(req, RunHooks())
        docs = result.data.get("patchbrain_posture") if result is not None else None
        docs = docs if isinstance(docs, Mapping) else {}
        actions = result.data.get("patchbrain_rollback") if result is not None else None
        actions = actions if isinstance(actions, Mapping) else {}
        for host in running:
            if host in docs:
                self.journal.save_snapshot(plan_id, index, host, "restore", docs[host])
        readings = self._read(running)
        out: dict[str, dict[str, Any]] = {}
        for host in hosts:
            if host in gone or result is None:
                why = [f"not reachable over the second channel before the rollback: {gone.get(host)}"]
                if host in self.vm_hooks and host in self.snapshotted:
                    why, method = self._revert(host, index, outcome, versions[host], why)
                else:
                    method = "packages"
                res = restore.RestoreResult(
                    host, not why, method, "; ".join(why) or "back at pre-flight", tuple(why), ()
                )
                out[host] = dataclasses.asdict(res)
                self._settle_restore(host, index, res, out[host])
                continue
            run_state = result.host_outcome(host)
            why = [] if run_state == "ok" else [f"the rollback run {run_state} on this host"]
            r = readings.get(host)
            if r is not None and r.reachable:
                self.journal.save_snapshot(plan_id, index, host, "restore-verify", r.posture)
            why += restore.judge(
                host,
                pre_ansible=pre_docs.get(host),
                after_ansible=docs.get(host),
                pre_verifier=self.verify_pre[host].posture if host in self.verify_pre else None,
                reading=r,
                versions=versions[host],
                same_version=self._same(host),
            )
            method = "packages"
            if why and host in self.vm_hooks and host in self.snapshotted:
                why, method = self._revert(host, index, outcome, versions[host], why)
            did = actions.get(host, {}).get("actions", []) if isinstance(actions.get(host), Mapping) else []
            res = restore.RestoreResult(
                host, not why, method, "; ".join(why) or "back at pre-flight", tuple(why), tuple(did)
            )
            out[host] = dataclasses.asdict(res)
            self._settle_restore(host, index, res, out[host])
        self._audit(
            "rollback.end",
            subject,
            {
                "restored": sorted(h for h in out if out[h]["restored"]),
                "not_restored": sorted(h for h in out if not out[h]["restored"]),
            },
        )
        return out

    def _settle_restore(
        self, host: str, index: int, res: restore.RestoreResult, record: Mapping[str, Any]
    ) -> None:
        """Journal and audit one host's rollback verdict."""
        if res.restored:
            self._move(host, "restored", f"{res.method}: neutral diff against pre-flight over both channels")
        else:
            self._move(host, "not_restored", res.reason)
            log.error("NOT RESTORED: %s: %s", host, res.reason)
        self._audit("rollback.host", host, {"plan_id": self.plan.plan_id, "wave": index + 1, **record})

    def _revert(
        self, host: str, index: int, outcome: WaveOutcome, versions: Mapping[str, str | None], why: list[str]
    ) -> tuple[list[str], str]:
        hook = self.vm_hooks[host]
        ok, said = snapshots.run_hook(hook.revert, host)
        self._audit(
            "safety.snapshot.revert",
            host,
            {"ok": ok, "argv": list(hook.revert), "result": said, "after": why},
        )
        if not ok:
            return [*why, f"snapshot revert failed: {said}"], "snapshot-hook"
        reading = restore.wait_readable(lambda: self._read([host])[host], deadline_s=600, cancel=self.cancel)
        if reading.reachable:
            self.journal.save_snapshot(self.plan.plan_id, index, host, "restore-verify", reading.posture)
        return (
            restore.judge(
                host,
                pre_ansible=None,
                after_ansible=None,
                pre_verifier=self.verify_pre[host].posture
                if host in self.verify_pre
                else self._pre_doc(host, outcome),
                reading=reading,
                versions=versions,
                same_version=self._same(host),
            ),
            "snapshot-hook",
        )
