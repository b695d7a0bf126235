"""The test-only hook that switches a defence OFF inside the red-team process, so the suite cannot pass
vacuously: with a defence off, the scenarios that rely on it must report failure.

Read ONLY by the red-team runner (`patchbrain redteam run`), from `$PATCHBRAIN_REDTEAM_DISABLE` (a comma
separated list of names below). Each entry replaces a function of the defence, in this process only and
only while one scenario runs, with what a client without that defence would do; the original is put back
afterwards. Production code paths have no such switch: `patchbrain feeds sync`, `model validate`,
`rollout`, `audit verify` and the rest never read the variable. A run with a defence off is labelled so in
its output and report, and never counts as a pass of the suite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ENV = "PATCHBRAIN_REDTEAM_DISABLE"


@dataclasses.dataclass(frozen=True, slots=True)
class Defence:
    name: str
    what: str
    patch: Callable[[], list[tuple[Any, str, Any]]]  # -> (object, attribute, replacement)


# -- feeds ------------------------------------------------------------------------------------------------


def _no_tuf() -> list[tuple[Any, str, Any]]:
    """A client that copies whatever the mirror's targets/ folder holds into the CVE store, unverified."""
    from patchbrain.feeds import sync as feed_sync

    def unverified_sync(source: str, name: str = "default", *, store: Any = None, **_: Any) -> Any:
        from patchbrain.feeds.cvestore import CveStore
        from patchbrain.store import Store

        cves = CveStore(store if store is not None else Store())
        files = []
        for path in sorted(Path(source, "targets").iterdir()):
            res = cves.load(path)
            files.append(feed_sync.SyncedFile(path.name, "", res.format, res.records, 0, res.skipped))
        return feed_sync.SyncResult("unverified", source, 0, 0, 0, tuple(files), {})

    return [(feed_sync, "sync", unverified_sync)]


def _no_screening() -> list[tuple[Any, str, Any]]:
    from patchbrain.feeds import sync as feed_sync

    return [(feed_sync, "screen", lambda *_a, **_k: {})]


# -- model ------------------------------------------------------------------------------------------------


def _no_gate() -> list[tuple[Any, str, Any]]:
    from patchbrain.prioritizer import governance as G

    real = G.validate

    def passing(*args: Any, **kwargs: Any) -> Any:
        return dataclasses.replace(real(*args, **kwargs), passed=True, reasons=())

    return [(G, "validate", passing)]


def _no_bundle_integrity() -> list[tuple[Any, str, Any]]:
    """Load whatever model file lies in the folder (the hashes are made to match first)."""
    from patchbrain.prioritizer import bundle as B
    from patchbrain.prioritizer import governance as G

    real = B.load_bundle

    def trusting(directory: Any) -> Any:
        src = Path(str(directory))
        with tempfile.TemporaryDirectory(prefix="pb-redteam-") as tmp:
            copy = Path(tmp) / "b"
            shutil.copytree(src, copy)
            meta = json.loads((copy / B.METADATA_FILE).read_text())
            meta["model_sha256"] = B.sha256_file(copy / B.MODEL_FILE)
            (copy / B.METADATA_FILE).write_bytes(B.metadata_bytes(meta))
            loaded = real(copy)
        return dataclasses.replace(
            loaded, source=str(src), metadata_sha256=B.sha256_file(src / B.METADATA_FILE)
        )

    def registry_load(self: Any, bundle_id: str) -> Any:
        if bundle_id == G.DEFAULT_ID:
            return B.load_default()
        row = (
            self.store.connection()
            .execute(
                "SELECT path FROM model_pointer WHERE bundle_id = ? ORDER BY seq DESC LIMIT 1", (bundle_id,)
            )
            .fetchone()
        )
        return trusting(Path(row["path"]))

    return [(B, "load_bundle", trusting), (G, "load_bundle", trusting), (G.Registry, "load", registry_load)]


# -- plans, audit, injection ----------------------------------------------------------------------------


def _no_approvals() -> list[tuple[Any, str, Any]]:
    from patchbrain import approvals as A

    def anything_goes(plan: Any, approvals: Any, **_: Any) -> Any:
        return A.Verdict(plan.plan_id, 1, ({"approver": "(approvals switched off)"},), (), None)

    return [(A, "require_approved", anything_goes)]


def _no_audit_chain() -> list[tuple[Any, str, Any]]:
    from patchbrain import audit as AU

    real = AU.AuditLog.verify

    def blind(self: Any, *args: Any, **kwargs: Any) -> Any:
        return dataclasses.replace(real(self, *args, **kwargs), ok=True, problem=None)

    return [(AU.AuditLog, "verify", blind)]


def _no_package_grammar() -> list[tuple[Any, str, Any]]:
    """patchbrain's own name/version grammar (the roles keep theirs: the second layer)."""
    from patchbrain import pkgspec

    out: list[tuple[Any, str, Any]] = []
    for attr in ("check_name", "check_version"):
        if hasattr(pkgspec, attr):
            out.append((pkgspec, attr, lambda value, *_a, **_k: value))
    return out


def _no_verifier() -> list[tuple[Any, str, Any]]:
    """A check that takes every host's word for it (what trusting Ansible's self-report amounts to)."""
    from patchbrain import verify
    from patchbrain.verify import check

    def trusting(readings: Any, expected: Any, reported: Any) -> Any:
        return check.VerifyReport({h: check.HostVerdict(h, "ok") for h in expected})

    return [(verify, "check_wave", trusting), (check, "check_wave", trusting)]


# -- safety loop ------------------------------------------------------------------------------------------


def _no_drift_gate() -> list[tuple[Any, str, Any]]:
    """A loop that never finds a blocking change (Ansible's snapshots, the verifier's, the bake's)."""
    from patchbrain.safety.loop import SafetyLoop

    return [(SafetyLoop, "_gate", lambda self, before, after, hosts, label: ([], 0))]


def _no_signal_distrust() -> list[tuple[Any, str, Any]]:
    """A loop that believes every failure signal for a patched host of the rollout, unconfirmed."""
    from patchbrain.safety.loop import SafetyLoop

    def believing(self: Any, index: int, rec: dict[str, Any], unhealthy: Any) -> dict[str, str]:
        confirmed: dict[str, str] = {}
        states = self.journal.host_states(self.plan.plan_id)
        for sig in self.intake.drain():
            entry: dict[str, Any] = {"signal": sig.as_dict(), "verdict": "ignored", "why": "not failing"}
            if sig.failing and states.get(sig.host) in ("patched", "unchanged"):
                entry["verdict"], entry["why"] = "confirmed", "believed (signal distrust switched off)"
                confirmed[sig.host] = f"external signal: {sig.message or sig.status}"
            rec["signals"].append(entry)
        return confirmed

    return [(SafetyLoop, "_signals", believing)]


def _no_rollout_lock() -> list[tuple[Any, str, Any]]:
    """Every rollout gets its hosts, whoever else is rolling out to them (nothing is recorded)."""
    import os as _os

    from patchbrain.executor import rollout as R
    from patchbrain.executor.lock import RolloutLock

    def unchecked(store: Any, plan_id: str, hosts: Any) -> Any:
        return RolloutLock(store, plan_id, tuple(sorted(set(hosts))), _os.getpid())

    return [(R, "acquire_lock", unchecked)]


def _no_failure_threshold() -> list[tuple[Any, str, Any]]:
    """Every wave may fail on any number of hosts (a rollout that never halts for failed hosts)."""
    from patchbrain.plans import Plan

    real = Plan.wave_schedule

    def unbounded(self: Any, index: int) -> Any:
        return dataclasses.replace(real(self, index), max_failures=1_000_000)

    return [(Plan, "wave_schedule", unbounded)]


def _no_resume_reverify() -> list[tuple[Any, str, Any]]:
    """A resume that trusts the journal instead of the hosts: every interrupted host of the wave runs
    again (what a controller without the second-channel re-read does)."""
    from patchbrain.executor import resume as RS

    def journal_only(plan: Any, reading: Any, journal_state: str) -> Any:
        if journal_state in ("patched", "unchanged"):
            return RS.Verdict(reading.host, journal_state, "trusted the journal", {})
        return RS.Verdict(reading.host, "pending", "run again (re-read switched off)", {})

    return [(RS, "judge", journal_only)]


def _no_disk_preflight() -> list[tuple[Any, str, Any]]:
    """Rollouts that start on hosts whatever their free space (the pre-flight's minimum set to 0 MiB)."""
    from patchbrain.executor import runner

    real = runner.run

    def anyway(req: Any, *args: Any, **kwargs: Any) -> Any:
        if str(req.playbook).endswith("rollout.yml"):
            req = dataclasses.replace(req, extravars={**dict(req.extravars), "patchbrain_min_free_mb": 0})
        return real(req, *args, **kwargs)

    return [(runner, "run", anyway)]


DEFENCES: dict[str, Defence] = {
    d.name: d
    for d in (
        Defence("tuf", "TUF verification of feed repositories (signatures, versions, expiry)", _no_tuf),
        Defence("screening", "the poisoning screens run on every feed sync", _no_screening),
        Defence("model-gate", "the golden-set promotion gate (`model validate`)", _no_gate),
        Defence("bundle-integrity", "model file hashes at load and at promotion", _no_bundle_integrity),
        Defence("approvals", "signed approvals checked before a rollout and each wave", _no_approvals),
        Defence("audit-chain", "the audit log's hash chain and checkpoint verification", _no_audit_chain),
        Defence("verifier", "the independent verifier's judgement of each host", _no_verifier),
        Defence("package-grammar", "patchbrain's package name and version grammar", _no_package_grammar),
        Defence("drift-gate", "the safety loop's drift gate (halt at the canary, roll back)", _no_drift_gate),
        Defence("signal-distrust", "signals confirmed by the host's health checks", _no_signal_distrust),
        Defence("rollout-lock", "one rollout per host at a time (the rollout lock)", _no_rollout_lock),
        Defence("failure-threshold", "a wave halts when too many hosts fail", _no_failure_threshold),
        Defence("resume-reverify", "--resume re-reads interrupted hosts first", _no_resume_reverify),
        Defence("disk-preflight", "the pre-flight refuses a host with a full disk", _no_disk_preflight),
    )
}  # fmt: skip


def disabled_from_env(env: dict[str, str] | None = None) -> tuple[str, ...]:
    """The defences named in $PATCHBRAIN_REDTEAM_DISABLE (ValueError for an unknown name)."""
    raw = (os.environ if env is None else env).get(ENV, "")
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    unknown = [n for n in names if n not in DEFENCES]
    if unknown:
        raise ValueError(f"{ENV}: unknown defence(s) {', '.join(unknown)}; known: {', '.join(DEFENCES)}")
    return names


@contextlib.contextmanager
def switched_off(names: tuple[str, ...]) -> Iterator[None]:
    """Replace the named defences for the duration of the block, then restore every original."""
    saved: list[tuple[Any, str, Any]] = []
    try:
        for name in names:
            for obj, attr, replacement in DEFENCES[name].patch():
                saved.append((obj, attr, getattr(obj, attr)))
                setattr(obj, attr, replacement)
        yield
    finally:
        for obj, attr, original in reversed(saved):
            setattr(obj, attr, original)
