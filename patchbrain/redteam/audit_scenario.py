"""Scenario 7, audit tampering: a real audit log (hash chain + checkpoints signed with a hybrid key every 5
records), then an attacker with write access to the database drops the guard triggers and edits, deletes,
reorders, inserts, re-chains or truncates records (`patchbrain.redteam.audit_tamper`). `AuditLog.verify`
(what `patchbrain audit verify` runs, exit 3) must name each kind at the right record."""

from __future__ import annotations

from collections.abc import Callable
from sqlite3 import Connection

from patchbrain.redteam import audit_tamper as T
from patchbrain.redteam.base import Check, Context, Evidence, Scenario
from patchbrain.redteam.common import Outcome, attempt

N_RECORDS = 20
EVERY = 5


def _truncate(conn: Connection, k: int) -> None:
    conn.execute("DELETE FROM audit_log WHERE seq >= ?", (k,))


ATTACKS: tuple[tuple[str, Callable[[Connection, int], None], int, str], ...] = (
    ("a record's payload edited", T.edit_payload, 7, "edited"),
    ("a record's payload edited and its payload hash recomputed", T.edit_payload_and_its_hash, 7, "edited"),
    ("a record's actor changed", T.edit_actor, 3, "edited"),
    ("a record deleted", T.delete, 7, "deleted"),
    ("a record deleted and the later ones renumbered", T.delete_and_renumber, 7, "deleted"),
    ("two records swapped", T.reorder, 7, "reordered"),
    ("a forged record inserted, chained to its predecessor", T.insert_chained, 7, "inserted"),
    ("a record rewritten and the whole chain re-hashed after it", T.rewrite_rechained, 7, "rewritten"),
    ("the log truncated below the last signed checkpoint", _truncate, 13, "truncated"),
)


def run(ctx: Context) -> list[Check]:
    from patchbrain.audit import AuditLog
    from patchbrain.keys import KeyStore
    from patchbrain.store import Store

    keys = KeyStore()
    keys.new("rt-auditor")
    signer = keys.load_private("rt-auditor")

    def make(path_name: str) -> tuple[AuditLog, str]:
        path = ctx.workdir / path_name
        log = AuditLog(Store(path), signer=signer, every=EVERY)
        for i in range(1, N_RECORDS + 1):
            log.append("rt-operator", "redteam.op", f"host{i:02d}", {"i": i})
        return log, str(path)

    def control() -> Outcome:
        log, _ = make("audit-control.db")
        res = log.verify(keys)
        return (
            res.ok,
            f"control: the untouched log verifies ({res.records} records, "
            f"{res.checkpoints_verified} checkpoints)",
            [
                Evidence(
                    "verifier",
                    f"ok={res.ok} last_seq={res.last_seq} last_checkpoint_seq={res.last_checkpoint_seq}",
                )
            ],
        )

    checks = [attempt(f"control: {N_RECORDS} records, a signed checkpoint every {EVERY}", control)]
    for i, (what, tamper, k, kind) in enumerate(ATTACKS):

        def attack(
            tamper: Callable[[Connection, int], None] = tamper, k: int = k, kind: str = kind, i: int = i
        ) -> Outcome:
            log, path = make(f"audit-{i}.db")
            conn = T.attacker(path)
            tamper(conn, k)
            conn.close()
            res = log.verify(keys)
            if res.ok or res.problem is None:
                return False, f"NOT detected: verify says ok ({res.records} records)", []
            p = res.problem
            ok = p.kind == kind and p.seq <= k <= (p.last_seq or p.seq)
            span = f"{p.seq}" + (f"-{p.last_seq}" if p.last_seq else "")
            return (
                ok,
                f"detected as {p.kind!r} at record {span} (`audit verify` exits 3)",
                [Evidence("verifier", f"{p.kind} at {span}: {p.detail}"[:500], ref=span)],
            )

        checks.append(attempt(f"{what} (record {k})", attack))
    return checks


SCENARIO = Scenario(
    name="audit-tampering",
    number=7,
    title="Audit tampering",
    attacked="the hash-chained, checkpoint-signed audit log (patchbrain/audit.py)",
    defences=("audit-chain",),
    needs_hosts=False,
    run=run,
)
