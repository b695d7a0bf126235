"""Rollout benchmark: patchbrain's executor against a bare `ansible-playbook` apt upgrade, same hosts.

On N lab hosts (default 30, all apt, labdemo 1.0 installed and 1.1 pending), in one process:
  baseline  `ansible-playbook` of one play (`apt: name=labdemo state=latest update_cache=true`) with the
            same forks, pipelining and ControlPersist as patchbrain's generated ansible.cfg;
  executor  `patchbrain.executor.rollout` of a one-wave plan for the same hosts: preflight run (posture
            snapshot, candidates' maintainer scripts for the pre-scan) and patch run (exact version,
            before/after versions, postflight posture), journal and audit records included.
Hosts are reset (fresh overlay, labdemo back at 1.0) before each timed run; the plan comes from an untimed
discovery. Prints both wall times, the ratio (goal <= 1.3x) and controller CPU per host (user+sys of this
process and its children: ansible-playbook, ssh; the lab hosts' own processes are not children).

With --profile, also prints where the executor's time went: per-task durations summed over the hosts
(ansible-runner job_events `duration`), per run wall time and the events per run.

Usage: python bench/bench_rollout.py [--hosts 30] [--forks 10] [--keep] [--profile]
Needs root and the lab (network namespaces); takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSTANCE = "benchx"
PLAY = """\
- name: Upgrade labdemo (baseline)
  hosts: all
  gather_facts: false
  tasks:
    - name: Upgrade labdemo to the latest version
      ansible.builtin.apt:
        name: labdemo
        state: latest
        update_cache: true
"""


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class _LoadSampler:
    """Samples the 1-minute load average every 2 s while a timed run goes on."""

    def __init__(self) -> None:
        import threading

        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(2.0):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> _LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def text(self) -> str:
        s = self.samples or [os.getloadavg()[0]]
        return f"load avg (1 min) mean {sum(s) / len(s):.1f}, max {max(s):.1f}"


def _versions(lab, hosts: list[str]) -> set[str]:
    out = set()
    for h in hosts:
        proc = lab.exec(h, ["dpkg-query", "-W", "-f", "${Version}", "labdemo"], timeout=60)
        out.add(proc.stdout.strip())
    return out


def _profile(artifacts: Path, top: int = 25) -> None:
    """Per-task durations summed over hosts, and each run's wall time, from the runs' job_events."""
    import json
    from collections import defaultdict

    for run in sorted(p for p in artifacts.rglob("job_events") if p.is_dir()):
        per_task: dict[str, float] = defaultdict(float)
        count = 0
        created = []
        for f in run.glob("*.json"):
            if f.name.endswith("-partial.json"):
                continue
            ev = json.loads(f.read_text(encoding="utf-8"))
            count += 1
            if ev.get("created"):
                created.append(dt.datetime.fromisoformat(ev["created"]))
            data = ev.get("event_data", {})
            if ev.get("event", "").startswith("runner_on_") and isinstance(data.get("duration"), int | float):
                per_task[str(data.get("task", "?"))] += float(data["duration"])
        span = (max(created) - min(created)).total_seconds() if created else 0.0
        print(f"  run {run.parent.name}: {span:.1f} s between first and last event, {count} events")
        for task, secs in sorted(per_task.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {secs:7.1f} s  {task}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=30)
    ap.add_argument("--forks", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="leave the lab instance up afterwards")
    ap.add_argument("--profile", action="store_true", help="print per-task durations of the executor's runs")
    ap.add_argument("--instance", default=INSTANCE, help="lab instance name")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_rollout: needs root (the lab uses network namespaces)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        home = Path(tmp) / "home"
        os.environ["PATCHBRAIN_HOME"] = str(home)
        os.environ["PATCHBRAIN_LAB"] = args.instance
        os.environ.pop("PATCHBRAIN_DB", None)

        from patchbrain.approvals import ApprovalStore, approve, policy_from_env, sign_authorship
        from patchbrain.executor import discovery, runner
        from patchbrain.executor.request import RunRequest
        from patchbrain.executor.rollout import RolloutOptions, rollout
        from patchbrain.inventory import load_hosts
        from patchbrain.keys import KeyStore, ensure_lab_keys
        from patchbrain.lab import Lab
        from patchbrain.plans import make_plan
        from patchbrain.store import Store

        lab = Lab(args.instance)
        try:
            t0 = time.perf_counter()
            lab.up(args.hosts, ("apt",))
            inventory = lab.inventory_path()
            names = [h.name for h in load_hosts(inventory)]
            print(f"lab: {len(names)} apt hosts up in {time.perf_counter() - t0:.1f} s", flush=True)

            # untimed: discovery and the plan (one wave holding every host)
            res = runner.run(
                RunRequest(
                    playbook="discover.yml", inventory=inventory, ident="bench-discover", forks=args.forks
                )
            )
            pending = [p for d in discovery.parse_run_data(res.data) for p in d.pending]
            assert len({p.host for p in pending}) == len(names), (
                f"discovery: {res.status}, {len(pending)} updates"
            )
            # signed by the lab's keys, explicitly: nothing is auto-approved
            keystore = KeyStore()
            ensure_lab_keys(keystore)
            signer = keystore.load_private("lab-signing")
            plan = make_plan(
                pending,
                inventory=str(inventory),
                # the lab marks some hosts bare metal (one per canary) or not canaries: one wave of all
                # hosts needs every host eligible, so the planner sees them all as VMs here
                hosts=[dataclasses.replace(h, platform="vm", canary=None) for h in load_hosts(inventory)],
                spec="100%",
                author=signer.public.fingerprint,
                author_name=signer.name,
            )
            plan = sign_authorship(plan, signer)
            approval = approve(
                plan,
                keystore.load_private("lab-approver-1"),
                keystore=keystore,
                ttl=dt.timedelta(hours=2),
                policy=policy_from_env(),
            )
            ApprovalStore(Store()).add(approval)
            assert len(plan.waves) == 1

            # baseline: bare ansible-playbook, same forks, pipelining and ControlPersist
            lab.reset()
            cfg = Path(tmp) / "ansible.cfg"
            cfg.write_text(
                f"[defaults]\nforks = {args.forks}\ninterpreter_python = auto_silent\n"
                "retry_files_enabled = False\nhost_key_checking = True\n[ssh_connection]\npipelining = True\n"
                "ssh_args = -o ControlMaster=auto -o ControlPersist=60s\n"
            )
            play = Path(tmp) / "upgrade.yml"
            play.write_text(PLAY)
            exe = Path(sys.executable).parent / "ansible-playbook"
            cpu0, t0 = _cpu(), time.perf_counter()
            with _LoadSampler() as base_load:
                proc = subprocess.run(
                    [str(exe), "-i", str(inventory), str(play)],
                    capture_output=True,
                    text=True,
                    env=dict(os.environ, ANSIBLE_CONFIG=str(cfg)),
                    check=False,
                )
            base_wall, base_cpu = time.perf_counter() - t0, _cpu() - cpu0
            assert proc.returncode == 0, proc.stdout[-3000:]
            base_versions = _versions(lab, names)

            # executor: the full rollout path
            lab.reset()
            cpu0, t0 = _cpu(), time.perf_counter()
            with _LoadSampler() as ours_load:
                # as `patchbrain rollout` does: load (and validate) the inventory once, then roll out
                result = rollout(
                    plan,
                    inventory=inventory,
                    store=Store(),
                    options=RolloutOptions(forks=args.forks),
                    hosts=load_hosts(inventory),
                )
            ours_wall, ours_cpu = time.perf_counter() - t0, _cpu() - cpu0
            states = {h.state for w in result.waves for h in w.hosts}
            assert result.state == "done" and states == {"patched"}, (result.state, states, result.halt)
            ours_versions = _versions(lab, names)
            posture = sum(len(w.posture_pre) + len(w.posture_post) for w in result.waves)
            if args.profile:
                _profile(home)
        finally:
            if not args.keep:
                lab.down()

    n = len(names)
    ratio = ours_wall / base_wall
    print(f"hosts {n}, forks {args.forks}, pipelining and ControlPersist on in both")
    print(
        f"baseline  ansible-playbook apt upgrade : {base_wall:6.1f} s wall, {base_cpu / n:5.2f} CPU-s/host"
        f"  (labdemo now {sorted(base_versions)})"
    )
    print(
        f"executor  patchbrain rollout (1 wave)  : {ours_wall:6.1f} s wall, {ours_cpu / n:5.2f} CPU-s/host"
        f"  (labdemo now {sorted(ours_versions)}; {posture} posture snapshots, pre-scan, journal, audit)"
    )
    print(f"during the baseline: {base_load.text()}; during the executor: {ours_load.text()}")
    print(f"ratio executor/baseline: {ratio:.2f}x (goal <= 1.30x) -> {'met' if ratio <= 1.3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
