"""Every red-team scenario, in the issue's order (one module per scenario family)."""

from __future__ import annotations

from collections.abc import Sequence

from patchbrain.errors import BadInput
from patchbrain.redteam.base import Scenario


def scenarios() -> tuple[Scenario, ...]:
    """All scenarios, ordered by the issue's numbering (each says at run time when it cannot run here)."""
    from patchbrain.redteam import (
        audit_scenario,
        faults,
        feeds,
        injection,
        model,
        plans,
        sabotage,
        selfreport,
        telemetry,
    )

    found = (
        feeds.SCENARIO,
        sabotage.SCENARIO,
        telemetry.SCENARIO,
        model.SCENARIO,
        plans.SCENARIO,
        audit_scenario.SCENARIO,
        injection.SCENARIO,
        selfreport.SCENARIO,
        faults.SCENARIO,
    )
    return tuple(sorted(found, key=lambda s: s.number))


def select(names: Sequence[str]) -> tuple[Scenario, ...]:
    """The named scenarios (all when `names` is empty); BadInput names an unknown one."""
    every = scenarios()
    if not names:
        return every
    by_name = {s.name: s for s in every}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise BadInput(
            f"unknown scenario(s) {', '.join(unknown)}; see `patchbrain redteam list`", field="--scenario"
        )
    return tuple(by_name[n] for n in dict.fromkeys(names))
