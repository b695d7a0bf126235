"""The hash-chained, append-only audit log, with signed checkpoints.

Each record holds seq, time, actor, action, subject, the payload (canonical JSON) and its SHA-256, the
previous record's hash and its own hash::

    record_hash = sha256(canonical_json(["patchbrain-audit-v1", seq, time, actor, action, subject,
                                         payload_hash, prev_hash]))

with prev_hash of the first record = 64 zeros. Appends take the write lock (BEGIN IMMEDIATE) and commit
durably (WAL, synchronous=FULL), so concurrent writers serialize and a killed writer leaves either the
whole record or nothing.

A hash chain alone shows that records were edited, deleted, reordered or inserted, but anyone who can
write the database can rebuild the whole chain. Checkpoints close that gap: every `every` records (and on
demand) the last (seq, record_hash) is signed with a hybrid key (`patchbrain.keys`). A rewrite of history
up to a checkpoint, or a truncation below it, then shows. The tail after the last checkpoint is chained
but not signed: `verify()` says how many records it cannot prove, and checkpoints exported elsewhere
(`audit export`, a SIEM) can be passed back as anchors to catch a truncation that also removed the
store's own later checkpoints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import hashlib
import json
import logging
import os
import re
import socket
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

from patchbrain import config
from patchbrain.errors import BadInput
from patchbrain.keys import KeyStore, PrivateKey, PublicKey, SignatureError, sign, verify
from patchbrain.store import Store

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
RECORD_DOMAIN = "patchbrain-audit-v1"
CHECKPOINT_KIND = "patchbrain-audit-checkpoint"
DEFAULT_CHECKPOINT_EVERY = 1000
_MAX_PAYLOAD_BYTES = 1 << 20
_ACTION_RE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

MIGRATIONS = [
    """
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        payload TEXT NOT NULL,
        payload_hash TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        record_hash TEXT NOT NULL
    );
    CREATE INDEX audit_log_action ON audit_log(action);
    CREATE INDEX audit_log_time ON audit_log(time);
    CREATE TABLE audit_checkpoint (
        n INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        record_hash TEXT NOT NULL,
        time TEXT NOT NULL,
        key_name TEXT NOT NULL,
        key_fingerprint TEXT NOT NULL,
        signature TEXT NOT NULL
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
    CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
    """,
]

ProblemKind = Literal[
    "edited",
    "deleted",
    "reordered",
    "inserted",
    "truncated",
    "rewritten",
    "bad-checkpoint",
]


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(obj: Any) -> str:
    """The one canonical JSON text: sorted keys, no spaces, UTF-8, no NaN."""
    return _CANONICAL.encode(obj)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_hash(
    seq: int, time: str, actor: str, action: str, subject: str, payload_hash: str, prev_hash: str
) -> str:
    """The hash of one record (see the module docstring)."""
    return _sha256(
        canonical_json([RECORD_DOMAIN, seq, time, actor, action, subject, payload_hash, prev_hash])
    )


def format_time(when: dt.datetime) -> str:
    """A UTC timestamp as stored: fixed width, so text order is time order."""
    if when.tzinfo is None:
        raise ValueError("naive datetime")
    return when.astimezone(dt.UTC).strftime(_TIME_FORMAT)


def default_actor() -> str:
    """`user@host` of this process, for records a person's command causes."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.geteuid()}"
    return f"{user}@{socket.gethostname()}"


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    """One record as stored."""

    seq: int
    time: str
    actor: str
    action: str
    subject: str
    payload: dict[str, Any]
    payload_hash: str
    prev_hash: str
    record_hash: str


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A signed statement: "the audit log's record `seq` has hash `record_hash`"."""

    n: int
    seq: int
    record_hash: str
    time: str
    key_name: str
    key_fingerprint: str
    signature: str

    def statement(self) -> bytes:
        """The bytes the key signs."""
        return canonical_json(
            {
                "kind": CHECKPOINT_KIND,
                "v": 1,
                "n": self.n,
                "seq": self.seq,
                "record_hash": self.record_hash,
                "time": self.time,
                "key": self.key_fingerprint,
            }
        ).encode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        """The export shape (`{"type": "checkpoint", ...}`)."""
        return {"type": "checkpoint", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "checkpoint") -> Checkpoint:
        """Parse an exported checkpoint (BadInput names the bad field)."""
        if not isinstance(doc, dict) or doc.get("type") != "checkpoint":
            raise BadInput("not an audit checkpoint", source=source, field="type")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = doc.get(f.name)
            want = int if f.type in ("int", int) else str
            if not isinstance(value, want) or isinstance(value, bool):
                raise BadInput(f"must be {want.__name__}", source=source, field=f.name)
            kwargs[f.name] = value
        return cls(**kwargs)


@dataclasses.dataclass(frozen=True)
class Problem:
    """The first thing wrong with the log. `seq` is the first record concerned; `last_seq` ends a range."""

    kind: ProblemKind
    seq: int
    detail: str
    last_seq: int | None = None


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """What `AuditLog.verify()` found (the `audit verify --json` shape)."""

    ok: bool
    records: int
    last_seq: int
    last_hash: str
    checkpoints: int
    checkpoints_verified: int
    last_checkpoint_seq: int
    unproven_tail: int
    problem: Problem | None
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class _Prepared:
    time: str
    actor: str
    action: str
    subject: str
    payload: str
    payload_hash: str


def _check_text(value: object, field: str, max_len: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise BadInput("must be a string", source="audit record", field=field)
    if not value and not allow_empty:
        raise BadInput("must not be empty", source="audit record", field=field)
    if len(value) > max_len:
        raise BadInput(f"longer than {max_len} characters", source="audit record", field=field)
    if _CONTROL_RE.search(value):
        raise BadInput("contains control characters", source="audit record", field=field)
    return value


def sanitize(text: str) -> str:
    """`text` with control characters shown as escapes, safe to print on a terminal."""
    return _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class AuditLog:
    """The audit log in `store`. With `signer`, a checkpoint is signed every `every` records."""

    def __init__(
        self,
        store: Store,
        *,
        signer: PrivateKey | None = None,
        every: int = DEFAULT_CHECKPOINT_EVERY,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        self.store = store
        self.signer = signer
        self.every = every
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        store.migrate("audit", MIGRATIONS)

    # -- writing ---------------------------------------------------------------------------------------

    def _prepare(self, actor: str, action: str, subject: str, payload: dict[str, Any]) -> _Prepared:
        _check_text(actor, "actor", 256)
        _check_text(action, "action", 128)
        if not _ACTION_RE.match(action):
            raise BadInput(
                "must be dotted lowercase words like 'plan.approve'", source="audit record", field="action"
            )
        _check_text(subject, "subject", 1024, allow_empty=True)
        if not isinstance(payload, dict) or not all(isinstance(k, str) for k in payload):
            raise BadInput(
                "must be a JSON object (dict with string keys)", source="audit record", field="payload"
            )
        try:
            text = canonical_json(payload)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"not JSON-encodable ({exc})", source="audit record", field="payload") from exc
        if len(text.encode("utf-8")) > _MAX_PAYLOAD_BYTES:
            raise BadInput(f"larger than {_MAX_PAYLOAD_BYTES} bytes", source="audit record", field="payload")
        return _Prepared(format_time(self._clock()), actor, action, subject, text, _sha256(text))

    def _insert(self, conn: sqlite3.Connection, items: Sequence[_Prepared]) -> list[int]:
        row = conn.execute("SELECT seq, record_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)
        rows = []
        for p in items:
            seq += 1
            h = record_hash(seq, p.time, p.actor, p.action, p.subject, p.payload_hash, prev)
            rows.append((seq, p.time, p.actor, p.action, p.subject, p.payload, p.payload_hash, prev, h))
            prev = h
        conn.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return [r[0] for r in rows]

    def _auto_checkpoint(self, conn: sqlite3.Connection, first: int, last: int) -> None:
        if self.signer is not None and (last // self.every) > ((first - 1) // self.every):
            self._checkpoint(conn, self.signer)

    def append(self, actor: str, action: str, subject: str, payload: dict[str, Any]) -> int:
        """Append one record durably; returns its seq. BadInput for invalid fields."""
        prepared = self._prepare(actor, action, subject, payload)
        with self.store.transaction() as conn:
            (seq,) = self._insert(conn, [prepared])
            self._auto_checkpoint(conn, seq, seq)
        return seq

    def append_many(self, entries: Iterable[tuple[str, str, str, dict[str, Any]]]) -> list[int]:
        """Append (actor, action, subject, payload) entries in one transaction: all or none."""
        prepared = [self._prepare(*e) for e in entries]
        if not prepared:
            return []
        with self.store.transaction() as conn:
            seqs = self._insert(conn, prepared)
            self._auto_checkpoint(conn, seqs[0], seqs[-1])
        return seqs

    def _checkpoint(self, conn: sqlite3.Connection, key: PrivateKey) -> Checkpoint:
        row = conn.execute("SELECT seq, record_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            raise BadInput("the audit log is empty: nothing to checkpoint")
        last = conn.execute("SELECT * FROM audit_checkpoint ORDER BY n DESC LIMIT 1").fetchone()
        if (
            last is not None
            and int(last["seq"]) == int(row[0])
            and last["key_fingerprint"] == (key.public.fingerprint)
        ):
            return _checkpoint_from_row(last)
        n = int(last["n"]) + 1 if last is not None else 1
        unsigned = Checkpoint(
            n=n,
            seq=int(row[0]),
            record_hash=str(row[1]),
            time=format_time(self._clock()),
            key_name=key.name,
            key_fingerprint=key.public.fingerprint,
            signature="",
        )
        cp = dataclasses.replace(unsigned, signature=sign(key, unsigned.statement()).decode("ascii"))
        conn.execute(
            "INSERT INTO audit_checkpoint VALUES (?, ?, ?, ?, ?, ?, ?)",
            (cp.n, cp.seq, cp.record_hash, cp.time, cp.key_name, cp.key_fingerprint, cp.signature),
        )
        log.info("audit checkpoint #%d at seq %d signed by %s", cp.n, cp.seq, key.name)
        return cp

    def checkpoint(self, key: PrivateKey | None = None) -> Checkpoint:
        """Sign a checkpoint of the current last record now (with `key`, else the configured signer)."""
        key = key or self.signer
        if key is None:
            raise BadInput("no key to sign the checkpoint with", field="key")
        with self.store.transaction() as conn:
            return self._checkpoint(conn, key)

    # -- reading ---------------------------------------------------------------------------------------

    def records(
        self,
        since: dt.datetime | None = None,
        action: str | None = None,
        *,
        after_seq: int | None = None,
    ) -> Iterator[AuditRecord]:
        """Records in seq order: from time `since`, whose action matches the glob `action`
        (e.g. ``plan.*``), with seq greater than `after_seq`."""
        where, params = [], []
        if since is not None:
            where.append("time >= ?")
            params.append(format_time(since))
        if action is not None:
            where.append("action GLOB ?")
            params.append(action)
        if after_seq is not None:
            where.append("seq > ?")
            params.append(str(int(after_seq)))
        # Only the constant fragments above are joined; every value is a bound parameter.
        clause = " WHERE " + " AND ".join(where) if where else ""
        sql = "SELECT * FROM audit_log" + clause + " ORDER BY seq"  # noqa: S608
        for row in self.store.connection().execute(sql, params):
            yield _record_from_row(row)

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, in order."""
        rows = self.store.connection().execute("SELECT * FROM audit_checkpoint ORDER BY n").fetchall()
        return [_checkpoint_from_row(r) for r in rows]

    def head(self) -> tuple[int, str]:
        """(last seq, its record hash); (0, GENESIS_HASH) for an empty log."""
        row = (
            self.store.connection()
            .execute("SELECT seq, record_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetchone()
        )
        return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)

    # -- verifying -------------------------------------------------------------------------------------

    def verify(self, keystore: KeyStore | None = None, anchors: Sequence[Checkpoint] = ()) -> VerifyResult:
        """Walk the chain and check every checkpoint (and `anchors`: checkpoints kept outside the store).

        Checkpoint signatures are checked against the public keys in `keystore` (default: the configured
        key store). Returns the first problem found, never raises for tampering.
        """
        keystore = keystore if keystore is not None else KeyStore()
        with self.store.transaction(immediate=False) as conn:
            stored = [
                _checkpoint_from_row(r) for r in conn.execute("SELECT * FROM audit_checkpoint ORDER BY n")
            ]
            wanted = {cp.seq for cp in stored} | {a.seq for a in anchors}
            walk = _walk_chain(conn, wanted)
        return _judge(walk, stored, list(anchors), keystore)


@dataclasses.dataclass
class _Walk:
    records: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    hashes: dict[int, str] = dataclasses.field(default_factory=dict)
    problem: Problem | None = None


_COLUMNS = (
    "seq",
    "time",
    "actor",
    "action",
    "subject",
    "payload",
    "payload_hash",
    "prev_hash",
    "record_hash",
)
_FETCH = 4096


def _walk_chain(conn: sqlite3.Connection, wanted: set[int]) -> _Walk:
    """Check every record in seq order: a fast path on plain tuples, `_check_row` names any problem."""
    walk = _Walk()
    cur = conn.cursor()
    cur.row_factory = None
    cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM audit_log ORDER BY seq")  # noqa: S608 (constant)
    prev_hash, prev_seq = GENESIS_HASH, 0
    sha256 = hashlib.sha256
    pending: list[tuple[Any, ...]] = cur.fetchmany(_FETCH)
    while pending:
        upcoming: list[tuple[Any, ...]] = cur.fetchmany(_FETCH)
        for index, row in enumerate(pending):
            seq, time, actor, action, subject, payload, p_hash, link, r_hash = row
            if (
                seq != prev_seq + 1
                or link != prev_hash
                or sha256(str(payload).encode("utf-8")).hexdigest() != p_hash
                or record_hash(seq, str(time), str(actor), str(action), str(subject), str(p_hash), link)
                != r_hash
            ):
                after = pending[index + 1] if index + 1 < len(pending) else upcoming[0] if upcoming else None
                walk.problem = _check_row(
                    conn,
                    dict(zip(_COLUMNS, row, strict=True)),
                    dict(zip(_COLUMNS, after, strict=True)) if after is not None else None,
                    prev_hash,
                    prev_seq,
                )
                walk.records += index
                walk.last_seq, walk.last_hash = prev_seq, prev_hash
                return walk
            prev_hash, prev_seq = r_hash, seq
            if seq in wanted:
                walk.hashes[seq] = r_hash
        walk.records += len(pending)
        walk.last_seq, walk.last_hash = prev_seq, prev_hash
        pending = upcoming
    return walk


def _check_row(
    conn: sqlite3.Connection,
    row: dict[str, Any],
    following: dict[str, Any] | None,
    prev_hash: str,
    prev_seq: int,
) -> Problem:
    seq = int(row["seq"])
    expected = prev_seq + 1
    if seq != expected:
        return Problem(
            "deleted",
            expected,
            f"record {expected} is missing: the log jumps from seq {prev_seq} to {seq}",
            last_seq=seq - 1,
        )
    if row["prev_hash"] != prev_hash:
        return _classify_broken_link(conn, row, following, prev_hash, prev_seq)
    if _sha256(str(row["payload"])) != row["payload_hash"]:
        return Problem("edited", seq, f"record {seq}'s payload does not match its payload hash")
    return Problem("edited", seq, f"record {seq}'s fields do not match its record hash")


def _row_hash(row: dict[str, Any]) -> str:
    return record_hash(
        int(row["seq"]),
        str(row["time"]),
        str(row["actor"]),
        str(row["action"]),
        str(row["subject"]),
        str(row["payload_hash"]),
        str(row["prev_hash"]),
    )


def _classify_broken_link(
    conn: sqlite3.Connection,
    row: dict[str, Any],
    following: dict[str, Any] | None,
    prev_hash: str,
    prev_seq: int,
) -> Problem:
    """Name what happened at `row`, whose prev_hash is not the hash of the record before it."""
    seq = int(row["seq"])
    found = conn.execute("SELECT seq FROM audit_log WHERE record_hash = ?", (row["prev_hash"],)).fetchone()
    target = int(found[0]) if found else 0 if row["prev_hash"] == GENESIS_HASH else None
    if target is not None and target > seq:
        return Problem(
            "reordered",
            seq,
            f"record {seq} links to record {target}, which comes after it: records were reordered",
        )
    if following is not None and following["prev_hash"] == prev_hash:
        return Problem(
            "inserted",
            seq,
            f"record {seq} does not belong to the chain: record {int(following['seq'])} links past it "
            f"to record {prev_seq}",
        )
    if target is not None and target < prev_seq:
        return Problem(
            "inserted",
            target + 1,
            f"record {seq} links to record {target}: "
            f"{_span(target + 1, prev_seq)} {_were(target + 1, prev_seq)} inserted",
            last_seq=prev_seq,
        )
    if _row_hash(row) != row["record_hash"]:
        return Problem(
            "deleted",
            seq,
            f"record {seq} links to a record that is no longer in the log and its own hash no longer "
            f"matches (records deleted before it and the rest renumbered)",
        )
    return Problem(
        "edited",
        prev_seq,
        f"record {seq} links to a hash no record has: record {prev_seq} was changed and re-hashed "
        f"(or a record between them deleted and the chain rebuilt)",
    )


def _judge(
    walk: _Walk, stored: list[Checkpoint], anchors: list[Checkpoint], keystore: KeyStore
) -> VerifyResult:
    problems: list[Problem] = []
    if walk.problem is not None:
        problems.append(walk.problem)
    notes: list[str] = []
    unchecked: list[str] = []
    verified = 0
    good_seq = 0  # highest seq a valid checkpoint matched
    keys: dict[str, PublicKey | None] = {}

    def key_for(fp: str) -> PublicKey | None:
        if fp not in keys:
            keys[fp] = keystore.by_fingerprint(fp)
        return keys[fp]

    expected_n = 1
    last_cp_seq = 0
    sources = [("stored", cp) for cp in stored] + [("anchor", a) for a in anchors]
    for origin, cp in sources:
        label = f"checkpoint #{cp.n}" if origin == "stored" else f"anchor checkpoint #{cp.n}"
        if origin == "stored":
            if cp.n != expected_n:
                problems.append(
                    Problem(
                        "bad-checkpoint", last_cp_seq + 1, f"checkpoint #{expected_n} is missing (deleted)"
                    )
                )
            expected_n = cp.n + 1
            if cp.seq < last_cp_seq:
                problems.append(Problem("bad-checkpoint", cp.seq, f"{label} goes back to seq {cp.seq}"))
        public = key_for(cp.key_fingerprint)
        if public is None:
            problems.append(
                Problem(
                    "bad-checkpoint",
                    cp.seq,
                    f"{label} is signed by key {cp.key_fingerprint} ({cp.key_name}), which is not in the key "
                    f"store {keystore.dir}: it proves nothing",
                )
            )
            continue
        try:
            verify(public, cp.statement(), cp.signature.encode("utf-8"))
        except SignatureError as exc:
            problems.append(Problem("bad-checkpoint", cp.seq, f"{label}'s signature is invalid: {exc}"))
            continue
        if walk.problem is None and cp.seq > walk.last_seq:
            problems.append(
                Problem(
                    "truncated",
                    walk.last_seq + 1,
                    f"the log ends at seq {walk.last_seq} but {label} (signed by {public.name}) covers seq "
                    f"{cp.seq}: {_span(walk.last_seq + 1, cp.seq)} (at least) "
                    f"{_were(walk.last_seq + 1, cp.seq)} removed",
                    last_seq=cp.seq,
                )
            )
            continue
        if cp.seq not in walk.hashes:
            if walk.problem is not None and cp.seq >= walk.problem.seq:
                unchecked.append(f"{label} (seq {cp.seq})")
            continue
        if walk.hashes[cp.seq] != cp.record_hash:
            problems.append(
                Problem(
                    "rewritten",
                    good_seq + 1,
                    f"record {cp.seq}'s hash differs from the one {label} signed: history between seq "
                    f"{good_seq + 1} and {cp.seq} was rewritten and re-chained",
                    last_seq=cp.seq,
                )
            )
            continue
        verified += 1
        if origin == "stored":
            last_cp_seq = max(last_cp_seq, cp.seq)
        good_seq = max(good_seq, cp.seq)

    proven = good_seq
    tail = max(walk.last_seq - proven, 0) if walk.problem is None else 0
    if unchecked:
        notes.append(
            f"{len(unchecked)} checkpoint(s) after the break not checked: {', '.join(unchecked[:5])}"
            + (" ..." if len(unchecked) > 5 else "")
        )
    if not problems and walk.records:
        if not stored and not anchors:
            notes.append(
                "no signed checkpoints: the chain is intact, but a rewrite or truncation of the whole log "
                "cannot be detected (sign one with `patchbrain audit checkpoint --key NAME`)"
            )
        elif tail:
            notes.append(
                f"{_span(proven + 1, walk.last_seq)} after the last signed checkpoint (seq {proven}) "
                f"{'is' if tail == 1 else 'are'} chained but not signed: a truncation or rewrite there "
                f"cannot be detected from the store alone (keep exported checkpoints elsewhere and pass them "
                f"with `audit verify --anchor FILE`)"
            )
    first = min(problems, key=lambda p: (p.seq, p is not walk.problem), default=None)
    return VerifyResult(
        ok=first is None,
        records=walk.records,
        last_seq=walk.last_seq,
        last_hash=walk.last_hash,
        checkpoints=len(stored),
        checkpoints_verified=verified,
        last_checkpoint_seq=proven,
        unproven_tail=tail,
        problem=first,
        notes=tuple(notes),
    )


def _span(first: int, last: int) -> str:
    return f"record {first}" if first == last else f"records {first}..{last}"


def _were(first: int, last: int) -> str:
    return "was" if first == last else "were"


def _record_from_row(row: sqlite3.Row) -> AuditRecord:
    try:
        payload = json.loads(row["payload"])
    except (json.JSONDecodeError, TypeError):
        payload = {"_unparsable_payload": str(row["payload"])}
    if not isinstance(payload, dict):
        payload = {"_unparsable_payload": str(row["payload"])}
    return AuditRecord(
        seq=int(row["seq"]),
        time=str(row["time"]),
        actor=str(row["actor"]),
        action=str(row["action"]),
        subject=str(row["subject"]),
        payload=payload,
        payload_hash=str(row["payload_hash"]),
        prev_hash=str(row["prev_hash"]),
        record_hash=str(row["record_hash"]),
    )


def _checkpoint_from_row(row: sqlite3.Row) -> Checkpoint:
    return Checkpoint(
        n=int(row["n"]),
        seq=int(row["seq"]),
        record_hash=str(row["record_hash"]),
        time=str(row["time"]),
        key_name=str(row["key_name"]),
        key_fingerprint=str(row["key_fingerprint"]),
        signature=str(row["signature"]),
    )


def open_audit_log(store: Store | None = None, keystore: KeyStore | None = None) -> AuditLog:
    """The audit log as configured: checkpoints signed every $PATCHBRAIN_AUDIT_EVERY records (default 1000)
    by key $PATCHBRAIN_AUDIT_KEY (passphrase in $PATCHBRAIN_AUDIT_KEY_PASSPHRASE_FILE), if that is set."""
    store = store if store is not None else Store()
    name = config.audit_key_name()
    signer = None
    if name:
        pw_file = config.audit_key_passphrase_file()
        passphrase = None
        if pw_file is not None:
            try:
                passphrase = pw_file.read_bytes().rstrip(b"\r\n")
            except OSError as exc:
                raise BadInput(
                    f"cannot read ({exc.strerror})",
                    source=str(pw_file),
                    field="PATCHBRAIN_AUDIT_KEY_PASSPHRASE_FILE",
                ) from exc
        signer = (keystore or KeyStore()).load_private(name, passphrase)
    return AuditLog(store, signer=signer, every=config.audit_checkpoint_every())
