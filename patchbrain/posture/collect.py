"""Run the `posture` role through ansible-runner and return each host's raw document (from set_stats)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from patchbrain import config, resources
from patchbrain.errors import BadInput

STATS_KEY = "patchbrain_posture"


@dataclasses.dataclass(frozen=True, slots=True)
class Collection:
    """What one snapshot run returned: documents per host, hosts that gave none and why, the artifacts."""

    documents: dict[str, dict[str, Any]]
    failed: dict[str, str]
    artifacts: Path


def _host_failures(events: list[dict[str, Any]]) -> dict[str, str]:
    failed: dict[str, str] = {}
    for ev in events:
        kind = ev.get("event")
        if kind in ("runner_on_unreachable", "runner_on_failed"):
            data = ev.get("event_data", {})
            host = str(data.get("host", "?"))
            res = data.get("res", {}) if isinstance(data.get("res"), dict) else {}
            if kind == "runner_on_failed" and data.get("ignore_errors"):
                continue
            failed.setdefault(host, str(res.get("msg", kind))[:300])
    return failed


def _ansible_playbook() -> str:
    """The ansible-playbook of this environment (the venv's when patchbrain runs from one)."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.is_file():
        return str(beside)
    found = shutil.which("ansible-playbook")
    if found is None:
        from patchbrain.errors import EnvironmentProblem

        raise EnvironmentProblem("ansible-playbook is not installed")
    return found


def run_role(inventory: Path, *, limit: str | None = None, timeout: int = 900) -> Collection:
    """Snapshot every host of `inventory` (or `limit`): raw documents as the role returned them."""
    import ansible_runner  # lazy: heavy

    if not inventory.exists():
        raise BadInput("no such inventory", source=str(inventory), field="-i")
    ident = f"posture-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    artifact_dir = config.artifacts_dir()
    artifact_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="pb-posture-") as private:
        runner = ansible_runner.run(
            private_data_dir=private,
            artifact_dir=str(artifact_dir),
            ident=ident,
            playbook=str(resources.playbook("posture.yml")),
            inventory=str(inventory.resolve()),
            limit=limit,
            cmdline="--check",  # the role is read-only; check mode makes that a guarantee, not a promise
            quiet=True,
            timeout=timeout,
            envvars={
                # ansible-runner runs `ansible-playbook` from PATH: make it this environment's one
                "PATH": os.pathsep.join([str(Path(_ansible_playbook()).parent), os.environ.get("PATH", "")]),
                "ANSIBLE_ROLES_PATH": str(resources.roles_dir()),
                "ANSIBLE_PIPELINING": "True",
                "ANSIBLE_RETRY_FILES_ENABLED": "False",
            },
        )
        events = list(runner.events)
    stats = next((e for e in reversed(events) if e.get("event") == "playbook_on_stats"), None)
    documents: dict[str, dict[str, Any]] = {}
    if stats is not None:
        data = stats.get("event_data", {}).get("artifact_data", {}) or {}
        raw = data.get(STATS_KEY, {})
        if isinstance(raw, dict):
            documents = {str(h): d for h, d in raw.items() if isinstance(d, dict)}
    failed = _host_failures(events)
    if runner.status != "successful" and not documents and not failed:
        failed["*"] = f"ansible-runner finished with status {runner.status} (rc {runner.rc})"
    return Collection(documents, failed, artifact_dir / ident)
