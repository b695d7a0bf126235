"""Running the machine's tools and checking that the machine can host a lab."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from patchbrain.errors import EnvironmentProblem

log = logging.getLogger(__name__)

# Tool -> the Debian package that ships it (scripts/system-packages.txt lists them all).
TOOLS = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "debootstrap": "debootstrap",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


class CommandFailed(EnvironmentProblem):
    """A system command the lab needs returned non-zero."""


def run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command without a shell; raise CommandFailed (with its stderr) if `check` and it fails."""
    log.debug("run: %s", " ".join(argv))
    # never the caller's stdin: ssh sets it O_NONBLOCK, and a killed ssh leaves it so for every process
    # sharing it (Ansible then refuses to start: "requires blocking IO")
    feed: dict[str, Any] = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    proc = subprocess.run(list(argv), **feed, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        raise CommandFailed(f"{' '.join(argv[:4])} failed: {err[-1] if err else f'exit {proc.returncode}'}")
    return proc


def require_linux_root() -> None:
    """Refuse to run the lab anywhere but Linux, as root."""
    if not sys.platform.startswith("linux"):
        raise EnvironmentProblem(f"the lab needs Linux (this is {sys.platform})")
    if os.geteuid() != 0:
        raise EnvironmentProblem("the lab needs root (network namespaces, mounts): run as root")


def require_tools(*names: str) -> None:
    """Refuse with the Debian package to install when a tool is missing."""
    for name in names or tuple(TOOLS):
        if shutil.which(name) is None:
            pkg = TOOLS.get(name, name)
            raise EnvironmentProblem(f"missing tool {name!r} (apt-get install {pkg})")


def require_kernel_features() -> None:
    """Refuse when the kernel lacks overlayfs or network namespaces."""
    if not Path("/proc/self/ns/net").exists():
        raise EnvironmentProblem("the kernel has no network namespaces (CONFIG_NET_NS)")
    if not Path("/proc/self/ns/pid").exists() or not Path("/proc/self/ns/mnt").exists():
        raise EnvironmentProblem("the kernel has no pid or mount namespaces")
    filesystems = Path("/proc/filesystems").read_text()
    if "\toverlay\n" not in filesystems:
        run(["modprobe", "overlay"], check=False)
        if "\toverlay\n" not in Path("/proc/filesystems").read_text():
            raise EnvironmentProblem("the kernel has no overlayfs (modprobe overlay failed)")


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if missing), released on exit or process death.

    The holder may unlink `path` (see `drop_lock_file`): a waiter that then wins the lock notices that
    its file is no longer the one at `path` and locks the new one instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def drop_lock_file(path: Path) -> None:
    """Remove a lock file while holding its lock (waiters then retry on a fresh file)."""
    path.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Write `path` through a synced temp file and a rename: readers see the old or the new file."""
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, raw)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def process_start_time(pid: int) -> int | None:
    """The start time (clock ticks since boot) of `pid`, or None if it is gone: guards against pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def overlay_chroot_argv(lower: str, top: Path, pkgdir: Path, argv: Sequence[str]) -> list[str]:
    """argv that runs `argv` chrooted into an overlay of `lower` with upper/work/merged under `top` and
    `pkgdir` bind-mounted at /.lab-pkgs, in a private mount namespace. Every argument is passed as data."""
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        'set -eu\nmount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4"\n'
        'mkdir -p "$4/.lab-pkgs"\nmount --bind "$5" "$4/.lab-pkgs"\nroot=$4\nshift 5\n'
        'exec chroot "$root" /usr/bin/env -i HOME=/root '
        'PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"\n',
        "sh",
        lower,
        str(top / "upper"),
        str(top / "work"),
        str(top / "merged"),
        str(pkgdir),
        *argv,
    ]
