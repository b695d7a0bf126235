"""The record of everything one lab instance created, written ahead of each creation.

A resource is recorded (and the file synced) *before* it is created, so the record is always a superset of
what exists: `lab down` after a crash or a SIGKILL removes what the record names and ignores what is gone.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from patchbrain import config
from patchbrain.lab.system import atomic_write

STATE_VERSION = 1


def lab_root() -> Path:
    """Where every instance keeps its folder: state_dir()/lab."""
    return config.state_dir() / "lab"


@dataclasses.dataclass
class HostRecord:
    """One host: its namespace, veth pair, address, folder and launcher process."""

    name: str
    index: int
    netns: str
    veth: str
    peer: str
    address: str
    dir: str
    pid: int | None = None
    pid_start: int | None = None
    pkg_mgr: str = "apt"  # apt, dnf or zypper (lab content: patchbrain/lab/content.py)


@dataclasses.dataclass
class LabState:
    """One instance's record (mutable: it grows as resources are created)."""

    instance: str
    token: str
    subnet: str | None = None
    bridge: str | None = None
    base: str | None = None
    hosts: dict[str, HostRecord] = dataclasses.field(default_factory=dict)
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LabState:
        doc: dict[str, Any] = json.loads(text)
        hosts = {k: HostRecord(**v) for k, v in doc.pop("hosts", {}).items()}
        return cls(hosts=hosts, **doc)


def load(path: Path, instance: str, token: str) -> LabState:
    """The instance's record, or an empty one if it has none yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return LabState(instance=instance, token=token)
    return LabState.from_json(text)


def save(path: Path, state: LabState) -> None:
    """Write the record atomically and durably (0600)."""
    atomic_write(path, state.to_json(), 0o600)
