"""Lab fleet benchmark: `lab up` / `lab down` wall time for 1, 10 and 30 hosts, and memory per host.

Baseline, measured in the same run: growing the fleet one host per `up` call (each call boots one host and
waits for its sshd), the way a naive harness would. Run as root: `make bench` or `.venv/bin/python
bench/bench_lab.py [SIZES...]`. Each size uses a fresh instance (`bn<pid>`), removed at the end.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from patchbrain.lab import Lab, net
from patchbrain.lab.base import ensure_base


def pss_kib(pids: list[int]) -> int:
    """Proportional set size of `pids` (shared pages split between the processes that map them)."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total


def upper_kib(lab: Lab) -> int:
    total = 0
    for rec in lab.hosts():
        for dirpath, _dirs, files in os.walk(Path(rec.dir) / "upper"):
            total += sum(os.lstat(os.path.join(dirpath, f)).st_blocks * 512 for f in files)
    return total // 1024


def measure(n: int) -> dict[str, float]:
    lab = Lab(f"bn{os.getpid() % 10000}")
    try:
        t0 = time.perf_counter()
        lab.up(n)
        up_s = time.perf_counter() - t0
        spaces = [r.netns for r in lab.hosts()]
        pids = [p for ps in net.pids_in(spaces).values() for p in ps]
        ram = pss_kib(pids) / 1024 / n
        disk = upper_kib(lab) / n
        t0 = time.perf_counter()
        lab.down()
        down_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        for i in range(1, n + 1):
            lab.up(i)
        base_up = time.perf_counter() - t0
    finally:
        lab.down()
    return {"up": up_s, "down": down_s, "base_up": base_up, "ram": ram, "disk": disk}


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [1, 10, 30]
    if os.geteuid() != 0:
        print("bench_lab: needs root (network namespaces, mounts)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    ensure_base()
    print(f"lab base ready in {time.perf_counter() - t0:.1f} s (built once, then cached)")
    print(
        f"{'hosts':>5}  {'up s':>6}  {'one-by-one s':>12}  {'speedup':>7}  {'down s':>6}  "
        f"{'MiB/host (PSS)':>14}  {'upper KiB/host':>14}"
    )
    for n in sizes:
        m = measure(n)
        speedup = m["base_up"] / m["up"]
        print(
            f"{n:>5}  {m['up']:>6.2f}  {m['base_up']:>12.2f}  {speedup:>6.1f}x  {m['down']:>6.2f}  "
            f"{m['ram']:>14.2f}  {m['disk']:>14.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
