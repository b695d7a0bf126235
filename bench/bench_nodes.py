"""Execution-node benchmark: the same rollout on the controller alone and on the controller + 2 nodes.

On N lab hosts (default 30, all apt, labdemo 1.0 installed and 1.1 pending) and 2 execution nodes (lab
hosts with ansible-runner in their image), in one process:
  local   `patchbrain.executor.rollout` of a plan (a 1-host canary, then the rest), every run on the
          controller (forks F);
  nodes   the same plan again (hosts reset first), each run sliced by capacity over the controller and
          the two nodes (transmit | ssh | ansible-runner worker | process), hosts re-read by the
          controller's independent verifier afterwards.
Prints both wall times and their ratio, and the capacity figures the sizing table in docs/nodes.md uses:
controller CPU-s per host (this process and its children: ansible, ssh), node CPU-s per host (every
process in the node's namespace, reaped children included), peak RSS of the controller's process tree
and of each node (sampled every second), per host and per fork.

Everything runs on one machine here: controller, nodes and the targets' own Python share its cores, so
the nodes add no CPU; the ratio shows the cost of the streaming path, not the speed-up real nodes give.

Usage: python bench/bench_nodes.py [--hosts 30] [--forks 10] [--keep]
Needs root and the lab (network namespaces); takes several minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

INSTANCE = "benchn"
NODES = 2
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds of these processes and their reaped children."""
    total = 0
    for pid in pids:
        f = _stat(pid)
        if f:
            total += sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    return total / _TICKS


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_KIB
        except (OSError, ValueError, IndexError):
            continue
    return total


def _netns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


def _descendants(root: int) -> list[int]:
    """The controller's process tree, without the lab hosts (this process started them: they are its
    descendants, but they live in network namespaces of their own)."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            f = _stat(int(entry.name))
            if f:
                kids.setdefault(int(f[1]), []).append(int(entry.name))
    ours = _netns(root)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if _netns(pid) != ours:
            continue
        out.append(pid)
        todo += kids.get(pid, [])
    return out


class Sampler:
    """Peak RSS of the controller's process tree and of each node namespace, once a second."""

    def __init__(self, node_netns: dict[str, str]) -> None:
        from patchbrain.lab import net

        self.net, self.node_netns = net, node_netns
        self.peak = {"controller": 0, **dict.fromkeys(node_netns, 0)}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.peak["controller"] = max(self.peak["controller"], _rss_kib(_descendants(os.getpid())))
            pids = self.net.pids_in(self.node_netns.values())
            for name, ns in self.node_netns.items():
                self.peak[name] = max(self.peak[name], _rss_kib(pids.get(ns, [])))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=30)
    ap.add_argument("--forks", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="leave the lab instance up afterwards")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_nodes: needs root (the lab uses network namespaces)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-nodes-") as tmp:
        os.environ["PATCHBRAIN_HOME"] = str(Path(tmp) / "home")
        os.environ["PATCHBRAIN_LAB"] = INSTANCE
        os.environ.pop("PATCHBRAIN_DB", None)

        from patchbrain.approvals import ApprovalStore, approve, policy_from_env, sign_authorship
        from patchbrain.executor import discovery, runner
        from patchbrain.executor.nodes import NodePool, controller_reader, load_config
        from patchbrain.executor.request import RunRequest
        from patchbrain.executor.rollout import RolloutOptions, rollout
        from patchbrain.inventory import load_hosts
        from patchbrain.keys import KeyStore, ensure_lab_keys
        from patchbrain.lab import Lab, net
        from patchbrain.plans import make_plan
        from patchbrain.store import Store

        lab = Lab(INSTANCE)
        try:
            t0 = time.perf_counter()
            lab.up(args.hosts, ("apt",), nodes=NODES)
            inventory = lab.inventory_path()
            names = [h.name for h in load_hosts(inventory)]
            cfg = load_config(lab.nodes_file)
            netns = {r.name: r.netns for r in lab.hosts() if r.name in {n.name for n in cfg.nodes}}
            print(f"lab: {len(names)} apt hosts + {len(netns)} nodes up in {time.perf_counter() - t0:.1f} s")

            res = runner.run(
                RunRequest(
                    playbook="discover.yml", inventory=inventory, ident="bench-discover", forks=args.forks
                )
            )
            pending = [p for d in discovery.parse_run_data(res.data) for p in d.pending]
            assert len({p.host for p in pending}) == len(names), f"discovery: {res.status}, {len(pending)}"
            keystore = KeyStore()
            ensure_lab_keys(keystore)
            signer = keystore.load_private("lab-signing")

            def approved_plan():  # one per run: a plan id is journaled once
                plan = make_plan(
                    pending,
                    inventory=str(inventory),
                    hosts=load_hosts(inventory),
                    spec="1,100%",  # canary, then the rest
                    author=signer.public.fingerprint,
                    author_name=signer.name,
                )
                plan = sign_authorship(plan, signer)
                ApprovalStore(Store()).add(
                    approve(
                        plan,
                        keystore.load_private("lab-approver-1"),
                        keystore=keystore,
                        ttl=dt.timedelta(hours=2),
                        policy=policy_from_env(),
                    )
                )
                return plan

            figures = {}
            for mode in ("local", "nodes"):
                lab.reset(*names)
                plan = approved_plan()
                if mode == "nodes":
                    pool = NodePool(cfg)
                    opts = RolloutOptions(
                        forks=args.forks, run=pool.run, read_installed=controller_reader(inventory)
                    )
                else:
                    pool, opts = None, RolloutOptions(forks=args.forks)
                node_cpu0 = {n: _cpu_of(p) for n, p in net.pids_in(netns.values()).items()}
                cpu0, t0 = _cpu(), time.perf_counter()
                with Sampler(netns) as sampler:
                    if pool is not None:
                        with pool:
                            result = rollout(plan, inventory=inventory, store=Store(), options=opts)
                    else:
                        result = rollout(plan, inventory=inventory, store=Store(), options=opts)
                wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
                node_cpu = {
                    n: _cpu_of(p) - node_cpu0.get(n, 0.0) for n, p in net.pids_in(netns.values()).items()
                }
                states = {h.state for w in result.waves for h in w.hosts}
                assert result.state == "done" and states == {"patched"}, (
                    mode,
                    result.state,
                    states,
                    result.halt,
                )
                figures[mode] = (wall, cpu, node_cpu, dict(sampler.peak))
        finally:
            if not args.keep:
                lab.down()

    n = len(names)
    print(
        f"hosts {n}, forks {args.forks} (controller), nodes {NODES} x {cfg.nodes[0].capacity} forks,"
        " all on one machine"
    )
    for mode, (wall, cpu, node_cpu, peak) in figures.items():
        nodes_cpu = sum(node_cpu.values())
        print(
            f"{mode:6s} wall {wall:7.1f} s | controller {cpu:6.1f} CPU-s ({cpu / n:5.2f}/host), peak RSS "
            f"{peak['controller'] / 1024:6.0f} MiB | nodes {nodes_cpu:6.1f} CPU-s, peak RSS "
            + ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in peak.items() if k != "controller")
        )
    ratio = figures["nodes"][0] / figures["local"][0]
    print(f"ratio nodes/local wall: {ratio:.2f}x (one 2-core machine: nodes add no CPU here, see docstring)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
