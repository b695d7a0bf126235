"""Machine-readable output: one JSON encoder for every `--json` flag."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from pathlib import Path
from typing import IO, Any


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, dt.datetime | dt.date):
        return obj.isoformat()
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """Encode `obj` (dataclasses, datetimes, paths, enums included) as stable, sorted JSON."""
    return json.dumps(obj, default=_default, indent=indent, sort_keys=True, ensure_ascii=False)


def emit(obj: Any, stream: IO[str]) -> None:
    """Write `obj` as JSON followed by a newline."""
    stream.write(dumps(obj))
    stream.write("\n")
