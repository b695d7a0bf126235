"""Rich progress bars for runs and waves, on stderr only (stdout stays clean for --json)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TERMINAL = frozenset({"patched", "unchanged", "failed", "unreachable", "mismatch", "skipped", "canceled"})


class Progress:
    """Hooks for `executor.rollout` / `executor.runner` that draw bars; inert when stderr is no terminal."""

    def __init__(self, *, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._lock = threading.Lock()
        self._bar: Any = None
        self._waves: Any = None
        self._hosts: Any = None
        self._done: set[str] = set()

    @contextmanager
    def session(self, title: str, *, waves: int = 0, hosts: int = 0) -> Iterator[Progress]:
        if not self.enabled:
            yield self
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        with bar:
            self._bar = bar
            if waves:
                self._waves = bar.add_task(f"{title}: waves", total=waves)
            self._hosts = bar.add_task(f"{title}: hosts", total=hosts or None)
            yield self
        self._bar = None

    def wave_state(self, index: int, state: str) -> None:
        if self._bar is None:
            return
        with self._lock:
            if state == "running":
                self._bar.update(self._hosts, description=f"wave {index + 1}: hosts")
            elif self._waves is not None:
                self._bar.advance(self._waves)

    def host_state(self, host: str, state: str, detail: str) -> None:
        if self._bar is None or state not in TERMINAL:
            return
        with self._lock:
            if host not in self._done:
                self._done.add(host)
                self._bar.advance(self._hosts)

    def host_done(self, host: str) -> None:
        self.host_state(host, "patched", "")
