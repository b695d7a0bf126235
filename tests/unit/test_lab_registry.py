"""The machine-wide token registry: a live instance keeps its token; a dead one's claim is taken over."""

from __future__ import annotations

import pytest

from patchbrain.errors import EnvironmentProblem
from patchbrain.lab import state


@pytest.fixture
def registry(tmp_path, monkeypatch):
    reg = tmp_path / "registry"
    reg.mkdir()
    monkeypatch.setattr(state, "REGISTRY", reg)
    return reg


def make_state(tmp_path, home):
    path = tmp_path / home / "lab" / "exec" / "state.json"
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    return path


def test_a_live_instance_of_another_home_keeps_its_token(tmp_path, registry):
    first, second = make_state(tmp_path, "home1"), make_state(tmp_path, "home2")
    state.claim("exec", "exec", first, lambda _tok: True)
    with pytest.raises(EnvironmentProblem, match="already up"):
        state.claim("exec", "exec", second, lambda _tok: True)
    assert state.owner_of("exec") == first.resolve()


def test_a_dead_instance_left_behind_does_not_block_a_new_one(tmp_path, registry):
    # The session that ran `first` was killed: its state file stayed, none of its processes did.
    first, second = make_state(tmp_path, "home1"), make_state(tmp_path, "home2")
    state.claim("exec", "exec", first, lambda _tok: True)
    state.claim("exec", "exec", second, lambda _tok: False)
    assert state.owner_of("exec") == second.resolve()
