"""The lab's inventory: valid YAML with strict SSH settings, groups lab/vm/baremetal, patchbrain host vars."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from patchbrain import inventory as pb_inventory
from patchbrain.lab import inventory


def _render(tmp_path: Path, n: int) -> Path:
    d = tmp_path / 'odd dir "quoted": yes'
    d.mkdir()
    hosts = [(f"h{i:02d}", i, f"10.213.9.{10 + i}") for i in range(1, n + 1)]
    text = inventory.render(instance="t1", hosts=hosts, key=d / "id_ed25519", known_hosts=d / "known_hosts")
    path = d / "inventory.yml"
    path.write_text(text)
    return path


def test_inventory_structure_and_strict_ssh(tmp_path):
    path = _render(tmp_path, 5)
    doc = yaml.safe_load(path.read_text())
    allvars = doc["all"]["vars"]
    assert allvars["ansible_user"] == "root"
    assert Path(allvars["ansible_ssh_private_key_file"]).is_absolute()
    assert allvars["ansible_ssh_private_key_file"].endswith('odd dir "quoted": yes/id_ed25519')
    args = shlex.split(allvars["ansible_ssh_common_args"])
    assert f"UserKnownHostsFile={path.parent / 'known_hosts'}" in args
    assert "StrictHostKeyChecking=yes" in args
    assert allvars["ansible_python_interpreter"] == "/usr/bin/python3"
    groups = doc["all"]["children"]["lab"]["children"]
    assert sorted(groups["vm"]["hosts"]) == ["h01", "h02", "h03", "h05"]
    assert sorted(groups["baremetal"]["hosts"]) == ["h04"]
    h04 = groups["baremetal"]["hosts"]["h04"]
    assert h04["ansible_host"] == "10.213.9.14"
    assert h04["patchbrain_platform"] == "baremetal"


def test_inventory_passes_patchbrains_own_validation(tmp_path):
    hosts = pb_inventory.load_hosts(_render(tmp_path, 8))
    assert [h.name for h in hosts] == [f"h{i:02d}" for i in range(1, 9)]
    assert {h.platform for h in hosts} == {"vm", "baremetal"}
    assert [h.name for h in hosts if h.platform == "baremetal"] == ["h04", "h08"]
    assert {h.criticality for h in hosts} == {1, 2, 3, 4, 5}
    assert any(h.canary for h in hosts)
    assert all("lab" in h.groups for h in hosts)


def test_small_lab_has_an_empty_baremetal_group(tmp_path):
    doc = yaml.safe_load(_render(tmp_path, 2).read_text())
    assert doc["all"]["children"]["lab"]["children"]["baremetal"] == {}
