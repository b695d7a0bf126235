"""Typed host events, mapped from ansible-runner's raw event dictionaries.

ansible-runner hands every callback event to `event_handler` as a dict (`event`, `counter`, `created`,
`event_data` with `host`, `task`, `play`, `res`, ...). `to_host_event` keeps the per-host ones that matter to
a rollout and drops the rest (play/task banners, verbose lines, stats). Every field comes from the host or
the playbook, so messages are truncated and nothing here is ever templated or executed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

_MSG_MAX = 2000


@dataclasses.dataclass(frozen=True, slots=True)
class HostEvent:
    """Something that happened to one host during a run."""

    ident: str
    counter: int
    host: str
    task: str
    action: str
    play: str
    created: dt.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class TaskStarted(HostEvent):
    """A task started on the host."""


@dataclasses.dataclass(frozen=True, slots=True)
class TaskOk(HostEvent):
    """A task finished on the host without changing anything."""


@dataclasses.dataclass(frozen=True, slots=True)
class TaskChanged(HostEvent):
    """A task finished on the host and changed something."""


@dataclasses.dataclass(frozen=True, slots=True)
class TaskSkipped(HostEvent):
    """A task was skipped on the host (a `when` condition was false)."""


@dataclasses.dataclass(frozen=True, slots=True)
class TaskFailed(HostEvent):
    """A task failed on the host; `ignored` when the playbook said `ignore_errors`."""

    message: str = ""
    ignored: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class HostUnreachable(HostEvent):
    """The host could not be reached (SSH failed)."""

    message: str = ""


def _created(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = " ".join(v for v in value if isinstance(v, str))
    return value[:_MSG_MAX] if isinstance(value, str) else ""


def _message(res: Mapping[str, Any]) -> str:
    msg = _text(res.get("msg"))
    stderr = _text(res.get("stderr"))
    if stderr and stderr not in msg:
        msg = f"{msg}: {stderr}" if msg else stderr
    return msg[:_MSG_MAX]


def to_host_event(raw: Mapping[str, Any]) -> HostEvent | None:
    """The typed event for one raw ansible-runner event, or None if it is not about a single host."""
    kind = raw.get("event")
    data = raw.get("event_data")
    if not isinstance(kind, str) or not isinstance(data, Mapping):
        return None
    host = data.get("host")
    if not isinstance(host, str) or not kind.startswith("runner_on_"):
        return None
    counter = raw.get("counter")
    common: dict[str, Any] = {
        "ident": str(raw.get("runner_ident", "")),
        "counter": counter if isinstance(counter, int) else -1,
        "host": host,
        "task": _text(data.get("task")),
        "action": _text(data.get("task_action")),
        "play": _text(data.get("play")),
        "created": _created(raw.get("created")),
    }
    res = data.get("res")
    res = res if isinstance(res, Mapping) else {}
    if kind == "runner_on_start":
        return TaskStarted(**common)
    if kind == "runner_on_ok":
        return TaskChanged(**common) if res.get("changed") is True else TaskOk(**common)
    if kind == "runner_on_skipped":
        return TaskSkipped(**common)
    if kind == "runner_on_failed":
        return TaskFailed(**common, message=_message(res), ignored=data.get("ignore_errors") is True)
    if kind == "runner_on_unreachable":
        return HostUnreachable(**common, message=_message(res))
    return None
