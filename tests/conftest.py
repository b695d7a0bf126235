"""Shared test settings: hypothesis without deadlines, and an isolated patchbrain home per test."""

from __future__ import annotations

import pytest
from hypothesis import settings

settings.register_profile("patchbrain", deadline=None, print_blob=True)
settings.load_profile("patchbrain")


@pytest.fixture
def pb_home(tmp_path, monkeypatch):
    """A private PATCHBRAIN_HOME (store, keys) for one test."""
    home = tmp_path / "pbhome"
    home.mkdir()
    monkeypatch.setenv("PATCHBRAIN_HOME", str(home))
    monkeypatch.delenv("PATCHBRAIN_DB", raising=False)
    monkeypatch.delenv("PATCHBRAIN_KEYS", raising=False)
    return home
