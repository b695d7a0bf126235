"""The lab's Debian bookworm base: built once with debootstrap, cached by a hash of its recipe.

The base is the read-only lower layer of every host's overlay root. It is built in a temp dir and renamed
into place under a file lock, so a crash never leaves a half-built base that looks complete, and a base
built from another recipe is never reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from patchbrain import config
from patchbrain.lab import aptsources
from patchbrain.lab.system import atomic_write, file_lock, require_tools, run

log = logging.getLogger(__name__)

SUITE = "bookworm"
VARIANT = "minbase"
# What every lab host needs: sshd, Python and python3-apt for Ansible, the firewall, and basic tools.
BASE_PACKAGES: tuple[str, ...] = (
    "openssh-server",
    "python3",
    "python3-apt",
    "nftables",
    "iproute2",
    "procps",
    "ca-certificates",
    "gnupg",
)
# Hook for later issues: packages added here (e.g. dnf, python3-dnf, rpm, zypper, createrepo-c) go into
# the base too. Any change here changes the recipe hash, so the next `lab up` builds a new base.
# RPM package managers on the Debian base (issue 3): dnf/zypper-managed lab hosts.
EXTRA_PACKAGES: tuple[str, ...] = ("dnf", "python3-dnf", "rpm", "zypper")
# Bump when the post-build steps in `_finish` change.
POST_BUILD_VERSION = 1

SOURCES_LIST = (
    "# Lab hosts have no route off this machine: the lab's own signed repositories go in sources.list.d.\n"
)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that decides the content of the base."""

    suite: str = SUITE
    variant: str = VARIANT
    packages: tuple[str, ...] = BASE_PACKAGES + EXTRA_PACKAGES
    arch: str = "amd64"
    post_build_version: int = POST_BUILD_VERSION

    def digest(self) -> str:
        """A short, stable hash of the recipe (package order does not matter)."""
        doc = dataclasses.asdict(self)
        doc["packages"] = sorted(set(self.packages))
        blob = json.dumps(doc, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def machine_arch() -> str:
    """The machine's Debian architecture (amd64, arm64, ...)."""
    return run(["dpkg", "--print-architecture"]).stdout.strip()


def base_dir(recipe: Recipe, cache: Path | None = None) -> Path:
    """The cache folder of the base built from `recipe` (its root filesystem is `<dir>/root`)."""
    return (cache or config.cache_dir()) / f"base-{recipe.digest()}"


def is_complete(path: Path, recipe: Recipe) -> bool:
    """True when `path` holds a finished base built from exactly `recipe`."""
    try:
        meta = json.loads((path / "recipe.json").read_text())
    except (OSError, ValueError):
        return False
    root = path / "root"
    return (
        meta.get("digest") == recipe.digest()
        and (root / "usr/sbin/sshd").exists()
        and (root / "usr/bin/python3").exists()
    )


def ensure_base(recipe: Recipe | None = None, cache: Path | None = None) -> Path:
    """The root filesystem of a complete base for `recipe`, building it first if needed (about a minute)."""
    recipe = recipe or Recipe(arch=machine_arch())
    final = base_dir(recipe, cache)
    if is_complete(final, recipe):
        return final / "root"
    with file_lock(final.with_name(final.name + ".lock")):
        if is_complete(final, recipe):  # built by someone else while we waited
            return final / "root"
        if final.exists():
            log.warning("removing an incomplete or stale lab base at %s", final)
            shutil.rmtree(final)
        _remove_dead_builds(final)
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        try:
            _build(tmp / "root", recipe)
            _finish(tmp / "root")
            meta = {"digest": recipe.digest(), "recipe": dataclasses.asdict(recipe), "built": time.time()}
            atomic_write(tmp / "recipe.json", json.dumps(meta, indent=2) + "\n", 0o644)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final / "root"


def _remove_dead_builds(final: Path) -> None:
    for stale in final.parent.glob(f"{final.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[1]
        if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)


def _build(root: Path, recipe: Recipe) -> None:
    require_tools("debootstrap", "unshare")
    mirror = aptsources.pick_mirror(aptsources.machine_sources(), recipe.suite)
    root.mkdir(parents=True)
    log.warning("building the lab base once (about a minute): debootstrap %s from %s", recipe.suite, mirror)
    started = time.monotonic()
    # A private mount namespace: debootstrap's proc/sys mounts vanish with it, even if it is killed.
    run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "debootstrap",
            f"--variant={recipe.variant}",
            f"--arch={recipe.arch}",
            "--include=" + ",".join(sorted(set(recipe.packages))),
            recipe.suite,
            str(root),
            mirror,
        ],
        timeout=3600,
    )
    log.info("debootstrap took %.0f s", time.monotonic() - started)


def _finish(root: Path) -> None:
    """Make the base a template: no host keys, no package caches, no sources that hosts cannot reach."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    for binfile in (root / "var/cache/apt").glob("*.bin"):
        binfile.unlink()
    lists = root / "var/lib/apt/lists"
    for entry in lists.iterdir() if lists.is_dir() else ():
        if entry.is_file() and entry.name != "lock":
            entry.unlink()
    (root / "etc/apt/sources.list").write_text(SOURCES_LIST)
    (root / "etc/machine-id").write_text("")
    (root / "mnt").mkdir(exist_ok=True)
