"""Shared helpers for the posture unit tests: fixture paths and raw documents built from recorded output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "posture"
# What the posture probe returned on the real SELinux guest, one folder per state
# (scripts/record-selinux-fixtures.py; the states and tool versions are in manifest.json there).
SELINUX_RECORDED = FIX / "selinux" / "recorded"


def fixture(rel: str) -> str:
    return (FIX / rel).read_text()


def probe(stdout: str, rc: int = 0, stderr: str = "") -> dict[str, Any]:
    return {"rc": rc, "stdout": stdout, "stderr": stderr, "missing": False}


def document(host: str = "web1", **probes: str) -> dict[str, Any]:
    """A raw posture document, as the role returns it, from fixture texts."""
    return {
        "schema": 1,
        "host": host,
        "collected_at": "2026-11-26T12:00:00Z",
        "probes": {name: probe(text) for name, text in probes.items()},
    }


def selinux_recorded(state: str, name: str) -> str:
    """The stdout the posture probe `name` gave on the real SELinux guest in `state`."""
    return (SELINUX_RECORDED / state / f"{name}.txt").read_text()


def recorded_document(state: str, host: str = "selinux_guest") -> dict[str, Any]:
    """The posture document the role built from the real SELinux guest in `state`: every SELinux probe
    with its recorded rc, stdout, stderr and missing flag."""
    folder = SELINUX_RECORDED / state
    meta = json.loads((folder / "probes.json").read_text())
    return {
        "schema": 1,
        "host": host,
        "collected_at": "2026-11-27T01:30:00Z",
        "probes": {name: {**m, "stdout": (folder / f"{name}.txt").read_text()} for name, m in meta.items()},
    }


def recorded_getenforce(mode: str) -> str:
    """`getenforce` as the real guest printed it in `mode` (enforcing, permissive or disabled)."""
    state = {"enforcing": "baseline", "permissive": "runtime_permissive", "disabled": "runtime_disabled"}
    return selinux_recorded(state[mode], "getenforce")


def recorded_sestatus(mode: str) -> str:
    """`sestatus` as the real guest printed it in runtime `mode` (enforcing, permissive or disabled)."""
    state = {"enforcing": "baseline", "permissive": "runtime_permissive", "disabled": "runtime_disabled"}
    return selinux_recorded(state[mode], "sestatus")


def recorded_config(mode: str) -> str:
    """/etc/selinux/config as read on the real guest with SELINUX=`mode`."""
    state = {"enforcing": "baseline", "permissive": "config_permissive", "disabled": "config_disabled"}
    return selinux_recorded(state[mode], "selinux_config")
