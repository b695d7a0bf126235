"""`make demo`: bring up the lab fleet, plan its updates, sign the plan with the lab keys, roll out, report.

Nothing is auto-approved: the plan is authored by `lab-signing` and approved by `lab-approver-1`, both made
by `patchbrain lab up`; an unapproved rollout is shown being refused (exit 5).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
HOSTS = "4"


def run(*argv: str, capture: bool = False, expect: int = 0) -> str:
    print(f"\n$ {' '.join(argv)}", flush=True)
    proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], check=False, text=True, capture_output=capture)
    if proc.returncode != expect:
        raise SystemExit(f"demo: {argv[0]} {argv[1]} exited {proc.returncode}, expected {expect}")
    if capture:
        print(proc.stdout, end="")
    return proc.stdout if capture else ""


def main() -> int:
    run("patchbrain", "lab", "up", HOSTS)
    inventory = run("patchbrain", "lab", "inventory", capture=True).strip()
    run("ansible-inventory", "-i", inventory, "--graph")
    run("patchbrain", "lab", "ping")
    run("patchbrain", "lab", "ssh", "h01", "cat /etc/os-release | head -1; nft list chain inet filter input")
    plan = str(Path(inventory).parent / "demo-plan.yaml")
    run("patchbrain", "discover")
    run("patchbrain", "plan", "--waves", "1,50%,100%", "--author-key", "lab-signing", "--out", plan)
    run("patchbrain", "plan", "show", plan)
    run("patchbrain", "rollout", plan, expect=5)  # unapproved: refused before anything runs
    run("patchbrain", "approve", plan, "--key", "lab-approver-1")
    run("patchbrain", "rollout", plan)
    plan_id = run("patchbrain", "status", "--json", capture=True)
    import json

    run("patchbrain", "report", json.loads(plan_id)["plan"]["plan_id"])
    print(
        "\nThe fleet keeps running: `patchbrain lab ssh h02`, `patchbrain lab status`, "
        "`patchbrain lab down` when done.",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
