"""Roll a plan out wave by wave: preflight (posture + script pre-scan), gate, patch + postflight, journal.

Each wave runs `rollout.yml` twice through ansible-runner, both runs in the wave's artifacts folder
`<artifacts>/<plan_id>-w<N>/`: `--tags preflight` (posture snapshot, candidates' maintainer scripts), then,
if the pre-scan gate allows, `--skip-tags preflight` (patch, postflight posture). Every host moves through
the journal (pending -> running -> patched | unchanged | mismatch | failed | unreachable | skipped | canceled)
and every wave start and end goes to the audit log.

Seams for the safety loop (issue 7), all plain callables in `WaveHooks`:
  before_wave(ctx)              raise RefusedByPolicy (or any PatchbrainError) to refuse the wave
  prescan_gate(ctx, findings)   judge the pre-scan findings (per host); return a Halt to stop pre-patch
  after_wave(outcome)           the drift gate: pre/post posture per host is in the outcome; return a Halt
  bake_s(index)                 the minimum bake after wave `index` (the plan's bake is used when longer)
  after_bake(outcome)           after the bake, before the next wave: re-check the baked wave; return a Halt
  wave_summary(index)           extra data for the wave's journal summary, audit record and `extra`
  on_event / on_host_state      progress for UIs
  cancel()                      polled about once a second during runs and between them
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from patchbrain import config, pkgspec, resources
from patchbrain.errors import BadInput, RefusedByPolicy
from patchbrain.executor import runner
from patchbrain.executor.discovery import parse_dpkg_installed, parse_rpm_installed
from patchbrain.executor.events import HostEvent, TaskFailed
from patchbrain.executor.lock import RolloutLocked
from patchbrain.executor.lock import acquire as acquire_lock
from patchbrain.executor.request import RunHooks, RunRequest
from patchbrain.executor.resume import ResumePoint, Reverify, prepare_resume
from patchbrain.feeds.versions import compare
from patchbrain.journal import Journal
from patchbrain.keys import KeyStore
from patchbrain.models import Host
from patchbrain.plans import Plan, PlannedHost, plan_document
from patchbrain.posture.prescan import Finding, scan_text
from patchbrain.store import Store
from patchbrain.windows import MaintenanceWindow

if TYPE_CHECKING:
    from patchbrain.safety.options import SafetyOptions

log = logging.getLogger(__name__)

PATCH_KEY = "patchbrain_patch"
PRESCAN_KEY = "patchbrain_patch_prescan"
POSTURE_KEY = "patchbrain_posture"
HaltKind = Literal["drift", "failures", "prescan", "policy", "canceled"]


@dataclasses.dataclass(frozen=True, slots=True)
class Halt:
    """Why a rollout stopped, and which hosts it is about."""

    kind: HaltKind
    reason: str
    hosts: tuple[str, ...] = ()
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class WaveContext:
    """The wave about to run (or running)."""

    plan: Plan
    index: int
    hosts: tuple[str, ...]
    artifacts: Path


@dataclasses.dataclass(frozen=True, slots=True)
class HostResult:
    """How one host came out of its wave."""

    host: str
    state: str
    requested: Mapping[str, str]
    before: Mapping[str, str]
    after: Mapping[str, str]
    reboot_required: bool | None
    message: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class WaveOutcome:
    """One finished wave: per-host results, pre/post posture, pre-scan scripts, the runs' artifacts."""

    plan_id: str
    index: int
    artifacts: Path
    hosts: tuple[HostResult, ...]
    posture_pre: Mapping[str, Any]
    posture_post: Mapping[str, Any]
    prescan: Mapping[str, Mapping[str, Mapping[str, str]]]
    halt: Halt | None = None
    prescan_findings: Mapping[str, tuple[Finding, ...]] = dataclasses.field(default_factory=dict)
    extra: Mapping[str, Any] = dataclasses.field(
        default_factory=dict
    )  # hooks' wave_summary (the safety loop)
    # hosts an execution node ran or lost in this wave: their Ansible snapshots and reports are the node's
    # word, so the safety loop judges them from the controller's own readings only
    remote: frozenset[str] = frozenset()

    def in_state(self, *states: str) -> tuple[str, ...]:
        """Hosts of this wave in any of `states`."""
        return tuple(h.host for h in self.hosts if h.state in states)


@dataclasses.dataclass(frozen=True, slots=True)
class RolloutResult:
    """The whole rollout."""

    plan_id: str
    state: Literal["done", "halted", "canceled"]
    waves: tuple[WaveOutcome, ...]
    halt: Halt | None
    resumed: Mapping[str, Any] | None = None  # ResumePoint.as_dict() of a resumed rollout
    lock_taken_over: tuple[Mapping[str, Any], ...] = ()  # stale rollout locks this rollout took over


@dataclasses.dataclass(frozen=True, slots=True)
class WaveHooks:
    """Plain callables; see the module docstring. All optional."""

    before_wave: Callable[[WaveContext], None] | None = None
    prescan_gate: Callable[[WaveContext, Mapping[str, tuple[Finding, ...]]], Halt | None] | None = None
    after_wave: Callable[[WaveOutcome], Halt | None] | None = None
    on_event: Callable[[HostEvent], None] | None = None
    on_host_state: Callable[[str, str, str], None] | None = None
    on_wave_state: Callable[[int, str], None] | None = None
    cancel: Callable[[], bool] | None = None
    bake_s: Callable[[int], int] | None = None
    after_bake: Callable[[WaveOutcome], Halt | None] | None = None
    wave_summary: Callable[[int], Mapping[str, Any]] | None = None


# {host: {package: planned version}} -> {host: {package: installed version}, or None when unreadable}
ReadInstalled = Callable[[Mapping[str, Mapping[str, str]]], Mapping[str, Mapping[str, str] | None]]


@dataclasses.dataclass(frozen=True, slots=True)
class RolloutOptions:
    """How to run: forks, timeouts, where artifacts go (the failure rule is the plan's, per wave).

    `run` replaces `runner.run` for every playbook run (executor/nodes.py slices a run over execution
    nodes). `read_installed` is the controller's own read-only channel: hosts an execution node reported
    on (`RunResult.remote`) or lost (`RunResult.unknown`) are judged from what it reads, never from the
    node's report alone.
    """

    forks: int = 10
    timeout_s: int | None = None
    idle_timeout_s: int | None = 1800
    artifacts_root: Path | None = None
    lock_timeout_s: int = 60  # longest wait for another package manager's lock on a host
    run: runner.RunFunction | None = None
    read_installed: ReadInstalled | None = None


def _audit(store: Store, action: str, subject: str, payload: dict[str, Any]) -> None:
    """One audit record in the trust core's hash-chained log (checkpoints signed as configured)."""
    from patchbrain.audit import default_actor, open_audit_log

    open_audit_log(store).append(default_actor(), action, subject, payload)


def decode_prescan(text: str) -> dict[str, dict[str, str]]:
    """`{package: {script: text}}` from the role's "<package> <script> <base64>" lines."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or not parts[0] or not parts[1].isalnum():
            continue
        try:
            body = base64.b64decode(parts[2], validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            continue
        out.setdefault(parts[0], {})[parts[1]] = body
    return out


def prescan_findings(scripts: Mapping[str, Mapping[str, str]]) -> tuple[Finding, ...]:
    """Control-touching lines in one host's candidate maintainer scripts (`package:script` per finding)."""
    return tuple(
        f
        for pkg, by_script in sorted(scripts.items())
        for name, text in sorted(by_script.items())
        for f in scan_text(f"{pkg}:{name}", text)
    )


def posture_available() -> bool:
    """True once the posture role is installed next to ours."""
    return (resources.roles_dir() / "posture" / "tasks" / "main.yml").is_file()


def host_result(planned: PlannedHost, doc: Any) -> HostResult:
    """Judge one host from the patch role's document: patched, unchanged, or mismatch (with what differs).

    The host counts as patched only if every planned package is now at exactly the planned version.
    """
    requested = {p.name: p.version for p in planned.packages}
    family = pkgspec.family_of(planned.pkg_mgr)
    parse = parse_dpkg_installed if family == "deb" else parse_rpm_installed
    doc = doc if isinstance(doc, Mapping) else {}
    before = parse(doc["before"] if isinstance(doc.get("before"), str) else "")
    after = parse(doc["after"] if isinstance(doc.get("after"), str) else "")
    reboot = doc.get("reboot_required")
    ordering = "dpkg" if family == "deb" else "rpm"
    wrong = [
        f"{name}: wanted {version}, found {after.get(name, 'nothing')}"
        for name, version in requested.items()
        if name not in after or compare(ordering, after[name], version) != 0
    ]
    if not doc:
        state, msg = "mismatch", "the patch role returned no result for this host"
    elif wrong:
        state, msg = "mismatch", "; ".join(wrong)
    elif all(before.get(n) == after.get(n) for n in requested):
        state, msg = "unchanged", "already at the planned versions"
    else:
        state, msg = "patched", ", ".join(f"{n} {before.get(n, '-')} -> {after[n]}" for n in requested)
    return HostResult(
        planned.host, state, requested, before, after, reboot if isinstance(reboot, bool) else None, msg
    )


def verified_result(
    planned: PlannedHost, installed: Mapping[str, str] | None, reported: HostResult | None
) -> HostResult:
    """Judge a host from what the controller read (`installed`), not from an execution node's report.

    With a `reported` result (the node's), the host keeps its reported state only if the controller's
    reading agrees with it package by package; otherwise it is a mismatch naming both. Without a reading
    it is a mismatch too: a node's word alone never counts.
    """
    requested = {p.name: p.version for p in planned.packages}
    before = dict(reported.before) if reported is not None else {}
    if installed is None:
        return HostResult(
            planned.host,
            "mismatch",
            requested,
            before,
            {},
            None,
            "the controller could not re-read this host after its execution node reported on it",
        )
    after = {n: installed[n] for n in requested if n in installed}
    ordering = "dpkg" if pkgspec.family_of(planned.pkg_mgr) == "deb" else "rpm"
    at_plan = all(n in after and compare(ordering, after[n], v) == 0 for n, v in requested.items())
    read = ", ".join(f"{n} {after.get(n, 'nothing')}" for n in requested)
    if reported is not None:
        said_after = {n: reported.after[n] for n in requested if n in reported.after}
        if said_after != after or (reported.state in ("patched", "unchanged")) != at_plan:
            said = ", ".join(f"{n} {reported.after.get(n, 'nothing')}" for n in requested)
            return HostResult(
                planned.host,
                "mismatch",
                requested,
                before,
                after,
                reported.reboot_required,
                f"the execution node reported {said} ({reported.state}); the controller read {read}",
            )
        return reported
    if at_plan:
        return HostResult(planned.host, "patched", requested, before, after, None, read)
    return HostResult(planned.host, "failed", requested, before, after, None, f"not patched: {read}")


class _Wave:
    """Runs one wave; keeps the journal in step."""

    def __init__(
        self,
        plan: Plan,
        index: int,
        inventory: Path,
        store: Store,
        journal: Journal,
        hooks: WaveHooks,
        opts: RolloutOptions,
        to_run: tuple[str, ...] | None = None,
        carried: Mapping[str, HostResult] | None = None,
    ) -> None:
        self.plan, self.index, self.inventory = plan, index, inventory
        self.store, self.journal, self.hooks, self.opts = store, journal, hooks, opts
        self.hosts = plan.waves[index]
        # a resumed wave runs only its not-yet-patched hosts; the re-verified ones are carried as they are
        self.to_run = self.hosts if to_run is None else to_run
        self.carried = dict(carried or {})
        root = opts.artifacts_root if opts.artifacts_root is not None else config.artifacts_dir()
        self.group = f"{plan.plan_id}-w{index + 1}"
        self.ctx = WaveContext(plan, index, self.hosts, root / self.group)
        self.root = root
        # a resumed wave's runs get their own idents next to the interrupted ones (evidence is kept)
        self.attempt, n = "", 0
        while (self.ctx.artifacts / f"{self.group}{self.attempt}-preflight").exists():
            n += 1
            self.attempt = f"-resume{n}"
        self.states: dict[str, str] = {}
        self.details: dict[str, str] = {}
        self.settled: dict[str, HostResult] = {}  # lost hosts, as the controller read them
        self.remote: set[str] = set()

    def move(self, host: str, state: str, detail: str = "") -> None:
        self.journal.transition(self.plan.plan_id, host, state, detail=detail)
        self.states[host] = state
        self.details[host] = detail
        if self.hooks.on_host_state is not None:
            self.hooks.on_host_state(host, state, detail)

    def _request(self, step: str, hosts: tuple[str, ...], *, preflight: bool) -> RunRequest:
        return RunRequest(
            playbook="rollout.yml",
            inventory=self.inventory,
            ident=f"{self.group}{self.attempt}-{step}",
            group=self.group,
            artifacts_root=self.root,
            limit=hosts,
            tags=("preflight",) if preflight else (),
            skip_tags=() if preflight else ("preflight",),
            forks=self.opts.forks,
            timeout_s=self.opts.timeout_s,
            idle_timeout_s=self.opts.idle_timeout_s,
            extravars={
                "patchbrain_plan_packages": self.plan.packages_by_host(hosts),
                "patchbrain_reboot_ok": self.plan.reboot_ok,
                "patchbrain_lock_timeout": self.opts.lock_timeout_s,
                "patchbrain_posture": posture_available(),
                # the preflight's pre-scan refreshed the index moments before: no second refresh
                "patchbrain_index_refreshed": not preflight,
            },
        )

    def _run(self, req: RunRequest) -> runner.RunResult:
        hooks = RunHooks(on_event=self.hooks.on_event, cancel=self.hooks.cancel)
        result = (self.opts.run or runner.run)(req, hooks)
        self.remote |= result.remote | result.unknown
        return result

    def _read_installed(self, hosts: tuple[str, ...]) -> dict[str, Mapping[str, str] | None]:
        """What the controller itself reads on `hosts` (None per host when it cannot read it)."""
        if not hosts or self.opts.read_installed is None:
            return dict.fromkeys(hosts)
        wanted = {h: {p.name: p.version for p in self.plan.hosts[h].packages} for h in hosts}
        try:
            got = self.opts.read_installed(wanted)
        except Exception:  # the reader broke: nothing it did not read can be vouched for
            log.exception("the controller could not re-read %d host(s)", len(hosts))
            return dict.fromkeys(hosts)
        return {h: got.get(h) for h in hosts}

    def _settle_unknown(self, result: runner.RunResult, hosts: tuple[str, ...], phase: str) -> None:
        """Hosts whose execution node was lost: re-read by the controller, then recorded as it found them.

        Their result (the controller's reading as `after`) is the wave's result for them, so the safety
        loop's verifier compares its own later reading with this one, never with the lost node's silence.
        """
        lost = tuple(h for h in hosts if self.states.get(h) == "unknown")
        for host, installed in self._read_installed(lost).items():
            if installed is None:
                continue  # stays unknown: it counts as a failure and nothing else touches it
            res = verified_result(self.plan.hosts[host], installed, None)
            if phase == "preflight" and res.state == "patched":  # nothing installs during preflight
                res = dataclasses.replace(res, state="unchanged")
            res = dataclasses.replace(
                res, message=f"execution node lost during {phase}; controller read: {res.message}"
            )
            self.settled[host] = res
            self.move(host, res.state, res.message)

    @staticmethod
    def _failure_message(result: runner.RunResult, host: str) -> str:
        fails = [e for e in result.events if isinstance(e, TaskFailed) and e.host == host and not e.ignored]
        return f"{fails[-1].task}: {fails[-1].message}" if fails else ""

    def _settle_unrun(self, result: runner.RunResult, hosts: tuple[str, ...]) -> tuple[str, ...]:
        """Record hosts that failed or were unreachable in a run; return the ones still fine."""
        fine = []
        for host in hosts:
            outcome = result.host_outcome(host)
            if outcome == "unknown":
                self.move(host, "unknown", f"the execution node running {result.ident} was lost")
            elif result.status == "canceled" and outcome != "ok":
                self.move(host, "canceled", "the run was canceled")
            elif outcome == "unreachable":
                self.move(host, "unreachable", self._failure_message(result, host) or "unreachable")
            elif outcome == "failed":
                self.move(host, "failed", self._failure_message(result, host))
            elif outcome == "not_run":
                self.move(host, "failed", f"the {result.ident} run never reached this host")
            else:
                fine.append(host)
        return tuple(fine)

    def _posture(self, result: runner.RunResult, hosts: tuple[str, ...], phase: str) -> dict[str, Any]:
        docs = result.data.get(POSTURE_KEY)
        out: dict[str, Any] = {}
        if isinstance(docs, Mapping):
            for host in hosts:
                if host in docs:
                    out[host] = docs[host]
                    self.journal.save_snapshot(self.plan.plan_id, self.index, host, phase, docs[host])
        return out

    def run(self) -> WaveOutcome:
        plan_id = self.plan.plan_id
        if not self.to_run:  # never hand Ansible an empty limit
            return WaveOutcome(plan_id, self.index, self.ctx.artifacts, self._results({}), {}, {}, {})
        outcome = self._run_steps()
        return dataclasses.replace(outcome, remote=frozenset(self.remote & set(self.hosts)))

    def _run_steps(self) -> WaveOutcome:
        plan_id = self.plan.plan_id
        with self.store.transaction():  # one durable commit for the wave's hosts, before anything runs
            for host in self.to_run:
                self.move(host, "running")
        pre = self._run(self._request("preflight", self.to_run, preflight=True))
        prescan: dict[str, dict[str, dict[str, str]]] = {}
        findings: dict[str, tuple[Finding, ...]] = {}
        raw = pre.data.get(PRESCAN_KEY)
        with self.store.transaction():  # the preflight's records: one commit, before the gate
            ready = self._settle_unrun(pre, self.to_run)
            self._settle_unknown(pre, self.to_run, "preflight")
            posture_pre = self._posture(pre, ready, "pre")
            for host in ready:
                doc = raw.get(host) if isinstance(raw, Mapping) else None
                scripts = doc.get("scripts") if isinstance(doc, Mapping) else None
                prescan[host] = decode_prescan(scripts) if isinstance(scripts, str) else {}
                findings[host] = prescan_findings(prescan[host])
                self.journal.save_snapshot(
                    plan_id,
                    self.index,
                    host,
                    "prescan",
                    {"scripts": prescan[host], "findings": [dataclasses.asdict(f) for f in findings[host]]},
                )

        halt: Halt | None = None
        if pre.status == "canceled":
            halt = Halt("canceled", "canceled during the preflight run", ready)
        elif self.hooks.prescan_gate is not None and ready:
            halt = self.hooks.prescan_gate(self.ctx, findings)
        if halt is not None:
            for host in ready:
                self.move(
                    host, "skipped" if halt.kind != "canceled" else "canceled", f"halted: {halt.reason}"
                )
            return WaveOutcome(
                plan_id,
                self.index,
                self.ctx.artifacts,
                self._results({}),
                posture_pre,
                {},
                prescan,
                halt,
                findings,
            )

        results: dict[str, HostResult] = {}
        posture_post: dict[str, Any] = {}
        if ready:
            patch = self._run(self._request("patch", ready, preflight=False))
            with self.store.transaction():  # the patch run's records: one commit
                patched_ok = self._settle_unrun(patch, ready)
                posture_post = self._posture(patch, patched_ok, "post")
                docs = patch.data.get(PATCH_KEY)
                remote = tuple(h for h in patched_ok if h in patch.remote)
                readings = self._read_installed(remote)
                for host in patched_ok:
                    res = host_result(
                        self.plan.hosts[host], docs.get(host) if isinstance(docs, Mapping) else None
                    )
                    if host in remote:
                        res = verified_result(self.plan.hosts[host], readings[host], res)
                    results[host] = res
                    self.move(host, res.state, res.message)
                self._settle_unknown(patch, ready, "patch")
            if patch.status == "canceled":
                halt = Halt("canceled", "canceled during the patch run", ready)
        return WaveOutcome(
            plan_id,
            self.index,
            self.ctx.artifacts,
            self._results(results),
            posture_pre,
            posture_post,
            prescan,
            halt,
            findings,
        )

    def _results(self, done: Mapping[str, HostResult]) -> tuple[HostResult, ...]:
        done = {**self.carried, **self.settled, **done}
        out = []
        for host in self.hosts:
            if host in done:
                out.append(done[host])
            else:
                planned = self.plan.hosts[host]
                out.append(
                    HostResult(
                        host,
                        self.states.get(host, "pending"),
                        {p.name: p.version for p in planned.packages},
                        {},
                        {},
                        None,
                    )
                )
        return tuple(out)


def _summary(outcome: WaveOutcome) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for h in outcome.hosts:
        counts[h.state] = counts.get(h.state, 0) + 1
    return {
        "hosts": {h.host: h.state for h in outcome.hosts},
        "states": counts,
        "halt": dataclasses.asdict(outcome.halt) if outcome.halt else None,
        **outcome.extra,
    }


def _refresh(outcome: WaveOutcome, journal: Journal, hooks: WaveHooks) -> WaveOutcome:
    """The outcome with each host's state and detail as the journal now has them (hooks may have moved
    hosts: failed health checks, verifier disagreements, rollbacks), plus the hooks' wave summary."""
    latest: dict[str, tuple[str, str]] = {}
    for t in journal.history(outcome.plan_id):
        if t.host in {h.host for h in outcome.hosts}:
            latest[t.host] = (t.state, t.detail)
    hosts = tuple(
        dataclasses.replace(h, state=latest[h.host][0], message=latest[h.host][1] or h.message)
        if h.host in latest and latest[h.host][0] != h.state
        else h
        for h in outcome.hosts
    )
    extra = hooks.wave_summary(outcome.index) if hooks.wave_summary is not None else {}
    return dataclasses.replace(outcome, hosts=hosts, extra=dict(extra))


def _require_approved(plan: Plan, store: Store, plan_file: Path | None, keystore: KeyStore | None) -> Any:
    from patchbrain.approvals import gather, policy_from_env, require_approved

    return require_approved(
        plan,
        gather(plan, store, plan_file),
        keystore=keystore if keystore is not None else KeyStore(),
        policy=policy_from_env(),
    )


def _check_windows(plan: Plan, index: int, windows: Mapping[str, tuple[MaintenanceWindow, ...]]) -> None:
    """Refuse a wave if `now` is outside a member's maintenance window."""
    now = dt.datetime.now(dt.UTC)
    closed = [h for h in plan.waves[index] if windows.get(h) and not any(w.contains(now) for w in windows[h])]
    if closed:
        more = f" and {len(closed) - 10} more" if len(closed) > 10 else ""
        start = plan.wave_schedule(index).earliest_start
        when = f"; the plan says it can start at {start:%Y-%m-%d %H:%M} UTC" if start else ""
        raise RefusedByPolicy(f"outside the maintenance window of {', '.join(closed[:10])}{more}{when}")


def _bake(seconds: int, since: float, cancel: Callable[[], bool] | None) -> bool:
    """Wait until `seconds` after `since` (monotonic); False if canceled meanwhile."""
    while (left := since + seconds - time.monotonic()) > 0:
        if cancel is not None and cancel():
            return False
        time.sleep(min(1.0, left))
    return True


def rollout(
    plan: Plan,
    *,
    inventory: Path,
    store: Store | None = None,
    hooks: WaveHooks | None = None,
    options: RolloutOptions | None = None,
    plan_file: Path | None = None,
    keystore: KeyStore | None = None,
    resume: bool = False,
    reverify: Reverify | None = None,
    safety: SafetyOptions | None = None,
    hosts: Sequence[Host] | None = None,
) -> RolloutResult:
    """Run every wave of `plan` in order until one halts; journal and audit each step.

    Nothing runs unless the plan is approved (`patchbrain.approvals.require_approved`, approvals from the
    store and `plan_file`'s sidecar): ApprovalRefused (exit 5) before anything starts; approvals and
    maintenance windows are checked again before every wave, and each wave waits its predecessor's bake
    time. A wave halts when more of its hosts fail than its `max_failures`. Once approved, the plan's hosts
    are locked in the store (`executor.lock`): RolloutLocked (exit 5) names a live holder; a stale lock
    (holder process gone) is taken over and audited (`rollout.lock.stale`).

    `resume=True` continues a rollout the journal holds (crashed, halted or canceled): the interrupted
    wave's hosts are re-verified over the second channel first (`executor.resume`), hosts already at the
    planned versions never run again, and the rest of the plan follows. `reverify` replaces the second
    channel's reader (tests).

    The safety loop (`patchbrain.safety`) runs by default: drift halt and rollback, canary bake and
    re-check, the independent verifier, health checks and distrusted failure signals. `safety` tunes it
    (default `SafetyOptions.from_env()`); `SafetyOptions(enabled=False)` leaves only the executor's rules.

    `hosts`: the inventory's hosts when the caller has just loaded them (`inventory.load_hosts`), so they
    are not resolved twice.
    """
    from patchbrain.approvals import ApprovalRefused

    store = store if store is not None else Store()
    try:  # approvals first: an unapproved plan never touches the locks
        verdict = _require_approved(plan, store, plan_file, keystore)
    except ApprovalRefused as exc:
        _audit(store, "rollout.refused", plan.plan_id, {"reason": str(exc)})
        raise
    try:
        held = acquire_lock(store, plan.plan_id, plan.hosts)
    except RolloutLocked as exc:
        _audit(
            store,
            "rollout.refused",
            plan.plan_id,
            {"reason": str(exc), "holders": [h.as_dict() for h in exc.holders]},
        )
        raise
    for stale in held.taken_over:
        log.warning("taking over the stale rollout lock of %s", stale.describe())
        _audit(store, "rollout.lock.stale", plan.plan_id, {"holder": stale.as_dict()})
    with held:
        result = _rollout_locked(
            plan,
            inventory=inventory,
            store=store,
            hooks=hooks,
            options=options,
            plan_file=plan_file,
            keystore=keystore,
            resume=resume,
            reverify=reverify,
            verdict=verdict,
            safety=safety,
            hosts=hosts,
        )
    return dataclasses.replace(result, lock_taken_over=tuple(h.as_dict() for h in held.taken_over))


def _rollout_locked(
    plan: Plan,
    *,
    inventory: Path,
    store: Store,
    hooks: WaveHooks | None,
    options: RolloutOptions | None,
    plan_file: Path | None,
    keystore: KeyStore | None,
    resume: bool,
    reverify: Reverify | None,
    verdict: Any,
    safety: SafetyOptions | None,
    hosts: Sequence[Host] | None,
) -> RolloutResult:
    """`rollout()` once the plan is approved and its hosts are locked."""
    from patchbrain.inventory import load_hosts

    store = store if store is not None else Store()
    hooks = hooks or WaveHooks()
    opts = options or RolloutOptions()
    listed = hosts if hosts is not None else load_hosts(inventory)
    windows = {h.name: h.windows for h in listed if h.name in plan.hosts}
    loop = None
    safety = safety if safety is not None else _safety_defaults()
    if safety.enabled:
        from patchbrain.safety.loop import SafetyLoop

        loop = SafetyLoop.create(
            plan,
            inventory=inventory,
            store=store,
            options=safety,
            artifacts_root=opts.artifacts_root,
            forks=opts.forks,
            cancel=hooks.cancel,
        )
        hooks = loop.hooks(hooks)
    try:
        return _run_waves(
            plan, inventory, store, hooks, opts, plan_file, keystore, verdict, windows, resume, reverify
        )
    finally:
        if loop is not None:
            loop.close()


def _safety_defaults() -> SafetyOptions:
    from patchbrain.safety.options import SafetyOptions

    return SafetyOptions.from_env()


def _run_waves(
    plan: Plan,
    inventory: Path,
    store: Store,
    hooks: WaveHooks,
    opts: RolloutOptions,
    plan_file: Path | None,
    keystore: KeyStore | None,
    verdict: Any,
    windows: Mapping[str, tuple[MaintenanceWindow, ...]],
    resume: bool,
    reverify: Reverify | None,
) -> RolloutResult:
    journal = Journal(store)
    point: ResumePoint | None = None
    if resume:
        point = prepare_resume(plan, journal, inventory, reverify)
    else:
        known = journal.plan(plan.plan_id)
        if known is not None:
            raise BadInput(
                f"plan {plan.plan_id} is already in the journal ({known.state}): `rollout --resume` "
                "continues it, or make a new plan"
            )
        journal.add_plan(
            plan.plan_id,
            inventory=str(inventory),
            document=plan_document(plan),
            waves=[list(w) for w in plan.waves],
        )
    journal.set_plan_state(plan.plan_id, "running")
    _audit(
        store,
        "rollout.resume" if point is not None else "rollout.start",
        plan.plan_id,
        {
            "waves": [list(w) for w in plan.waves],
            "plan_file_sha256": plan.file_sha256,
            "approvals": list(verdict.valid),
            "author": verdict.author,
            **({"resume": point.as_dict()} if point is not None else {}),
        },
    )
    outcomes: list[WaveOutcome] = []
    halt: Halt | None = None
    first = point.wave if point is not None else 0
    last_end = time.monotonic()
    if point is not None and point.last_wave_end is not None:  # bake time counts from the journal's wave end
        last_end -= max(0.0, (dt.datetime.now(dt.UTC) - point.last_wave_end).total_seconds())
    for index in range(first, len(plan.waves)):
        resumed = point is not None and index == point.wave
        wave = _Wave(
            plan,
            index,
            inventory,
            store,
            journal,
            hooks,
            opts,
            to_run=point.to_run if point is not None and resumed else None,
            carried=_carried(plan, point) if point is not None and resumed else None,
        )
        bake = plan.wave_schedule(index - 1).bake_s if index else 0
        if index and hooks.bake_s is not None:
            bake = max(bake, hooks.bake_s(index - 1))
        if bake and not _bake(bake, last_end, hooks.cancel):
            halt = Halt("canceled", f"canceled while baking wave {index}")
        elif index and hooks.after_bake is not None:
            # a resumed rollout did not run the baked wave itself: its outcome comes from the journal
            baked = outcomes[-1] if outcomes else _journal_outcome(plan, index - 1, journal, opts)
            halt = hooks.after_bake(baked)
            if halt is not None:  # the baked wave turned bad after all: it is the one that halts
                prev = _refresh(dataclasses.replace(baked, halt=halt), journal, hooks)
                if outcomes:
                    outcomes[-1] = prev
                summary = _summary(prev)
                journal.set_wave(plan.plan_id, index - 1, "halted", summary=summary)
                _audit(
                    store, "rollout.wave.halted", f"{plan.plan_id}/w{index}", {"state": "halted", **summary}
                )
                if hooks.on_wave_state is not None:
                    hooks.on_wave_state(index - 1, "halted")
                break
        if halt is None and hooks.cancel is not None and hooks.cancel():
            halt = Halt("canceled", "canceled before the wave started")
        if halt is None:
            try:
                _require_approved(plan, store, plan_file, keystore)
                _check_windows(plan, index, windows)
            except RefusedByPolicy as exc:
                log.warning("wave %d refused: %s", index + 1, exc)
                halt = Halt("policy", f"wave {index + 1} refused: {exc}")
        if halt is None and hooks.before_wave is not None:
            try:
                hooks.before_wave(wave.ctx)
            except Exception as exc:  # a refusal, or a broken hook: either way the wave must not start
                log.warning("wave %d refused by before_wave: %s", index + 1, exc)
                halt = Halt("policy", f"wave {index + 1} refused: {exc}")
        if halt is not None:
            break
        journal.set_wave(plan.plan_id, index, "running", artifacts=str(wave.ctx.artifacts))
        _audit(
            store,
            "rollout.wave.start",
            f"{plan.plan_id}/w{index + 1}",
            {"hosts": list(wave.hosts), "artifacts": str(wave.ctx.artifacts)},
        )
        if hooks.on_wave_state is not None:
            hooks.on_wave_state(index, "running")
        outcome = wave.run()
        halt = outcome.halt
        if halt is None and hooks.after_wave is not None:
            halt = hooks.after_wave(outcome)
            outcome = dataclasses.replace(outcome, halt=halt)
        outcome = _refresh(outcome, journal, hooks)
        if halt is None:  # the plan's max_failures per wave is the one failure rule
            bad = outcome.in_state("failed", "unreachable", "mismatch", "canceled", "unknown")
            allowed = plan.wave_schedule(index).max_failures
            if len(bad) > allowed:
                halt = Halt(
                    "failures",
                    f"{len(bad)} host(s) of wave {index + 1} did not patch cleanly (allowed: {allowed})",
                    bad,
                )
                outcome = dataclasses.replace(outcome, halt=halt)
        wave_state = "done" if halt is None else ("canceled" if halt.kind == "canceled" else "halted")
        summary = _summary(outcome)
        journal.set_wave(plan.plan_id, index, wave_state, summary=summary)
        _audit(store, "rollout.wave.end", f"{plan.plan_id}/w{index + 1}", {"state": wave_state, **summary})
        if hooks.on_wave_state is not None:
            hooks.on_wave_state(index, wave_state)
        outcomes.append(outcome)
        last_end = time.monotonic()
        if halt is not None:
            break

    current = journal.host_states(plan.plan_id)
    for index in range(first + len(outcomes), len(plan.waves)):
        for host in plan.waves[index]:
            # a resumed plan's later waves were skipped before; a resumed wave halted before it started
            # keeps its re-verified hosts as they are (patched, unreachable, ...): only hosts that never
            # ran are skipped
            if current.get(host) not in ("pending", "running"):
                continue
            journal.transition(
                plan.plan_id, host, "skipped", detail=f"not started: {halt.reason if halt else ''}"
            )
            if hooks.on_host_state is not None:
                hooks.on_host_state(host, "skipped", "")
        journal.set_wave(plan.plan_id, index, "skipped")
    state: Literal["done", "halted", "canceled"] = (
        "done" if halt is None else "canceled" if halt.kind == "canceled" else "halted"
    )
    journal.set_plan_state(plan.plan_id, state)
    _audit(
        store,
        "rollout.end",
        plan.plan_id,
        {"state": state, "halt": dataclasses.asdict(halt) if halt else None},
    )
    return RolloutResult(
        plan.plan_id, state, tuple(outcomes), halt, point.as_dict() if point is not None else None
    )


def _journal_outcome(plan: Plan, index: int, journal: Journal, opts: RolloutOptions) -> WaveOutcome:
    """A finished wave as the journal holds it (host states, Ansible's pre/post snapshots), for a resumed
    rollout that re-checks it after its bake."""
    states = journal.host_states(plan.plan_id)
    root = opts.artifacts_root if opts.artifacts_root is not None else config.artifacts_dir()
    hosts = tuple(
        HostResult(
            h, states.get(h, "pending"), {p.name: p.version for p in plan.hosts[h].packages}, {}, {}, None
        )
        for h in plan.waves[index]
    )
    return WaveOutcome(
        plan.plan_id,
        index,
        root / f"{plan.plan_id}-w{index + 1}",
        hosts,
        journal.snapshots(plan.plan_id, index, "pre"),
        journal.snapshots(plan.plan_id, index, "post"),
        {},
    )


def _carried(plan: Plan, point: ResumePoint) -> dict[str, HostResult]:
    """Results of the interrupted wave's re-verified hosts that do not run again."""
    out = {}
    for host, v in point.verdicts.items():
        if v.state != "pending":
            requested = {p.name: p.version for p in plan.hosts[host].packages}
            after = {k: x for k, x in v.versions.items() if x is not None}
            out[host] = HostResult(host, v.state, requested, {}, after, None, v.detail)
    return out
