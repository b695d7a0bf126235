"""One lab host: its files, its launch inside the network namespace, and waiting for its sshd."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

from patchbrain.errors import EnvironmentProblem
from patchbrain.lab.system import atomic_write

log = logging.getLogger(__name__)

HOST_KEY_PUB = "etc/ssh/ssh_host_ed25519_key.pub"
SUPERVISOR = "usr/local/sbin/patchbrain-supervisor"

SSHD_CONFIG = """\
# patchbrain lab: key-only root login (this file is read before Debian's own settings, so it wins)
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
MaxStartups 64:30:128
"""

NFT_RULES = """\
#!/usr/sbin/nft -f
# patchbrain lab: default drop both ways; in: loopback, replies, SSH and ping; out: loopback, replies and
# the lab's package repository only (a package that opens the output chain is then visible drift).
flush ruleset

table inet filter {
    chain input {
        type filter hook input priority filter; policy drop;
        iif "lo" accept
        ct state established,related accept
        tcp dport 22 accept
        icmp type echo-request accept
        icmpv6 type echo-request accept
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
    }
    chain output {
        type filter hook output priority filter; policy drop;
        oif "lo" accept
        ct state established,related accept
        tcp dport 8873 accept comment "the lab's package repository (content.REPO_PORT)"
    }
}
"""


def hostfile(name: str) -> str:
    """The text of a file shipped in patchbrain/lab/hostfiles/."""
    return resources.files("patchbrain.lab").joinpath("hostfiles", name).read_text()


def write_scripts(bin_dir: Path) -> tuple[Path, Path]:
    """Copy the launcher and init scripts into the instance (hosts keep working if patchbrain moves)."""
    launch, init = bin_dir / "launch.sh", bin_dir / "init.sh"
    atomic_write(launch, hostfile("launch.sh"), 0o755)
    atomic_write(init, hostfile("init.sh"), 0o755)
    return launch, init


def write_layer(layer: Path, authorized_key: str) -> None:
    """The instance's read-only layer over the base: supervisor, sshd and firewall config, root's key."""
    files: dict[str, tuple[str, int]] = {
        SUPERVISOR: (hostfile("supervisor.py"), 0o755),
        "etc/ssh/sshd_config.d/patchbrain.conf": (SSHD_CONFIG, 0o644),
        "etc/nftables.conf": (NFT_RULES, 0o755),
        "root/.ssh/authorized_keys": (authorized_key.strip() + "\n", 0o600),
    }
    for command in ("shutdown", "reboot", "halt", "poweroff"):
        files[f"usr/local/sbin/{command}"] = (hostfile("shutdown.sh"), 0o755)
    for rel, (text, mode) in files.items():
        path = layer / rel
        if path.is_file() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text, mode)
    (layer / "root").chmod(0o700)
    (layer / "root/.ssh").chmod(0o700)


def prepare_dirs(hostdir: Path, *, wipe: bool = False) -> None:
    """The host's overlay dirs (upper = its own changes, work = overlayfs scratch, merged = its root)."""
    if wipe:
        for sub in ("upper", "work"):
            shutil.rmtree(hostdir / sub, ignore_errors=True)
    for sub in ("upper", "work", "merged"):
        (hostdir / sub).mkdir(parents=True, exist_ok=True)


def launch(
    *, netns: str, launch_sh: Path, init_sh: Path, hostdir: Path, name: str, lowers: str
) -> subprocess.Popen[bytes]:
    """Start the host in its own session inside `netns`; its console goes to hostdir/console.log."""
    with open(hostdir / "console.log", "ab") as console:
        return subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                netns,
                "/bin/sh",
                str(launch_sh),
                str(init_sh),
                str(hostdir),
                name,
                lowers,
            ],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def console_tail(hostdir: Path, lines: int = 3) -> str:
    try:
        text = (hostdir / "console.log").read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])


def host_public_key(hostdir: Path) -> str | None:
    """The host's ed25519 public key (`ssh-ed25519 AAAA...`), from its overlay upper dir."""
    try:
        words = (hostdir / "upper" / HOST_KEY_PUB).read_text().split()
    except OSError:
        return None
    return " ".join(words[:2]) if len(words) >= 2 and words[0] == "ssh-ed25519" else None


def ssh_banner(address: str, timeout: float = 0.5) -> bool:
    """True when an SSH server answers on address:22 with its banner."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(2.0)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def wait_ready(
    hosts: Mapping[str, tuple[str, Path]], alive: Callable[[str], bool], timeout: float
) -> dict[str, str]:
    """Wait until every host (name -> (address, hostdir)) answers SSH; return name -> public host key."""

    def one(name: str) -> str:
        address, hostdir = hosts[name]
        deadline = time.monotonic() + timeout
        while True:
            if ssh_banner(address):
                key = host_public_key(hostdir)
                if key is not None:
                    return key
            if not alive(name):
                raise EnvironmentProblem(f"lab host {name} stopped while booting: {console_tail(hostdir)}")
            if time.monotonic() > deadline:
                raise EnvironmentProblem(
                    f"lab host {name} did not answer SSH within {timeout:.0f} s: {console_tail(hostdir)}"
                )
            time.sleep(0.05)

    if not hosts:
        return {}
    workers = min(32, len(hosts))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(one, name) for name in hosts}
        return {name: fut.result() for name, fut in futures.items()}


def pid_one(pids: list[int]) -> int | None:
    """Among `pids` (root-namespace ids), the one that is PID 1 of its own pid namespace."""
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                ids = line.split()[1:]
                if len(ids) > 1 and ids[-1] == "1":
                    return pid
    return None


def os_release(pid1: int) -> str:
    """PRETTY_NAME from the host's own /etc/os-release (read through its PID 1's root)."""
    try:
        text = Path(f"/proc/{pid1}/root/etc/os-release").read_text()
    except OSError:
        return "unknown"
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "unknown"


def reap(proc: subprocess.Popen[bytes] | None) -> None:
    """Collect a launcher this process started, once it has been killed."""
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("lab launcher %d did not exit", proc.pid)


def ensure_keypair(key: Path, comment: str) -> str:
    """The lab's own ed25519 keypair (0600), created if missing; returns the public key line."""
    from patchbrain.lab.system import run

    pub = key.with_name(key.name + ".pub")
    if not (key.is_file() and pub.is_file()):
        key.unlink(missing_ok=True)
        pub.unlink(missing_ok=True)
        key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
    os.chmod(key, 0o600)
    return pub.read_text().strip()
