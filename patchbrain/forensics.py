"""Forensics bundle of one rollout, for incident response: a tar.gz holding

plan/plan.json            the plan document as the journal recorded it (+ plan.yaml re-rendered, with
                          whether it matches the approved file's SHA-256)
plan/approvals.jsonl      every stored approval (statement + hybrid signature), and approvals-check.json
keys/NAME.pub             public keys of the author, approvers and audit checkpoint signers
audit/slice.jsonl         the audit records about this rollout, in full
audit/chain.jsonl         the hash chain (every field but the payload, which is hashed) from the first
                          record of the slice to the first signed checkpoint after it (or the head), so
                          each slice record can be linked to a signed checkpoint offline
audit/checkpoints.jsonl   the signed checkpoints; audit/verify.json the whole log's verification now
journal/                  waves, host transitions, report.json
posture/W/HOST-PHASE.json posture and pre-scan snapshots per wave, host and phase
posture/selinux.json      each host's SELinux label read from those snapshots: mode, and `simulated` where
                          the host carried the lab stand-in's marker /etc/selinux/SIMULATED (its SELinux
                          results are then the shim's, not a kernel's)
artifacts/...             the ansible-runner artifact folders of every wave (SSH key files left out)
MANIFEST.sha256           SHA-256 of every file above (sha256sum format)
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from patchbrain.audit import AuditLog, record_hash
from patchbrain.journal import Journal
from patchbrain.keys import KeyStore
from patchbrain.posture.labels import SIMULATED_NOTE
from patchbrain.report import audit_records, build_report, resolve_plan_id
from patchbrain.store import Store

_SKIP_NAMES = ("ssh_key", "ssh_key_data", "passwords")
_MAX_ARTIFACT_FILE = 50 * 1024 * 1024


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def _lines(items: list[Any]) -> bytes:
    return "".join(
        json.dumps(i, sort_keys=True, separators=(",", ":"), default=str) + "\n" for i in items
    ).encode()


def _artifact_files(folder: Path) -> Iterator[tuple[str, Path]]:
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.name in _SKIP_NAMES:
            continue
        if path.stat().st_size > _MAX_ARTIFACT_FILE:
            continue
        yield str(path.relative_to(folder.parent)), path


def collect(store: Store, plan_id: str, keystore: KeyStore | None = None) -> dict[str, bytes]:
    """Every file of the bundle, by name (without the manifest)."""
    from patchbrain.approvals import ApprovalStore, check_approvals, policy_from_env
    from patchbrain.plans import dump_plan, parse_plan

    keystore = keystore if keystore is not None else KeyStore()
    journal = Journal(store)
    plan_id = resolve_plan_id(journal, plan_id)
    files: dict[str, bytes] = {}
    conn = store.connection()
    row = conn.execute("SELECT document FROM journal_plans WHERE plan_id = ?", (plan_id,)).fetchone()
    document = json.loads(row[0])
    files["plan/plan.json"] = _dumps(document)

    audit = list(audit_records(store, plan_id))
    start = next((r for r in audit if r.action == "rollout.start"), None)
    approved_sha = start.payload.get("plan_file_sha256") if start else None
    plan_note: dict[str, Any] = {"approved_file_sha256": approved_sha}
    try:
        plan = parse_plan(document, source="journal")
        text = dump_plan(plan).encode("utf-8")
        files["plan/plan.yaml"] = text
        plan_note["rerendered_sha256"] = hashlib.sha256(text).hexdigest()
        plan_note["matches_approved_file"] = plan_note["rerendered_sha256"] == approved_sha
    except Exception as exc:  # evidence is collected even from a plan that no longer validates
        plan = None
        plan_note["error"] = f"{type(exc).__name__}: {exc}"
    files["plan/plan-file.json"] = _dumps(plan_note)

    approvals = ApprovalStore(store).for_plan(plan_id)
    files["plan/approvals.jsonl"] = _lines(
        [{"statement": a.statement, "signature": a.signature} for a in approvals]
    )
    check: dict[str, Any]
    if plan is not None:
        plan = dataclasses.replace(plan, source_sha256=approved_sha)
        try:
            verdict = check_approvals(plan, approvals, keystore=keystore, policy=policy_from_env())
            check = {"ok_now": verdict.ok, "valid": list(verdict.valid), "ignored": list(verdict.ignored)}
        except Exception as exc:
            check = {"ok_now": False, "refused": str(exc)}
    else:
        check = {"ok_now": False, "refused": plan_note.get("error")}
    files["plan/approvals-check.json"] = _dumps(check)

    fingerprints = {a.fields().get("key") for a in approvals} | {document.get("author")}
    log = AuditLog(store)
    checkpoints = log.checkpoints()
    fingerprints |= {cp.key_fingerprint for cp in checkpoints}
    for fp in sorted(f for f in fingerprints if isinstance(f, str)):
        key = keystore.by_fingerprint(fp)
        if key is not None:
            files[f"keys/{key.name}.pub"] = key.export().encode("utf-8")

    files["audit/slice.jsonl"] = _lines([dataclasses.asdict(r) for r in audit])
    if audit:
        first = audit[0].seq
        last = audit[-1].seq
        cover = next((cp for cp in checkpoints if cp.seq >= last), None)
        upto = cover.seq if cover else log.head()[0]
        chain = []
        for r in log.records(after_seq=first - 1):
            if r.seq > upto:
                break
            line = {k: v for k, v in dataclasses.asdict(r).items() if k != "payload"}
            line["hash_ok"] = (
                record_hash(r.seq, r.time, r.actor, r.action, r.subject, r.payload_hash, r.prev_hash)
                == r.record_hash
            )
            chain.append(line)
        files["audit/chain.jsonl"] = _lines(chain)
        files["audit/chain-proof.json"] = _dumps(
            {
                "from_seq": first,
                "to_seq": upto,
                "covering_checkpoint": cover.to_dict() if cover else None,
                "note": "record_hash = sha256(canonical_json(['patchbrain-audit-v1', seq, time, actor, "
                "action, subject, payload_hash, prev_hash])); each line's prev_hash is the previous line's "
                "record_hash; a slice record's payload hashes to its payload_hash"
                + ("" if cover else "; no signed checkpoint covers the slice yet: chained, not signed"),
            }
        )
    files["audit/checkpoints.jsonl"] = _lines([cp.to_dict() for cp in checkpoints])
    files["audit/verify.json"] = _dumps(dataclasses.asdict(log.verify(keystore)))

    record = journal.plan(plan_id)
    assert record is not None
    files["journal/waves.json"] = _dumps([dataclasses.asdict(w) for w in record.waves])
    files["journal/history.json"] = _dumps([dataclasses.asdict(t) for t in journal.history(plan_id)])
    report = build_report(store, plan_id)
    files["journal/report.json"] = _dumps(report)
    files["posture/selinux.json"] = _dumps(
        {
            "simulated_hosts": report["selinux_simulated"],
            "note": SIMULATED_NOTE if report["selinux_simulated"] else "no host read as simulated",
            "hosts": {h["host"]: h["selinux"] for h in report["hosts"]},
        }
    )
    for snap in conn.execute(
        "SELECT wave, host, phase, taken, document FROM journal_snapshots WHERE plan_id = ? "
        "ORDER BY wave, host, phase",
        (plan_id,),
    ):
        name = f"posture/w{int(snap['wave']) + 1}/{snap['host']}-{snap['phase']}.json"
        files[name] = _dumps({"taken": snap["taken"], "document": json.loads(snap["document"])})
    for w in record.waves:
        if w.artifacts:
            for rel, path in _artifact_files(Path(w.artifacts)):
                files[f"artifacts/{rel}"] = path.read_bytes()
    return files


def manifest(files: dict[str, bytes]) -> bytes:
    """`sha256sum`-format lines for every file."""
    return "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    ).encode()


def write_bundle(store: Store, plan_id: str, out: Path, keystore: KeyStore | None = None) -> dict[str, Any]:
    """Write the bundle to `out` (mode 0600, refusing to overwrite); returns a summary."""
    from patchbrain.errors import BadInput

    files = collect(store, plan_id, keystore)
    files["MANIFEST.sha256"] = manifest(files)
    root = f"patchbrain-forensics-{resolve_plan_id(Journal(store), plan_id)[:16]}"
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise BadInput("already exists; not overwriting evidence", source=str(out), field="--out") from exc
    now = int(time.time())
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(data)
            info.mode = 0o600
            info.mtime = now
            tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    simulated = json.loads(files["posture/selinux.json"])["simulated_hosts"]
    return {
        "bundle": str(out),
        "sha256": digest,
        "files": len(files),
        "root": root,
        "selinux_simulated": simulated,
    }
