"""A real SELinux host: a Debian bookworm guest under qemu (software emulation), enforcing Debian's policy.

Lab hosts share the machine's kernel, where SELinux is compiled in but not active; this guest boots its own
Debian kernel with `security=selinux`, so `getenforce`, `setenforce`, `setsebool` and the `ansible_selinux`
fact are the real thing. Standard library only, like the rest of `patchbrain.lab`.

Build (once per recipe: 5 minutes on an idle machine, 26 on a loaded one; cached under
`config.cache_dir()/selinux-vm-<digest>`): debootstrap from Debian packages only -> SSH keys, fstab,
networkd, `SELINUX=enforcing`, `/.autorelabel` -> a 2 GB ext4 image with `mkfs.ext4 -d` -> a first boot in
permissive mode that relabels the filesystem and reboots (qemu `-no-reboot` turns that reboot into an exit)
-> a check boot that must come up enforcing -> atomic rename into the cache under a lock.

    image = ensure_image()                  # build if needed; returns the cached Image
    with Guest(image, run_dir) as guest:    # boots a throwaway qcow2 overlay, waits for SSH (bounded)
        guest.ssh(["sestatus"])
        guest.write_inventory(path)

The guest runs headless (`-display none`, serial console to a file, stdin closed), with user-mode
networking `restrict=on` (no route off the machine) and SSH forwarded on 127.0.0.1 only; root logs in
with a key only, and the client checks the guest's host key strictly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from patchbrain import config
from patchbrain.errors import EnvironmentProblem
from patchbrain.lab import aptsources
from patchbrain.lab.inventory import ssh_common_args
from patchbrain.lab.system import atomic_write, file_lock, run

log = logging.getLogger(__name__)

SUITE = "bookworm"
# Debian packages only. policycoreutils-python-utils brings `semanage`; nftables/iproute2 let the posture
# role read the firewall and sockets as on any other host; python3-apt lets the apt module run.
PACKAGES: tuple[str, ...] = (
    "linux-image-amd64",
    "initramfs-tools",
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "selinux-basics",
    "selinux-policy-default",
    "selinux-utils",
    "policycoreutils",
    "policycoreutils-python-utils",
    "nftables",
    "iproute2",
    "procps",
)
KERNEL_ARGS = "root=/dev/vda rw console=ttyS0 security=selinux selinux=1 net.ifnames=0"
# Bump when the build steps below change in a way the package list does not show.
BUILD_VERSION = 1
DISK_SIZE = "2G"
MEMORY_MIB = 1536
BUILD_TIMEOUT = 3600.0
# Measured on 2 cores shared with other jobs (load 11-14): the relabel boot took 864 s (about 3.5 min on an
# idle machine), a later boot 156-211 s to SSH (about 25 s idle). Generous bounds, never unbounded.
RELABEL_TIMEOUT = 2400.0
BOOT_TIMEOUT = 600.0

SELINUX_CONFIG = "SELINUX=enforcing\nSELINUXTYPE=default\n"
NETWORK_UNIT = "[Match]\nName=eth* en*\n\n[Network]\nDHCP=ipv4\n"
SSHD_CONFIG = (
    "# patchbrain SELinux guest: key-only root over the loopback forward.\n"
    "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
    "UseDNS no\n"
)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that decides the content of the guest image."""

    suite: str = SUITE
    packages: tuple[str, ...] = PACKAGES
    kernel_args: str = KERNEL_ARGS
    disk_size: str = DISK_SIZE
    selinux_config: str = SELINUX_CONFIG
    build_version: int = BUILD_VERSION

    def digest(self) -> str:
        """A short, stable hash of the recipe (package order does not matter)."""
        doc = dataclasses.asdict(self)
        doc["packages"] = sorted(set(self.packages))
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Image:
    """A finished, relabelled guest: disk, kernel, initrd and the keys to reach it."""

    path: Path
    recipe: Recipe

    @property
    def disk(self) -> Path:
        return self.path / "disk.raw"

    @property
    def kernel(self) -> Path:
        return self.path / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.path / "initrd.img"

    @property
    def client_key(self) -> Path:
        return self.path / "id_ed25519"

    @property
    def host_key_pub(self) -> Path:
        return self.path / "ssh_host_ed25519_key.pub"

    def build_info(self) -> dict[str, object]:
        """What recipe.json recorded at build time (durations, digest)."""
        data: dict[str, object] = json.loads((self.path / "recipe.json").read_text())
        return data


def image_dir(recipe: Recipe, cache: Path | None = None) -> Path:
    """The cache folder of the guest built from `recipe`."""
    return (cache or config.cache_dir()) / f"selinux-vm-{recipe.digest()}"


def is_complete(path: Path, recipe: Recipe) -> bool:
    """True when `path` holds a finished, relabelled guest built from exactly `recipe`."""
    try:
        meta = json.loads((path / "recipe.json").read_text())
    except (OSError, ValueError):
        return False
    img = Image(path, recipe)
    return meta.get("digest") == recipe.digest() and all(
        p.is_file() for p in (img.disk, img.kernel, img.initrd, img.client_key, img.host_key_pub)
    )


def require_qemu() -> None:
    """Refuse with the Debian packages to install when qemu or the image tools are missing."""
    for tool, pkg in (
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-img", "qemu-utils"),
        ("mkfs.ext4", "e2fsprogs"),
        ("debootstrap", "debootstrap"),
        ("ssh-keygen", "openssh-client"),
        ("ssh", "openssh-client"),
    ):
        if shutil.which(tool) is None:
            raise EnvironmentProblem(f"missing tool {tool!r} (apt-get install {pkg})")


def ensure_image(recipe: Recipe | None = None, cache: Path | None = None) -> Image:
    """A complete guest for `recipe`, building it first if needed (about 5 minutes under TCG)."""
    recipe = recipe or Recipe()
    final = image_dir(recipe, cache)
    if is_complete(final, recipe):
        return Image(final, recipe)
    require_qemu()
    with file_lock(final.with_name(final.name + ".lock")):
        if is_complete(final, recipe):  # built by someone else while we waited
            return Image(final, recipe)
        if final.exists():
            log.warning("removing an incomplete or stale SELinux guest at %s", final)
            shutil.rmtree(final)
        _remove_dead_builds(final)
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        try:
            timings = _build(tmp, recipe)
            meta = {
                "digest": recipe.digest(),
                "recipe": dataclasses.asdict(recipe),
                "built": time.time(),
                "seconds": timings,
            }
            atomic_write(tmp / "recipe.json", json.dumps(meta, indent=2) + "\n", 0o644)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return Image(final, recipe)


def _remove_dead_builds(final: Path) -> None:
    for stale in final.parent.glob(f"{final.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[1]
        if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)


def _build(out: Path, recipe: Recipe) -> dict[str, float]:
    """Build the guest into `out`; return how long each stage took (seconds)."""
    timings: dict[str, float] = {}
    out.mkdir(parents=True, mode=0o700)  # the image holds the guest's private host key
    root = out / "rootfs"
    mirror = aptsources.pick_mirror(aptsources.machine_sources(), recipe.suite)
    log.warning(
        "building the SELinux guest once (about 5 minutes): debootstrap %s from %s", recipe.suite, mirror
    )
    started = time.monotonic()
    run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "debootstrap",
            "--variant=minbase",
            "--arch=amd64",
            "--include=" + ",".join(sorted(set(recipe.packages))),
            recipe.suite,
            str(root),
            mirror,
        ],
        timeout=BUILD_TIMEOUT,
    )
    timings["debootstrap"] = round(time.monotonic() - started, 1)

    started = time.monotonic()
    _configure(root, out, recipe)
    img = Image(out, recipe)
    shutil.copyfile(_one(root / "boot", "vmlinuz-*"), img.kernel)
    shutil.copyfile(_one(root / "boot", "initrd.img-*"), img.initrd)
    run(
        ["mkfs.ext4", "-q", "-F", "-L", "pbselinux", "-d", str(root), str(img.disk), recipe.disk_size],
        timeout=600,
    )
    shutil.rmtree(root)
    timings["image"] = round(time.monotonic() - started, 1)

    # First boot: permissive, relabels every file, then "reboots" (qemu exits thanks to -no-reboot).
    started = time.monotonic()
    relabel = Qemu(img, img.disk, out / "serial-relabel.log", extra_args=" enforcing=0", no_reboot=True)
    relabel.start(disk_format="raw")
    code = relabel.wait_exit(RELABEL_TIMEOUT)
    if code is None:
        relabel.kill()
        raise GuestTimeout("the relabel boot did not finish", relabel.serial_log)
    if "Relabel" not in relabel.serial_text() and "relabel" not in relabel.serial_text():
        log.warning("the relabel boot's serial log does not mention a relabel; the check boot will tell")
    timings["relabel_boot"] = round(time.monotonic() - started, 1)

    # Check boot: straight from the image, must reach SSH and report enforcing. Then a clean poweroff.
    started = time.monotonic()
    with Guest(img, out / "check", disk=img.disk, disk_format="raw") as guest:
        timings["check_boot_to_ssh"] = round(time.monotonic() - started, 1)
        mode = guest.ssh(["getenforce"]).stdout.strip()
        if mode != "Enforcing":
            raise EnvironmentProblem(f"the SELinux guest booted {mode!r}, not Enforcing")
        unlabeled = guest.ssh(["sh", "-c", "ls -Z /etc/passwd /usr/sbin/sshd"]).stdout
        if "unlabeled_t" in unlabeled:
            raise EnvironmentProblem(f"the SELinux guest was not relabelled: {unlabeled.strip()}")
        guest.poweroff()
    shutil.rmtree(out / "check", ignore_errors=True)
    timings["check_boot_total"] = round(time.monotonic() - started, 1)
    return timings


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise EnvironmentProblem(f"expected one {pattern} in {folder}, found {[p.name for p in found]}")
    return found[0]


def _configure(root: Path, out: Path, recipe: Recipe) -> None:
    """Turn the debootstrapped tree into a bootable, SSH-reachable, SELinux-enforcing guest."""
    (root / "etc/fstab").write_text("/dev/vda / ext4 defaults 0 1\n")
    (root / "etc/hostname").write_text("selinux-guest\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 selinux-guest\n")
    (root / "etc/machine-id").write_text("")
    (root / "etc/apt/sources.list").write_text("# The guest has no route off this machine.\n")
    (root / "etc/selinux/config").write_text(recipe.selinux_config)
    (root / ".autorelabel").write_text("")
    network = root / "etc/systemd/network/10-dhcp.network"
    network.parent.mkdir(parents=True, exist_ok=True)
    network.write_text(NETWORK_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "systemd-networkd.service"
    if not link.exists():
        link.symlink_to("/lib/systemd/system/systemd-networkd.service")
    sshd_dropin = root / "etc/ssh/sshd_config.d/patchbrain.conf"
    sshd_dropin.parent.mkdir(parents=True, exist_ok=True)
    sshd_dropin.write_text(SSHD_CONFIG)
    # Fresh host keys for this image (debootstrap's are replaced), the public half kept for known_hosts.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    host_key = root / "etc/ssh/ssh_host_ed25519_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "selinux-guest", "-f", str(host_key)])
    shutil.copyfile(host_key.with_suffix(".pub"), out / "ssh_host_ed25519_key.pub")
    client = out / "id_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "patchbrain-selinux-guest", "-f", str(client)])
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    atomic_write(ssh_dir / "authorized_keys", client.with_suffix(".pub").read_text(), 0o600)
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


class GuestTimeout(EnvironmentProblem):
    """The guest did not reach the expected state in time; the message ends with the serial log's tail."""

    def __init__(self, what: str, serial_log: Path, tail_lines: int = 60) -> None:
        try:
            lines = serial_log.read_text(errors="replace").splitlines()[-tail_lines:]
        except OSError:
            lines = ["(no serial log)"]
        super().__init__(
            f"{what}; serial console ({serial_log}), last {len(lines)} lines:\n" + "\n".join(lines)
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Qemu:
    """One qemu-system-x86_64 process: TCG, headless, serial console to a file, SSH forwarded on loopback."""

    def __init__(
        self,
        image: Image,
        disk: Path,
        serial_log: Path,
        *,
        extra_args: str = "",
        no_reboot: bool = False,
        memory_mib: int = MEMORY_MIB,
    ) -> None:
        self.image = image
        self.disk = disk
        self.serial_log = serial_log
        self.extra_args = extra_args
        self.no_reboot = no_reboot
        self.memory_mib = memory_mib
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self, disk_format: str) -> list[str]:
        """The qemu command line (the SSH forward binds 127.0.0.1 only; `restrict=on` cuts all egress)."""
        argv = [
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-m",
            str(self.memory_mib),
            "-smp",
            "1",
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            f"file:{self.serial_log}",
            "-kernel",
            str(self.image.kernel),
            "-initrd",
            str(self.image.initrd),
            "-append",
            self.image.recipe.kernel_args + self.extra_args,
            "-drive",
            f"file={self.disk},format={disk_format},if=virtio,cache=unsafe",
            "-netdev",
            f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-device",
            "virtio-net-pci,netdev=n0",
            "-device",
            "virtio-rng-pci",
        ]
        if self.no_reboot:
            argv.append("-no-reboot")
        return argv

    def start(self, disk_format: str = "qcow2") -> None:
        """Start qemu in the background (its own session, stdin closed)."""
        self.serial_log.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        argv = self.argv(disk_format)
        log.info("starting qemu: %s", shlex.join(argv))
        stderr = (self.serial_log.parent / f"{self.serial_log.stem}.qemu-stderr").open("wb")
        with stderr:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def serial_text(self) -> str:
        try:
            return self.serial_log.read_text(errors="replace")
        except OSError:
            return ""

    def wait_exit(self, timeout: float) -> int | None:
        """qemu's exit code, or None if it is still running after `timeout` seconds."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """Stop qemu now (the guest disk is a throwaway overlay or about to be deleted)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Guest:
    """A booted guest reachable over SSH. By default it boots a qcow2 overlay, so the cache never changes."""

    def __init__(
        self,
        image: Image,
        run_dir: Path,
        *,
        disk: Path | None = None,
        disk_format: str = "qcow2",
        boot_timeout: float = BOOT_TIMEOUT,
    ) -> None:
        self.image = image
        self.run_dir = run_dir
        self.boot_timeout = boot_timeout
        self.disk_format = disk_format
        self._disk = disk
        self.qemu: Qemu | None = None
        self.boot_seconds = 0.0

    @property
    def known_hosts(self) -> Path:
        return self.run_dir / "known_hosts"

    @property
    def port(self) -> int:
        return self.qemu.port if self.qemu else 0

    @property
    def serial_log(self) -> Path:
        return self.run_dir / "serial.log"

    def start(self) -> None:
        """Boot the guest and wait (bounded) until root can log in over SSH."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        disk = self._disk
        if disk is None:
            disk = self.run_dir / "overlay.qcow2"
            disk.unlink(missing_ok=True)
            run(
                [
                    "qemu-img",
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    "-F",
                    "raw",
                    "-b",
                    str(self.image.disk.resolve()),
                    str(disk),
                ]
            )
        self.qemu = Qemu(self.image, disk, self.serial_log)
        started = time.monotonic()
        self.qemu.start(self.disk_format)
        host_key = " ".join(self.image.host_key_pub.read_text().split()[:2])
        atomic_write(self.known_hosts, f"[127.0.0.1]:{self.qemu.port} {host_key}\n", 0o600)
        try:
            self._wait_for_ssh(started + self.boot_timeout)
        except BaseException:
            self.qemu.kill()
            raise
        self.boot_seconds = time.monotonic() - started
        log.info("SELinux guest answered SSH on 127.0.0.1:%d after %.1f s", self.port, self.boot_seconds)

    def _wait_for_ssh(self, deadline: float) -> None:
        assert self.qemu is not None
        while True:
            if not self.qemu.running():
                raise GuestTimeout("qemu exited before the guest answered SSH", self.serial_log)
            if time.monotonic() > deadline:
                raise GuestTimeout(f"no SSH after {self.boot_timeout:.0f} s", self.serial_log)
            if _banner(self.qemu.port):
                probe = self.ssh(["true"], check=False, timeout=30)
                if probe.returncode == 0:
                    return
            time.sleep(2)  # a TCG boot takes tens of seconds; polling faster only costs CPU

    def ssh_argv(self, command: list[str]) -> list[str]:
        """An ssh command line for root on the guest, with strict host-key checking."""
        return [
            "ssh",
            *shlex.split(ssh_common_args(self.known_hosts.resolve())),
            "-o",
            "ConnectTimeout=10",
            "-i",
            str(self.image.client_key.resolve()),
            "-p",
            str(self.port),
            "root@127.0.0.1",
            "--",
            shlex.join(command),
        ]

    def ssh(
        self, command: list[str], *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` (an argv list, quoted for the remote shell) on the guest as root."""
        return run(self.ssh_argv(command), check=check, timeout=timeout)

    def inventory(self, name: str = "selinux_guest") -> str:
        """A self-contained YAML Ansible inventory for this guest (group `selinux`)."""
        values = {
            "ansible_host": "127.0.0.1",
            "ansible_port": self.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.image.client_key.resolve()),
            "ansible_ssh_common_args": ssh_common_args(self.known_hosts.resolve()),
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        doc = {"all": {"children": {"selinux": {"hosts": {name: values}}}}}
        return (
            "# patchbrain SELinux guest: written by patchbrain.lab.selinux_vm, do not edit.\n"
            + json.dumps(doc, indent=2)
        )

    def write_inventory(self, path: Path, name: str = "selinux_guest") -> Path:
        atomic_write(path, self.inventory(name) + "\n", 0o600)
        return path

    def poweroff(self, timeout: float = 120) -> None:
        """A clean shutdown; kill qemu if the guest does not stop in time."""
        if self.qemu is None or not self.qemu.running():
            return
        self.ssh(["systemctl", "poweroff"], check=False, timeout=30)
        if self.qemu.wait_exit(timeout) is None:
            log.warning("the SELinux guest did not power off in %.0f s; killing qemu", timeout)
            self.qemu.kill()

    def stop(self) -> None:
        """Stop qemu now (the overlay is thrown away)."""
        if self.qemu is not None:
            self.qemu.kill()

    def __enter__(self) -> Guest:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child before exec: the kernel kills qemu when its parent dies (a SIGKILLed run leaks none)."""
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _banner(port: int) -> bool:
    """True when something on 127.0.0.1:`port` speaks SSH (qemu accepts TCP before the guest's sshd)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.settimeout(5)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False
