"""The lab's execution-node layer: ansible-core and ansible-runner in a venv, over the Debian base.

Built once per recipe and cached in `$PATCHBRAIN_CACHE/lab-node-<hash>/upper` (the hash covers the
versions, the base it was built on and the layer's own files), like the base: built in a temp folder,
renamed into place under a lock. The wheels are fetched from PyPI by the controller's own pip (the same
versions of ansible-core and ansible-runner as the controller runs, so a node plays a slice exactly as
the controller would); the install inside the image runs offline, from those wheels, with the image's
own Python (`python3 -m venv --without-pip`, then pip run from its wheel).

Standard library only (like the rest of the lab).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from patchbrain import config
from patchbrain.errors import EnvironmentProblem
from patchbrain.lab.host import NFT_RULES
from patchbrain.lab.system import atomic_write, file_lock, overlay_chroot_argv

log = logging.getLogger(__name__)

VENV = "/opt/patchbrain-node"
RUNNER = f"{VENV}/bin/ansible-runner"
LAYER_VERSION = 1  # bump when the steps below change
NODE_MARKER = "/etc/patchbrain-lab/node"

# An execution node also opens SSH connections to the other lab hosts: its output chain accepts tcp/22
# besides what every host has (the lab repository on 8873). Lab hosts have no route off the /24.
_REPO_RULE = '        tcp dport 8873 accept comment "the lab\'s package repository (content.REPO_PORT)"\n'
_HOST_HEADER = "\n".join(NFT_RULES.splitlines()[1:3]) + "\n"
NODE_NFT_RULES = NFT_RULES.replace(
    _HOST_HEADER,
    "# patchbrain lab execution node: the host rules plus outgoing SSH to the other lab hosts.\n",
).replace(
    _REPO_RULE,
    _REPO_RULE + '        tcp dport 22 accept comment "execution node: SSH to the hosts it patches"\n',
)


def versions() -> dict[str, str]:
    """The controller's ansible-core and ansible-runner versions: the node gets the same."""
    return {name: metadata.version(name) for name in ("ansible-core", "ansible-runner")}


def digest(base: Path) -> str:
    doc = {"versions": versions(), "base": str(base), "layer": LAYER_VERSION, "nft": NODE_NFT_RULES}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def layer_dir(base: Path, cache: Path | None = None) -> Path:
    return (cache or config.cache_dir()) / f"lab-node-{digest(base)}"


def ensure_node_layer(base: Path, cache: Path | None = None) -> Path:
    """The upper dir of a complete node layer over `base` (the base's root), built if needed."""
    final = layer_dir(base, cache)
    want = {"digest": digest(base), "versions": versions()}
    if _complete(final, want):
        return final / "upper"
    with file_lock(final.with_name(final.name + ".lock")):
        if _complete(final, want):
            return final / "upper"
        shutil.rmtree(final, ignore_errors=True)
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            started = time.monotonic()
            _build(tmp, base)
            atomic_write(tmp / "done.json", json.dumps(want) + "\n", 0o644)
            os.replace(tmp, final)
            log.info("built the lab node layer in %.0f s", time.monotonic() - started)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final / "upper"


def _complete(path: Path, want: Mapping[str, object]) -> bool:
    try:
        ok = json.loads((path / "done.json").read_text()) == want
    except (OSError, ValueError):
        return False
    return ok and (path / "upper" / RUNNER.lstrip("/")).is_file()


def _build(top: Path, base: Path) -> None:
    wheels = top / "wheels"
    for sub in ("upper", "work", "merged", "wheels"):
        (top / sub).mkdir(parents=True)
    pins = [f"{name}=={version}" for name, version in versions().items()]
    log.warning("building the lab execution-node layer once: %s from PyPI", ", ".join(pins))
    _run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(wheels),
         *pins, "pip"],
        "download the wheels",
    )  # fmt: skip
    pip_wheel = sorted(wheels.glob("pip-*.whl"))
    if not pip_wheel:
        raise EnvironmentProblem("pip download fetched no pip wheel for the node layer")
    steps = [
        ["/usr/bin/python3", "-m", "venv", "--without-pip", VENV],
        [f"{VENV}/bin/python", f"/.lab-pkgs/{pip_wheel[-1].name}/pip", "install", "--quiet", "--no-index",
         "--no-cache-dir", "--disable-pip-version-check", "--find-links", "/.lab-pkgs", *pins],
    ]  # fmt: skip
    for argv in steps:
        _run(overlay_chroot_argv(str(base), top, wheels, argv), f"run {argv[0]} in the node image")
    upper = top / "upper"
    (upper / ".lab-pkgs").rmdir()
    atomic_write(upper / "etc/nftables.conf", NODE_NFT_RULES, 0o755)
    atomic_write(upper / NODE_MARKER.lstrip("/"), json.dumps(versions()) + "\n", 0o644)
    for sub in ("work", "merged", "wheels"):
        shutil.rmtree(top / sub, ignore_errors=True)


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-1500:]
        raise EnvironmentProblem(f"building the lab node layer: could not {what}: {tail}")
