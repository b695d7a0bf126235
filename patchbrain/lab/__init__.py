"""The lab: a local fleet of real Debian hosts (network namespaces, overlay roots, sshd) on one machine.

Standard library only: `patchbrain lab down --all` must work before any virtualenv exists.

    lab = Lab("mylab")          # or Lab() for $PATCHBRAIN_LAB, default "pb"
    lab.up(4)                   # h01..h04 answering SSH; idempotent
    lab.exec("h01", ["uname", "-r"])
    lab.inventory_path()        # self-contained Ansible inventory
    lab.reset("h02")            # a fresh host in about a second
    lab.down()                  # nothing left behind
"""

from __future__ import annotations

from pathlib import Path

from patchbrain.lab.fleet import HostStatus, Lab, down_all

__all__ = ["HostStatus", "Lab", "down_all", "running_inventory"]


def running_inventory() -> Path | None:
    """The inventory file of the running lab instance ($PATCHBRAIN_LAB), or None when it is not up."""
    lab = Lab()
    if lab.inventory_file.is_file() and lab.is_up():
        return lab.inventory_file
    return None
