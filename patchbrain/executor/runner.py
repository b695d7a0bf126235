"""Run a playbook through ansible-runner: one builder shared by the synchronous and asynchronous paths.

The artifacts folder is the contract. `prepare` writes the run's inputs (ansible.cfg with pipelining and
ControlPersist, the `!unsafe` vars file) under `<root>/[<group>/]<ident>/input/`; ansible-runner writes its
events, stdout, status and rc next to them; `read_result` reads a finished folder back. Results come from
the artifacts (events, `set_stats` data), never from parsing stdout.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from patchbrain import config, resources
from patchbrain.errors import BadInput, PatchbrainError
from patchbrain.executor.events import HostEvent, to_host_event
from patchbrain.executor.request import RunHooks, RunRequest
from patchbrain.executor.unsafe_yaml import dump_unsafe

log = logging.getLogger(__name__)

HostOutcome = Literal["ok", "failed", "unreachable", "not_run", "unknown"]
# A function that runs one request: `run` here, or a dispatcher over execution nodes (executor/nodes.py).
RunFunction = Callable[[RunRequest, RunHooks], "RunResult"]
_CANCEL_POLL_S = 1
_ANSIBLE_CFG = """\
# Written by patchbrain for one run; kept as evidence of how Ansible was configured.
[defaults]
forks = {forks}
roles_path = {roles}
interpreter_python = auto_silent
retry_files_enabled = False
nocolor = True

[ssh_connection]
pipelining = True
# keepalives: a connection that goes silent (a dropped link) fails in about 30 s instead of hanging
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o ServerAliveInterval=10 -o ServerAliveCountMax=3
"""


class RunError(PatchbrainError):
    """ansible-runner could not start or its artifacts cannot be read."""


@dataclasses.dataclass(frozen=True, slots=True)
class RunResult:
    """What a finished run left in its artifacts folder."""

    ident: str
    artifact_dir: Path
    status: str
    rc: int | None
    stats: Mapping[str, Mapping[str, int]]
    data: Mapping[str, Any]
    events: tuple[HostEvent, ...]
    # Hosts whose state nobody can vouch for: their execution node died or broke its stream mid-run.
    unknown: frozenset[str] = frozenset()
    # Hosts whose outcome was reported by an execution node: not to be believed before the controller
    # has read them again over its own channel.
    remote: frozenset[str] = frozenset()

    def host_outcome(self, host: str) -> HostOutcome:
        """How the run ended for `host`, from the playbook stats (unreachable wins over failed)."""
        if host in self.unknown:
            return "unknown"
        if host in self.stats.get("dark", {}):
            return "unreachable"
        if host in self.stats.get("failures", {}):
            return "failed"
        if host in self.stats.get("processed", {}):
            return "ok"
        return "not_run"


def run_dir(req: RunRequest) -> Path:
    """The artifacts folder of a request: `<root>/[<group>/]<ident>`."""
    root = req.artifacts_root if req.artifacts_root is not None else config.artifacts_dir()
    return root / req.group / req.ident if req.group else root / req.ident


def _playbook_path(name: str) -> Path:
    path = Path(name)
    if path.is_absolute():
        if not path.is_file():
            raise BadInput("no such playbook", source=name)
        return path
    try:
        return resources.playbook(name)
    except FileNotFoundError as exc:
        raise BadInput(str(exc), source=name) from exc


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _guard(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a caller's hook; a broken hook is logged and must not kill a patch run mid-flight."""

    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            log.exception("the %s hook raised; the run continues", name)
            return None

    return call


def runner_kwargs(req: RunRequest, hooks: RunHooks) -> dict[str, Any]:
    """The ONE builder of ansible-runner arguments, shared by `run` and `start`.

    Creates the run's folder (refusing one that exists) and writes its inputs there.
    """
    playbook = _playbook_path(req.playbook)
    inventory = req.inventory.resolve()
    if not inventory.exists():
        raise BadInput("no such inventory", source=str(req.inventory))
    folder = run_dir(req)
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError as exc:
        raise BadInput(
            f"artifacts folder {folder} exists: a run ident is used once (evidence is never overwritten)",
            field="ident",
        ) from exc
    private = folder / "input"
    private.mkdir(mode=0o700)
    cfg = private / "ansible.cfg"
    _write_private(cfg, _ANSIBLE_CFG.format(forks=req.forks, roles=resources.roles_dir()))
    varsfile = private / "vars.yml"
    _write_private(varsfile, dump_unsafe(req.extravars))

    cmdline = ["-e", f"@{varsfile}"]
    if req.tags:
        cmdline += ["--tags", ",".join(req.tags)]
    if req.skip_tags:
        cmdline += ["--skip-tags", ",".join(req.skip_tags)]
    if req.check:
        cmdline.append("--check")

    on_event, on_raw, on_status = hooks.on_event, hooks.on_raw_event, hooks.on_status
    guarded_event = _guard("on_event", on_event) if on_event else None
    guarded_raw = _guard("on_raw_event", on_raw) if on_raw else None
    guarded_status = _guard("on_status", on_status) if on_status else None

    def event_handler(raw: dict[str, Any]) -> bool:
        if guarded_raw is not None:
            guarded_raw(raw)
        if guarded_event is not None:
            event = to_host_event(raw)
            if event is not None:
                guarded_event(event)
        return True  # keep every event in the artifacts

    def status_handler(data: Mapping[str, Any], runner_config: Any = None) -> None:
        if guarded_status is not None:
            guarded_status(str(data.get("status", "")))

    cancel = hooks.cancel

    def cancel_callback() -> bool:
        # Exceptions here would make ansible-runner cancel the run; that is the safe side.
        return bool(cancel()) if cancel is not None else False

    settings: dict[str, Any] = {"pexpect_timeout": _CANCEL_POLL_S, "suppress_ansible_output": True}
    if req.idle_timeout_s is not None:
        settings["idle_timeout"] = req.idle_timeout_s
    return {
        "private_data_dir": str(private),
        "artifact_dir": str(folder.parent),
        "ident": req.ident,
        "project_dir": str(playbook.parent),
        "playbook": str(playbook),
        "inventory": str(inventory),
        "limit": ",".join(req.limit) if req.limit else None,
        "forks": req.forks,
        "cmdline": shlex.join(cmdline),
        "envvars": {
            # the ansible-playbook of patchbrain's own environment comes first
            "PATH": os.pathsep.join(
                [str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]
            ),
            "ANSIBLE_CONFIG": str(cfg),
            "ANSIBLE_ROLES_PATH": str(resources.roles_dir()),
            "ANSIBLE_NOCOLOR": "1",
            # ansible-runner turns host key checking off unless told otherwise; a root tool must not
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_FORCE_COLOR": "0",
        },
        "settings": settings,
        "timeout": req.timeout_s,
        "quiet": True,
        "rotate_artifacts": 0,
        "event_handler": event_handler,
        "status_handler": status_handler,
        "cancel_callback": cancel_callback,
    }


def run(req: RunRequest, hooks: RunHooks | None = None) -> RunResult:
    """Run the request in this thread and return its result, read from the artifacts."""
    import ansible_runner

    kwargs = runner_kwargs(req, hooks or RunHooks())
    ansible_runner.run(**kwargs)
    return read_result(run_dir(req))


@dataclasses.dataclass(frozen=True, slots=True)
class RunHandle:
    """A run in progress: `wait()` joins it and reads its artifacts."""

    ident: str
    artifact_dir: Path
    thread: threading.Thread

    def done(self) -> bool:
        """True once the run has finished."""
        return not self.thread.is_alive()

    def wait(self, timeout: float | None = None) -> RunResult:
        """Wait for the run to end (RunError if it is still going after `timeout` seconds)."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise RunError(f"run {self.ident} still going after {timeout} s")
        return read_result(self.artifact_dir)


def start(req: RunRequest, hooks: RunHooks | None = None) -> RunHandle:
    """Start the request in a background thread (ansible_runner.run_async) and return its handle."""
    import ansible_runner

    kwargs = runner_kwargs(req, hooks or RunHooks())
    thread, _runner = ansible_runner.run_async(**kwargs)
    return RunHandle(ident=req.ident, artifact_dir=run_dir(req), thread=thread)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


def raw_events(artifact_dir: Path) -> list[dict[str, Any]]:
    """Every event ansible-runner recorded in a run's folder, in counter order."""
    events_dir = artifact_dir / "job_events"
    out: list[dict[str, Any]] = []
    if not events_dir.is_dir():
        return out
    for path in events_dir.glob("*.json"):
        if path.name.endswith("-partial.json"):
            continue
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise RunError(f"unreadable event file {path}: {exc}") from exc
    out.sort(key=lambda e: e.get("counter", 0) if isinstance(e.get("counter"), int) else 0)
    return out


def read_result(artifact_dir: Path) -> RunResult:
    """Read a finished run back from its artifacts folder (status, rc, stats, set_stats data, events)."""
    if not artifact_dir.is_dir():
        raise RunError(f"no artifacts folder at {artifact_dir}")
    status = _read_text(artifact_dir / "status") or "unknown"
    rc_text = _read_text(artifact_dir / "rc")
    rc = int(rc_text) if rc_text and rc_text.lstrip("-").isdigit() else None
    raws = raw_events(artifact_dir)
    stats: dict[str, dict[str, int]] = {}
    data: dict[str, Any] = {}
    ident = artifact_dir.name
    for raw in raws:
        if raw.get("event") == "playbook_on_stats":
            ed = raw.get("event_data", {})
            for key in ("ok", "changed", "dark", "failures", "ignored", "rescued", "processed", "skipped"):
                value = ed.get(key)
                stats[key] = dict(value) if isinstance(value, dict) else {}
            artifact_data = ed.get("artifact_data")
            data = dict(artifact_data) if isinstance(artifact_data, dict) else {}
        if isinstance(raw.get("runner_ident"), str):
            ident = raw["runner_ident"]
    events = tuple(e for e in (to_host_event(r) for r in raws) if e is not None)
    return RunResult(
        ident=ident, artifact_dir=artifact_dir, status=status, rc=rc, stats=stats, data=data, events=events
    )


_STATUS_RANK = {"successful": 0, "failed": 1, "timeout": 2, "error": 3, "canceled": 4}


def merge_results(ident: str, artifact_dir: Path, parts: list[RunResult]) -> RunResult:
    """One result for a run split into slices (one per execution node): stats and set_stats data are
    merged per host, events concatenated in slice order; the worst status wins (canceled > error >
    timeout > failed > successful) and rc is the first non-zero one."""
    stats: dict[str, dict[str, int]] = {}
    data: dict[str, Any] = {}
    events: list[HostEvent] = []
    unknown: set[str] = set()
    remote: set[str] = set()
    status, rc = "successful", 0
    for part in parts:
        for key, per_host in part.stats.items():
            stats.setdefault(key, {}).update(per_host)
        for key, value in part.data.items():
            if isinstance(value, Mapping) and isinstance(data.get(key, {}), Mapping):
                data[key] = {**data.get(key, {}), **value}
            else:
                data[key] = value
        events.extend(part.events)
        unknown |= part.unknown
        remote |= part.remote
        if _STATUS_RANK.get(part.status, 3) > _STATUS_RANK.get(status, 3):
            status = part.status
        if rc == 0 and part.rc != 0:
            rc = part.rc if part.rc is not None else -1
    return RunResult(
        ident=ident,
        artifact_dir=artifact_dir,
        status=status,
        rc=rc,
        stats=stats,
        data=data,
        events=tuple(events),
        unknown=frozenset(unknown),
        remote=frozenset(remote),
    )
