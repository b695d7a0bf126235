"""The built wheel works outside the checkout: it ships the playbooks and the lab, and pings the fleet."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False, **kw)
    assert proc.returncode == 0, f"{argv[:3]}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc


def test_wheel_installs_in_a_clean_venv_and_pings_the_lab(lab, tmp_path):
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)])
    [wheel] = dist.glob("patchbrain-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "patchbrain/ansible/playbooks/ping.yml",
        "patchbrain/lab/hostfiles/init.sh",
        "patchbrain/lab/hostfiles/launch.sh",
        "patchbrain/lab/hostfiles/supervisor.py",
        "patchbrain/lab/hostfiles/shutdown.sh",
    ):
        assert needed in shipped

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(wheel)])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATCHBRAIN_LAB"] = lab.instance
    env["PATH"] = f"{venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin"

    assert "COMMAND" in _run([str(venv / "bin/patchbrain"), "--help"], cwd=elsewhere, env=env).stdout
    where = _run(
        [
            str(venv / "bin/python"),
            "-c",
            "from patchbrain import resources; print(resources.playbook('ping.yml'))",
        ],
        cwd=elsewhere,
        env=env,
    ).stdout.strip()
    assert where.startswith(str(venv)), where
    ping = _run([str(venv / "bin/patchbrain"), "lab", "ping"], cwd=elsewhere, env=env)
    n = len(lab.hosts())
    assert ping.stdout.count("ok=1 ") == n, ping.stdout
    assert "unreachable=0" in ping.stdout and "failed=1" not in ping.stdout
