"""Messages the TUI's workers post to screens: small dataclasses, nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from tui.backend import RolloutEnd, RolloutEvent


@dataclass
class RolloutProgress(Message):
    """One event from a running rollout (posted from the worker thread)."""

    event: RolloutEvent


@dataclass
class RolloutFinished(Message):
    """The rollout returned: done, halted, canceled or failed."""

    end: RolloutEnd


@dataclass
class ActionFailed(Message):
    """A backend call failed; `text` is shown to the user as is."""

    text: str
