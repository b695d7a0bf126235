"""Helpers for the SELinux guest tests: run a playbook against the guest with plain ansible-playbook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from patchbrain.lab import selinux_vm

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def ansible_playbook(
    guest: selinux_vm.Guest, playbook: Path, *extra: str, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run `playbook` against the guest with plain ansible-playbook; fail the test with its output."""
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PIPELINING="True",
        ANSIBLE_HOST_KEY_CHECKING="True",
        ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=120s",
    )
    argv = [str(BIN / "ansible-playbook"), "-i", str(guest.run_dir / "inventory.json"), str(playbook), *extra]
    proc = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc
