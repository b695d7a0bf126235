"""Plan authorship and approvals, signed with the trust core's hybrid keys (Ed25519 + ML-DSA-65).

An approval is a signed statement (canonical JSON) binding the plan id (SHA-256 of the plan's content),
the SHA-256 of the plan file's exact bytes, the number of hosts, the approver's key and the approval's
validity period. Approvals are kept in the store (table `approvals`) and beside the plan file
(`PLAN.approvals`, JSON lines), so they travel with the plan; every one is verified before it counts.

Policy (`ApprovalPolicy`, from the environment by `policy_from_env`):
  * a plan touching `quorum_hosts` hosts or more (default 500) needs `quorum` distinct approvers (2);
    smaller plans need one;
  * the plan's author (the key that signed its authorship) cannot approve it, and a plan needs a signed
    author unless `require_author` is off;
  * an approval expires at its `expires_at`, and never lives longer than `max_ttl` (default 24 h);
  * any approval that fails to verify (forged, truncated, another key's) refuses the whole plan.
`require_approved` raises `ApprovalRefused` (exit 5) naming the reason; the executor calls it before a
rollout starts and again before every wave.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from patchbrain.errors import BadInput, PatchbrainError, RefusedByPolicy
from patchbrain.keys import KeyStore, PrivateKey, PublicKey, decode_signature, sign, verify
from patchbrain.plans import Plan, canonical_json
from patchbrain.store import Store
from patchbrain.windows import parse_duration

COMPONENT = "approvals"
MIGRATIONS = [
    """
    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        plan_id TEXT NOT NULL,
        key_fingerprint TEXT NOT NULL,
        key_name TEXT NOT NULL,
        statement TEXT NOT NULL,
        signature TEXT NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (plan_id, key_fingerprint, statement)
    );
    CREATE INDEX approvals_plan ON approvals(plan_id);
    """,
]
APPROVAL_TYPE = "patchbrain.plan-approval/1"
AUTHOR_TYPE = "patchbrain.plan-author/1"
SIDECAR_SUFFIX = ".approvals"
_SKEW = dt.timedelta(minutes=5)


class ApprovalRefused(RefusedByPolicy):
    """The plan is unapproved, under quorum, expired, self-approved, changed, or carries a bad signature."""


@dataclasses.dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """Who must approve, and for how long an approval holds."""

    quorum_hosts: int = 500
    quorum: int = 2
    max_ttl: dt.timedelta = dt.timedelta(hours=24)
    require_author: bool = True

    def required(self, n_hosts: int) -> int:
        """Distinct approvers a plan of `n_hosts` hosts needs."""
        return self.quorum if n_hosts >= self.quorum_hosts else 1


def policy_from_env(env: dict[str, str] | None = None) -> ApprovalPolicy:
    """$PATCHBRAIN_APPROVAL_QUORUM_HOSTS (500), $PATCHBRAIN_APPROVAL_QUORUM (2),
    $PATCHBRAIN_APPROVAL_MAX_TTL (24h), $PATCHBRAIN_APPROVAL_REQUIRE_AUTHOR (1; 0 turns it off)."""
    env = dict(os.environ) if env is None else env

    def number(name: str, default: int, low: int) -> int:
        raw = env.get(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if value < low:
            raise BadInput(f"must be an integer >= {low}", source="environment", field=name)
        return value

    ttl = env.get("PATCHBRAIN_APPROVAL_MAX_TTL")
    require = env.get("PATCHBRAIN_APPROVAL_REQUIRE_AUTHOR", "1")
    if require not in ("0", "1"):
        raise BadInput("must be 0 or 1", source="environment", field="PATCHBRAIN_APPROVAL_REQUIRE_AUTHOR")
    return ApprovalPolicy(
        quorum_hosts=number("PATCHBRAIN_APPROVAL_QUORUM_HOSTS", 500, 1),
        quorum=number("PATCHBRAIN_APPROVAL_QUORUM", 2, 1),
        max_ttl=parse_duration(ttl, source="environment", field="PATCHBRAIN_APPROVAL_MAX_TTL")
        if ttl
        else dt.timedelta(hours=24),
        require_author=require == "1",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Approval:
    """One signed approval statement (not yet verified)."""

    statement: str
    signature: str

    def fields(self) -> dict[str, Any]:
        """The statement's fields (BadInput if it is not a JSON object)."""
        try:
            doc = json.loads(self.statement)
        except json.JSONDecodeError as exc:
            raise BadInput(f"approval statement is not JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise BadInput("approval statement is not a JSON object")
        return doc

    def to_line(self) -> str:
        """The sidecar line."""
        return canonical_json({"statement": self.statement, "signature": self.signature})


def _time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds")


def _parse_time(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("not a time")
    when = dt.datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError("no UTC offset")
    return when


# -- authorship ----------------------------------------------------------------------------------------


def author_statement(plan_id: str) -> bytes:
    """What an author signs: the plan id, typed."""
    return canonical_json({"type": AUTHOR_TYPE, "plan_id": plan_id}).encode("utf-8")


def sign_authorship(plan: Plan, key: PrivateKey) -> Plan:
    """`plan` with its authorship signature (its `author` must already be `key`'s fingerprint)."""
    if plan.author != key.public.fingerprint:
        raise BadInput("the plan names another author key", field="author")
    return dataclasses.replace(plan, authorship=sign(key, author_statement(plan.plan_id)).decode("utf-8"))


def verify_authorship(plan: Plan, keystore: KeyStore) -> PublicKey | None:
    """The author's public key if the plan has a valid authorship signature; None if it has no author.
    Raises ApprovalRefused if the author is named but the signature is missing or does not verify."""
    if plan.author is None:
        return None
    key = keystore.by_fingerprint(plan.author)
    if key is None:
        raise ApprovalRefused(
            f"the plan's author key {plan.author} is not in the key store: its authorship cannot be checked"
        )
    if not plan.authorship:
        raise ApprovalRefused(f"the plan names author {key.name} but carries no authorship signature")
    try:
        verify(key, author_statement(plan.plan_id), plan.authorship.encode("utf-8"))
    except PatchbrainError as exc:
        raise ApprovalRefused(f"the plan's authorship signature is invalid: {exc}") from exc
    return key


# -- approving -----------------------------------------------------------------------------------------


def sidecar_path(plan_file: Path) -> Path:
    """Where approvals are kept beside a plan file."""
    return plan_file.with_name(plan_file.name + SIDECAR_SUFFIX)


def approve(
    plan: Plan,
    key: PrivateKey,
    *,
    keystore: KeyStore,
    ttl: dt.timedelta,
    policy: ApprovalPolicy,
    now: dt.datetime | None = None,
) -> Approval:
    """Sign an approval of `plan` (as loaded: its file hash is bound). Refuses self-approval, an
    unproven author when one is required, and a validity period beyond the policy's."""
    now = now or dt.datetime.now(dt.UTC)
    if not dt.timedelta(0) < ttl <= policy.max_ttl:
        raise BadInput(f"must be more than 0 and at most the policy's {policy.max_ttl}", field="--ttl")
    author = verify_authorship(plan, keystore)
    if author is None and policy.require_author:
        raise ApprovalRefused(
            "the plan has no signed author (make it with `patchbrain plan --author-key NAME`)"
        )
    if author is not None and author.fingerprint == key.public.fingerprint:
        raise ApprovalRefused(f"key {key.name} authored this plan and cannot approve it")
    statement = canonical_json(
        {
            "type": APPROVAL_TYPE,
            "plan_id": plan.plan_id,
            "plan_file_sha256": plan.file_sha256,
            "hosts": len(plan.hosts),
            "approver": key.name,
            "key": key.public.fingerprint,
            "approved_at": _time(now),
            "expires_at": _time(now + ttl),
        }
    )
    signature = sign(key, statement.encode("utf-8")).decode("utf-8")
    return Approval(statement, signature)


class ApprovalStore:
    """Approvals in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate(COMPONENT, MIGRATIONS)

    def add(self, approval: Approval) -> None:
        """Keep an approval (idempotent)."""
        doc = approval.fields()
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO approvals(plan_id, key_fingerprint, key_name, statement, signature, "
                "created) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    str(doc.get("plan_id")),
                    str(doc.get("key")),
                    str(doc.get("approver")),
                    approval.statement,
                    approval.signature,
                    _time(dt.datetime.now(dt.UTC)),
                ),
            )

    def for_plan(self, plan_id: str) -> list[Approval]:
        """Every stored approval naming `plan_id`, oldest first."""
        rows = self.store.connection().execute(
            "SELECT statement, signature FROM approvals WHERE plan_id = ? ORDER BY id", (plan_id,)
        )
        return [Approval(str(r["statement"]), str(r["signature"])) for r in rows]


def record_approval(
    plan: Plan,
    key: PrivateKey,
    *,
    keystore: KeyStore,
    store: Store,
    plan_file: Path | None,
    ttl: dt.timedelta,
    policy: ApprovalPolicy,
) -> Approval:
    """Approve `plan` with `key` and keep the approval: in the store, beside `plan_file` when given, and
    in the audit log (`plan.approve`, or `plan.approve.refused` with the reason before re-raising)."""
    from patchbrain.audit import default_actor, open_audit_log

    audit = open_audit_log(store)
    try:
        approval = approve(plan, key, keystore=keystore, ttl=ttl, policy=policy)
    except ApprovalRefused as exc:
        audit.append(
            default_actor(), "plan.approve.refused", plan.plan_id, {"key": key.name, "reason": str(exc)}
        )
        raise
    ApprovalStore(store).add(approval)
    if plan_file is not None:
        append_sidecar(sidecar_path(plan_file), approval)
    audit.append(
        default_actor(),
        "plan.approve",
        plan.plan_id,
        {
            "approver": key.name,
            "key": key.public.fingerprint,
            "plan_file_sha256": plan.file_sha256,
            "hosts": len(plan.hosts),
            "expires_at": approval.fields()["expires_at"],
        },
    )
    return approval


def read_sidecar(path: Path) -> list[Approval]:
    """Approvals from a sidecar file (missing file: none). A malformed line is BadInput."""
    from patchbrain.jsonlines import iter_json_lines

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for number, doc in iter_json_lines(text, str(path)):
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("statement"), str)
            or not isinstance(doc.get("signature"), str)
        ):
            raise BadInput("expected {statement, signature}", source=f"{path}:{number}")
        out.append(Approval(doc["statement"], doc["signature"]))
    return out


def append_sidecar(path: Path, approval: Approval) -> None:
    """Add an approval line beside the plan."""
    with path.open("a", encoding="utf-8") as f:
        f.write(approval.to_line() + "\n")
        f.flush()
        os.fsync(f.fileno())


# -- checking ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """The approvals that count, those that do not (and why), and the requirement."""

    plan_id: str
    required: int
    valid: tuple[dict[str, Any], ...]
    ignored: tuple[str, ...]
    author: str | None

    @property
    def ok(self) -> bool:
        return len(self.valid) >= self.required


def check_approvals(
    plan: Plan,
    approvals: Iterable[Approval],
    *,
    keystore: KeyStore,
    policy: ApprovalPolicy,
    now: dt.datetime | None = None,
) -> Verdict:
    """Verify every approval of `plan`; raise ApprovalRefused for a bad signature, self-approval or a
    changed plan. Approvals that are expired or from unknown keys do not count (listed in `ignored`)."""
    now = now or dt.datetime.now(dt.UTC)
    author = verify_authorship(plan, keystore)
    if author is None and policy.require_author:
        raise ApprovalRefused(
            "the plan has no signed author (make it with `patchbrain plan --author-key NAME`)"
        )
    valid: dict[str, dict[str, Any]] = {}
    ignored: list[str] = []
    seen: set[tuple[str, str]] = set()
    for a in approvals:
        if (a.statement, a.signature) in seen:
            continue
        seen.add((a.statement, a.signature))
        try:
            doc = a.fields()
        except BadInput as exc:
            raise ApprovalRefused(f"an approval is garbled: {exc}") from exc
        if doc.get("type") != APPROVAL_TYPE:
            raise ApprovalRefused(f"an approval has an unknown type {doc.get('type')!r:.60}")
        if doc.get("plan_id") != plan.plan_id:
            raise ApprovalRefused(
                f"an approval by {doc.get('approver')!r:.70} is for plan {str(doc.get('plan_id'))[:16]}..., "
                f"not {plan.plan_id[:16]}...: the plan was changed since it was approved"
            )
        fp = doc.get("key")
        key = keystore.by_fingerprint(fp) if isinstance(fp, str) else None
        try:
            decoded = decode_signature(a.signature.encode("utf-8"))
        except PatchbrainError as exc:
            raise ApprovalRefused(
                f"the approval by {doc.get('approver')!r:.70} has a bad signature: {exc}"
            ) from exc
        if decoded.key_fingerprint != fp:
            raise ApprovalRefused(
                f"the approval by {doc.get('approver')!r:.70} is signed by another key than it names"
            )
        if key is None:
            ignored.append(f"approval by unknown key {fp!r:.80} (not in the key store)")
            continue
        try:
            verify(key, a.statement.encode("utf-8"), a.signature.encode("utf-8"))
        except PatchbrainError as exc:
            raise ApprovalRefused(f"the approval by {key.name} does not verify: {exc}") from exc
        # the signature is good: now judge what it says
        if doc.get("plan_file_sha256") != plan.file_sha256:
            raise ApprovalRefused(
                f"the plan file changed since {key.name} approved it (its bytes' SHA-256 is "
                f"{plan.file_sha256[:16]}..., the approval names {str(doc.get('plan_file_sha256'))[:16]}...)"
            )
        if author is not None and key.fingerprint == author.fingerprint:
            raise ApprovalRefused(f"key {key.name} authored this plan and cannot approve it")
        try:
            approved_at = _parse_time(doc.get("approved_at"))
            expires_at = _parse_time(doc.get("expires_at"))
        except ValueError as exc:
            raise ApprovalRefused(f"the approval by {key.name} has bad times: {exc}") from exc
        if approved_at > now + _SKEW:
            ignored.append(f"approval by {key.name} is dated in the future ({_time(approved_at)})")
        elif now >= expires_at:
            ignored.append(f"approval by {key.name} expired at {_time(expires_at)}")
        elif now - approved_at > policy.max_ttl or expires_at - approved_at > policy.max_ttl:
            ignored.append(f"approval by {key.name} is older than the policy's {policy.max_ttl}")
        else:
            valid[key.fingerprint] = {
                "approver": key.name,
                "key": key.fingerprint,
                "approved_at": _time(approved_at),
                "expires_at": _time(expires_at),
            }
    return Verdict(
        plan.plan_id,
        policy.required(len(plan.hosts)),
        tuple(valid.values()),
        tuple(ignored),
        author.name if author else None,
    )


def gather(plan: Plan, store: Store, plan_file: Path | None = None) -> list[Approval]:
    """The plan's approvals from the store and, if given, the plan file's sidecar."""
    found = ApprovalStore(store).for_plan(plan.plan_id)
    if plan_file is not None:
        found.extend(read_sidecar(sidecar_path(plan_file)))
    return found


def require_approved(
    plan: Plan,
    approvals: Sequence[Approval],
    *,
    keystore: KeyStore,
    policy: ApprovalPolicy,
    now: dt.datetime | None = None,
) -> Verdict:
    """The verdict if the plan may run; ApprovalRefused (exit 5) with the reason if not."""
    verdict = check_approvals(plan, approvals, keystore=keystore, policy=policy, now=now)
    if not verdict.ok:
        have = len(verdict.valid)
        why = (
            "is unapproved"
            if have == 0 and not verdict.ignored
            else f"has {have} valid approval(s), needs {verdict.required}"
        )
        quorum = (
            f" (plans touching {policy.quorum_hosts} hosts or more need {policy.quorum} distinct approvers)"
            if verdict.required > 1
            else ""
        )
        extra = f"; not counted: {'; '.join(verdict.ignored)}" if verdict.ignored else ""
        raise ApprovalRefused(
            f"plan {plan.plan_id[:16]}... {why}{quorum}{extra}. "
            f"Approve it with `patchbrain approve PLAN --key NAME`"
        )
    return verdict
