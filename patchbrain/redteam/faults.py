"""Scenario 9, faults, on real lab hosts (3 apt hosts): a second rollout started while a first holds some
of its hosts must be refused naming the holder (plan, pid, machine) before anything runs; a host whose
package manager's lock is held by another process must fail after a bounded wait that names the holder,
leave the host untouched, and the rest of the rollout must not hang. The lock holders (`HOLD_APT`,
`HOLD_DNF`, `hold_package_lock`) are shared with tests/lab/test_faults_lab.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from patchbrain.redteam.base import Check, Context, Evidence, Scenario
from patchbrain.redteam.common import Outcome, attempt, audit_evidence, audit_head, audit_since
from patchbrain.redteam.labhost import installed_version, lab_host, labdemo_plan

FLEET = 3
LOCK_TIMEOUT_S = 15

# What a running apt (python3-apt's own system lock: dpkg's lock-frontend and lock) or dnf (its RPMDB lock)
# holds; each holder writes its pid to /run/holder.pid, then sleeps.
_PIDFILE = "open('/run/holder.pid', 'w').write(str(os.getpid())); time.sleep(3600)"
HOLD_APT = "import apt_pkg, os, time; apt_pkg.init(); apt_pkg.pkgsystem_lock(); " + _PIDFILE
HOLD_DNF = (
    "import dnf.lock, os, time; dnf.lock.build_rpmdb_lock('/var/lib/dnf', True).__enter__(); " + _PIDFILE
)


def wait_for(what: str, cond: Callable[[], Any], timeout: float = 1500, every: float = 0.25) -> Any:
    """Poll `cond` until it returns something truthy (a long deadline: the machine may be loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def hold_package_lock(lab: Any, host: str, code: str) -> int:
    """Start a detached process on `host` that takes the package manager's lock (`code`); its pid."""
    lab.exec(host, ["rm", "-f", "/run/holder.pid"], check=True)
    proc = lab.exec(host, ["sh", "-c", 'setsid -f python3 -c "$0" >/dev/null 2>&1 </dev/null', code])
    if proc.returncode != 0:
        raise RuntimeError(f"{host}: could not start the lock holder: {str(proc.stderr).strip()}")
    pid = wait_for(
        "the lock holder", lambda: str(lab.exec(host, ["cat", "/run/holder.pid"]).stdout).strip(), 120
    )
    return int(pid)


def release_package_lock(lab: Any, host: str) -> None:
    lab.exec(host, ["sh", "-c", 'kill "$(cat /run/holder.pid)" 2>/dev/null; rm -f /run/holder.pid'])


def _plan(ctx: Context, lab: Any, name: str, hosts: list[str], version: str, spec: str) -> tuple[Any, Any]:
    path = ctx.workdir / f"{name}-plan.yaml"
    plan = labdemo_plan(
        lab, dict.fromkeys(hosts, version), spec, path, author_key="rt-author", approver_key="rt-approver"
    )
    return plan, path


def _second_rollout(ctx: Context, lab: Any, version: str) -> Outcome:
    from patchbrain.errors import RefusedByPolicy
    from patchbrain.executor.lock import holders
    from patchbrain.executor.rollout import rollout
    from patchbrain.keys import KeyStore
    from patchbrain.store import Store

    first, first_path = _plan(ctx, lab, "first", ["h01", "h02"], version, "1,100%")
    second, second_path = _plan(ctx, lab, "second", ["h02", "h03"], version, "1,100%")
    store = Store()
    head = audit_head(store)
    h03_before = installed_version(lab, "labdemo", host="h03")
    out, err = ctx.workdir / "first.out", ctx.workdir / "first.err"
    env = {**os.environ, "PATCHBRAIN_CANARY_BAKE": "15s"}  # keeps the lock a little longer, bounded
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "patchbrain", "rollout", str(first_path), "--json"],
            stdout=o,
            stderr=e,
            env=env,
        )
    try:
        holder = wait_for(
            "the first rollout's lock",
            lambda: (
                next((h for h in holders(store) if h.plan_id == first.plan_id), None)
                or (proc.poll() is not None and "exited")
            ),
        )
        if holder == "exited":
            raise RuntimeError(
                f"the first rollout ended before it was seen holding its hosts: {err.read_text()}"
            )
        refusal: str | None = None
        ran: Any = None
        try:
            ran = rollout(
                second,
                inventory=lab.inventory_path(),
                store=store,
                plan_file=second_path,
                keystore=KeyStore(),
            )
        except RefusedByPolicy as exc:
            refusal = str(exc)
        still_running = proc.poll() is None
    finally:
        rc = proc.wait(1800)
    h03 = installed_version(lab, "labdemo", host="h03")
    ev = [
        Evidence(
            "note",
            f"first rollout (plan {first.plan_id[:16]}, pid {proc.pid}) held {', '.join(holder.hosts)}; "
            f"it ended with exit {rc}",
        ),
        Evidence("note", f"h03 (only in the second plan) has labdemo {h03}"),
    ]
    if refusal:
        ev.append(Evidence("refusal", refusal[:600]))
    ev += [
        audit_evidence(r, ("holders", "reason"))
        for r in audit_since(store, head, "rollout.refused")
        if r.subject == second.plan_id
    ]
    if refusal is None:
        state = ran.state if ran is not None else "?"
        return False, f"the second rollout ran (state {state}) on hosts the first one held", ev
    named = f"held by the rollout of plan {first.plan_id} (pid {proc.pid}" in refusal
    ok = named and still_running and h03 == h03_before and rc == 0
    return (
        ok,
        f"refused while the first rollout ran, naming its plan and pid {proc.pid}; h03 untouched ({h03}); "
        f"the first finished (exit {rc})"
        if ok
        else f"refusal {'named' if named else 'did NOT name'} the holder; first still running: "
        f"{still_running}; h03 {h03}; first exit {rc}",
        ev,
    )


def _package_lock(ctx: Context, lab: Any, version: str) -> Outcome:
    from patchbrain.executor.rollout import RolloutOptions, rollout
    from patchbrain.journal import Journal
    from patchbrain.keys import KeyStore
    from patchbrain.safety.options import SafetyOptions
    from patchbrain.store import Store

    host = "h03"
    plan, path = _plan(ctx, lab, "pmlock", [host], version, "1")
    before = installed_version(lab, "labdemo", host=host)
    holder = hold_package_lock(lab, host, HOLD_APT)
    store = Store()
    head = audit_head(store)
    start = time.monotonic()
    try:
        out = rollout(
            plan,
            inventory=lab.inventory_path(),
            store=store,
            plan_file=path,
            keystore=KeyStore(),
            options=RolloutOptions(lock_timeout_s=LOCK_TIMEOUT_S),
            safety=SafetyOptions.from_env(canary_bake_s=0, settle_s=2),
        )
    finally:
        took = time.monotonic() - start
        release_package_lock(lab, host)
    states = {h.host: h.state for w in out.waves for h in w.hosts}
    detail = next((t.detail for t in Journal(store).history(plan.plan_id, host) if t.state == "failed"), "")
    now = installed_version(lab, "labdemo", host=host)
    ev = [
        Evidence("note", f"apt lock held on {host} by pid {holder}; rollout {out.state} after {took:.0f} s"),
        Evidence("note", f"journal: {host} {states.get(host)}: {detail}"[:600]),
        Evidence("note", f"{host} has labdemo {now}"),
        *(audit_evidence(r, ("state", "halt")) for r in audit_since(store, head, "rollout.end")),
    ]
    ok = (
        states.get(host) == "failed"
        and f"locked by pid {holder}" in detail
        and f"gave up after {LOCK_TIMEOUT_S} s" in detail
        and now == before
    )
    return (
        ok,
        f"{host} failed after a bounded wait ({took:.0f} s in all), naming the lock holder pid {holder}; "
        f"left at {now}"
        if ok
        else f"{host} ended {states.get(host)} ({detail or 'no failure detail'}); labdemo {now}",
        ev,
    )


def run(ctx: Context) -> list[Check]:
    from patchbrain.lab.content import LabContent

    with lab_host(ctx, FLEET) as lab:
        version, _ = LabContent(lab.dir).publish_variant("benign", formats=("deb",))
        return [
            attempt(
                "a second rollout started on hosts a running rollout holds",
                lambda: _second_rollout(ctx, lab, version),
            ),
            attempt(
                "another process holds the package manager's lock on a host during a rollout",
                lambda: _package_lock(ctx, lab, version),
            ),
        ]


SCENARIO = Scenario(
    name="faults",
    number=9,
    title="Faults",
    attacked="the rollout lock (a second rollout on held hosts) and a package manager's lock held on a host",
    defences=("rollout-lock",),
    needs_hosts=True,
    run=run,
)
