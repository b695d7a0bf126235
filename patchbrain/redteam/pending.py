"""Scenarios not written yet: the safety loop's drift halt and signal intake (issue #7) and fault handling
(issue #8) landed on main at the end of session 2, after these were registered.

They are registered so `redteam list` shows them, and `redteam run` reports each as "not available: ..."
(never a pass; a run that asks for one exits non-zero), naming the missing part or saying that the part is
there and the scenario is not written yet.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from patchbrain.redteam.base import Check, Context, Scenario, Unavailable


def _missing(*modules: str) -> list[str]:
    out = []
    for m in modules:
        try:
            found = importlib.util.find_spec(m) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            out.append(m)
    return out


def _pending(what: str, *modules: str) -> Callable[[Context], list[Check]]:
    def run(ctx: Context) -> list[Check]:
        missing = _missing(*modules)
        if missing:
            raise Unavailable(f"{what}: {', '.join(missing)} missing")
        raise Unavailable(f"{what} is on main ({', '.join(modules)}), but this scenario is not written yet")

    return run


SCENARIOS = (
    Scenario(
        name="orchestration-sabotage",
        number=3,
        title="Orchestration sabotage",
        attacked="a 'critical' update whose maintainer scripts weaken the firewall or SELinux: drift halt at "
        "the "
        "canary, restore, blast radius",
        defences=("drift-halt",),
        needs_hosts=True,
        run=_pending("the safety loop's drift halt and rollback (issue #7)", "patchbrain.safety"),
    ),
    Scenario(
        name="fake-failure-telemetry",
        number=5,
        title="Fake failure telemetry",
        attacked="the failure-signal intake: synthetic failures for healthy hosts must trigger no rollback",
        defences=("signal-verification",),
        needs_hosts=True,
        run=_pending("the failure-signal intake (issue #7)", "patchbrain.safety"),
    ),
    Scenario(
        name="faults",
        number=9,
        title="Faults",
        attacked="host killed mid-wave, SSH dropped, lock held, disk full, controller killed and resumed",
        defences=("resume",),
        needs_hosts=True,
        run=_pending("fault handling and resume (issue #8)", "patchbrain.executor.lock"),
    ),
)
