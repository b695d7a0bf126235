#!/usr/bin/python3
"""PID 1 of a lab host after pivot_root: boot the host's services and keep sshd running.

Shipped into every host as /usr/local/sbin/patchbrain-supervisor (standard library only; it runs on the
host's own Python). Boot: generate the host's ed25519 key if missing, load the default-drop nftables
ruleset (a host never runs without its firewall), then supervise `sshd -D -e`, restarting it if it exits.
As PID 1 it also reaps orphaned processes.

Signals: SIGTERM/SIGINT stop the host now (exit 0). SIGUSR1 is a reboot request and SIGUSR2 a halt request
(from the host's shutdown/reboot commands): acted on one second later (SIGALRM), so the command that asked
gets its answer first, with no background process that could be lost. A reboot exits 100 and the launcher
outside boots the host again with fresh namespaces, /run and /run/patchbrain/boot_id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
NFT_RULES = "/etc/nftables.conf"
SSHD = ["/usr/sbin/sshd", "-D", "-e"]
REBOOT_EXIT = 100
SELINUX_SHIM = "/usr/local/sbin/selinux-shim"  # lab content (patchbrain/lab/shim/)


class Stop(Exception):
    """Leave the supervision loop with this exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def say(msg: str) -> None:
    print(f"patchbrain-supervisor: {msg}", file=sys.stderr, flush=True)


_REQUESTED: list[int] = []  # the exit code a reboot or halt request asked for, acted on at SIGALRM


def _on_signal(signum: int, _frame: object) -> None:
    if signum in (signal.SIGUSR1, signal.SIGUSR2):
        _REQUESTED[:] = [REBOOT_EXIT if signum == signal.SIGUSR1 else 0]
        signal.alarm(1)
        return
    if signum == signal.SIGALRM:
        if _REQUESTED:
            raise Stop(_REQUESTED[0])
        return
    raise Stop(0)


def boot() -> None:
    """One-time work before services start; any failure stops the boot."""
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    os.makedirs("/run/lock", mode=0o1777, exist_ok=True)
    if not os.path.exists(HOST_KEY):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", HOST_KEY], check=True)
    subprocess.run(["nft", "-f", NFT_RULES], check=True)
    if os.path.exists(SELINUX_SHIM):  # the simulated SELinux takes its mode from /etc/selinux/config
        subprocess.run([SELINUX_SHIM, "boot"], check=True)


def supervise() -> int:
    """Run sshd until a signal asks to stop or reboot; reap every child as PID 1 must."""
    sshd: subprocess.Popen[bytes] | None = None
    last_start = 0.0
    try:
        while True:
            if sshd is None:
                wait = last_start + 1.0 - time.monotonic()
                if wait > 0:  # at most one restart per second if sshd keeps failing
                    time.sleep(wait)
                last_start = time.monotonic()
                sshd = subprocess.Popen(SSHD)
            try:
                pid, status = os.wait()
            except ChildProcessError:
                continue
            if pid == sshd.pid:
                say(f"sshd exited ({status}), restarting")
                sshd.returncode = status
                sshd = None
    except Stop as stop:
        if sshd is not None and sshd.poll() is None:
            sshd.terminate()
        return stop.code


def main() -> int:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
        signal.signal(sig, _on_signal)
    try:
        boot()
    except Stop as stop:
        return stop.code
    except (OSError, subprocess.CalledProcessError) as exc:
        say(f"boot failed: {exc}")
        return 1
    return supervise()


if __name__ == "__main__":
    sys.exit(main())
