"""What a lab instance serves and installs: its signed repository, the per-flavour layers, the shims.

Hooked into `Lab.up` / `Lab.down` (fleet.py) with three calls: `prepare` (repository, key, server, instance
layer files, flavour layers), `lowers` (a host's overlay lower dirs for its package manager) and `stop`.

Package-manager flavours: `apt` hosts are plain Debian; `dnf` and `zypper` hosts are the same Debian base
with an rpm database holding the virtual-provides package and labdemo 1.0, managed through dnf or zypper.
Each flavour's pre-installed state is a small overlay layer built once per instance, so hosts boot as
fast as plain ones.

Standard library only (like the rest of the lab).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from patchbrain.errors import BadInput, EnvironmentProblem
from patchbrain.lab import packages, shim
from patchbrain.lab import repo as labrepo
from patchbrain.lab.system import overlay_chroot_argv

log = logging.getLogger(__name__)

REPO_PORT = 8873  # on the lab bridge; the hosts' output chain allows only this port (see host.NFT_RULES)
FLAVORS: tuple[str, ...] = ("apt", "dnf", "zypper")
LAYER_OF = {"apt": "apt", "dnf": "rpm", "zypper": "rpm"}
NODE = "node"  # an execution node (patchbrain/lab/nodeimage.py): an apt host with ansible-runner, no target
PRE_INSTALLED = "base"  # labdemo 1.0
PUBLISHED_AT_UP = ("base", "benign")  # 1.0 and 1.1: every fresh host has one pending benign update
RPM_MACROS = "/etc/rpm/macros.patchbrain-lab"
RPM_DBPATH = "/var/lib/rpm"
FLAVOR_MARKER = "/etc/patchbrain-lab/pkg_mgr"
LAYER_VERSION = 2  # bump when the flavour layers' recipe changes


def parse_flavors(text: str) -> tuple[str, ...]:
    """`apt,dnf,zypper` -> ("apt", "dnf", "zypper") (BadInput for anything else)."""
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [f for f in items if f not in FLAVORS]
    if not items or bad:
        raise BadInput(f"flavours are a comma-separated list of {', '.join(FLAVORS)}", field="--flavors")
    return items


def flavor_for(index: int, flavors: Sequence[str]) -> str:
    """Hosts take the flavours in turn: h01 the first, h02 the second, and so on."""
    return flavors[(index - 1) % len(flavors)]


class LabContent:
    """The content side of one lab instance, kept in its folder (`<lab dir>/repo`, `packages`, `flavors`)."""

    def __init__(self, lab_dir: Path) -> None:
        self.dir = lab_dir
        self.repo = labrepo.LabRepo(lab_dir / "repo", label=f"patchbrain lab {lab_dir.name}")
        self.packages_dir = lab_dir / "packages"
        self.flavors_dir = lab_dir / "flavors"
        self.server_file = lab_dir / "repo-server.json"

    # ------------------------------------------------------------ repository

    def ensure_repo(self) -> None:
        """Key, default packages (1.0, 1.1, virtual provides) built and published once."""
        self.repo.init()
        wanted: list[Path] = []
        for name in PUBLISHED_AT_UP:
            folder = self.packages_dir / name
            built = sorted(folder.glob("*.deb")) + sorted(folder.glob("*.rpm"))
            wanted += built or packages.build(name, folder)
        provides = sorted((self.packages_dir / packages.PROVIDES_PACKAGE).glob("*.rpm"))
        wanted += provides or [packages.build_provides_rpm(self.packages_dir / packages.PROVIDES_PACKAGE)]
        self.repo.publish(wanted)

    def publish(self, files: Sequence[Path]) -> list[labrepo.Published]:
        """Add packages to the instance's repository (old versions stay; indexes re-signed)."""
        return self.repo.publish(files)

    def publish_variant(
        self,
        name: str,
        *,
        version: str | None = None,
        port: int | None = None,
        delay: int | None = None,
        formats: Sequence[packages.Format] = packages.FORMATS,
    ) -> tuple[str, list[labrepo.Published]]:
        """Build one labdemo variant at a version above everything published, publish it; returns
        (version, published files). Each call publishes exactly one new candidate version."""
        var = packages.variant(name, port=port, delay=delay)
        if version is None:
            seen = [v for fmt in formats for v in self.repo.versions(packages.PACKAGE, fmt)]
            version = packages.next_version(seen)
        built = packages.build(var, self.packages_dir / f"{name}-{version}", version=version, formats=formats)
        return version, self.publish(built)

    # ------------------------------------------------------------ host files

    @staticmethod
    def url(bridge_address: str) -> str:
        return f"http://{bridge_address}:{REPO_PORT}"

    def layer_files(self, bridge_address: str) -> dict[str, tuple[bytes, int]]:
        """Files every host of the instance gets (instance layer): repo configs, lab key, rpm macros."""
        files = labrepo.host_files(self.repo, self.url(bridge_address))
        files[RPM_MACROS] = (f"%_dbpath {RPM_DBPATH}\n".encode(), 0o644)
        return files

    def write_layer(self, layer: Path, bridge_address: str) -> None:
        """Write the shims and the repository configuration into the instance layer."""
        shim.install(layer)
        for path, (data, mode) in self.layer_files(bridge_address).items():
            target = layer / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file() and target.read_bytes() == data:
                continue
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            tmp.write_bytes(data)
            tmp.chmod(mode)
            os.replace(tmp, target)

    # ------------------------------------------------------------ flavour layers

    def flavor_layer(self, flavor: str) -> Path:
        return self.flavors_dir / LAYER_OF[flavor] / "upper"

    def lowers(self, flavor: str, lower: str, node_layer: Path | None = None) -> str:
        """The overlay lower dirs of a host of `flavor`, on top of `lower` (instance layer and base).

        An execution node (`NODE`) is an apt host with the node layer on top (`node_layer`)."""
        if flavor == NODE:
            if node_layer is None:
                raise EnvironmentProblem(
                    "an execution node needs the node layer (nodeimage.ensure_node_layer)"
                )
            return f"{node_layer}:{self.flavor_layer('apt')}:{lower}"
        return f"{self.flavor_layer(flavor)}:{lower}"

    def ensure_flavor_layers(self, lower: str) -> None:
        """Build the apt and rpm layers over `lower` once (dpkg / rpm run chrooted in a private mount)."""
        for kind in ("apt", "rpm"):
            top = self.flavors_dir / kind
            stamp = top / "done.json"
            want = {"version": LAYER_VERSION, "lower": lower, "key": self.repo.fingerprint()}
            try:
                if json.loads(stamp.read_text()) == want:
                    continue
            except (OSError, ValueError):
                pass
            shutil.rmtree(top, ignore_errors=True)
            for sub in ("upper", "work", "merged", "pkgs"):
                (top / sub).mkdir(parents=True)
            started = time.monotonic()
            self._build_layer(kind, top, lower)
            shutil.rmtree(top / "work", ignore_errors=True)
            shutil.rmtree(top / "pkgs", ignore_errors=True)
            stamp.write_text(json.dumps(want) + "\n")
            log.info("built the %s flavour layer in %.1f s", kind, time.monotonic() - started)

    def _build_layer(self, kind: str, top: Path, lower: str) -> None:
        pkgdir = top / "pkgs"
        base_pkgs = self.packages_dir / PRE_INSTALLED
        if kind == "apt":
            files = [next(base_pkgs.glob("*.deb"))]
            commands = [["dpkg", "-i", *(f"/.lab-pkgs/{f.name}" for f in files)]]
        else:
            provides = next((self.packages_dir / packages.PROVIDES_PACKAGE).glob("*.rpm"))
            files = [provides, next(base_pkgs.glob("*.rpm")), self.repo.armored_key]
            commands = [
                ["rpm", "--dbpath", RPM_DBPATH, "--initdb"],
                ["rpm", "--dbpath", RPM_DBPATH, "--import", f"/.lab-pkgs/{self.repo.armored_key.name}"],
                ["rpm", "--dbpath", RPM_DBPATH, "-i", *(f"/.lab-pkgs/{f.name}" for f in files[:2])],
                # Trust the lab key for repository metadata too (dnf keeps a keyring per repository;
                # without this a non-interactive `dnf check-update` cannot verify repomd.xml).
                ["dnf", "-y", "-q", "makecache"],
                ["zypper", "--non-interactive", "--quiet", "refresh"],
            ]
        for f in files:
            shutil.copyfile(f, pkgdir / f.name)
        marker = "apt" if kind == "apt" else "rpm"
        # One chrooted command per call keeps the quoting simple: every argument is passed as data.
        for argv in commands:
            _run(overlay_chroot_argv(lower, top, pkgdir, argv))
        mark = top / "upper" / FLAVOR_MARKER.lstrip("/")
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text(marker + "\n")
        # The bind mount point is an empty dir in the upper layer: remove it so hosts never see it.
        (top / "upper" / ".lab-pkgs").rmdir()

    # ------------------------------------------------------------ server

    def server_pid(self) -> int | None:
        """The pid of this instance's running repository server, or None."""
        try:
            rec = json.loads(self.server_file.read_text())
            pid, start = int(rec["pid"]), int(rec["start"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return pid if _start_time(pid) == start else None

    def start_server(self, bridge_address: str) -> int:
        """Serve the repository on bridge_address:REPO_PORT (detached: it outlives `lab up`)."""
        pid = self.server_pid()
        if pid is not None:
            return pid
        pidfile = self.dir / "repo-server.pid"
        pidfile.unlink(missing_ok=True)
        # Detached (setsid --fork): the server is nobody's child, so it outlives `lab up` and leaves no
        # zombie or unreaped Popen behind; it writes its own pid before it execs the server.
        with open(self.dir / "repo-server.log", "ab") as logf:
            subprocess.run(
                [
                    "setsid",
                    "--fork",
                    "/bin/sh",
                    "-c",
                    'echo $$ > "$1"; exec "$2" -m http.server --bind "$3" --directory "$4" "$5"',
                    "sh",
                    str(pidfile),
                    sys.executable,
                    bridge_address,
                    str(self.repo.www),
                    str(REPO_PORT),
                ],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=logf,
                check=True,
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                pid = int(pidfile.read_text())
                with socket.create_connection((bridge_address, REPO_PORT), timeout=1):
                    break
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(
                        f"the lab repository server did not start on {bridge_address}:{REPO_PORT} "
                        f"(see {self.dir / 'repo-server.log'})"
                    ) from None
                time.sleep(0.05)
        self.server_file.write_text(json.dumps({"pid": pid, "start": _start_time(pid)}) + "\n")
        return pid

    def stop_server(self) -> None:
        """Stop the repository server if it runs (pid-reuse safe)."""
        pid = self.server_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while _start_time(pid) is not None and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.05)
        self.server_file.unlink(missing_ok=True)

    # ------------------------------------------------------------ all of it

    def prepare(self, layer: Path, bridge_address: str, lower: str) -> str:
        """Everything `lab up` needs before hosts start; returns the repository URL the hosts use.

        `layer` is the instance layer (written here), `lower` the lower dirs under it ("layer:base").
        """
        _need_tools("dpkg-deb", "rpmbuild", "rpm", "gpg", "apt-ftparchive", "createrepo_c", "rpmsign")
        self.ensure_repo()
        self.write_layer(layer, bridge_address)
        self.start_server(bridge_address)  # the rpm layer's build reads the repository
        self.ensure_flavor_layers(lower)
        return self.url(bridge_address)


def selinux_status(pid1: int) -> str:
    """A running host's SELinux mode, read through its PID 1's root: e.g. `Enforcing (simulated)`."""
    root = Path(f"/proc/{pid1}/root")
    simulated = (root / shim.MARKER.lstrip("/")).is_file()
    try:
        value = (root / "run/selinux-shim/enforce").read_text().strip()
        mode = "Enforcing" if value == "1" else "Permissive"
    except FileNotFoundError:
        mode = "Disabled" if (root / "run/selinux-shim/booted").exists() else "unknown"
    except OSError:
        mode = "unknown"
    return f"{mode} (simulated)" if simulated else mode


def _need_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise EnvironmentProblem(f"missing tools for lab content: {', '.join(missing)} (run `make setup`)")


def _run(argv: Iterable[str]) -> None:
    args = list(argv)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-1500:]
        raise EnvironmentProblem(f"building a lab flavour layer failed ({' '.join(args[-3:])}): {tail}")


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


__all__ = ["FLAVORS", "REPO_PORT", "LabContent", "flavor_for", "parse_flavors", "selinux_status"]
