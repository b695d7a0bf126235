"""Helpers shared by the lab tests that plan, approve and roll out through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

CLI = [sys.executable, "-m", "patchbrain"]


def cli(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run `patchbrain ARGS` in a subprocess (the test's environment: PATCHBRAIN_HOME, PATCHBRAIN_LAB)."""
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"patchbrain {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def approve(path: Path, key: str = "lab-approver-1") -> subprocess.CompletedProcess[str]:
    """Approve a plan file explicitly with a lab key (nothing is ever auto-approved)."""
    return cli("approve", str(path), "--key", key)


def remake(path: Path, mutate) -> dict:
    """Change a plan the honest way: edit, re-hash, re-sign authorship (the old approvals no longer hold)."""
    from patchbrain.approvals import sign_authorship
    from patchbrain.keys import KeyStore
    from patchbrain.plans import dump_plan, load_plan, parse_plan, plan_document, with_id

    doc = plan_document(load_plan(path))
    mutate(doc)
    plan = with_id(parse_plan({**doc, "plan_id": "0" * 64}, source="edit", check_id=False))
    plan = sign_authorship(plan, KeyStore().load_private("lab-signing"))
    path.write_text(dump_plan(plan))
    return yaml.safe_load(path.read_text())


def make_plan(
    tmp_path: Path, spec: str, limit: str, *, approved: bool = True, name: str = "plan.yaml"
) -> Path:
    """Discover `limit`, plan it in waves `spec` authored by lab-signing, approve with lab-approver-1."""
    cli("discover", "--limit", limit)
    path = tmp_path / name
    cli("plan", "--waves", spec, "--out", str(path), "--author-key", "lab-signing")
    if approved:
        approve(path)
    return path


def installed(lab, host: str, pkg_mgr: str, package: str = "labdemo") -> str:
    """A package's installed version, read over SSH (not through Ansible); "" when not installed."""
    if pkg_mgr == "apt":
        argv = ["dpkg-query", "-W", "-f", "${Version}", package]
    else:
        argv = ["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", package]
    proc = lab.exec(host, argv, timeout=120)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def quick_plan(
    tmp_path: Path, lab, candidates: dict[str, str], spec: str, *, name: str = "plan.yaml"
) -> Path:
    """A plan for labdemo at `candidates` ({host: version}) without a discovery run (discovery has its own
    tests): hosts from the lab inventory, authored by lab-signing, approved with lab-approver-1."""
    from patchbrain.redteam.labhost import labdemo_plan

    path = tmp_path / name
    labdemo_plan(
        lab, candidates, spec, path, author_key="lab-signing", approver_key="lab-approver-1", approve=False
    )
    approve(path)
    return path
