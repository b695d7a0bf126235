"""`make demo`: a 12-host lab, a benign update rolled out in waves, then a sabotaged "critical" update that
the canary catches: the rollout halts, the canary is restored and verified, the other hosts never see it.

Nothing is auto-approved: each plan is authored by `lab-signing` and approved by `lab-approver-1`, both
made by `patchbrain lab up`; an unapproved rollout is shown being refused (exit 5).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from functools import cmp_to_key
from pathlib import Path

BIN = Path(sys.executable).parent
HOSTS = 12
FLAVORS = "apt,dnf"  # odd hosts managed with apt, even hosts with dnf (Debian hosts, see README)
SABOTAGE = "accept-all"  # a "critical" update whose postinst opens the input chain to everything
BAKE = "5s"  # the canary's bake; minutes by default, seconds for the demo


def run(*argv: str, capture: bool = False, expect: int = 0) -> str:
    print(f"\n$ {' '.join(argv)}", flush=True)
    proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], check=False, text=True, capture_output=capture)
    if proc.returncode != expect:
        if capture:
            print(proc.stdout, proc.stderr, sep="\n")
        raise SystemExit(f"demo: {argv[0]} {argv[1]} exited {proc.returncode}, expected {expect}")
    if capture:
        print(proc.stdout if len(proc.stdout) < 4000 else proc.stdout[:4000] + "\n...", end="")
    return proc.stdout if capture else ""


def read_fleet(inventory: Path) -> dict[str, tuple[str, str, str]]:
    """(labdemo version, ruleset fingerprint, SELinux mode) per host, over patchbrain's own SSH channel."""
    from patchbrain.inventory import load_hosts
    from patchbrain.verify import access_from_inventory, read_hosts

    readings = read_hosts(load_hosts(inventory), ["labdemo"], access=access_from_inventory(inventory))
    out = {}
    for name, r in readings.items():
        if not r.reachable:
            out[name] = ("unreachable", "-", "-")
            continue
        rules = json.loads(r.ruleset or '{"nftables": []}')["nftables"]
        shape = [  # what a packet sees: chains, policies, rules without handles and counters
            {k: v for k, v in next(iter(item.values())).items() if k not in ("handle", "expr")}
            | {"expr": [e for e in next(iter(item.values())).get("expr", []) if "counter" not in e]}
            for item in rules
            if "metainfo" not in item
        ]
        digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:12]
        selinux = (r.selinux_mode or "-") + (" (simulated)" if r.selinux_simulated else "")
        out[name] = (r.versions.get("labdemo") or "-", digest, selinux)
    return out


def main() -> int:
    started = time.monotonic()
    run("patchbrain", "lab", "up", str(HOSTS), "--flavors", FLAVORS)
    # A fresh fleet every time: a second `make demo` starts from labdemo 1.0 again.
    run("patchbrain", "lab", "reset", *(f"h{i:02d}" for i in range(1, HOSTS + 1)))
    inventory = Path(run("patchbrain", "lab", "inventory", capture=True).strip())
    lab_dir = inventory.parent
    from patchbrain.feeds.versions import compare
    from patchbrain.lab import Lab
    from patchbrain.lab.content import LabContent

    content = LabContent(Lab().dir)
    newest = max(content.repo.versions("labdemo", "deb"), key=cmp_to_key(lambda a, b: compare("dpkg", a, b)))
    if newest != "1.1":  # an earlier demo left its sabotaged build as the newest: put a benign one on top
        benign, _ = content.publish_variant("benign")
        print(
            f"\nan earlier run left labdemo {newest} published; published benign {benign} on top", flush=True
        )
    before = read_fleet(inventory)

    # 1. the benign update, in waves: canary (one host per package manager), 3, the rest
    plan = str(lab_dir / "demo-plan.yaml")
    run("patchbrain", "discover")
    run("patchbrain", "plan", "--waves", "1,3,100%", "--author-key", "lab-signing", "--out", plan)
    run("patchbrain", "plan", "show", plan)
    run("patchbrain", "rollout", plan, expect=5)  # unapproved: refused before anything runs
    run("patchbrain", "approve", plan, "--key", "lab-approver-1")
    run("patchbrain", "rollout", plan, "--canary-bake", BAKE)
    benign = read_fleet(inventory)

    # 2. a sabotaged "critical" update appears in the apt repository (as a compromised mirror of one
    # distribution would serve it): only the apt hosts see a candidate, so the canary is one host
    version, _ = content.publish_variant(SABOTAGE, formats=("deb",))
    print(
        f"\npublished labdemo {version} to the apt repository: claims a critical CVE fix; "
        "its postinst opens the firewall",
        flush=True,
    )
    bad = str(lab_dir / "demo-plan-sabotaged.yaml")
    run("patchbrain", "discover")
    run("patchbrain", "plan", "--waves", "1,3,100%", "--author-key", "lab-signing", "--out", bad)
    run("patchbrain", "approve", bad, "--key", "lab-approver-1")
    out = run("patchbrain", "rollout", bad, "--canary-bake", BAKE, "--json", capture=True, expect=3)
    result = json.loads(out)
    after = read_fleet(inventory)

    # 3. summary, from the rollout's own record and a fresh read over the verifier's channel
    canary = [h["host"] for h in result["waves"][0]["hosts"]]
    rollback = result["waves"][0]["safety"]["rollback"]
    print("\n== summary ==")
    print(f"benign labdemo: {sum(v[0] != before[h][0] for h, v in benign.items())}/{HOSTS} hosts updated")
    print(f"sabotaged labdemo {version}: halted ({result['halt']['kind']}) at the canary {', '.join(canary)}")
    print(f"  why: {result['halt']['reason'][:300]}")
    for host in canary:
        r = rollback.get(host, {})
        state = "restored" if r.get("restored") else f"NOT RESTORED: {r.get('reason')}"
        same = after[host] == benign[host]
        print(f"  {host}: {state}; verified over the second channel: {'as before' if same else after[host]}")
    others = [h for h in sorted(after) if h not in canary]
    untouched = [h for h in others if after[h] == benign[h]]
    print(f"  other hosts untouched (version, ruleset, SELinux): {len(untouched)}/{len(others)}")
    print(f"{'host':6} {'labdemo':9} {'ruleset':13} selinux")
    for host in sorted(after):
        v, fw, se = after[host]
        print(f"{host:6} {v:9} {fw:13} {se}")
    print(f"\ndemo took {time.monotonic() - started:.0f} s")
    print(
        "The fleet keeps running: `patchbrain status`, `patchbrain report PLAN_ID`, "
        "`patchbrain lab ssh h02`, `patchbrain lab down` when done.",
        flush=True,
    )
    ok = len(untouched) == len(others) and all(rollback.get(h, {}).get("restored") for h in canary)
    return 0 if ok and all(after[h] == benign[h] for h in canary) else 1


if __name__ == "__main__":
    os.environ.setdefault("PATCHBRAIN_CANARY_BAKE", BAKE)
    raise SystemExit(main())
