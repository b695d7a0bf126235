"""The typed, frozen request for one ansible-runner run, and the hooks a caller may attach."""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from patchbrain.errors import BadInput
from patchbrain.executor.events import HostEvent
from patchbrain.inventory import HOST_NAME

IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TAG = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclasses.dataclass(frozen=True, slots=True)
class RunRequest:
    """Everything one run needs. `extravars` are written to a vars file with every string `!unsafe`.

    `playbook` is a shipped playbook's name (`rollout.yml`) or a path. `ident` names the artifacts folder
    (`<artifacts_root>/<group>/<ident>`, or `<artifacts_root>/<ident>` without a group) and must be new:
    a folder of evidence is never reused. `timeout_s` cancels the whole run; `idle_timeout_s` cancels it
    when Ansible prints nothing for that long.
    """

    playbook: str
    inventory: Path
    ident: str
    limit: tuple[str, ...] = ()
    extravars: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    forks: int = 10
    timeout_s: int | None = None
    idle_timeout_s: int | None = None
    check: bool = False
    artifacts_root: Path | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        if not IDENT.match(self.ident):
            raise BadInput(f"bad run ident {self.ident!r} (letters, digits, . _ -)", field="ident")
        if self.group is not None and not IDENT.match(self.group):
            raise BadInput(f"bad artifacts group {self.group!r} (letters, digits, . _ -)", field="group")
        for host in self.limit:
            if not HOST_NAME.match(host):
                raise BadInput(f"bad host name in limit: {host!r}", field="limit")
        for tag in (*self.tags, *self.skip_tags):
            if not _TAG.match(tag):
                raise BadInput(f"bad tag {tag!r}", field="tags")
        if not 1 <= self.forks <= 500:
            raise BadInput(f"forks must be from 1 to 500, got {self.forks}", field="forks")
        for name in ("timeout_s", "idle_timeout_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise BadInput(f"must be positive, got {value}", field=name)
        object.__setattr__(self, "extravars", types.MappingProxyType(dict(self.extravars)))
        object.__setattr__(self, "inventory", Path(self.inventory))


@dataclasses.dataclass(frozen=True, slots=True)
class RunHooks:
    """Plain callables with narrow contracts; the executor never knows a UI exists.

    on_event: each typed host event, in order (runs on the runner's thread; keep it short).
    on_status: runner status changes (starting, running, successful, failed, canceled, timeout).
    cancel: polled about once a second; return True to stop the run (the playbook is killed).
    on_raw_event: every raw ansible-runner event dict (for recording fixtures and evidence tools).
    """

    on_event: Callable[[HostEvent], None] | None = None
    on_status: Callable[[str], None] | None = None
    cancel: Callable[[], bool] | None = None
    on_raw_event: Callable[[Mapping[str, Any]], None] | None = None
