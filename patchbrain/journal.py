"""The rollout journal: plans, waves, per-host state transitions and posture snapshots, in the store.

Every host state change is a row with its time; the current state is the latest row. Transitions are
checked against `ALLOWED`, so a host can never go from `failed` to `patched` without running again.
Wave starts and ends also go to the audit log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from patchbrain.errors import PatchbrainError
from patchbrain.store import Store

COMPONENT = "journal"
MIGRATIONS = [
    """
    CREATE TABLE journal_plans (
        plan_id TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        inventory TEXT NOT NULL,
        document TEXT NOT NULL,
        state TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE TABLE journal_waves (
        plan_id TEXT NOT NULL REFERENCES journal_plans(plan_id),
        wave INTEGER NOT NULL,
        state TEXT NOT NULL,
        started TEXT,
        ended TEXT,
        artifacts TEXT,
        summary TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (plan_id, wave)
    );
    CREATE TABLE journal_host_states (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        plan_id TEXT NOT NULL REFERENCES journal_plans(plan_id),
        wave INTEGER NOT NULL,
        host TEXT NOT NULL,
        state TEXT NOT NULL,
        at TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX journal_host_states_plan ON journal_host_states(plan_id, host, id);
    CREATE TABLE journal_snapshots (
        plan_id TEXT NOT NULL REFERENCES journal_plans(plan_id),
        wave INTEGER NOT NULL,
        host TEXT NOT NULL,
        phase TEXT NOT NULL,
        taken TEXT NOT NULL,
        document TEXT NOT NULL,
        PRIMARY KEY (plan_id, wave, host, phase)
    );
    CREATE TABLE journal_discoveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        taken TEXT NOT NULL,
        inventory TEXT NOT NULL,
        artifacts TEXT NOT NULL,
        document TEXT NOT NULL
    )
    """,
]

HOST_STATES = (
    "pending",
    "running",
    "patched",
    "unchanged",
    "failed",
    "unreachable",
    "mismatch",
    "skipped",
    "canceled",
    "rolling_back",
    "restored",
    "not_restored",
    "verifying",
    "unknown",
)
# Terminal results of a wave may be rolled back (the safety loop, issue 7). A resumed rollout
# (executor/resume.py) re-reads a touched host of the interrupted wave over the second channel
# (`verifying`), which then says where it stands: at the plan (patched/unchanged), not yet patched
# (pending: runs again), unreachable or mismatch. Hosts of waves that never started (skipped) may run.
_ROLLBACKABLE = ("patched", "unchanged", "failed", "mismatch", "canceled")
ALLOWED: dict[str, frozenset[str]] = {
    "pending": frozenset({"running", "skipped"}),
    "running": frozenset(
        {
            "patched",
            "unchanged",
            "failed",
            "unreachable",
            "mismatch",
            "skipped",
            "canceled",
            "verifying",
            "unknown",
        }
    ),
    # The execution node running the host died: the controller re-reads the host, then records what it saw.
    "unknown": frozenset({"patched", "unchanged", "failed", "mismatch", "verifying"}),
    **{s: frozenset({"rolling_back", "verifying"}) for s in _ROLLBACKABLE},
    # The safety loop's second opinion: a host Ansible called patched or unchanged may be found failed
    # (health check), mismatched (the verifier read other versions) or unreachable by the verifier.
    **{
        s: frozenset({"rolling_back", "verifying", "failed", "mismatch", "unreachable"})
        for s in ("patched", "unchanged")
    },
    "unreachable": frozenset({"verifying"}),
    "skipped": frozenset({"running", "verifying"}),
    "verifying": frozenset({"patched", "unchanged", "pending", "unreachable", "mismatch", "failed"}),
    "rolling_back": frozenset({"restored", "not_restored"}),
    "restored": frozenset(),
    "not_restored": frozenset({"rolling_back"}),
}
PLAN_STATES = ("planned", "running", "done", "halted", "canceled", "failed")
WAVE_STATES = ("pending", "running", "done", "halted", "canceled", "failed", "skipped")


class IllegalTransition(PatchbrainError):
    """A host state change the journal does not allow (a bug, or a tampered journal)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    """One recorded host state change."""

    plan_id: str
    wave: int
    host: str
    state: str
    at: dt.datetime
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class WaveRecord:
    """A wave as the journal knows it."""

    plan_id: str
    wave: int
    state: str
    started: dt.datetime | None
    ended: dt.datetime | None
    artifacts: str | None
    summary: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class PlanRecord:
    """A plan as the journal knows it, with its waves and each host's current state."""

    plan_id: str
    created: dt.datetime
    inventory: str
    state: str
    updated: dt.datetime
    waves: tuple[WaveRecord, ...]
    hosts: Mapping[str, str]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


class Journal:
    """The journal tables of a store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate(COMPONENT, MIGRATIONS)

    # -- plans and waves ------------------------------------------------------------------------------

    def add_plan(
        self, plan_id: str, *, inventory: str, document: Mapping[str, Any], waves: list[list[str]]
    ) -> None:
        """Record a plan, its waves (pending) and every host (pending). A plan id is recorded once."""
        now = _now()
        with self.store.transaction() as conn:
            if conn.execute("SELECT 1 FROM journal_plans WHERE plan_id = ?", (plan_id,)).fetchone():
                raise IllegalTransition(f"plan {plan_id} is already in the journal; make a new plan")
            conn.execute(
                "INSERT INTO journal_plans VALUES (?, ?, ?, ?, 'planned', ?)",
                (plan_id, now, inventory, _json(document), now),
            )
            for i, hosts in enumerate(waves):
                conn.execute(
                    "INSERT INTO journal_waves(plan_id, wave, state) VALUES (?, ?, 'pending')", (plan_id, i)
                )
                conn.executemany(
                    "INSERT INTO journal_host_states(plan_id, wave, host, state, at) "
                    "VALUES (?, ?, ?, 'pending', ?)",
                    [(plan_id, i, h, now) for h in hosts],
                )

    def set_plan_state(self, plan_id: str, state: str) -> None:
        """Mark the plan planned/running/done/halted/canceled/failed."""
        if state not in PLAN_STATES:
            raise ValueError(f"unknown plan state {state!r}")
        with self.store.transaction() as conn:
            cur = conn.execute(
                "UPDATE journal_plans SET state = ?, updated = ? WHERE plan_id = ?", (state, _now(), plan_id)
            )
            if cur.rowcount != 1:
                raise IllegalTransition(f"no plan {plan_id} in the journal")

    def set_wave(
        self,
        plan_id: str,
        wave: int,
        state: str,
        *,
        artifacts: str | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a wave's state; `running` stamps its start, any end state its end."""
        if state not in WAVE_STATES:
            raise ValueError(f"unknown wave state {state!r}")
        now = _now()
        with self.store.transaction() as conn:
            sets = ["state = ?"]
            args: list[Any] = [state]
            if state == "running":
                sets.append("started = ?")
                args.append(now)
            elif state != "pending":
                sets.append("ended = ?")
                args.append(now)
            if artifacts is not None:
                sets.append("artifacts = ?")
                args.append(artifacts)
            if summary is not None:
                sets.append("summary = ?")
                args.append(_json(summary))
            cur = conn.execute(
                f"UPDATE journal_waves SET {', '.join(sets)} WHERE plan_id = ? AND wave = ?",  # noqa: S608
                (*args, plan_id, wave),
            )
            if cur.rowcount != 1:
                raise IllegalTransition(f"no wave {wave} of plan {plan_id} in the journal")

    # -- hosts ----------------------------------------------------------------------------------------

    def transition(self, plan_id: str, host: str, state: str, *, detail: str = "") -> Transition:
        """Move `host` to `state` if the journal allows it from the current state."""
        if state not in HOST_STATES:
            raise ValueError(f"unknown host state {state!r}")
        now = _now()
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT wave, state FROM journal_host_states WHERE plan_id = ? AND host = ? "
                "ORDER BY id DESC LIMIT 1",
                (plan_id, host),
            ).fetchone()
            if row is None:
                raise IllegalTransition(f"host {host} is not in plan {plan_id}")
            current = str(row["state"])
            if state not in ALLOWED[current]:
                raise IllegalTransition(f"{host}: {current} -> {state} is not allowed")
            conn.execute(
                "INSERT INTO journal_host_states(plan_id, wave, host, state, at, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (plan_id, int(row["wave"]), host, state, now, detail[:4000]),
            )
        return Transition(plan_id, int(row["wave"]), host, state, dt.datetime.fromisoformat(now), detail)

    def host_states(self, plan_id: str) -> dict[str, str]:
        """Each host's current state."""
        rows = self.store.connection().execute(
            "SELECT host, state FROM journal_host_states WHERE id IN "
            "(SELECT MAX(id) FROM journal_host_states WHERE plan_id = ? GROUP BY host) ORDER BY host",
            (plan_id,),
        )
        return {str(r["host"]): str(r["state"]) for r in rows}

    def history(self, plan_id: str, host: str | None = None) -> list[Transition]:
        """Every transition of the plan (or one host), oldest first."""
        sql = "SELECT * FROM journal_host_states WHERE plan_id = ?"
        args: tuple[Any, ...] = (plan_id,)
        if host is not None:
            sql += " AND host = ?"
            args = (plan_id, host)
        rows = self.store.connection().execute(sql + " ORDER BY id", args)
        return [
            Transition(
                str(r["plan_id"]),
                int(r["wave"]),
                str(r["host"]),
                str(r["state"]),
                dt.datetime.fromisoformat(str(r["at"])),
                str(r["detail"]),
            )
            for r in rows
        ]

    # -- snapshots and discoveries --------------------------------------------------------------------

    def save_snapshot(self, plan_id: str, wave: int, host: str, phase: str, document: Any) -> None:
        """Store one host's posture (or pre-scan) document for a phase: pre, post, bake, restore, ..."""
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO journal_snapshots VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(plan_id, wave, host, phase) DO UPDATE SET "
                "taken = excluded.taken, document = excluded.document",
                (plan_id, wave, host, phase, _now(), _json(document)),
            )

    def snapshots(self, plan_id: str, wave: int, phase: str) -> dict[str, Any]:
        """`{host: document}` of one wave and phase."""
        rows = self.store.connection().execute(
            "SELECT host, document FROM journal_snapshots WHERE plan_id = ? AND wave = ? AND phase = ?",
            (plan_id, wave, phase),
        )
        return {str(r["host"]): json.loads(r["document"]) for r in rows}

    def plan_snapshots(
        self, plan_id: str, probes: Sequence[str] | None = None
    ) -> list[tuple[int, str, str, Any]]:
        """Every posture document of a plan, oldest first: (wave, host, phase, document); the pre-scan's
        maintainer-script documents are left out. With `probes`, each document keeps only those probes
        (picked out by SQLite, so a report need not load every ruleset)."""
        conn = self.store.connection()
        if probes is None:
            rows = conn.execute(
                "SELECT wave, host, phase, document FROM journal_snapshots "
                "WHERE plan_id = ? AND phase != 'prescan' ORDER BY taken, wave, host, phase",
                (plan_id,),
            )
            return [
                (int(r["wave"]), str(r["host"]), str(r["phase"]), json.loads(r["document"])) for r in rows
            ]
        # only the named probes leave SQLite; json_quote(...) is always JSON text (an object as it is)
        rows = conn.execute(
            "SELECT s.wave, s.host, s.phase, json_quote(json_extract(s.document, '$.schema')), "
            "json_quote(json_extract(s.document, '$.host')), "
            "json_quote(json_extract(s.document, '$.collected_at')), json_type(s.document, '$.probes'), "
            "p.key, json_quote(p.value) FROM journal_snapshots AS s "
            "LEFT JOIN json_each(s.document, '$.probes') AS p "
            "ON json_type(s.document, '$.probes') = 'object' AND p.key IN (SELECT value FROM json_each(?)) "
            "WHERE s.plan_id = ? AND s.phase != 'prescan' ORDER BY s.taken, s.wave, s.host, s.phase",
            (json.dumps(list(probes)), plan_id),
        )
        docs: dict[tuple[int, str, str], dict[str, Any]] = {}
        for wave, host, phase, schema, doc_host, at, probes_type, key, value in rows:
            doc = docs.setdefault(
                (int(wave), str(host), str(phase)),
                {"schema": json.loads(schema), "host": json.loads(doc_host), "collected_at": json.loads(at)},
            )
            if probes_type == "object":
                doc.setdefault("probes", {})
                if key is not None:
                    doc["probes"][str(key)] = json.loads(value)
        return [(*k, doc) for k, doc in docs.items()]

    def add_discovery(self, *, inventory: str, artifacts: str, document: Any) -> int:
        """Record a discovery run's parsed results; returns its id."""
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO journal_discoveries(taken, inventory, artifacts, document) VALUES (?, ?, ?, ?)",
                (_now(), inventory, artifacts, _json(document)),
            )
            return int(cur.lastrowid or 0)

    def latest_discovery(self) -> tuple[str, str, Any] | None:
        """(taken, inventory, document) of the latest discovery, or None."""
        row = (
            self.store.connection()
            .execute("SELECT taken, inventory, document FROM journal_discoveries ORDER BY id DESC LIMIT 1")
            .fetchone()
        )
        if row is None:
            return None
        return str(row["taken"]), str(row["inventory"]), json.loads(row["document"])

    # -- reading --------------------------------------------------------------------------------------

    def plan(self, plan_id: str) -> PlanRecord | None:
        """One plan with its waves and host states, or None."""
        conn = self.store.connection()
        row = conn.execute("SELECT * FROM journal_plans WHERE plan_id = ?", (plan_id,)).fetchone()
        if row is None:
            return None
        waves = tuple(
            WaveRecord(
                plan_id,
                int(w["wave"]),
                str(w["state"]),
                _time(w["started"]),
                _time(w["ended"]),
                w["artifacts"],
                json.loads(w["summary"]),
            )
            for w in conn.execute("SELECT * FROM journal_waves WHERE plan_id = ? ORDER BY wave", (plan_id,))
        )
        return PlanRecord(
            plan_id=plan_id,
            created=dt.datetime.fromisoformat(str(row["created"])),
            inventory=str(row["inventory"]),
            state=str(row["state"]),
            updated=dt.datetime.fromisoformat(str(row["updated"])),
            waves=waves,
            hosts=self.host_states(plan_id),
        )

    def plan_ids(self, limit: int = 20) -> list[str]:
        """The most recent plan ids, newest first."""
        rows = self.store.connection().execute(
            "SELECT plan_id FROM journal_plans ORDER BY created DESC LIMIT ?", (limit,)
        )
        return [str(r["plan_id"]) for r in rows]
