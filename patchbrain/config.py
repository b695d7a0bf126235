"""Where patchbrain keeps its state, keys and caches. Environment variables override the defaults."""

from __future__ import annotations

import os
from pathlib import Path


def _is_root() -> bool:
    return os.geteuid() == 0


def state_dir() -> Path:
    """Durable state (SQLite store, keys, lab records): $PATCHBRAIN_HOME, else a per-user default."""
    if env := os.environ.get("PATCHBRAIN_HOME"):
        return Path(env)
    if _is_root():
        return Path("/var/lib/patchbrain")
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "patchbrain"


def cache_dir() -> Path:
    """Rebuildable caches (the lab's debootstrap base): $PATCHBRAIN_CACHE, else /var/cache/patchbrain."""
    if env := os.environ.get("PATCHBRAIN_CACHE"):
        return Path(env)
    if _is_root():
        return Path("/var/cache/patchbrain")
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "patchbrain"


def db_path() -> Path:
    """The SQLite store: $PATCHBRAIN_DB, else state_dir()/patchbrain.db."""
    if env := os.environ.get("PATCHBRAIN_DB"):
        return Path(env)
    return state_dir() / "patchbrain.db"


def keys_dir() -> Path:
    """Signing keys: $PATCHBRAIN_KEYS, else state_dir()/keys."""
    if env := os.environ.get("PATCHBRAIN_KEYS"):
        return Path(env)
    return state_dir() / "keys"


def artifacts_dir() -> Path:
    """ansible-runner artifacts, one folder per wave: state_dir()/artifacts."""
    return state_dir() / "artifacts"


def audit_key_name() -> str | None:
    """The key that signs audit checkpoints automatically: $PATCHBRAIN_AUDIT_KEY, else none."""
    return os.environ.get("PATCHBRAIN_AUDIT_KEY") or None


def audit_key_passphrase_file() -> Path | None:
    """The file holding the audit key's passphrase: $PATCHBRAIN_AUDIT_KEY_PASSPHRASE_FILE, else none."""
    env = os.environ.get("PATCHBRAIN_AUDIT_KEY_PASSPHRASE_FILE")
    return Path(env) if env else None


def audit_checkpoint_every() -> int:
    """Records between automatic audit checkpoints: $PATCHBRAIN_AUDIT_EVERY, else 1000."""
    env = os.environ.get("PATCHBRAIN_AUDIT_EVERY")
    try:
        every = int(env) if env else 1000
    except ValueError:
        every = 0
    if every < 1:
        from patchbrain.errors import BadInput

        raise BadInput("must be a positive integer", source="environment", field="PATCHBRAIN_AUDIT_EVERY")
    return every
