"""The run builder and both run paths (ansible_runner.run and run_async) on real Ansible.

The runs use two local-connection hosts and one unreachable host with tests/fixtures/runner/capture.yml:
nothing but ping, `true`, `false`, debug and set_stats, so they are safe on this machine.
"""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

import pytest

from patchbrain.errors import BadInput
from patchbrain.executor.events import HostUnreachable, TaskStarted
from patchbrain.executor.request import RunHooks, RunRequest
from patchbrain.executor.runner import run, runner_kwargs, start

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "runner"


def _req(tmp_path, ident="r1", **kw):
    return RunRequest(
        playbook=str(FIXTURES / "capture.yml"),
        inventory=FIXTURES / "inventory.ini",
        ident=ident,
        artifacts_root=tmp_path,
        **kw,
    )


def test_builder_writes_inputs_and_settings(tmp_path):
    req = _req(
        tmp_path,
        group="p1-w1",
        limit=("local-a",),
        tags=("preflight",),
        check=True,
        forks=7,
        extravars={"pkgs": {"local-a": [{"name": "{{ x }}", "version": "1.10"}]}},
        timeout_s=60,
    )
    kw = runner_kwargs(req, RunHooks())
    folder = tmp_path / "p1-w1" / "r1"
    assert kw["artifact_dir"] == str(tmp_path / "p1-w1") and kw["ident"] == "r1"
    assert kw["quiet"] is True and kw["limit"] == "local-a" and kw["forks"] == 7 and kw["timeout"] == 60
    assert kw["envvars"]["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    cfg = Path(kw["envvars"]["ANSIBLE_CONFIG"]).read_text()
    assert "pipelining = True" in cfg and "ControlPersist=60s" in cfg and "forks = 7" in cfg
    assert shlex.split(kw["cmdline"]) == ["-e", f"@{folder}/input/vars.yml", "--tags", "preflight", "--check"]
    assert "'pkgs': !unsafe" in (folder / "input" / "vars.yml").read_text()
    assert (folder / "input" / "vars.yml").stat().st_mode & 0o077 == 0
    assert callable(kw["cancel_callback"]) and kw["cancel_callback"]() is False


def test_an_ident_is_used_once(tmp_path):
    runner_kwargs(_req(tmp_path), RunHooks())
    with pytest.raises(BadInput, match="used once"):
        runner_kwargs(_req(tmp_path), RunHooks())


@pytest.mark.parametrize(
    "kw",
    [
        {"ident": "../x"},
        {"ident": "a b"},
        {"limit": ("h1,h2",)},
        {"limit": ("all:!x",)},
        {"tags": ("a b",)},
        {"forks": 0},
        {"timeout_s": 0},
        {"group": "x/y"},
    ],
)
def test_bad_requests_are_refused(tmp_path, kw):
    with pytest.raises(BadInput):
        _req(tmp_path, **{"ident": "ok", **kw})


def test_sync_and_async_runs_give_the_same_result(tmp_path):
    events, statuses = [], []
    hooks = RunHooks(on_event=events.append, on_status=statuses.append)
    sync = run(_req(tmp_path, ident="sync"), hooks)
    handle = start(_req(tmp_path, ident="async"), RunHooks())
    result = handle.wait(timeout=300)
    assert handle.done()
    for r in (sync, result):
        assert r.status == "failed" and r.rc == 4  # local-b fails on purpose; ghost is unreachable (rc 4)
        assert r.data == {"recorded": {"local-a": {"value": 1}, "local-b": {"value": 1}}}
        assert (r.host_outcome("local-a"), r.host_outcome("local-b"), r.host_outcome("ghost")) == (
            "ok",
            "failed",
            "unreachable",
        )
    assert statuses[0] == "starting" and statuses[-1] == "failed"
    assert [type(e) for e in events] == [type(e) for e in sync.events]
    assert any(isinstance(e, HostUnreachable) for e in events)
    assert len(sync.events) == len(result.events)


def test_cancel_callback_kills_the_run(tmp_path):
    stop = threading.Event()

    def on_event(event):
        if isinstance(event, TaskStarted):
            stop.set()

    result = run(_req(tmp_path, ident="c"), RunHooks(on_event=on_event, cancel=stop.is_set))
    assert result.status == "canceled" and result.rc == 254


def test_a_broken_hook_does_not_kill_the_run(tmp_path):
    def boom(event):
        raise RuntimeError("ui bug")

    result = run(_req(tmp_path, ident="b"), RunHooks(on_event=boom))
    assert result.status == "failed" and result.host_outcome("local-a") == "ok"
