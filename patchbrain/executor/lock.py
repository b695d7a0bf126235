"""Rollout locks in the store: at most one rollout at a time touches a host.

A rollout takes one row per host of its plan (`rollout_locks`) in a single write transaction before anything
runs, and deletes its rows when it ends (normally, halted, canceled or on an error). A second rollout that
wants any of those hosts is refused (`RolloutLocked`, exit 5) with the holder named: plan id, pid, machine
and start time. A holder whose process is gone (same machine, pid no longer running or reused by another
process: the pid's start time is recorded) is stale: its rows are taken over in the same transaction and
the caller reports it. A holder on another machine cannot be checked from here and is never taken over.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from patchbrain.errors import RefusedByPolicy
from patchbrain.store import Store

COMPONENT = "rollout_locks"
MIGRATIONS = [
    """
    CREATE TABLE rollout_locks (
        host TEXT PRIMARY KEY,
        plan_id TEXT NOT NULL,
        pid INTEGER NOT NULL,
        pid_start INTEGER,
        machine TEXT NOT NULL,
        started TEXT NOT NULL
    )
    """,
]


def process_start_time(pid: int) -> int | None:
    """The start time (clock ticks since boot) of `pid`, or None if it is gone (guards against pid reuse)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class LockHolder:
    """The rollout that holds (or held) some hosts."""

    plan_id: str
    pid: int
    pid_start: int | None
    machine: str
    started: str
    hosts: tuple[str, ...]

    def alive(self) -> bool:
        """False only when the holder is provably gone: same machine and its process no longer runs."""
        if self.machine != socket.gethostname():
            return True
        start = process_start_time(self.pid)
        return start is not None and (self.pid_start is None or start == self.pid_start)

    def describe(self) -> str:
        """`plan P (pid N on M, since T)` for messages."""
        return f"plan {self.plan_id} (pid {self.pid} on {self.machine}, since {self.started})"

    def as_dict(self) -> dict[str, object]:
        return {
            "plan_id": self.plan_id,
            "pid": self.pid,
            "machine": self.machine,
            "started": self.started,
            "hosts": list(self.hosts),
        }


class RolloutLocked(RefusedByPolicy):
    """Another live rollout holds some of the hosts."""

    def __init__(self, holders: tuple[LockHolder, ...]) -> None:
        self.holders = holders
        parts = []
        for h in holders:
            shown = ", ".join(h.hosts[:10]) + (f" and {len(h.hosts) - 10} more" if len(h.hosts) > 10 else "")
            parts.append(f"{shown} held by the rollout of {h.describe()}")
        super().__init__("hosts locked by another rollout: " + "; ".join(parts))


def _holders(rows: Iterable[object]) -> list[LockHolder]:
    groups: dict[tuple[str, int, int | None, str, str], list[str]] = {}
    for r in rows:
        key = (str(r["plan_id"]), int(r["pid"]), r["pid_start"], str(r["machine"]), str(r["started"]))  # type: ignore[index]
        groups.setdefault(key, []).append(str(r["host"]))  # type: ignore[index]
    return [LockHolder(*k, hosts=tuple(sorted(v))) for k, v in sorted(groups.items())]


def holders(store: Store) -> list[LockHolder]:
    """Every rollout holding hosts now (live or stale)."""
    store.migrate(COMPONENT, MIGRATIONS)
    return _holders(store.connection().execute("SELECT * FROM rollout_locks ORDER BY host"))


@dataclasses.dataclass
class RolloutLock:
    """Hosts held by this process for one plan; `release()` (or leaving the `with` block) frees them."""

    store: Store
    plan_id: str
    hosts: tuple[str, ...]
    pid: int
    taken_over: tuple[LockHolder, ...] = ()
    released: bool = False

    def release(self) -> None:
        """Delete this rollout's rows (only its own: same plan and pid)."""
        if self.released:
            return
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM rollout_locks WHERE plan_id = ? AND pid = ?", (self.plan_id, self.pid))
        self.released = True

    def __enter__(self) -> RolloutLock:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def acquire(store: Store, plan_id: str, hosts: Iterable[str]) -> RolloutLock:
    """Lock `hosts` for `plan_id` in one write transaction; RolloutLocked names any live holder.

    Stale holders (their process is gone) are taken over and returned in `taken_over` for the caller to
    report and audit.
    """
    store.migrate(COMPONENT, MIGRATIONS)
    wanted = sorted(set(hosts))
    pid = os.getpid()
    me = (pid, process_start_time(pid), socket.gethostname())
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with store.transaction() as conn:
        rows = []
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows += conn.execute(
                f"SELECT * FROM rollout_locks WHERE host IN ({marks})",  # noqa: S608 (placeholders only)
                chunk,
            ).fetchall()
        current = _holders(rows)
        live = tuple(h for h in current if h.alive())
        if live:
            raise RolloutLocked(live)
        stale = tuple(current)
        for h in stale:  # take over every row of a dead holder, not only the overlapping ones
            conn.execute(
                "DELETE FROM rollout_locks WHERE plan_id = ? AND pid = ? AND machine = ?",
                (h.plan_id, h.pid, h.machine),
            )
        conn.executemany(
            "INSERT INTO rollout_locks(host, plan_id, pid, pid_start, machine, started) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(h, plan_id, me[0], me[1], me[2], now) for h in wanted],
        )
    return RolloutLock(store, plan_id, tuple(wanted), pid, stale)
