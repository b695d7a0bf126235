#!/usr/bin/env python3
"""Record real tool output for tests/fixtures/posture/ (run as root; needs nft, iptables, iproute2).

For each source file it creates a scratch network namespace `pbpost-rec-N`, loads the rules there, records
what the real tools print, and deletes the namespace again (also on failure):
  nft/NAME.nft          -> nft/NAME.json                 (`nft -j list ruleset`)
  iptables/NAME.sh      -> iptables/NAME.TOOL            (iptables-save, ip6tables-save, iptables-legacy-save,
                                                          and nft -j list ruleset as iptables-nft left it)
  ss/NAME.listen        -> ss/NAME.txt                   (`ss -H -tulpn` with those sockets listening)
Usage: scripts/record-posture-fixtures.py [FIXTURE_DIR]
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_counter = itertools.count(1)

LISTENER = """
import socket, sys, signal
kind, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
if fam == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
if kind == "tcp":
    s.listen()
print("ready", flush=True)
signal.pause()
"""


def run(ns: str, *argv: str, check: bool = True) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], check=check, capture_output=True, text=True
    ).stdout


@contextlib.contextmanager
def namespace() -> Iterator[str]:
    name = f"pbpost-rec-{os.getpid()}-{next(_counter)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
        for pid in out.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], check=False)


def record_nft(src: Path) -> None:
    with namespace() as ns:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", str(src)], check=True)
        src.with_suffix(".json").write_text(run(ns, "nft", "-j", "list", "ruleset"))


def record_iptables(src: Path) -> None:
    with namespace() as ns:
        subprocess.run(["ip", "netns", "exec", ns, "bash", "-e", str(src)], check=True)
        for tool in ("iptables-save", "ip6tables-save", "iptables-legacy-save"):
            src.with_suffix(f".{tool}").write_text(run(ns, tool))
        src.with_suffix(".nft.json").write_text(run(ns, "nft", "-j", "list", "ruleset"))


def record_ss(src: Path) -> None:
    with namespace() as ns:
        procs = []
        try:
            for line in src.read_text().splitlines():
                kind, addr, port = line.split()
                p = subprocess.Popen(
                    ["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, kind, addr, port],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert p.stdout is not None
                if p.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"listener {line!r} did not start")
                procs.append(p)
            src.with_suffix(".txt").write_text(run(ns, "ss", "-H", "-tulpn"))
        finally:
            for p in procs:
                p.kill()
                p.wait()


def main() -> int:
    if os.geteuid() != 0:
        print("record-posture-fixtures: run as root (it creates network namespaces)", file=sys.stderr)
        return 2
    default = Path(__file__).resolve().parent.parent / "tests/fixtures/posture"
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    if not root.is_dir():
        print(f"record-posture-fixtures: no such directory {root}", file=sys.stderr)
        return 2
    started = time.monotonic()
    for src in sorted((root / "nft").glob("*.nft")):
        record_nft(src)
    for src in sorted((root / "iptables").glob("*.sh")):
        record_iptables(src)
    for src in sorted((root / "ss").glob("*.listen")):
        record_ss(src)
    print(f"recorded fixtures under {root} in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
