"""Scenario 9, faults, on real lab hosts (4 apt hosts), and the fault mechanics the faults lab tests share.

The attacks: a second rollout started while a first holds some of its hosts (refused naming the holder); a
package manager's lock held on a host (bounded wait naming the holder); the controller SIGKILLed mid-wave,
then `--resume` (nothing patched twice: the hosts already patched are re-read and left alone); one bad wave
in which a host dies, another loses SSH mid-install and a third has a full disk (each failed or unreachable,
never patched, the wave halted per its threshold; after the repairs `--resume` re-reads and patches them,
each upgraded exactly once). Evidence: journal states and histories, audit record ids, the Ansible events of
every run, versions and `/var/log/dpkg.log` upgrade counts read again over SSH.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from patchbrain.redteam.base import Check, Context, Evidence, Scenario
from patchbrain.redteam.common import Outcome, attempt, audit_evidence, audit_head, audit_since
from patchbrain.redteam.labhost import installed_version, lab_host, labdemo_plan

FLEET = 4  # h01 the canary; the second wave has three hosts (one per fault of the bad wave)
LOCK_TIMEOUT_S = 15
INSTALL_TASK = "Install the named versions with apt"
LOCK_TASK = (
    "Wait until no other package manager holds the package database (at most patch_lock_timeout seconds), "
    "then query the installed versions"
)
DISK_REFUSAL = "Refuse a host without enough free disk space to patch: not enough free disk space"
_SSH_DROP_TAG = "pb-faults-ssh-drop"

# What a running apt (python3-apt's own system lock: dpkg's lock-frontend and lock) or dnf (its RPMDB lock)
# holds; each holder writes its pid to /run/holder.pid, then sleeps.
_PIDFILE = "open('/run/holder.pid', 'w').write(str(os.getpid())); time.sleep(3600)"
HOLD_APT = "import apt_pkg, os, time; apt_pkg.init(); apt_pkg.pkgsystem_lock(); " + _PIDFILE
HOLD_DNF = (
    "import dnf.lock, os, time; dnf.lock.build_rpmdb_lock('/var/lib/dnf', True).__enter__(); " + _PIDFILE
)


# -- fault mechanics (shared with tests/lab/test_faults_lab.py) ---------------------------------------------


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


def host_record(lab: Any, host: str) -> Any:
    return {r.name: r for r in lab.hosts()}[host]


def wave_dir(plan_id: str, wave: int) -> Path:
    """The artifacts folder of wave `wave` (1-based) of a plan's rollout."""
    from patchbrain import config

    return config.artifacts_dir() / f"{plan_id}-w{wave}"


def run_events(run_dir: Path) -> list[dict[str, Any]]:
    """ansible-runner's events of one run so far (files still being written are skipped)."""
    out: list[dict[str, Any]] = []
    folder = Path(run_dir) / "job_events"
    if folder.is_dir():
        for f in folder.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                out.append(json.loads(f.read_text()))
    return out


def task_event(run_dir: Path, event: str, task: str, host: str | None = None) -> dict[str, Any] | None:
    """The first event `event` of task `task` (on `host`) in a run's events, if any yet."""
    for e in run_events(run_dir):
        data = e.get("event_data", {})
        if e.get("event") == event and data.get("task") == task and host in (None, data.get("host")):
            return e
    return None


def host_gone(run_dir: Path, host: str) -> bool:
    """Whether Ansible gave up on `host` in that run (unreachable, or a task failed)."""
    return any(
        e.get("event") in ("runner_on_unreachable", "runner_on_failed")
        and e.get("event_data", {}).get("host") == host
        for e in run_events(run_dir)
    )


def installs(plan_id: str, wave: int) -> dict[str, int]:
    """How many times the install task succeeded on each host, over every patch run of the wave (the
    interrupted run and the resumed ones): more than 1 means a host was patched twice."""
    counts: dict[str, int] = {}
    for run_dir in sorted(wave_dir(plan_id, wave).glob("*patch")):
        for e in run_events(run_dir):
            data = e.get("event_data", {})
            if e.get("event") == "runner_on_ok" and data.get("task") == INSTALL_TASK:
                counts[data["host"]] = counts.get(data["host"], 0) + 1
    return counts


def kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and every descendant (ansible-playbook runs in its own session under pexpect)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    for p in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGSTOP)  # freeze all first, so none reacts to the others dying
    for p in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    return tree


def kill_host(lab: Any, host: str) -> None:
    """Every process of the host ends at once, its PID 1 included (power loss); `lab.up` starts it again
    with its disk as it was."""
    from patchbrain.lab import net

    net.kill_namespaces([host_record(lab, host).netns])


def _host_nft(lab: Any, host: str, *args: str) -> str:
    argv = ["ip", "netns", "exec", host_record(lab, host).netns, "nft", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def drop_ssh(lab: Any, host: str) -> None:
    """The host's own firewall drops port 22, established connections too (a link gone silent)."""
    _host_nft(lab, host, "insert", "rule", "inet", "filter", "input", "tcp", "dport", "22", "drop",
              "comment", _SSH_DROP_TAG)  # fmt: skip


# An apt hook on the SSH victim: its install waits before dpkg runs until the drop rule is in the host's
# firewall, stays in progress while the link is cut, and gives up once the rule is gone again (after Ansible
# gave up on the host): the link is always cut during the install and nothing is installed. Without it the
# cut races the install, and an install that wins leaves a host the resume rightly finds patched.
HOLD_INSTALL_FILE = "/etc/apt/apt.conf.d/00pb-faults-hold-install"
HOLD_INSTALL = (
    'DPkg::Pre-Invoke {"dropped() { nft list chain inet filter input 2>/dev/null | grep -q '
    + _SSH_DROP_TAG
    + "; }; i=0; until dropped || [ $i -gt 3000 ]; do i=$((i+1)); sleep 0.2; done; "
    + "while dropped && [ $i -lt 9000 ]; do i=$((i+1)); sleep 0.2; done; "
    + 'echo pb-faults: SSH was cut during the install, abandoned >&2; exit 1";};\n'
)


def hold_install_until_cut(lab: Any, host: str) -> None:
    """Hold `host`'s next apt install until `drop_ssh` cut its link and `restore_ssh` ended the cut, then
    fail it (nothing installed)."""
    lab.exec(host, ["sh", "-c", 'printf %s "$1" > "$0"', HOLD_INSTALL_FILE, HOLD_INSTALL], check=True)


def release_install_hold(lab: Any, host: str) -> None:
    """Remove what `hold_install_until_cut` put on `host`."""
    lab.exec(host, ["rm", "-f", HOLD_INSTALL_FILE], check=True)


def restore_ssh(lab: Any, host: str) -> None:
    """Remove what `drop_ssh` inserted."""
    for line in _host_nft(lab, host, "-a", "list", "chain", "inet", "filter", "input").splitlines():
        if _SSH_DROP_TAG in line:
            handle = line.split("handle")[-1].strip()
            _host_nft(lab, host, "delete", "rule", "inet", "filter", "input", "handle", handle)


@contextlib.contextmanager
def small_disk(
    lab: Any, host: str, scratch: Path, up: Callable[[], Any], size_mb: int = 256
) -> Iterator[None]:
    """Run `host` on a disk of `size_mb` MiB: its folder (overlay upper and work dirs) moves onto a tmpfs
    while it is stopped, then `up()` starts it again. Afterwards the host is stopped, the tmpfs unmounted
    and `up()` called again; the caller resets the host (its disk is as it was before the block)."""
    rec = host_record(lab, host)
    hostdir = Path(rec.dir)
    kill_host(lab, host)
    keep = scratch / f"{host}-disk"
    subprocess.run(["cp", "-a", str(hostdir), str(keep)], check=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "pbfaults", str(hostdir)], check=True
    )
    try:
        subprocess.run(["cp", "-a", f"{keep}/.", str(hostdir)], check=True)
        up()
        yield
    finally:
        kill_host(lab, host)
        subprocess.run(["umount", "-l", str(hostdir)], check=False)
        up()


def fill_disk(lab: Any, host: str) -> int:
    """Fill the host's root filesystem from inside; the KiB left."""
    fill = "dd if=/dev/zero of=/var/tmp/fill bs=1M; dd if=/dev/zero of=/var/tmp/fill2 bs=4k; df -Pk /"
    proc = lab.exec(host, ["sh", "-c", fill], timeout=300)
    return int(str(proc.stdout).splitlines()[-1].split()[3])


def free_disk(lab: Any, host: str) -> None:
    lab.exec(host, ["rm", "-f", "/var/tmp/fill", "/var/tmp/fill2"], check=True)  # noqa: S108 (on the host)


def installed_status(lab: Any, host: str, package: str = "labdemo") -> str:
    """`<version> <dpkg status>` of `package` read with the real dpkg-query over SSH (`ii` = installed
    cleanly)."""
    proc = lab.exec(
        host, ["/usr/bin/dpkg-query", "-W", "-f", "${Version} ${db:Status-Abbrev}", package], timeout=120
    )
    return str(proc.stdout).strip()


def upgrades(lab: Any, host: str, package: str = "labdemo") -> int:
    """How many times dpkg upgraded `package` on `host` (dpkg's own log, not Ansible's word)."""
    proc = lab.exec(
        host, ["sh", "-c", f"grep -c ' upgrade {package}:' /var/log/dpkg.log || true"], timeout=120
    )
    return int(str(proc.stdout).strip() or 0)


# -- the exact outcome of a faulty rollout (shared with tests/lab/test_faults_lab.py) ---------------------

Pinned = tuple[str, str, dict[str, Any]]


def json_document(result: Any) -> dict[str, Any]:
    """What `patchbrain rollout --json` prints for `result` (a RolloutResult): the CLI's own serialiser and
    JSON encoder, read back."""
    from patchbrain import output
    from patchbrain.cli.cmd_rollout import result_document

    doc: dict[str, Any] = json.loads(output.dumps(result_document(result)))
    return doc


def failures_halt(wave: int, why: Mapping[str, str]) -> dict[str, Any]:
    """The `halt` of wave `wave` (1-based) whose hosts `why` ({host: state}) failed, 0 failures allowed, as
    `rollout --json`, the journal's wave summary and the audit records hold it."""
    return {
        "kind": "failures",
        "reason": f"{len(why)} host(s) of wave {wave} failed or could not be verified (allowed: 0): "
        + "; ".join(f"{h}: {s}" for h, s in sorted(why.items())),
        "hosts": sorted(why),
        "detail": {},
    }


def _pin(action: str, p: Mapping[str, Any]) -> dict[str, Any]:
    if action == "rollout.start":
        return {"waves": p.get("waves")}
    if action == "rollout.resume":
        resume = p.get("resume") or {}
        verdicts = resume.get("reverified") or {}
        return {
            "reverified": {h: v.get("state") for h, v in verdicts.items()},
            "to_run": resume.get("to_run"),
        }
    if action == "rollout.wave.start":
        return {"hosts": p.get("hosts")}
    if action == "rollout.wave.end":
        safety = p.get("safety") or {}
        return {
            "state": p.get("state"),
            "halt": p.get("halt"),
            "hosts": p.get("hosts"),
            "states": p.get("states"),
            "verified": {h: v.get("verdict") for h, v in (safety.get("verify") or {}).items()},
            "rollback": safety.get("rollback"),
        }
    if action == "rollout.end":
        return {"state": p.get("state"), "halt": p.get("halt")}
    return dict(p)


def rollout_records(store: Any, plan_id: str, after_seq: int) -> list[Pinned]:
    """The plan's `rollout.*` audit records after `after_seq`, pinned (`pin_records`)."""
    return pin_records(
        plan_id, [(r.action, r.subject, r.payload) for r in audit_since(store, after_seq, "rollout.*")]
    )


def pin_records(plan_id: str, records: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[Pinned]:
    """The plan's `rollout.*` records among `records` (action, subject, payload), each (action, subject after
    the plan id, the payload fields a fault check pins): a wave's end keeps its state, halt, hosts' states and
    counts, the verifier's verdict per host it vouched for (`safety.verify`) and the rollbacks; a resume what
    it re-verified (host: state) and what it ran again; the end its state and halt."""
    return [
        (action, subject.removeprefix(plan_id), _pin(action, payload))
        for action, subject, payload in records
        if action.startswith("rollout.") and (subject == plan_id or subject.startswith(plan_id + "/"))
    ]


def wave_end(state: str, halt: Any, hosts: Mapping[str, str], verified: Sequence[str], wave: int) -> Pinned:
    """The pinned `rollout.wave.end` of wave `wave` (1-based): nothing rolled back, the verifier saying ok
    for `verified`."""
    counts: dict[str, int] = {}
    for s in hosts.values():
        counts[s] = counts.get(s, 0) + 1
    payload = {
        "state": state,
        "halt": halt,
        "hosts": dict(hosts),
        "states": counts,
        "verified": dict.fromkeys(verified, "ok"),
        "rollback": {},
    }
    return ("rollout.wave.end", f"/w{wave}", payload)


def differences(what: str, got: Sequence[Any], want: Sequence[Any]) -> list[str]:
    """Each position where `got` differs from `want` (and a length difference), as problem texts."""
    out = [
        f"{what} #{i + 1}: got {g!r}, expected {w!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=False))
        if g != w
    ]
    if len(got) != len(want):
        out.append(f"{what}: {len(got)} record(s), expected {len(want)}")
    return out


def bad_wave_problems(
    waves: Sequence[Sequence[str]],
    faults: Mapping[str, str],
    first: Mapping[str, Any],
    resumed: Mapping[str, Any] | None,
    histories: Mapping[str, Sequence[str]],
    records: Sequence[Pinned],
) -> dict[str, list[str]]:
    """What is wrong, per faulty host, with a two-wave rollout whose second wave met faults, then a `--resume`
    after the repairs; empty lists when everything is exactly as it must be.

    `faults`: each faulty host's state after the faulty run (unreachable, failed); `first` and `resumed`: the
    two runs' `rollout --json` documents (`json_document`); `histories`: each host's journal states, oldest
    first; `records`: the plan's `rollout_records` since before the first run. Wanted: the faulty run
    halted by the failure threshold naming exactly the faulty hosts (in its JSON, its wave-end and end audit
    records), each faulty host in its fault state with nothing installed or vouched for by the verifier,
    the canary wave done; the resume re-reading every faulty host as pending and running exactly them, all
    patched; each faulty host's journal `pending > running > <fault> > verifying > pending > running >
    patched`. A problem about the whole wave is reported for every faulty host."""
    w1, w2 = list(waves[0]), list(waves[1])
    halt = failures_halt(2, faults)
    common: list[str] = []
    per: dict[str, list[str]] = {h: [] for h in faults}

    # the faulty run, as `rollout --json` prints it
    got_halt = first.get("halt") or {}
    for h in faults:
        if got_halt.get("kind") != "failures" or h not in got_halt.get("hosts", []):
            per[h].append(
                f"the wave was not halted per its threshold (0 failures allowed) naming {h} "
                f"(state {first.get('state')}, halt {first.get('halt')})"
            )
    if (first.get("state"), first.get("halt"), first.get("resumed")) != ("halted", halt, None):
        common.append(
            f"rollout --json: state {first.get('state')}, halt {first.get('halt')}, not halted {halt}"
        )
    by_wave = {w.get("wave"): w for w in first.get("waves", [])}
    if sorted(by_wave) != [1, 2] or by_wave[1].get("halt") is not None or by_wave[2].get("halt") != halt:
        common.append(f"rollout --json: waves {sorted(by_wave)}, not wave 1 done and wave 2 halted {halt}")
    ran = {h["host"]: h for w in first.get("waves", []) for h in w.get("hosts", [])}
    common += [
        f"rollout --json: canary {h} {ran.get(h, {}).get('state')}, not patched"
        for h in w1
        if ran.get(h, {}).get("state") != "patched"
    ]
    vouched = (by_wave.get(2, {}).get("safety") or {}).get("verify") or {}
    for h, state in faults.items():
        e = ran.get(h, {})
        if (e.get("state"), e.get("before"), e.get("after")) != (state, {}, {}):
            per[h].append(
                f"rollout --json: {h} {e.get('state')} (before {e.get('before')}, after {e.get('after')}), "
                f"not {state} with nothing reported installed"
            )
        if h in vouched:
            per[h].append(f"the verifier vouched for {h} in the faulty run: {vouched[h]}")

    # the resume after the repairs
    r = resumed or {}
    info = r.get("resumed") or {}
    if (r.get("state"), r.get("halt")) != ("done", None):
        common.append(f"the resume's --json: state {r.get('state')}, halt {r.get('halt')}, not done")
    if (info.get("wave"), info.get("previous_state"), info.get("to_run")) != (2, "halted", w2):
        common.append(
            f"the resume's --json: resumed wave {info.get('wave')} (was {info.get('previous_state')}), ran "
            f"{info.get('to_run')}, not wave 2 (was halted) running {w2}"
        )
    after = {h["host"]: h["state"] for w in r.get("waves", []) for h in w.get("hosts", [])}
    for h in faults:
        verdict = ((info.get("reverified") or {}).get(h) or {}).get("state")
        if verdict != "pending":
            per[h].append(f"--resume re-read {h} as {verdict}, not pending (still at its old version)")
        if after.get(h) != "patched":
            per[h].append(f"the resume's --json: {h} {after.get(h)}, not patched")

    # the journal
    for h in w1:
        if list(histories.get(h, [])) != ["pending", "running", "patched"]:
            common.append(f"journal {h}: {' > '.join(histories.get(h, []))}, not pending > running > patched")
    for h, state in faults.items():
        want = ["pending", "running", state, "verifying", "pending", "running", "patched"]
        if list(histories.get(h, [])) != want:
            per[h].append(f"journal {h}: {' > '.join(histories.get(h, []))}, not {' > '.join(want)}")

    # the audit log
    common += differences(
        "rollout audit record",
        records,
        [
            ("rollout.start", "", {"waves": [w1, w2]}),
            ("rollout.wave.start", "/w1", {"hosts": w1}),
            wave_end("done", None, dict.fromkeys(w1, "patched"), w1, 1),
            ("rollout.wave.start", "/w2", {"hosts": w2}),
            wave_end(
                "halted",
                halt,
                {h: faults.get(h, "patched") for h in w2},
                [h for h in w2 if h not in faults],
                2,
            ),
            ("rollout.end", "", {"state": "halted", "halt": halt}),
            ("rollout.resume", "", {"reverified": dict.fromkeys(faults, "pending"), "to_run": w2}),
            ("rollout.wave.start", "/w2", {"hosts": w2}),
            wave_end("done", None, dict.fromkeys(w2, "patched"), w2, 2),
            ("rollout.end", "", {"state": "done", "halt": None}),
        ],
    )
    return {h: per[h] + common for h in faults}


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
    history = _history(store, plan.plan_id, host)
    problems = lock_problems(
        host,
        holder,
        json_document(out),
        [(t.state, t.detail) for t in Journal(store).history(plan.plan_id, host)],
        rollout_records(store, plan.plan_id, head),
    )
    if now != before:
        problems.append(f"{host} went from {before} to {now}")
    ev = [
        Evidence("note", f"apt lock held on {host} by pid {holder}; rollout {out.state} after {took:.0f} s"),
        Evidence("note", f"journal: {host} {states.get(host)}: {detail}"[:600]),
        Evidence("note", f"journal {host}: {' > '.join(history)}"),
        Evidence("note", f"{host} has labdemo {now}"),
        *(
            audit_evidence(r, ("state", "halt"))
            for r in audit_since(store, head, "rollout.*")
            if r.action in ("rollout.wave.end", "rollout.end")
        ),
    ]
    return (
        not problems,
        f"{host} failed after a bounded wait ({took:.0f} s in all), naming the lock holder pid {holder}; "
        f"left at {now}; --json, journal history and audit records exactly as expected"
        if not problems
        else "; ".join(problems)[:1500],
        ev,
    )


def lock_problems(
    host: str,
    holder: int,
    doc: Mapping[str, Any],
    history: Sequence[tuple[str, str]],
    records: Sequence[Pinned],
) -> list[str]:
    """What is wrong with a one-host, one-wave rollout whose host's apt lock was held by pid `holder` (the
    `HOLD_APT` holder) for longer than `LOCK_TIMEOUT_S`: the host must fail after the bounded wait naming the
    holder, the wave halt on it; `doc` is the run's `rollout --json` (`json_document`), `history` the host's
    journal (state, detail) pairs, `records` the plan's `rollout_records`. Empty when exactly right."""
    halt = failures_halt(1, {host: "failed"})
    reason = (
        f"{LOCK_TASK}: non-zero return code: the package database is locked by pid {holder} "
        f"({('python3 -c ' + HOLD_APT)[:120]}) (/var/lib/dpkg/lock-frontend); "
        f"gave up after {LOCK_TIMEOUT_S} s"
    )
    problems: list[str] = []
    got_halt = doc.get("halt") or {}
    if got_halt.get("kind") != "failures" or host not in got_halt.get("hosts", []):
        problems.append(f"rollout {doc.get('state')}, NOT halted for the failure of {host}")
    if (doc.get("state"), doc.get("halt"), doc.get("resumed")) != ("halted", halt, None):
        problems.append(
            f"rollout --json: state {doc.get('state')}, halt {doc.get('halt')}, not halted {halt}"
        )
    waves = doc.get("waves", [])
    hosts = [h for w in waves for h in w.get("hosts", [])]
    got = [(h.get("host"), h.get("state"), h.get("before"), h.get("after")) for h in hosts]
    if [w.get("halt") for w in waves] != [halt] or got != [(host, "failed", {}, {})]:
        problems.append(f"rollout --json: hosts {got}, not {host} failed with nothing reported installed")
    vouched = (waves[0].get("safety") or {}).get("verify") if waves else None
    if vouched:
        problems.append(f"the verifier vouched for {sorted(vouched)}")
    if list(history) != [("pending", ""), ("running", ""), ("failed", reason)]:
        problems.append(f"journal {host}: {list(history)}, not pending > running > failed: {reason}")
    problems += differences(
        "rollout audit record",
        records,
        [
            ("rollout.start", "", {"waves": [[host]]}),
            ("rollout.wave.start", "/w1", {"hosts": [host]}),
            wave_end("halted", halt, {host: "failed"}, [], 1),
            ("rollout.end", "", {"state": "halted", "halt": halt}),
        ],
    )
    return problems


def _background_rollout(ctx: Context, path: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    """`patchbrain rollout PATH --json ARGS` in another process (canary bake 0 s), output in files."""
    env = {**os.environ, "PATCHBRAIN_CANARY_BAKE": "0s"}
    with (ctx.workdir / f"{name}.out").open("w") as o, (ctx.workdir / f"{name}.err").open("w") as e:
        return subprocess.Popen(
            [sys.executable, "-m", "patchbrain", "rollout", str(path), "--json", *args],
            stdout=o,
            stderr=e,
            env=env,
        )


def _rollout(lab: Any, plan: Any, path: Path, store: Any, *, resume: bool = False) -> Any:
    """A rollout (`resume`: `rollout --resume`) in this process, so a defence switched off by the red-team
    hook applies to it."""
    from patchbrain.executor.rollout import rollout
    from patchbrain.keys import KeyStore
    from patchbrain.safety.options import SafetyOptions

    return rollout(
        plan,
        inventory=lab.inventory_path(),
        store=store,
        plan_file=path,
        keystore=KeyStore(),
        resume=resume,
        safety=SafetyOptions.from_env(canary_bake_s=0, settle_s=2),
    )


def _landed(lab: Any, hosts: list[str], plan: Any, version: str) -> tuple[list[str], list[Evidence]]:
    """Nothing lost, nothing patched twice: each host at `version` installed cleanly (re-read over SSH),
    upgraded exactly once by dpkg, the install task run once over every run of the plan's waves."""
    problems: list[str] = []
    runs: dict[str, int] = {}
    for wave in range(1, len(plan.waves) + 1):
        for host, n in installs(plan.plan_id, wave).items():
            runs[host] = runs.get(host, 0) + n
    ev = []
    for host in hosts:
        status, n = installed_status(lab, host), upgrades(lab, host)
        ev.append(
            Evidence(
                "note",
                f"{host}: dpkg-query {status!r}; dpkg.log upgrades {n}; install task ran "
                f"{runs.get(host, 0)} time(s)",
            )
        )
        if status != f"{version} ii":
            problems.append(f"{host} has {status!r}, not {version} installed cleanly (lost)")
        if n > 1 or runs.get(host, 0) > 1:
            problems.append(f"{host} patched twice (dpkg upgrades {n}, install task {runs.get(host, 0)}x)")
    return problems, ev


def _audit_verifies(store: Any) -> tuple[bool, Evidence]:
    """`audit verify` on the scenario's log: the interrupted and resumed runs left an intact chain."""
    from patchbrain.audit import AuditLog

    res = AuditLog(store).verify()
    return bool(res.ok), Evidence("audit", f"audit verify: ok={res.ok} problem={res.problem}"[:600])


def _history(store: Any, plan_id: str, host: str) -> list[str]:
    from patchbrain.journal import Journal

    return [t.state for t in Journal(store).history(plan_id, host)]


def _killed_controller(ctx: Context, lab: Any, version: str) -> Outcome:
    from patchbrain.journal import Journal
    from patchbrain.store import Store

    hosts = [h.name for h in lab.hosts()][:FLEET]
    plan, path = _plan(ctx, lab, "killed", hosts, version, "1,100%")
    w1, w2 = list(plan.waves[0]), list(plan.waves[1])
    store = Store()
    head = audit_head(store)
    # forks 1: the second wave installs one host after the other, so the kill lands between hosts
    proc = _background_rollout(ctx, path, "killed", "--forks", "1")
    patch_dir = wave_dir(plan.plan_id, 2) / f"{plan.plan_id}-w2-patch"
    try:
        first = wait_for(
            "the first install of wave 2",
            lambda: task_event(patch_dir, "runner_on_ok", INSTALL_TASK) or (proc.poll() is not None and "x"),
        )
        if first == "x":
            raise RuntimeError(f"the rollout ended before it could be killed: exit {proc.returncode}")
        killed = kill_tree(proc.pid)
    finally:
        proc.wait(120)
    done_first = str(first["event_data"]["host"])
    record = Journal(store).plan(plan.plan_id)
    at_kill = dict(record.hosts) if record is not None else {}
    waves_at_kill = [w.state for w in record.waves] if record is not None else []
    out = _rollout(lab, plan, path, store, resume=True)
    resumed = dict(out.resumed or {})
    verdicts = {h: v["state"] for h, v in dict(resumed.get("reverified", {})).items()}
    ev = [
        Evidence(
            "note",
            f"rollout pid {proc.pid} SIGKILLed with {len(killed) - 1} descendant(s) right after "
            f"the install on {done_first} (wave 2, forks 1); journal then: waves {waves_at_kill}, "
            f"hosts {at_kill}",
        ),
        Evidence(
            "note",
            f"resume: re-verified {verdicts}; ran again {list(resumed.get('to_run', []))}; "
            f"lock taken over {[dict(x).get('pid') for x in out.lock_taken_over]}; rollout {out.state}",
        ),
    ]
    ev += [Evidence("note", f"journal {h}: {' > '.join(_history(store, plan.plan_id, h))}") for h in hosts]
    ev += [
        audit_evidence(r, ("state", "reverified", "to_run"))
        for r in audit_since(store, head)
        if r.subject.startswith(plan.plan_id)
    ]
    problems, landed = _landed(lab, hosts, plan, version)
    ev += landed
    intact, verified = _audit_verifies(store)
    ev.append(verified)
    if not intact:
        problems.append("the audit log does not verify")
    if waves_at_kill != ["done", "running"] or any(at_kill.get(h) != "running" for h in w2):
        problems.append(f"the journal did not hold the interrupted wave (waves {waves_at_kill})")
    if out.state != "done":
        problems.append(f"the resumed rollout ended {out.state}")
    if verdicts.get(done_first) != "patched" or done_first in resumed.get("to_run", []):
        problems.append(f"{done_first}, patched before the kill, was not re-read as patched and left alone")
    if sorted(verdicts) != sorted(w2):
        problems.append(f"re-verified {sorted(verdicts)}, not the interrupted wave {sorted(w2)}")
    if not any(dict(x).get("pid") == proc.pid for x in out.lock_taken_over):
        problems.append("the dead controller's lock was not taken over as stale")
    if problems:
        return False, "; ".join(problems), ev
    return (
        True,
        f"controller killed mid-wave 2; --resume re-read {', '.join(sorted(verdicts))} over the second "
        f"channel, "
        f"left {done_first} (patched before the kill) alone, ran {list(resumed.get('to_run', []))}; every "
        f"host at {version}, each upgraded once ({', '.join(w1 + w2)})",
        ev,
    )


def _bad_wave(ctx: Context, lab: Any, version: str) -> list[Check]:
    """One rollout whose second wave meets three faults at once: a host dies in pre-flight, another's SSH
    drops during the install, a third has a full disk. One check per fault, judged from the same run and
    from the `--resume` after the repairs."""
    from patchbrain.journal import Journal
    from patchbrain.store import Store

    hosts = [h.name for h in lab.hosts()][:FLEET]
    plan, path = _plan(ctx, lab, "badwave", hosts, version, "1,100%")
    w2 = list(plan.waves[1])
    dies, drops, full = w2[0], w2[1], w2[2]
    store = Store()
    head = audit_head(store)
    doc: dict[str, Any] = {}
    notes: dict[str, list[Evidence]] = {dies: [], drops: [], full: []}
    resumed: Any = None
    resume_error = ""
    with small_disk(lab, full, ctx.workdir, lambda: lab.up(FLEET)):
        left = fill_disk(lab, full)
        notes[full].append(Evidence("note", f"{full}: its disk filled from inside, {left} KiB left on /"))
        hold_install_until_cut(lab, drops)
        notes[drops].append(
            Evidence(
                "note",
                f"{drops}: its apt install held before dpkg while SSH is cut, then abandoned "
                f"({HOLD_INSTALL_FILE})",
            )
        )
        # the rollout runs here (a defence switched off by the red-team hook applies to it); the faults are
        # injected from another thread as the rollout reaches them
        pre_dir = wave_dir(plan.plan_id, 2) / f"{plan.plan_id}-w2-preflight"
        patch_dir = wave_dir(plan.plan_id, 2) / f"{plan.plan_id}-w2-patch"
        done = threading.Event()
        injector_error: list[str] = []

        def inject() -> None:
            try:
                wait_for(
                    "wave 2's pre-flight",
                    lambda: (
                        any(e.get("event") == "playbook_on_task_start" for e in run_events(pre_dir))
                        or done.is_set()
                    ),
                )
                if done.is_set():
                    return
                kill_host(lab, dies)
                notes[dies].append(
                    Evidence("note", f"{dies}: every process killed during wave 2's pre-flight")
                )
                wait_for(
                    "the install on the SSH victim",
                    lambda: task_event(patch_dir, "runner_on_start", INSTALL_TASK, drops) or done.is_set(),
                )
                if done.is_set():
                    return
                drop_ssh(lab, drops)
                cut = time.monotonic()
                notes[drops].append(
                    Evidence("note", f"{drops}: SSH dropped (established too) during the install")
                )
                try:  # until Ansible gives up: SSH outlives a shorter cut (docs/faults.md)
                    wait_for(
                        "Ansible to give up on the SSH victim",
                        lambda: host_gone(patch_dir, drops) or done.is_set(),
                        timeout=900,
                    )
                finally:
                    restore_ssh(lab, drops)
                    notes[drops].append(
                        Evidence("note", f"{drops}: SSH back after {time.monotonic() - cut:.0f} s")
                    )
            except Exception as exc:
                injector_error.append(f"{type(exc).__name__}: {exc}")

        injector = threading.Thread(target=inject, name="pb-redteam-faults", daemon=True)
        injector.start()
        try:
            out = _rollout(lab, plan, path, store)
        finally:
            done.set()
            injector.join(960)
        if injector_error:
            raise RuntimeError(f"injecting the faults failed: {injector_error[0]}")
        doc = json_document(out)  # what `rollout --json` would have printed
        states = {h.host: h.state for w in out.waves for h in w.hosts}
        halt = doc["halt"] or {}
        details = {
            t.host: t.detail
            for t in Journal(store).history(plan.plan_id)
            if t.state in ("failed", "unreachable")
        }
        first_run = Evidence(
            "note",
            f"rollout {out.state}, halt {halt.get('kind')} on {halt.get('hosts')}; hosts {states}",
        )
        for h in notes:
            notes[h] += [first_run, Evidence("note", f"journal {h}: {details.get(h, '')}"[:600])]
            notes[h].append(
                Evidence("note", f"{h} after the faulty run: {installed_status(lab, h)!r}")
                if h != dies
                else Evidence("note", f"{dies} down")
            )
        # the repairs: the dead host boots with its disk as it was, the link is back, space is freed
        lab.up(FLEET)
        free_disk(lab, full)
        release_install_hold(lab, drops)
        try:
            resumed = _rollout(lab, plan, path, store, resume=True)
        except Exception as exc:  # a resume that refuses is judged below, with the reason
            resume_error = f"{type(exc).__name__}: {exc}"
        # read before the small disk goes (afterwards the host is back on its disk from before the block)
        landed_problems, landed = _landed(lab, hosts, plan, version)
    resumed_doc = json_document(resumed) if resumed is not None else None
    info = dict(resumed.resumed or {}) if resumed is not None else {}
    verdicts = {h: dict(v) for h, v in dict(info.get("reverified", {})).items()}
    to_run = list(info.get("to_run", []))
    resume_ev = Evidence(
        "note",
        f"resume: {resumed.state if resumed is not None else resume_error}; re-verified "
        f"{ {h: v.get('state') for h, v in verdicts.items()} }; ran again {to_run}",
    )
    audit = [
        audit_evidence(r, ("state", "halt", "to_run"))
        for r in audit_since(store, head)
        if r.subject.startswith(plan.plan_id)
        and r.action in ("rollout.wave.end", "rollout.resume", "rollout.end")
    ]
    intact, verified = _audit_verifies(store)
    if not intact:
        landed_problems += [f"{h} : the audit log does not verify" for h in (dies, drops, full)]
    histories = {h: _history(store, plan.plan_id, h) for h in hosts}
    # the exact outcome: both runs' --json, every host's journal history, the plan's rollout audit records
    drop_state = str(states.get(drops))
    if drop_state not in ("unreachable", "failed"):  # its check fails on the state itself (below)
        drop_state = "unreachable"
    exact = bad_wave_problems(
        [list(w) for w in plan.waves],
        {dies: "unreachable", drops: drop_state, full: "failed"},
        doc,
        resumed_doc,
        histories,
        rollout_records(store, plan.plan_id, head),
    )

    def judge(host: str, what: str, want_first: tuple[str, ...], extra: list[str]) -> Check:
        problems = list(extra)
        if states.get(host) not in want_first:
            problems.append(
                f"{host} ended {states.get(host)} in the faulty run, not {' or '.join(want_first)}"
            )
        if resumed is None:
            problems.append(f"the resume did not run ({resume_error})")
        problems += exact[host]
        problems += [p for p in landed_problems if p.startswith(host + " ")]
        ev = [
            *notes[host],
            resume_ev,
            Evidence("note", f"journal {host}: {' > '.join(histories[host])}"),
            *audit,
            *(e for e in landed if e.text.startswith(host + ":")),
            verified,
        ]
        if problems:
            return Check(what, False, "; ".join(problems), tuple(ev))
        return Check(
            what,
            True,
            f"{host} {states[host]} (never patched) in the faulty run, wave halted naming it; after the "
            f"repair --resume re-read it ({verdicts.get(host, {}).get('state')}) and it ended at {version}, "
            "upgraded once; --json, journal history and audit records exactly as expected",
            tuple(ev),
        )

    disk_detail = details.get(full, "")
    return [
        judge(
            dies,
            "a host killed (every process, PID 1 too) during the wave's pre-flight",
            ("unreachable",),
            [],
        ),
        judge(
            drops,
            "SSH to a host dropped (established connections too) during the install task",
            ("unreachable", "failed"),
            [],
        ),
        judge(
            full,
            "a host whose disk is full when the rollout reaches it",
            ("failed",),
            []
            if DISK_REFUSAL in disk_detail
            else [
                f"{full} was not refused for disk space before anything ran "
                f"({disk_detail[:200] or 'no detail'})"
            ],
        ),
    ]


def run(ctx: Context) -> list[Check]:
    from patchbrain.lab.content import LabContent

    with lab_host(ctx, FLEET) as lab:
        version, _ = LabContent(lab.dir).publish_variant("benign", formats=("deb",))
        checks = [
            attempt(
                "a second rollout started on hosts a running rollout holds",
                lambda: _second_rollout(ctx, lab, version),
            ),
            attempt(
                "another process holds the package manager's lock on a host during a rollout",
                lambda: _package_lock(ctx, lab, version),
            ),
        ]
        lab.reset()
        checks.append(
            attempt(
                "the controller SIGKILLed mid-wave (its Ansible too), then the rollout resumed",
                lambda: _killed_controller(ctx, lab, version),
            )
        )
        lab.reset()
        try:
            checks += _bad_wave(ctx, lab, version)
        except Exception as exc:
            checks.append(
                Check(
                    "a host killed, SSH dropped and a full disk in one wave",
                    False,
                    f"error while attacking: {type(exc).__name__}: {exc}"[:800],
                )
            )
        finally:
            if ctx.lab is not None:
                lab.reset()
        return checks


SCENARIO = Scenario(
    name="faults",
    number=9,
    title="Faults",
    attacked="the rollout lock, package-manager lock waits, --resume after a killed controller, a wave in "
    "which a host dies, SSH drops and a disk is full",
    defences=("rollout-lock", "failure-threshold", "resume-reverify", "disk-preflight"),
    needs_hosts=True,
    run=run,
    hosts=FLEET,
)
