"""The safety loop's test-only defence switches (drift-gate, signal-distrust) on a loop with no hosts: with
the defence on, a weakening blocks and a fake failure signal is suspicious; switched off, the same input
passes unnoticed or is believed. The scenarios that rely on them are proven in
tests/lab/test_redteam_safety_lab.py."""

from __future__ import annotations

import json

from posture_helpers import document, fixture, recorded_config, recorded_getenforce

from patchbrain.redteam.defences import switched_off


def _doc(nft: str, mode: str) -> dict:
    return document(
        "a",
        nft_ruleset=fixture(f"nft/{nft}.json"),
        getenforce=recorded_getenforce(mode),
        selinux_config=recorded_config("enforcing"),
        ss=fixture("ss/base.txt"),
    )


def _loop(pb_home, signals=None):
    from patchbrain.models import Host, PendingUpdate
    from patchbrain.plans import make_plan
    from patchbrain.safety.loop import SafetyLoop
    from patchbrain.safety.options import SafetyOptions
    from patchbrain.store import Store

    hosts = [Host(h, h, canary=h == "a") for h in "ab"]
    plan = make_plan(
        [PendingUpdate(h.name, "labdemo", "1.0", "1.1", "apt") for h in hosts],
        inventory="inv",
        hosts=hosts,
        spec="1,100%",
    )
    return SafetyLoop(
        plan,
        inventory=pb_home / "inv",
        store=Store(),
        options=SafetyOptions(verify=False, signals_file=signals),
        hosts={h.name: h for h in hosts},
        access={},
        checks={},
        vm_hooks={},
    )


def test_drift_gate_switch_lets_a_weakening_through(pb_home):
    from patchbrain.safety.loop import SafetyLoop

    real = SafetyLoop._gate
    loop = _loop(pb_home)
    before, after = {"a": _doc("lab_base", "enforcing")}, {"a": _doc("lab_base", "permissive")}
    blocking, _ = loop._gate(before, after, ["a"], "ansible")
    assert [c.kind for c in blocking] == ["selinux.runtime_mode"]
    with switched_off(("drift-gate",)):
        assert loop._gate(before, after, ["a"], "ansible") == ([], 0)
    assert SafetyLoop._gate is real


def test_signal_distrust_switch_believes_a_fake_signal(pb_home, tmp_path):
    from patchbrain.safety.loop import SafetyLoop

    real = SafetyLoop._signals
    fake = tmp_path / "signals.json"
    loop = _loop(pb_home, fake)
    pid = loop.plan.plan_id
    loop.journal.add_plan(pid, inventory="inv", document={}, waves=[list(w) for w in loop.plan.waves])
    for state in ("running", "patched"):
        loop.journal.transition(pid, "a", state)
    results = {}
    for name, off in (("on", ()), ("off", ("signal-distrust",))):
        fake.write_text(json.dumps([{"host": "a", "status": "failed", "source": "monitor", "message": name}]))
        rec = {"signals": []}
        with switched_off(off):
            results[name] = (loop._signals(0, rec, {}), [e["verdict"] for e in rec["signals"]])
    assert results["on"] == ({}, ["suspicious"])  # no health check declared to confirm it with
    confirmed, verdicts = results["off"]
    assert list(confirmed) == ["a"] and verdicts == ["confirmed"]
    assert SafetyLoop._signals is real
