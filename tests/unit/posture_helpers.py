"""Shared helpers for the posture unit tests: fixture paths and raw documents built from recorded output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "posture"


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
