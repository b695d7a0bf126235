"""Helpers the scenarios share: audit records as evidence, one attack run as one check, packaged data."""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from patchbrain.redteam.base import Check, Evidence

if TYPE_CHECKING:
    from patchbrain.audit import AuditRecord
    from patchbrain.store import Store

log = logging.getLogger(__name__)

Outcome = tuple[bool, str, list[Evidence]]


def data_file(name: str) -> Path:
    """A file shipped in patchbrain/redteam/data (real NVD/KEV samples; see tests/fixtures/README.md)."""
    return Path(str(resources.files("patchbrain.redteam") / "data" / name))


def audit_head(store: Store) -> int:
    from patchbrain.audit import AuditLog

    return AuditLog(store).head()[0]


def audit_since(store: Store, seq: int, action: str | None = None) -> list[AuditRecord]:
    """Audit records after `seq` (optionally matching the glob `action`)."""
    from patchbrain.audit import AuditLog

    return list(AuditLog(store).records(after_seq=seq, action=action))


def audit_evidence(
    rec: AuditRecord, keys: tuple[str, ...] = ("kind", "reason", "passed", "reasons")
) -> Evidence:
    shown = {k: rec.payload[k] for k in keys if k in rec.payload}
    text = f"audit #{rec.seq} {rec.action} {rec.subject[:24]}" + (f" {shown}" if shown else "")
    return Evidence("audit", text[:600], ref=str(rec.seq))


def attempt(attack: str, fn: Callable[[], Outcome]) -> Check:
    """Run one attack; an unexpected exception is a failed check (the defence's behaviour is unknown)."""
    try:
        passed, outcome, evidence = fn()
    except Exception as exc:
        log.debug("attack %r raised", attack, exc_info=True)
        return Check(attack, False, f"error while attacking: {type(exc).__name__}: {exc}"[:800])
    return Check(attack, passed, outcome, tuple(evidence))
