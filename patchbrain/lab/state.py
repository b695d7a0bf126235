"""The record of everything one lab instance created, written ahead of each creation.

A resource is recorded (and the file synced) *before* it is created, so the record is always a superset of
what exists: `lab down` after a crash or a SIGKILL removes what the record names and ignores what is gone.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
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


# A machine-wide registry of the tokens in use, whatever PATCHBRAIN_HOME each instance lives in: one file
# per token naming the state file that owns it. It lives on /run (a tmpfs), like the namespaces it guards.
REGISTRY = Path("/run/patchbrain-lab")


def _entry(token: str) -> Path:
    return REGISTRY / f"{token}.json"


def owner_of(token: str) -> Path | None:
    """The state file of the instance that holds `token` on this machine, if that instance still exists."""
    try:
        doc = json.loads(_entry(token).read_text())
    except (OSError, ValueError):
        return None
    path = Path(doc.get("state_file", ""))
    return path if path.is_absolute() and path.is_file() else None


def claim(token: str, instance: str, state_file: Path, is_live: Callable[[str], bool]) -> None:
    """Record that `state_file`'s instance uses `token`; refuse if another live instance already does.

    A claim whose owner has no live host left (its processes were killed, e.g. with the session that ran
    them, and its state file stayed behind) is stale and is taken over.
    """
    from patchbrain.errors import EnvironmentProblem
    from patchbrain.lab.system import file_lock

    with file_lock(REGISTRY / ".lock"):
        owner = owner_of(token)
        if owner is not None and owner.resolve() != state_file.resolve() and is_live(token):
            raise EnvironmentProblem(
                f"lab instance {instance!r} (names pbl-{token}-*) is already up from another PATCHBRAIN_HOME"
                f" ({owner.parent}); choose another PATCHBRAIN_LAB"
            )
        doc = {"instance": instance, "state_file": str(state_file.resolve())}
        atomic_write(_entry(token), json.dumps(doc) + "\n", 0o644)


def release(token: str, state_file: Path) -> None:
    """Forget `token` if `state_file`'s instance holds it."""
    from patchbrain.lab.system import file_lock

    if not REGISTRY.is_dir():
        return
    with file_lock(REGISTRY / ".lock"):
        try:
            doc = json.loads(_entry(token).read_text())
        except (OSError, ValueError):
            return
        if Path(doc.get("state_file", "")) == state_file.resolve() or owner_of(token) is None:
            _entry(token).unlink(missing_ok=True)
