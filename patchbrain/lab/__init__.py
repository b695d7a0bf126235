"""The lab: a local fleet of real Debian hosts (network namespaces, overlay roots, sshd) on one machine."""

from __future__ import annotations

from pathlib import Path


def running_inventory() -> Path | None:
    """The inventory file of the running lab, or None when no lab is up."""
    return None
