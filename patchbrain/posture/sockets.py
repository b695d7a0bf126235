"""Parse `ss -H -tulpn` (listening TCP and UDP sockets) into Socket records."""

from __future__ import annotations

import re

from patchbrain.errors import BadInput
from patchbrain.posture.models import Socket

_PROC = re.compile(r'users:\(\("([^"]*)"')


def split_endpoint(text: str) -> tuple[str, int]:
    """`[::1]:22`, `0.0.0.0:68`, `*:123`, `127.0.0.53%lo:53` as (address, port)."""
    addr, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"no port in {text!r}")
    if addr.startswith("[") and addr.endswith("]"):
        addr = addr[1:-1]
    return addr, int(port)


def parse_ss(text: str, *, host: str) -> tuple[Socket, ...]:
    """Every listening socket, sorted; the same socket on several processes appears once."""
    source = f"{host}: ss -H -tulpn"
    if "\0" in text:
        raise BadInput("binary data where ss output was expected", source=source)
    out: set[Socket] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        cols = line.split()
        if not cols:
            continue
        if len(cols) < 6 or cols[0] not in ("tcp", "udp"):
            raise BadInput(f"line {lineno}: not an ss socket line: {line[:60]!r}", source=source)
        try:
            addr, port = split_endpoint(cols[4])
        except ValueError as exc:
            raise BadInput(f"line {lineno}: {exc}", source=source, field="Local Address:Port") from exc
        m = _PROC.search(line)
        out.add(Socket(cols[0], addr, port, m.group(1) if m else ""))
    return tuple(sorted(out, key=lambda s: (s.proto, s.port, s.address, s.process)))
