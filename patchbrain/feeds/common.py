"""Helpers every feed parser shares: the feed error, opening (gzip or not), typed fields, times, CVSS."""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import io
import json
import logging
import re
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from patchbrain.errors import BadInput

log = logging.getLogger(__name__)

CVE_ID_RE = re.compile(r"^CVE-[0-9]{4}-[0-9]{4,19}$")
_GZIP_MAGIC = b"\x1f\x8b"


class FeedError(BadInput):
    """A feed file that patchbrain refuses: names the file and the record (and field) at fault."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        super().__init__(message, source=source, field=field)
        self.message = message


# Errors that a truncated, corrupt or non-UTF-8 file raises while being read.
READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    UnicodeDecodeError,
    ValueError,
)


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic (whatever its name says)."""
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def open_binary(path: Path) -> IO[bytes]:
    """Open a feed file for reading bytes, transparently decompressing gzip."""
    try:
        if is_gzip(path):
            return gzip.GzipFile(path, "rb")  # type: ignore[return-value]
        return path.open("rb")
    except OSError as exc:
        raise FeedError(f"cannot read: {exc.strerror or exc}", source=str(path)) from exc


def open_text(path: Path) -> IO[str]:
    """Open a feed file as UTF-8 text (gzip or not); a BOM is dropped."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline="")


def head_bytes(path: Path, size: int = 4096) -> bytes:
    """The first `size` bytes of the (decompressed) file, for format detection."""
    try:
        with open_binary(path) as fh:
            return fh.read(size)
    except READ_ERRORS as exc:
        raise FeedError(f"cannot read: {exc}", source=str(path)) from exc


class Ctx:
    """Where we are: the file and the record, for error messages."""

    __slots__ = ("record", "source")

    def __init__(self, source: str, record: str = "") -> None:
        self.source = source
        self.record = record

    def error(self, message: str, field: str | None = None) -> FeedError:
        where = f"record {self.record}" if self.record else None
        f = ": ".join(p for p in (where, field) if p) or None
        return FeedError(message, source=self.source, field=f)


_T = TypeVar("_T")


def read_json_file(path: Path, ctx: Ctx, max_bytes: int, what: str = "") -> Any:
    """The parsed JSON of one (optionally gzipped) file of at most `max_bytes`; errors name the file."""
    try:
        with open_text(path) as fh:
            text = fh.read(max_bytes + 1)
    except READ_ERRORS as exc:
        raise ctx.error(f"cannot read: {exc}") from exc
    if len(text) > max_bytes:
        raise ctx.error(f"larger than {max_bytes} bytes{what}")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ctx.error(f"not valid JSON: {exc}") from exc


def iter_files(path: Path, pattern: str, load: Callable[[Path], list[_T]]) -> Iterator[_T]:
    """What `load` gives for one file, or for every file matching `pattern` under a folder, sorted."""
    path = Path(path)
    if path.is_dir():
        for file in sorted(path.rglob(pattern)):
            yield from load(file)
        return
    yield from load(path)


def get_map(obj: Mapping[str, Any], key: str, ctx: Ctx, *, required: bool = False) -> Mapping[str, Any]:
    """obj[key] as a JSON object ({} when absent and not required)."""
    value = obj.get(key)
    if value is None:
        if required:
            raise ctx.error("missing object", key)
        return {}
    if not isinstance(value, Mapping):
        raise ctx.error(f"expected an object, got {type(value).__name__}", key)
    return value


def get_list(obj: Mapping[str, Any], key: str, ctx: Ctx, *, required: bool = False) -> Sequence[Any]:
    """obj[key] as a JSON array ([] when absent and not required)."""
    value = obj.get(key)
    if value is None:
        if required:
            raise ctx.error("missing array", key)
        return []
    if not isinstance(value, list):
        raise ctx.error(f"expected an array, got {type(value).__name__}", key)
    return value


def get_str(obj: Mapping[str, Any], key: str, ctx: Ctx, *, required: bool = False) -> str | None:
    """obj[key] as a string (None when absent and not required)."""
    value = obj.get(key)
    if value is None:
        if required:
            raise ctx.error("missing string", key)
        return None
    if not isinstance(value, str):
        raise ctx.error(f"expected a string, got {type(value).__name__}", key)
    return value


def get_float(obj: Mapping[str, Any], key: str, ctx: Ctx) -> float | None:
    """obj[key] as a finite number (None when absent)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            number = float(value)  # e.g. a Decimal
        except (TypeError, ValueError):
            raise ctx.error(f"expected a number, got {type(value).__name__}", key) from None
    else:
        number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ctx.error("expected a finite number", key)
    return number


def as_map(value: Any, ctx: Ctx, field: str) -> Mapping[str, Any]:
    """`value` itself as a JSON object."""
    if not isinstance(value, Mapping):
        raise ctx.error(f"expected an object, got {type(value).__name__}", field)
    return value


def check_cve_id(value: str | None, ctx: Ctx, field: str = "id") -> str:
    """A well-formed CVE identifier (CVE-YYYY-NNNN...)."""
    if value is None or not CVE_ID_RE.fullmatch(value):
        raise ctx.error(f"not a CVE identifier: {str(value)[:60]!r}", field)
    return value


_TZ_RE = re.compile(r"([+-][0-9]{2})([0-9]{2})$")


@functools.lru_cache(maxsize=65536)
def _parse_time_cached(text: str) -> dt.datetime | None:
    s = text.strip()
    if not s:
        return None
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    s = _TZ_RE.sub(r"\1:\2", s)
    try:
        value = dt.datetime.fromisoformat(s)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None


def parse_time(text: str | None, ctx: Ctx, field: str) -> dt.datetime | None:
    """An ISO-8601 time as the feeds write it ("2019-01-15T21:29Z", "...+0000", no zone = UTC)."""
    if text is None or not text.strip():
        return None
    value = _parse_time_cached(text)
    if value is None:
        raise ctx.error(f"not a time: {text[:40]!r}", field)
    return value


def parse_date(text: str | None, ctx: Ctx, field: str) -> dt.date | None:
    """A YYYY-MM-DD date (None for an empty value)."""
    if text is None or not text.strip():
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ctx.error(f"not a date: {text[:40]!r}", field) from None


@functools.lru_cache(maxsize=16384)
def _cvss3(vector: str) -> tuple[str, float] | None:
    from cvss import CVSS3, CVSSError  # lazy: only parsers need it

    try:
        c = CVSS3(vector)
    except (CVSSError, ValueError, KeyError, IndexError, ArithmeticError):
        return None
    return c.clean_vector(), float(c.base_score)


@functools.lru_cache(maxsize=16384)
def _cvss2(vector: str) -> tuple[str, float] | None:
    from cvss import CVSS2, CVSSError

    try:
        c = CVSS2(vector)
    except (CVSSError, ValueError, KeyError, IndexError, ArithmeticError):
        return None
    return c.clean_vector(), float(c.base_score)


@functools.lru_cache(maxsize=16384)
def _cvss4(vector: str) -> tuple[str, float] | None:
    from cvss import CVSS4, CVSSError

    try:
        c = CVSS4(vector)
    except (CVSSError, ValueError, KeyError, IndexError, ArithmeticError):
        return None
    return c.clean_vector(), float(c.base_score)


def cvss(version: int, vector: str, ctx: Ctx, field: str, claimed: float | None = None) -> tuple[str, float]:
    """Validate a CVSS vector with the `cvss` library: (its clean form, the base score it computes).

    The score always comes from the vector, never from the feed's own number, so a feed cannot claim a
    severity its vector does not support; a `claimed` score that disagrees is logged.
    """
    parse = {2: _cvss2, 3: _cvss3, 4: _cvss4}[version]
    got = parse(vector.strip()) if len(vector) < 300 else None
    if got is None:
        raise ctx.error(f"not a valid CVSS v{version} vector: {vector[:80]!r}", field)
    if claimed is not None and abs(claimed - got[1]) > 0.05:
        log.warning(
            "%s: record %s: %s claims base score %s but its vector %s scores %s; using %s",
            ctx.source,
            ctx.record,
            field,
            claimed,
            got[0],
            got[1],
            got[1],
        )
    return got
