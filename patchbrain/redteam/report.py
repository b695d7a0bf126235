"""The red-team report: Markdown (per scenario: what was attacked, what patchbrain did, the evidence) and
JSON. Every untrusted string (refusal messages quote feed and plan content) is escaped for Markdown."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from patchbrain.redteam.base import ScenarioResult

_ICON = {"passed": "PASS", "failed": "FAIL", "unavailable": "NOT AVAILABLE", "error": "ERROR"}


def _md(text: str) -> str:
    """One line of untrusted text, safe inside Markdown (no markup, no HTML, no line breaks)."""
    out = " ".join(str(text).split())
    for ch in "\\`*_{}[]<>()#+!|~":
        out = out.replace(ch, "\\" + ch)
    return out


def document(
    results: Sequence[ScenarioResult], *, target: str, disabled: Sequence[str], strict: bool = False
) -> dict[str, Any]:
    """The run as JSON-ready data."""
    return {
        "target": target,
        "disabled_defences": list(disabled),
        "passed": suite_passed(results, disabled, strict=strict),
        "not_available": [r.name for r in results if r.status == "unavailable"],
        "selinux_simulated": _simulated(results),
        "scenarios": [r.to_dict() for r in results],
    }


def _simulated(results: Sequence[ScenarioResult]) -> list[str]:
    """Every host whose SELinux results in this run are simulated (read by the verifier from the host)."""
    return sorted({h for r in results for h in r.selinux_simulated})


def suite_passed(results: Sequence[ScenarioResult], disabled: Sequence[str], *, strict: bool = False) -> bool:
    """Passed: no defence switched off, at least one scenario passed, and every scenario passed; with
    `strict` False a scenario that is not available here is left out (it is never counted as passed)."""
    if disabled or not any(r.passed for r in results):
        return False
    return all(r.passed or (r.status == "unavailable" and not strict) for r in results)


def markdown(
    results: Sequence[ScenarioResult], *, target: str, disabled: Sequence[str], strict: bool = False
) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# patchbrain red-team report ({now})", "", f"Target: {_md(target)}", ""]
    if disabled:
        lines += [
            f"**DEFENCES SWITCHED OFF by the test-only hook: {_md(', '.join(disabled))}. "
            "This run shows what happens without them; it is not a result for this installation.**",
            "",
        ]
    simulated = _simulated(results)
    if simulated:
        lines += [
            f"**SELinux is simulated on {len(simulated)} host(s)** ({_md(', '.join(simulated))}): the lab's "
            "stand-in (a shim; /etc/selinux/SIMULATED read from each host), not a kernel enforcing a policy. "
            "SELinux results below are the stand-in's.",
            "",
        ]
    lines += ["| # | scenario | result | checks passed | time |", "|---|---|---|---|---|"]
    for r in results:
        ok = sum(c.passed for c in r.checks)
        lines.append(
            f"| {_number(r)} | {_md(r.name)} | {_ICON[r.status]} | {ok}/{len(r.checks)} | {r.seconds:.1f} s |"
        )
    lines.append("")
    verdict = "PASSED" if suite_passed(results, disabled, strict=strict) else "NOT PASSED"
    missing = [r.name for r in results if r.status == "unavailable"]
    note = (
        f" ({len(missing)} not available, not counted as passed: {_md(', '.join(missing))})"
        if missing
        else ""
    )
    lines += [f"Suite: **{verdict}**{note}", ""]
    for r in results:
        lines += [
            f"## {_number(r)}. {_md(r.name)}: {_ICON[r.status]}",
            "",
            f"Attacked: {_md(r.attacked)}",
            "",
        ]
        if r.disabled:
            lines += [f"Defences switched off for this run: {_md(', '.join(r.disabled))}", ""]
        if r.detail:
            lines += [_md(r.detail), ""]
        for c in r.checks:
            lines.append(f"- **{'PASS' if c.passed else 'FAIL'}** {_md(c.attack)}")
            lines.append(f"  - patchbrain: {_md(c.outcome)}")
            if c.selinux_simulated:
                lines.append(f"  - SELinux: simulated on {_md(', '.join(c.selinux_simulated))}")
            for e in c.evidence:
                ref = f" (ref {_md(e.ref)})" if e.ref else ""
                lines.append(f"  - {e.kind}{ref}: {_md(e.text)}")
        lines.append("")
    return "\n".join(lines)


_NUMBERS: dict[str, int] = {}


def _number(r: ScenarioResult) -> str:
    if not _NUMBERS:
        from patchbrain.redteam.registry import scenarios

        _NUMBERS.update({s.name: s.number for s in scenarios()})
    return str(_NUMBERS.get(r.name, "?"))
