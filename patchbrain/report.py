"""Rollout reports: what was patched where, which CVEs are closed, what halted and why, the ranking's
explanations and the audit records involved, from the journal, the approvals and the audit log.

CVE closure comes from the independent verifier (`patchbrain.verify`: patchbrain's own SSH channel, not
Ansible's self-report), as the safety loop recorded it in each wave's journal summary: a CVE is closed on
a host only when the journal says patched or unchanged AND the verifier read every planned version there.
Hosts the journal calls patched but the verifier never read (safety loop off, or re-read only by
`rollout --resume`) are listed under `unverified`, never as closed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from patchbrain.audit import AuditLog, AuditRecord
from patchbrain.errors import BadInput
from patchbrain.journal import Journal, PlanRecord
from patchbrain.posture.labels import SIMULATED_NOTE, labels, simulated_hosts, text
from patchbrain.posture.snapshot import SELINUX_PROBES
from patchbrain.store import Store

CLOSURE_SOURCE = (
    "independent verifier: patchbrain's own SSH channel read the planned versions after the wave "
    "(the safety loop's verify record in the journal), on hosts the journal records as patched or unchanged"
)
_CLOSED_STATES = ("patched", "unchanged")


def resolve_plan_id(journal: Journal, text: str) -> str:
    """A full plan id from an id or a unique prefix (at least 8 characters) of a recorded rollout."""
    if journal.plan(text) is not None:
        return text
    if len(text) >= 8:
        rows = journal.store.connection().execute(
            "SELECT plan_id FROM journal_plans WHERE substr(plan_id, 1, ?) = ?", (len(text), text)
        )
        found = [str(r[0]) for r in rows]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise BadInput(f"{len(found)} rollouts start with {text}; give more of the id", field="ROLLOUT")
    raise BadInput("no such rollout in the journal", source=text, field="ROLLOUT")


def audit_records(store: Store, plan_id: str) -> Iterator[AuditRecord]:
    """Audit records about a plan: its creation, approvals, rollout and waves."""
    for r in AuditLog(store).records():
        if r.subject == plan_id or r.subject.startswith(plan_id + "/"):
            yield r


def _halt(record: PlanRecord, audit: list[AuditRecord]) -> Any:
    for r in reversed(audit):
        if r.action == "rollout.end":
            return r.payload.get("halt")
        if r.action == "rollout.refused":
            return {"kind": "policy", "reason": r.payload.get("reason"), "hosts": []}
    for w in record.waves:
        if isinstance(w.summary, dict) and w.summary.get("halt"):
            return w.summary["halt"]
    return None


def build_report(store: Store, plan_id: str) -> dict[str, Any]:
    """The report of one rollout as plain data (the `report --format json` shape)."""
    journal = Journal(store)
    plan_id = resolve_plan_id(journal, plan_id)
    record = journal.plan(plan_id)
    assert record is not None
    row = (
        store.connection()
        .execute("SELECT document FROM journal_plans WHERE plan_id = ?", (plan_id,))
        .fetchone()
    )
    document = json.loads(row[0])
    entries = {e["host"]: e for wave in document.get("waves", []) for e in wave}
    history = journal.history(plan_id)
    detail = {t.host: t.detail for t in history}
    audit = list(audit_records(store, plan_id))

    from patchbrain.approvals import ApprovalStore

    approvals = []
    for a in ApprovalStore(store).for_plan(plan_id):
        f = a.fields()
        approvals.append({k: f.get(k) for k in ("approver", "key", "approved_at", "expires_at")})

    selinux = _selinux_labels(journal, plan_id)
    verdicts = _verifier_verdicts(record)
    closed: dict[str, list[str]] = {}
    unverified: dict[str, list[str]] = {}
    still_open: dict[str, list[str]] = {}
    hosts_out = []
    for host, entry in entries.items():
        state = record.hosts.get(host, "unknown")
        verdict = verdicts.get(host)
        if state not in _CLOSED_STATES:
            bucket = still_open
        elif verdict is None:
            bucket = unverified
        else:
            bucket = closed if verdict == "ok" else still_open
        for p in entry.get("packages", []):
            for cve in p.get("cves", []):
                bucket.setdefault(cve, []).append(host)
        hosts_out.append(
            {
                "host": host,
                "wave": next((i + 1 for i, w in enumerate(document.get("waves", [])) if entry in w), None),
                "state": state,
                "verifier": verdict,
                "selinux": selinux.get(host, {"mode": None, "config_mode": None, "simulated": None}),
                "detail": detail.get(host, ""),
                "os": entry.get("os", ""),
                "risk": entry.get("risk"),
                "packages": [
                    {
                        "name": p["name"],
                        "version": p["version"],
                        "installed_before": p.get("installed"),
                        "cves": p.get("cves", []),
                        "risk": p.get("risk"),
                        "explanation": p.get("explanation", ""),
                    }
                    for p in entry.get("packages", [])
                ],
            }
        )
    schedule = document.get("schedule") or []
    return {
        "plan_id": plan_id,
        "state": record.state,
        "created": record.created.isoformat(),
        "updated": record.updated.isoformat(),
        "inventory": record.inventory,
        "author": document.get("author_name"),
        "author_key": document.get("author"),
        "approvals": approvals,
        "ranking": document.get("ranking", ""),
        "halt": _halt(record, audit),
        "selinux_simulated": [h for h in simulated_hosts(selinux) if h in entries],
        "waves": [
            {
                "wave": w.wave + 1,
                "kind": schedule[w.wave].get("kind") if w.wave < len(schedule) else None,
                "state": w.state,
                "started": w.started.isoformat() if w.started else None,
                "ended": w.ended.isoformat() if w.ended else None,
                "artifacts": w.artifacts,
                "states": w.summary.get("states", {}) if isinstance(w.summary, dict) else {},
                "halt": w.summary.get("halt") if isinstance(w.summary, dict) else None,
            }
            for w in record.waves
        ],
        "hosts": sorted(hosts_out, key=lambda h: (h["wave"] or 0, h["host"])),
        "cves_closed": {
            "source": CLOSURE_SOURCE,
            "closed": {c: sorted(h) for c, h in sorted(closed.items())},
            "unverified": {c: sorted(h) for c, h in sorted(unverified.items())},
            "still_open": {c: sorted(h) for c, h in sorted(still_open.items())},
        },
        "audit": [
            {"seq": r.seq, "time": r.time, "actor": r.actor, "action": r.action, "subject": r.subject}
            for r in audit
        ],
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _selinux_labels(journal: Journal, plan_id: str) -> dict[str, dict[str, Any]]:
    """Each host's SELinux label (mode, simulated) from every posture document the rollout recorded for it:
    Ansible's pre/post snapshots and the verifier's own readings (`patchbrain.posture.labels`)."""
    docs: dict[str, list[Any]] = {}
    for _wave, host, _phase, doc in journal.plan_snapshots(plan_id, probes=tuple(SELINUX_PROBES)):
        docs.setdefault(host, []).append(doc)
    return labels(docs)


def _verifier_verdicts(record: PlanRecord) -> dict[str, str]:
    """The verifier's last verdict per host (ok | disagrees | unreachable), from the waves' summaries."""
    out: dict[str, str] = {}
    for w in record.waves:
        summary = w.summary if isinstance(w.summary, dict) else {}
        safety = summary.get("safety")
        verify = safety.get("verify") if isinstance(safety, dict) else None
        if isinstance(verify, dict):
            for host, v in verify.items():
                if isinstance(v, dict) and isinstance(v.get("verdict"), str):
                    out[str(host)] = v["verdict"]
    return out


def _md(text: Any) -> str:
    """Untrusted text made safe for a Markdown table cell: no control characters, pipes or markup."""
    from patchbrain.audit import sanitize

    out = sanitize(str(text if text is not None else ""))
    for ch in ("\\", "|", "`", "*", "_", "<", ">", "[", "]"):
        out = out.replace(ch, "\\" + ch)
    return out


def render_markdown(report: dict[str, Any]) -> str:
    """The report for people (Markdown)."""
    lines = [
        f"# Rollout report {report['plan_id']}",
        "",
        f"- state: **{_md(report['state'])}** (created {report['created']}, updated {report['updated']})",
        f"- author: {_md(report['author'] or 'none')} ({_md(report['author_key'] or 'unsigned')})",
        "- approvals: "
        + (
            ", ".join(f"{_md(a['approver'])} at {_md(a['approved_at'])}" for a in report["approvals"])
            or "none on record"
        ),
        f"- ranking: {_md(report['ranking'])}",
    ]
    simulated = report.get("selinux_simulated") or []
    if simulated:
        lines.insert(
            1,
            f"\n**SELinux is simulated on {len(simulated)} host(s)** ({_md(', '.join(simulated))}): "
            f"{_md(SIMULATED_NOTE)}. Their SELinux results are the stand-in's, not a kernel's.",
        )
    halt = report["halt"]
    if halt:
        hosts = ", ".join(_md(h) for h in halt.get("hosts") or [])
        lines.append(
            f"- **halted ({_md(halt.get('kind'))})**: {_md(halt.get('reason'))}"
            + (f" [{hosts}]" if hosts else "")
        )
    lines += [
        "",
        "## Waves",
        "",
        "| wave | kind | state | started | ended | hosts |",
        "|---|---|---|---|---|---|",
    ]
    for w in report["waves"]:
        states = ", ".join(f"{k} {v}" for k, v in sorted(w["states"].items()))
        lines.append(
            f"| {w['wave']} | {_md(w['kind'])} | {_md(w['state'])} | {w['started'] or '-'} "
            f"| {w['ended'] or '-'} | {_md(states)} |"
        )
    lines += [
        "",
        "## What was patched where",
        "",
        "| wave | host | state | SELinux | packages | detail |",
        "|---|---|---|---|---|---|",
    ]
    for h in report["hosts"]:
        pkgs = "; ".join(
            f"{p['name']} {p['installed_before'] or '?'} -> {p['version']}" for p in h["packages"]
        )
        se = text(h.get("selinux") or {})
        lines.append(
            f"| {h['wave']} | {_md(h['host'])} | {_md(h['state'])} | {_md(se)} | {_md(pkgs)} "
            f"| {_md(h['detail'])} |"
        )
    closure = report["cves_closed"]
    lines += ["", "## CVEs", "", f"Source: {_md(closure['source'])}.", ""]
    for label, table in (
        ("closed", closure["closed"]),
        ("patched but not verified", closure["unverified"]),
        ("still open", closure["still_open"]),
    ):
        lines.append(
            f"- {label}: " + ("; ".join(f"{_md(c)} on {len(h)} host(s)" for c, h in table.items()) or "none")
        )
    lines += ["", "## Why this order (ranking explanations)", ""]
    for h in sorted(report["hosts"], key=lambda h: -(h["risk"] or 0))[:50]:
        lines.append(f"- {_md(h['host'])} (risk {h['risk']}):")
        for p in h["packages"]:
            lines.append(
                f"  - {_md(p['name'])} {_md(p['version'])}: risk {p['risk']}; {_md(p['explanation'])}"
            )
    lines += [
        "",
        "## Audit records",
        "",
        "| seq | time | actor | action | subject |",
        "|---|---|---|---|---|",
    ]
    for r in report["audit"]:
        lines.append(
            f"| {r['seq']} | {r['time']} | {_md(r['actor'])} | {_md(r['action'])} | {_md(r['subject'])} |"
        )
    return "\n".join(lines) + "\n"
