"""Each role works without patchbrain: copied alone into a folder and run with plain ansible-playbook."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from patchbrain.posture.snapshot import parse_document

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Per role: the variables a standalone user would pass, and what to check in the controller folder.
CASES: dict[str, dict[str, object]] = {
    "posture": {"vars": {"posture_dest_dir": "{out}"}},
    "patch_facts": {"vars": {}},
    "patch": {"vars": {"patch_packages": [{"name": "labdemo", "version": "1.1"}], "patch_reboot_ok": False}},
    # Hosts are first moved to labdemo 1.1 by hand; the role must bring them back to 1.0.
    "rollback": {
        "vars": {"rollback_packages": [{"name": "labdemo", "version": "1.0"}], "rollback_settle_s": 0}
    },
}


def test_every_role_has_a_standalone_case():
    roles = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
    assert sorted(CASES) == roles, "add a case for each role in tests/lab/test_roles_standalone.py"


def _play(folder: Path, inventory: Path, extra: dict[str, object]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PATCHBRAIN_"))}
    env |= {"ANSIBLE_NOCOLOR": "1", "HOME": os.environ.get("HOME", "/root")}
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), "site.yml", "-e", json.dumps(extra)]
    return subprocess.run(
        argv,
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("role", sorted(CASES))
def test_role_runs_alone_with_plain_ansible_playbook(lab, tmp_path, role):
    folder = tmp_path / "standalone"
    shutil.copytree(ROOT / "roles" / role, folder / "roles" / role)
    (folder / "site.yml").write_text(
        f"---\n- name: Apply {role}\n  hosts: all\n  gather_facts: false\n  roles:\n    - role: {role}\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    extra = json.loads(json.dumps(CASES[role]["vars"]).replace("{out}", str(out)))
    if role == "rollback":
        for host in lab.hosts():
            move = "apt-get update -qq && apt-get install -y -qq labdemo=1.1"
            moved = lab.exec(host.name, ["sh", "-c", move])
            now = lab.exec(host.name, ["labdemo"]).stdout.strip()
            assert now == "labdemo 1.1", moved.stdout + moved.stderr
    first = _play(folder, lab.inventory_path(), extra)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    second = _play(folder, lab.inventory_path(), extra)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    recap = re.findall(r"^(h\d\d)\s*:\s*ok=\d+\s+changed=(\d+)", second.stdout, re.M)
    assert len(recap) == len(lab.hosts())
    assert all(changed == "0" for _, changed in recap), second.stdout[-2000:]
    if role in ("patch", "rollback"):
        want = "labdemo 1.1" if role == "patch" else "labdemo 1.0"
        for name, _ in recap:
            assert lab.exec(name, ["labdemo"]).stdout.strip() == want
    if role == "rollback":
        assert re.search(r"^h\d\d\s*:\s*ok=\d+\s+changed=[1-9]", first.stdout, re.M), first.stdout[-2000:]
    if role == "posture":
        for name, _ in recap:
            doc = json.loads((out / f"{name}.json").read_text())
            assert doc["host"] == name
            assert doc["probes"]["nft_ruleset"]["rc"] == 0
            # the lab's SELinux stand-in is read from the host as simulated
            snap = parse_document(doc, host=name)
            assert snap.selinux is not None and snap.selinux.simulated
