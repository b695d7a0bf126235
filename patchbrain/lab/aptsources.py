"""Read the machine's own apt sources (one-line `.list` and deb822 `.sources`) to pick a Debian mirror."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

from patchbrain.errors import EnvironmentProblem

APT_DIR = Path("/etc/apt")


@dataclasses.dataclass(frozen=True)
class AptSource:
    """One enabled `deb` source: a URI, a suite and its components."""

    uri: str
    suite: str
    components: tuple[str, ...]
    origin: str


def parse_one_line(text: str, origin: str) -> Iterator[AptSource]:
    """Sources from a one-line-style `.list` file (`deb [opts] URI SUITE COMPONENT...`)."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] != "deb":
            continue
        rest = words[1:]
        if rest and rest[0].startswith("["):
            # options: `[a=b c=d]`, possibly split over several words
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if len(rest) < 2:
            continue
        yield AptSource(rest[0].rstrip("/"), rest[1], tuple(rest[2:]), origin)


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key: str | None = None
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, None
            continue
        if raw[0] in " \t" and key is not None:
            fields[key] += " " + raw.strip()
            continue
        if ":" not in raw:
            continue
        name, value = raw.split(":", 1)
        key = name.strip().lower()
        fields[key] = value.strip()
    if fields:
        yield fields


def parse_deb822(text: str, origin: str) -> Iterator[AptSource]:
    """Sources from a deb822-style `.sources` file (stanzas of Types/URIs/Suites/Components)."""
    for stanza in _deb822_stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            for suite in stanza.get("suites", "").split():
                yield AptSource(uri.rstrip("/"), suite, components, origin)


def machine_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """Every enabled `deb` source apt itself reads (files with other suffixes are ignored, as apt does)."""
    found: list[AptSource] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        found += parse_one_line(main_list.read_text(errors="replace"), str(main_list))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                found += parse_one_line(path.read_text(errors="replace"), str(path))
            elif path.suffix == ".sources":
                found += parse_deb822(path.read_text(errors="replace"), str(path))
    return found


def pick_mirror(sources: Iterable[AptSource], suite: str) -> str:
    """The URI of a Debian mirror carrying `suite` with its `main` component."""
    candidates = [s for s in sources if s.suite == suite and "main" in s.components]
    for src in candidates:
        if src.uri.startswith(("http://", "https://", "file:/")):
            return src.uri
    raise EnvironmentProblem(
        f"no apt source for Debian {suite} main in /etc/apt (needed to build the lab base with debootstrap)"
    )
