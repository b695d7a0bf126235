"""Maintenance windows: iCal recurrence rules (RFC 5545, parsed by dateutil.rrule) with a duration."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re

from dateutil import rrule

from patchbrain.errors import BadInput

_DURATION = re.compile(r"^\s*(?:(?P<d>\d+)d)?\s*(?:(?P<h>\d+)h)?\s*(?:(?P<m>\d+)m)?\s*$")
_MAX_DURATION = dt.timedelta(days=7)
_DEFAULT_DTSTART = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@functools.lru_cache(maxsize=1024)
def _compile(rule: str, dtstart: dt.datetime) -> rrule.rrule | rrule.rruleset:
    """Parse a rule once; `cache=True` keeps computed occurrences (planning asks the same rules often)."""
    return rrule.rrulestr(rule, dtstart=dtstart, cache=True)


@dataclasses.dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A recurring window: starts at each occurrence of `rule` (UTC) and lasts `duration`."""

    rule: str
    duration: dt.timedelta
    dtstart: dt.datetime = _DEFAULT_DTSTART

    def _rrule(self) -> rrule.rrule | rrule.rruleset:
        return _compile(self.rule, self.dtstart)

    def contains(self, when: dt.datetime) -> bool:
        """True if `when` (timezone-aware) falls inside an occurrence of this window."""
        start = self._rrule().before(when, inc=True)
        return start is not None and when < start + self.duration

    def next_open(self, after: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        """The window occurrence containing `after`, else the next one: (start, end), or None if none."""
        start = self._rrule().before(after, inc=True)
        if start is not None and after < start + self.duration:
            return start, start + self.duration
        start = self._rrule().after(after)
        return None if start is None else (start, start + self.duration)


def parse_duration(text: str, *, source: str, field: str) -> dt.timedelta:
    """Parse "4h", "90m", "1d 2h" into a timedelta (positive, at most 7 days)."""
    match = _DURATION.match(str(text))
    if not match or not any(match.groupdict().values()):
        raise BadInput(f"duration {text!r} is not like '4h', '90m' or '1d 2h'", source=source, field=field)
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    value = dt.timedelta(days=parts.get("d", 0), hours=parts.get("h", 0), minutes=parts.get("m", 0))
    if not dt.timedelta(0) < value <= _MAX_DURATION:
        raise BadInput(
            f"duration {text!r} must be more than 0 and at most 7 days", source=source, field=field
        )
    return value


def parse_window(raw: object, *, source: str, field: str) -> MaintenanceWindow:
    """Validate one window mapping {rrule: "FREQ=...", duration: "4h", [dtstart: ISO-8601]}."""
    if not isinstance(raw, dict):
        raise BadInput("a window must be a mapping with 'rrule' and 'duration'", source=source, field=field)
    unknown = sorted(set(raw) - {"rrule", "duration", "dtstart"})
    if unknown:
        raise BadInput(f"unknown keys {unknown}", source=source, field=field)
    rule = raw.get("rrule")
    if not isinstance(rule, str) or not rule.strip():
        raise BadInput(
            "missing 'rrule' (e.g. FREQ=WEEKLY;BYDAY=SA;BYHOUR=2)", source=source, field=f"{field}.rrule"
        )
    dtstart = _DEFAULT_DTSTART
    if "dtstart" in raw:
        try:
            dtstart = dt.datetime.fromisoformat(str(raw["dtstart"]))
        except ValueError as exc:
            raise BadInput(f"not an ISO-8601 time: {exc}", source=source, field=f"{field}.dtstart") from exc
        if dtstart.tzinfo is None:
            dtstart = dtstart.replace(tzinfo=dt.UTC)
    duration = parse_duration(str(raw.get("duration", "")), source=source, field=f"{field}.duration")
    window = MaintenanceWindow(rule=rule.strip(), duration=duration, dtstart=dtstart)
    try:
        first = window._rrule().after(dtstart, inc=True)
    except (ValueError, TypeError) as exc:
        raise BadInput(f"not an iCal RRULE: {exc}", source=source, field=f"{field}.rrule") from exc
    if first is None:
        raise BadInput("the rule never occurs", source=source, field=f"{field}.rrule")
    return window
