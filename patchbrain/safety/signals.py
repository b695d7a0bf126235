"""Intake of external failure signals (a monitoring system's word that a host is unhealthy).

Signals are distrusted: the safety loop acts on one only when its own health checks, run over its own
channel, confirm the failure on that host; otherwise the signal is audited as suspicious and nothing else
happens (the "patch fatigue" attack: fake failures to get a good patch rolled back).

Formats: a JSON file holding `{"signals": [SIGNAL, ...]}` or a list, or JSON lines; a local Unix stream
socket (mode 0600) taking JSON lines. SIGNAL = {"host": "h03", "status": "failed", "source": "nagios",
"message": "..."}; `status` other than failed/critical/down is recorded and ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from patchbrain.errors import BadInput

log = logging.getLogger(__name__)

FAILING = frozenset({"failed", "failure", "critical", "down", "unhealthy"})
MAX_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Signal:
    """One external signal, as received (text fields cut to 500 characters)."""

    host: str
    status: str
    source: str
    message: str
    origin: str  # file:PATH or socket:PATH
    digest: str  # SHA-256 of the canonical signal, to process each once

    @property
    def failing(self) -> bool:
        return self.status.lower() in FAILING

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def _signal(raw: Any, origin: str) -> Signal:
    if not isinstance(raw, dict) or not isinstance(raw.get("host"), str):
        raise BadInput("a signal is an object with a string 'host'", source=origin)
    text = {k: str(raw.get(k, ""))[:500] for k in ("host", "status", "source", "message")}
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    return Signal(text["host"], text["status"] or "failed", text["source"], text["message"], origin, digest)


def parse_signals(text: str, *, origin: str) -> list[Signal]:
    """Signals from a JSON document or JSON lines (BadInput names the origin and line)."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        doc = json.loads(stripped)
        if isinstance(doc, dict):
            items = doc.get("signals", []) if "signals" in doc or "host" not in doc else [doc]
        else:
            items = doc
        if not isinstance(items, list):
            raise BadInput("'signals' must be a list", source=origin)
        return [_signal(item, origin) for item in items]
    except json.JSONDecodeError:
        pass
    out = []
    for lineno, line in enumerate(stripped.splitlines(), 1):
        if line.strip():
            try:
                out.append(_signal(json.loads(line), origin))
            except json.JSONDecodeError as exc:
                raise BadInput(f"line {lineno}: not JSON ({exc.msg})", source=origin) from exc
    return out


class SignalIntake:
    """Collects signals from a file (re-read on each `drain`) and a socket (read by a thread)."""

    def __init__(self, file: Path | None = None, sock: Path | None = None) -> None:
        self.file = file
        self.sock_path = sock
        self._seen: set[str] = set()
        self._queue: list[Signal] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def start(self) -> None:
        if self.sock_path is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if self.sock_path.is_socket():
                self.sock_path.unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            server.bind(str(self.sock_path))
        finally:
            os.umask(old)
        server.listen(8)
        server.settimeout(1.0)
        self._server = server
        self._thread = threading.Thread(target=self._serve, name="patchbrain-signals", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._server is not None
        while self._server is not None:
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5.0)
                data = b""
                with contextlib.suppress(OSError):
                    while len(data) <= MAX_BYTES and (chunk := conn.recv(65536)):
                        data += chunk
            origin = f"socket:{self.sock_path}"
            try:
                got = parse_signals(data[:MAX_BYTES].decode("utf-8", errors="replace"), origin=origin)
            except BadInput as exc:
                self.errors.append(str(exc))
                continue
            with self._lock:
                self._queue.extend(got)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.sock_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.sock_path.unlink()

    def drain(self) -> Iterator[Signal]:
        """Signals not seen before, from the file and the socket."""
        got: list[Signal] = []
        if self.file is not None and self.file.exists():
            origin = f"file:{self.file}"
            try:
                data = self.file.read_bytes()[:MAX_BYTES].decode("utf-8", errors="replace")
                got += parse_signals(data, origin=origin)
            except (OSError, BadInput) as exc:
                self.errors.append(str(exc))
        with self._lock:
            got += self._queue
            self._queue = []
        for sig in got:
            if sig.digest not in self._seen:
                self._seen.add(sig.digest)
                yield sig

    def take_errors(self) -> list[str]:
        errors, self.errors = self.errors, []
        return errors
