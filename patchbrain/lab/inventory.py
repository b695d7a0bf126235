"""The running lab as a self-contained Ansible inventory (YAML written with the standard library).

Every string value is written as a JSON string, which is also a valid YAML double-quoted scalar, so no
path or name can change the document's structure.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class LabHostVars:
    """patchbrain's host variables for lab host `index`: a fixed, varied mix for tests and demos."""

    index: int

    @property
    def platform(self) -> str:
        return "baremetal" if self.index % 4 == 0 else "vm"

    @property
    def criticality(self) -> int:
        return 1 + (self.index * 2) % 5

    @property
    def exposure(self) -> int:
        return 1 + (self.index * 3) % 5

    @property
    def canary(self) -> bool:
        return self.index in (1, 2)

    @property
    def groups(self) -> tuple[str, ...]:
        return ("lab", self.platform)

    def as_vars(self) -> dict[str, object]:
        return {
            "patchbrain_platform": self.platform,
            "patchbrain_criticality": self.criticality,
            "patchbrain_exposure": self.exposure,
            "patchbrain_canary": self.canary,
        }


def ssh_common_args(known_hosts: Path) -> str:
    """OpenSSH options for the lab: strict host-key checking against the lab's own known_hosts."""
    return shlex.join(
        [
            "-F",
            "none",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
        ]
    )


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def render(
    *,
    instance: str,
    hosts: Iterable[tuple[str, int, str]],
    key: Path,
    known_hosts: Path,
    pkg_mgrs: Mapping[str, str] | None = None,
) -> str:
    """The inventory for `hosts` (name, index, address): groups lab, vm and baremetal.

    `pkg_mgrs` (host name -> apt, dnf or zypper) sets `patchbrain_pkg_mgr`; hosts not named there get apt.
    """
    by_group: dict[str, list[str]] = {"vm": [], "baremetal": []}
    lines_for: dict[str, list[str]] = {}
    for name, index, address in sorted(hosts, key=lambda h: h[1]):
        hv = LabHostVars(index)
        by_group[hv.platform].append(name)
        values: dict[str, object] = {
            "ansible_host": address,
            **hv.as_vars(),
            "patchbrain_lab_instance": instance,
            "patchbrain_pkg_mgr": (pkg_mgrs or {}).get(name, "apt"),
        }
        lines_for[name] = [f"            {k}: {_scalar(v)}" for k, v in values.items()]
    out = [
        f"# patchbrain lab instance {json.dumps(instance)}: written by `patchbrain lab up`, do not edit.",
        "all:",
        "  vars:",
        "    ansible_user: root",
        f"    ansible_ssh_private_key_file: {_scalar(key.resolve())}",
        f"    ansible_ssh_common_args: {_scalar(ssh_common_args(known_hosts.resolve()))}",
        "    ansible_python_interpreter: /usr/bin/python3",
        "  children:",
        "    lab:",
        "      children:",
    ]
    for group in ("vm", "baremetal"):
        members = by_group[group]
        if not members:
            out.append(f"        {group}: {{}}")
            continue
        out += [f"        {group}:", "          hosts:"]
        for name in members:
            out.append(f"            {name}:")
            out += ["  " + line for line in lines_for[name]]
    return "\n".join(out) + "\n"


def render_nodes(
    nodes: Iterable[tuple[str, str]],
    *,
    key: Path,
    known_hosts: Path,
    controller_capacity: int = 10,
    capacity: int = 10,
    ansible_runner: str = "/opt/patchbrain-node/bin/ansible-runner",
) -> str:
    """The lab's nodes file (docs/nodes.md) for execution nodes (name, address); JSON strings, as above."""
    out = [
        "# patchbrain lab execution nodes: written by `patchbrain lab up N --nodes K`, do not edit.",
        f"controller: {{capacity: {controller_capacity}}}",
        f"targets: {{known_hosts: {_scalar(known_hosts.resolve())}, ssh_key: {_scalar(key.resolve())}}}",
        "nodes:",
    ]
    for name, address in nodes:
        out.append(
            f"  - {{name: {_scalar(name)}, address: {_scalar(address)}, capacity: {capacity},"
            f" ssh_key: {_scalar(key.resolve())}, known_hosts: {_scalar(known_hosts.resolve())},"
            f" ansible_runner: {_scalar(ansible_runner)}}}"
        )
    return "\n".join(out) + "\n"
