"""Settings of the safety loop: bakes, settle time, verifier, health checks, signal intake."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from patchbrain.errors import BadInput
from patchbrain.posture.policy import Policy

_DURATION = re.compile(r"^\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s?)?\s*$")
MAX_BAKE_S = 7 * 24 * 3600
CANARY_BAKE_S = 120
BAREMETAL_BAKE_S = 600


def parse_seconds(text: str, *, source: str, field: str) -> int:
    """`90`, `90s`, `2m`, `1h 30m` as seconds (0 allowed, at most 7 days)."""
    m = _DURATION.match(str(text))
    if not m or not str(text).strip() or not any(m.groups()):
        raise BadInput(f"duration {text!r} is not like '90s', '2m' or '1h 30m'", source=source, field=field)
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    value = h * 3600 + mi * 60 + s
    if value > MAX_BAKE_S:
        raise BadInput(f"duration {text!r} is more than 7 days", source=source, field=field)
    return value


def _env_seconds(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw is None else parse_seconds(raw, source="environment", field=name)


@dataclasses.dataclass(frozen=True, slots=True)
class SafetyOptions:
    """How the safety loop runs. `from_env()` reads the PATCHBRAIN_* overrides.

    canary_bake_s     wait after the canary before the next wave, then re-snapshot (the plan's bake is
                      used when longer); default 120 s ($PATCHBRAIN_CANARY_BAKE)
    baremetal_bake_s  the canary's bake when it holds a bare-metal host; default 600 s
                      ($PATCHBRAIN_BAREMETAL_BAKE)
    max_baremetal_canary  bare-metal hosts allowed in the canary (default 1)
    settle_s          wait after a rollback before the host is read again
    health_confirm_s  wait before re-running a failed health check (a failure counts when seen twice)
    signals_file      JSON file of external failure signals, read after every wave
    signals_socket    a local Unix socket a monitoring system writes JSON lines to
    policy            the posture policy (allow-lists; unknown: abort or warn)
    """

    enabled: bool = True
    canary_bake_s: int = CANARY_BAKE_S
    baremetal_bake_s: int = BAREMETAL_BAKE_S
    max_baremetal_canary: int = 1
    settle_s: int = 3
    verify: bool = True
    verify_timeout_s: float = 30.0
    health_confirm_s: float = 5.0
    signals_file: Path | None = None
    signals_socket: Path | None = None
    policy: Policy = dataclasses.field(default_factory=Policy)
    workers: int = 8

    @classmethod
    def from_env(cls, **overrides: object) -> SafetyOptions:
        """Defaults, then $PATCHBRAIN_CANARY_BAKE / $PATCHBRAIN_BAREMETAL_BAKE, then `overrides`."""
        base = cls(
            canary_bake_s=_env_seconds("PATCHBRAIN_CANARY_BAKE", CANARY_BAKE_S),
            baremetal_bake_s=_env_seconds("PATCHBRAIN_BAREMETAL_BAKE", BAREMETAL_BAKE_S),
        )
        return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
