"""The wave rule, one for the whole project.

A wave spec is a comma-separated list such as `1,10%,50%,100%`:
  * the FIRST item is the canary size: a host count, or a percentage of all hosts (rounded up, at least 1);
  * every LATER item is a cumulative share of the hosts REMAINING after the canary: a percentage of them
    (rounded up) or a host count (clamped to what remains).
Cumulative shares must not decrease, and the last one must cover every remaining host (`100%`, or a count
at least that large), so no host is silently left out. Items that add no host give no wave.

Example: 30 hosts with `1,10%,50%,100%` give waves of 1, 3, 12 and 14 hosts (29 remain after the canary:
10% of 29 rounds up to 3, 50% to 15 cumulative, 100% to 29).
"""

from __future__ import annotations

import dataclasses
import math
import re

from patchbrain.errors import BadInput

DEFAULT_SPEC = "1,10%,50%,100%"
_ITEM = re.compile(r"^\s*([0-9]{1,6})(%?)\s*$")


@dataclasses.dataclass(frozen=True, slots=True)
class Share:
    """One item of a wave spec: a count, or a percentage when `percent` is true."""

    value: int
    percent: bool

    def of(self, total: int) -> int:
        """How many of `total` hosts this share names (percentages round up; counts are clamped)."""
        if self.percent:
            return min(total, math.ceil(total * self.value / 100))
        return min(total, self.value)


def parse_spec(spec: str) -> tuple[Share, ...]:
    """Parse `1,10%,50%,100%` into shares; BadInput names the bad item."""
    items = spec.split(",")
    shares: list[Share] = []
    for i, item in enumerate(items):
        m = _ITEM.match(item)
        if m is None:
            raise BadInput(f"item {i + 1} ({item!r}) is not a count or a percentage", field="--waves")
        share = Share(int(m.group(1)), m.group(2) == "%")
        if share.percent and not 0 < share.value <= 100:
            raise BadInput(
                f"item {i + 1} ({item.strip()}) must be a percentage from 1 to 100", field="--waves"
            )
        if share.value == 0:
            raise BadInput(f"item {i + 1} must be at least 1", field="--waves")
        shares.append(share)
    return tuple(shares)


def wave_sizes(n_hosts: int, spec: str | tuple[Share, ...] = DEFAULT_SPEC) -> list[int]:
    """Split `n_hosts` into wave sizes by the project's wave rule (see the module docstring)."""
    if n_hosts < 0:
        raise ValueError("n_hosts must not be negative")
    shares = parse_spec(spec) if isinstance(spec, str) else spec
    if not shares:
        raise BadInput("a wave spec needs at least the canary size", field="--waves")
    if n_hosts == 0:
        return []
    canary = max(1, shares[0].of(n_hosts))
    remaining = n_hosts - canary
    sizes = [canary]
    done = 0
    for i, share in enumerate(shares[1:], start=2):
        cumulative = share.of(remaining)
        if cumulative < done:
            raise BadInput(
                f"item {i} covers {cumulative} remaining hosts, fewer than the {done} before it; "
                "later items are cumulative",
                field="--waves",
            )
        if cumulative > done:
            sizes.append(cumulative - done)
            done = cumulative
    if done < remaining:
        raise BadInput(
            f"the spec covers {canary + done} of {n_hosts} hosts; end it with 100% so no host is left out",
            field="--waves",
        )
    return sizes
