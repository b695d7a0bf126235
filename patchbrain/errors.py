"""The project's error tree; each error carries the CLI exit code it maps to."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit codes, one rule for every command."""

    OK = 0
    INTERNAL = 1
    BAD_INPUT = 2
    DRIFT = 3
    FAILURES = 4
    REFUSED = 5


class PatchbrainError(Exception):
    """Base of every error patchbrain raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL


class BadInput(PatchbrainError):
    """Input that patchbrain refuses: names the input (file, host, record) and the field."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        self.source = source
        self.field = field
        where = ", ".join(p for p in (source, f"field {field!r}" if field else None) if p)
        super().__init__(f"{where}: {message}" if where else message)


class DriftDetected(PatchbrainError):
    """A change that weakens security controls was found (or could not be proven safe)."""

    exit_code = ExitCode.DRIFT


class HaltedOnFailures(PatchbrainError):
    """A rollout stopped because too many hosts failed."""

    exit_code = ExitCode.FAILURES


class RefusedByPolicy(PatchbrainError):
    """Refused by policy: missing or invalid approval, a failed gate, a lock held by someone else."""

    exit_code = ExitCode.REFUSED


class EnvironmentProblem(PatchbrainError):
    """The machine cannot do what was asked (not root, missing kernel feature, missing tool)."""

    exit_code = ExitCode.BAD_INPUT
