"""JSON-lines text: one document per non-blank line; a line that is not JSON is BadInput naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from patchbrain.errors import BadInput


def iter_json_lines(text: str, source: str) -> Iterator[tuple[int, Any]]:
    """`(line number, document)` for each non-blank line of `text`; errors name `source:line`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"not JSON ({exc.msg})", source=f"{source}:{number}") from exc
