"""Planning 10,000 hosts x 50 pending updates (generated), against a naive sort-and-chunk in the same run.

  planner   patchbrain.planner.plan_waves: score and order every host's 50 updates, pick a canary covering
            every (OS release, package manager, package set) group, cut waves by the wave rule with a
            maximum per wave, split waves by maintenance windows (a quarter of the hosts have one of four
            weekly/daily windows) and schedule them
  plans     the same through patchbrain.plans.make_plan (+ the canonical plan id and the YAML)
  baseline  naive: score every update, sort hosts by their top risk, chunk by the wave rule: no groups,
            no windows, no canary rules

Usage: python bench/bench_planner.py [--hosts 10000] [--updates 50] [--seed 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time

from patchbrain.models import Host, PendingUpdate
from patchbrain.planner import HostTarget, PlanPolicy, UpdateScore, plan_waves
from patchbrain.plans import dump_plan, plan_from_layout
from patchbrain.waves import wave_sizes
from patchbrain.windows import MaintenanceWindow

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
WINDOWS = (
    (MaintenanceWindow("FREQ=DAILY;BYHOUR=2;BYMINUTE=0;BYSECOND=0", dt.timedelta(hours=3)),),
    (MaintenanceWindow("FREQ=DAILY;BYHOUR=3;BYMINUTE=0;BYSECOND=0", dt.timedelta(hours=2)),),
    (MaintenanceWindow("FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0;BYSECOND=0", dt.timedelta(hours=4)),),
    (MaintenanceWindow("FREQ=WEEKLY;BYDAY=SU;BYHOUR=0;BYMINUTE=0;BYSECOND=0", dt.timedelta(hours=6)),),
)
RELEASES = (("debian 12", "apt"), ("debian 11", "apt"), ("rhel 9", "dnf"), ("sles 15", "zypper"))


def generate(
    n_hosts: int, n_updates: int, seed: int
) -> tuple[list[HostTarget], dict[tuple[str, str], float]]:
    rng = random.Random(seed)
    catalogue = [f"pkg{i:03d}" for i in range(n_updates * 3)]
    cve_p = {f"CVE-2024-{i:05d}": rng.random() ** 3 for i in range(5000)}
    cves = list(cve_p)
    targets, risk = [], {}
    for i in range(n_hosts):
        release, mgr = RELEASES[i % len(RELEASES)]
        host = Host(
            f"h{i:05d}",
            f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            platform="baremetal" if i % 50 == 0 else "vm",
            criticality=rng.randint(1, 5),
            exposure=rng.randint(1, 5),
            canary=False if i % 17 == 0 else (True if i % 101 == 0 else None),
            pkg_mgr=mgr,
            windows=WINDOWS[(i // 4) % 4] if i % 4 == 0 else (),
        )
        # hosts of a release share most of their package set: a realistic number of groups
        names = random.Random(i % 40).sample(catalogue, n_updates)
        updates = []
        for name in names:
            fixed = tuple(rng.sample(cves, rng.randint(0, 4)))
            updates.append(PendingUpdate(host.name, name, "1.0-1", "1.1-1", mgr, fixed))
            p_any = 1.0
            for c in fixed:
                p_any *= 1.0 - cve_p[c]
            risk[(host.name, name)] = (1.0 - p_any) * ((host.criticality + 1) / 6) * ((host.exposure + 1) / 6)
        targets.append(HostTarget(host, release, mgr, tuple(updates)))
    return targets, risk


def naive(
    targets: list[HostTarget], risk: dict[tuple[str, str], float], spec: str, cap: int
) -> list[list[str]]:
    top = {t.host.name: max(risk[(t.host.name, u.package)] for u in t.updates) for t in targets}
    order = sorted(top, key=lambda n: -top[n])
    waves, start = [], 0
    for size in wave_sizes(len(order), spec):
        chunk = order[start : start + size]
        waves.extend(chunk[i : i + cap] for i in range(0, len(chunk), cap))
        start += size
    return waves


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--updates", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    spec, cap = "1,5%,25%,100%", 500

    t0 = time.perf_counter()
    targets, risk = generate(args.hosts, args.updates, args.seed)
    print(
        f"generated {args.hosts} hosts x {args.updates} updates in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    scores = {k: UpdateScore(v, "") for k, v in risk.items()}
    policy = PlanPolicy(spec=spec, max_per_wave=cap, max_failures_pct=2, bake=dt.timedelta(minutes=30))

    t0 = time.perf_counter()
    base = naive(targets, risk, spec, cap)
    t_base = time.perf_counter() - t0

    t0 = time.perf_counter()
    layout = plan_waves(targets, scores, policy, now=NOW)
    t_plan = time.perf_counter() - t0

    t0 = time.perf_counter()
    plan = plan_from_layout(layout, inventory="bench", spec=spec, reboot_ok=None, ranking="bench", now=NOW)
    t_id = time.perf_counter() - t0
    t0 = time.perf_counter()
    text = dump_plan(plan)
    t_yaml = time.perf_counter() - t0

    n = sum(len(w.hosts) for w in layout.waves)
    canary = [h for w in layout.waves if w.kind == "canary" for h in w.hosts]
    groups = len({r.group for r in layout.hosts.values()})
    print(f"baseline  naive sort-and-chunk    : {t_base:6.2f} s, {len(base)} waves (no groups, no windows)")
    print(
        f"planner   plan_waves              : {t_plan:6.2f} s, {len(layout.waves)} waves, {n} hosts, "
        f"canary {len(canary)} covering {groups} groups, ratio {t_plan / t_base:5.1f}x the baseline"
    )
    print(
        f"plan id   canonical JSON + SHA-256: {t_id:6.2f} s, plan {plan.plan_id[:12]}; planner + id "
        f"{t_plan + t_id:.2f} s = {(t_plan + t_id) / t_base:5.1f}x the baseline"
    )
    print(f"YAML      dump_plan ({len(text) / 1e6:.0f} MB)     : {t_yaml:6.2f} s (the file people review)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
