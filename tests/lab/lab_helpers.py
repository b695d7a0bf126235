"""Helpers the lab test modules share: a module-scoped fleet of their own, commands on hosts, probes."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest


def own_fleet(
    tmp_path_factory: Any,
    prefix: str,
    count: int,
    flavors: Sequence[str],
    *,
    lab_keys: bool = False,
    env: Mapping[str, str] | None = None,
    nodes: int = 0,
) -> Iterator[Any]:
    """Bring up a lab of its own (`<prefix>-<pid>`, so concurrent sessions never collide) with a private
    PATCHBRAIN_HOME, yield it, tear it down (for module-scoped fixtures). `lab_keys` creates the lab's
    author and approver keys, as `patchbrain lab up` does; tests then sign and approve explicitly. `env`:
    more environment for the module (e.g. PATCHBRAIN_CANARY_BAKE). `nodes` more hosts are execution nodes
    (`lab up N --nodes K`)."""
    from patchbrain.lab import Lab

    instance = f"{prefix}-{os.getpid()}"
    mp = pytest.MonkeyPatch()
    mp.setenv("PATCHBRAIN_HOME", str(tmp_path_factory.mktemp("pbhome")))
    mp.setenv("PATCHBRAIN_LAB", instance)
    mp.delenv("PATCHBRAIN_DB", raising=False)
    for name, value in (env or {}).items():
        mp.setenv(name, value)
    lab = Lab(instance)
    try:
        lab.up(count, tuple(flavors), nodes=nodes)
        if lab_keys:
            from patchbrain.keys import KeyStore, ensure_lab_keys

            ensure_lab_keys(KeyStore())
        yield lab
    finally:
        lab.down()
        mp.undo()


def sh(
    lab: Any, host: str, *argv: str, check: bool = True, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run argv on a lab host; with `check`, a non-zero exit fails the test with its output."""
    proc = lab.exec(host, list(argv), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{host}: {argv} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def address(lab: Any, host: str) -> str:
    """The host's address on the lab bridge."""
    return str(next(h.address for h in lab.hosts() if h.name == host))


def bridge(lab: Any) -> str:
    """The controller's address on the lab bridge."""
    from patchbrain.lab import names

    return str(names.bridge_address(names.parse_subnet(lab._load().subnet)))


def probe(addr: str, port: int, timeout: float = 2.0) -> str:
    """A real TCP connection from the bridge: 'open', 'refused' (nothing listens, the firewall let it
    through) or 'filtered'."""
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "filtered"
