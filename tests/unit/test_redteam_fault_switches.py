"""The faults scenario's test-only defence switches (failure-threshold, resume-reverify, disk-preflight):
switched off, each makes its defence's function behave like a client without it, and is put back after.
The scenario failing with each one off is proven in tests/lab/test_redteam_safety_lab.py."""

from __future__ import annotations

from pathlib import Path

from patchbrain.redteam.defences import switched_off


def _plan():
    from patchbrain.models import Host, PendingUpdate
    from patchbrain.plans import make_plan

    hosts = [Host(h, h, canary=h == "a") for h in "abc"]
    return make_plan(
        [PendingUpdate(h.name, "labdemo", "1.0", "1.1", "apt") for h in hosts],
        inventory="inv",
        hosts=hosts,
        spec="1,100%",
    )


def test_failure_threshold_switch_lets_a_wave_fail_on_any_number_of_hosts():
    from patchbrain.plans import Plan

    plan = _plan()
    real = Plan.wave_schedule
    assert plan.wave_schedule(1).max_failures == 0
    with switched_off(("failure-threshold",)):
        assert plan.wave_schedule(1).max_failures >= 1_000_000
    assert Plan.wave_schedule is real and plan.wave_schedule(1).max_failures == 0


def test_resume_reverify_switch_runs_a_host_already_at_the_plan_again():
    from patchbrain.executor import resume

    plan = _plan()
    at_plan = resume.Reading("b", True, {"labdemo": "1.1"})
    assert resume.judge(plan, at_plan, "running").state == "patched"
    with switched_off(("resume-reverify",)):
        assert resume.judge(plan, at_plan, "running").state == "pending"
        assert resume.judge(plan, at_plan, "patched").state == "patched"  # finished hosts stay finished
    assert resume.judge(plan, at_plan, "running").state == "patched"


def test_disk_preflight_switch_sets_the_minimum_free_space_to_zero(monkeypatch):
    from patchbrain.executor import runner
    from patchbrain.executor.request import RunRequest

    seen = []
    monkeypatch.setattr(runner, "run", lambda req, *a, **k: seen.append(dict(req.extravars)))
    fake = runner.run
    with switched_off(("disk-preflight",)):
        runner.run(RunRequest(playbook="rollout.yml", inventory=Path("inv"), ident="x", extravars={"a": 1}))
        runner.run(RunRequest(playbook="discover.yml", inventory=Path("inv"), ident="y"))
    assert runner.run is fake
    assert seen == [{"a": 1, "patchbrain_min_free_mb": 0}, {}]
