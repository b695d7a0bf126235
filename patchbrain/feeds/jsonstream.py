"""Stream the elements of one top-level JSON array (NVD's CVE_Items, vulnerabilities) with bounded memory.

Each element is decoded by the standard library's C decoder from a sliding text buffer, so memory stays
at one chunk plus the largest element; deep nesting ends in a clear error instead of exhausting memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import IO, Any

from patchbrain.feeds.common import Ctx

_WS = " \t\r\n"
_CHUNK = 1 << 20
MAX_ELEMENT_CHARS = 64 * 1024 * 1024
_NUMBER_LOOKAHEAD = 64


class _Reader:
    def __init__(self, fh: IO[str], ctx: Ctx, chunk: int, max_chars: int) -> None:
        self.fh, self.ctx, self.chunk, self.max_chars = fh, ctx, chunk, max_chars
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.decoder = json.JSONDecoder()

    def fill(self, at_least: int = 0) -> bool:
        if self.eof:
            return False
        data = self.fh.read(max(self.chunk, at_least))
        if not data:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
        return True

    def peek(self) -> str:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def expect(self, ch: str) -> None:
        got = self.peek()
        if got != ch:
            raise self.ctx.error(f"not valid JSON: expected {ch!r}, got {got[:1]!r}")
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                pending = len(self.buf) - self.pos
                if pending > self.max_chars:
                    raise self.ctx.error(
                        f"a JSON element is larger than {self.max_chars} characters"
                    ) from None
                if self.fill(at_least=pending):  # maybe only cut short by the buffer: read more, retry
                    continue
                raise self.ctx.error(
                    f"not valid JSON: {exc.msg} (at element offset {exc.pos - self.pos})"
                ) from None
            except RecursionError:
                raise self.ctx.error("not valid JSON: nested too deeply") from None
            if (
                isinstance(obj, int | float)
                and len(self.buf) - end < _NUMBER_LOOKAHEAD
                and self.fill(at_least=len(self.buf) - self.pos)
            ):
                continue  # a bare number near the end of the buffer ("0." "1e") may go on in the next chunk
            self.pos = end
            return obj


def iter_array(
    fh: IO[str],
    key: str,
    ctx: Ctx,
    *,
    on_header: Callable[[str, Any], None] | None = None,
    stop_at_array: bool = False,
    chunk: int = _CHUNK,
    max_element_chars: int = MAX_ELEMENT_CHARS,
) -> Iterator[Any]:
    """Yield each element of the array under top-level `key`; other top-level members go to `on_header`.

    With `stop_at_array`, stop when the array begins (to read a header cheaply). Errors are `FeedError`s
    naming `ctx`'s file and record; a document without `key` yields nothing.
    """
    r = _Reader(fh, ctx, chunk, max_element_chars)
    r.expect("{")
    if r.peek() == "}":
        r.pos += 1
        _expect_end(r, ctx)
        return
    while True:
        name = r.value()
        if not isinstance(name, str):
            raise ctx.error("not valid JSON: object key is not a string")
        r.expect(":")
        if name == key and r.peek() == "[":
            if stop_at_array:
                return
            r.pos += 1
            if r.peek() == "]":
                r.pos += 1
            else:
                n = 0
                while True:
                    ctx.record = f"#{n}"
                    yield r.value()
                    n += 1
                    sep = r.peek()
                    r.pos += 1
                    if sep == "]":
                        break
                    if sep != ",":
                        raise ctx.error(f"not valid JSON: expected ',' or ']' in {key}, got {sep[:1]!r}")
        else:
            value = r.value()
            if on_header is not None:
                on_header(name, value)
        sep = r.peek()
        r.pos += 1
        if sep == "}":
            break
        if sep != ",":
            raise ctx.error(f"not valid JSON: expected ',' or '}}', got {sep[:1]!r}")
    _expect_end(r, ctx)


def _expect_end(r: _Reader, ctx: Ctx) -> None:
    """Nothing but white space may follow the document's closing brace."""
    ctx.record = ""
    if r.peek() != "":
        raise ctx.error("not valid JSON: data after the end of the document")
