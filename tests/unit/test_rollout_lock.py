"""Rollout locks in the store: a live holder is named and refused, a dead one is taken over."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys

import pytest

from patchbrain.errors import ExitCode, RefusedByPolicy
from patchbrain.executor.lock import RolloutLocked, acquire, holders, process_start_time
from patchbrain.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "lock.db")
    holders(s)  # creates the table
    return s


def _hold_in_child(db, plan_id, hosts, ready, stop):
    lock = acquire(Store(db), plan_id, hosts)
    ready.set()
    stop.wait(60)
    lock.release()


def test_a_live_holder_in_another_process_is_named_and_refused(store, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_in_child, args=(store.path, "planA", ["h01", "h02"], ready, stop))
    child.start()
    try:
        assert ready.wait(60)
        with pytest.raises(RolloutLocked) as info:
            acquire(store, "planB", ["h02", "h03"])
        err = info.value
        assert err.exit_code == ExitCode.REFUSED
        [holder] = err.holders
        assert (holder.plan_id, holder.pid, holder.machine) == ("planA", child.pid, socket.gethostname())
        assert holder.hosts == ("h02",)  # the hosts in dispute
        msg = str(err)
        assert "planA" in msg and f"pid {child.pid}" in msg and holder.started in msg and "h02" in msg
        # nothing of planB was written
        assert {h.plan_id for h in holders(store)} == {"planA"}
        # disjoint hosts are fine
        acquire(store, "planC", ["h04"]).release()
    finally:
        stop.set()
        child.join(60)
    assert holders(store) == []
    acquire(store, "planB", ["h02", "h03"]).release()


def test_a_dead_holder_is_taken_over_and_reported(store):
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = int(proc.stdout)
    assert process_start_time(dead) is None
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO rollout_locks VALUES (?, 'old', ?, 12345, ?, '2026-11-26T10:00:00+00:00')",
            [(h, dead, socket.gethostname()) for h in ("h01", "h09")],
        )
    lock = acquire(store, "new", ["h01", "h02"])
    [stale] = lock.taken_over
    assert (stale.plan_id, stale.pid, stale.hosts) == ("old", dead, ("h01",))
    # every row of the dead holder went, not only the overlapping one
    assert [(h.plan_id, h.hosts) for h in holders(store)] == [("new", ("h01", "h02"))]
    lock.release()


def test_pid_reuse_and_other_machines(store):
    me = os.getpid()
    with store.transaction() as conn:
        # our own pid with another start time: the recorded process is gone (pid reused)
        conn.execute(
            "INSERT INTO rollout_locks VALUES ('h01', 'reused', ?, ?, ?, 't')",
            (me, (process_start_time(me) or 0) + 1, socket.gethostname()),
        )
        # another machine: cannot be checked, never taken over
        conn.execute("INSERT INTO rollout_locks VALUES ('h02', 'far', 1, 1, 'elsewhere.example', 't')")
    lock = acquire(store, "new", ["h01"])
    assert [h.plan_id for h in lock.taken_over] == ["reused"]
    lock.release()
    with pytest.raises(RolloutLocked, match=r"elsewhere\.example"):
        acquire(store, "new", ["h02"])


def test_the_same_process_cannot_lock_twice_and_release_frees_only_its_own(store):
    with acquire(store, "p1", ["a"]):
        with pytest.raises(RolloutLocked):
            acquire(store, "p2", ["a"])
        other = acquire(store, "p3", ["b"])
    assert [h.plan_id for h in holders(store)] == ["p3"]
    other.release()


@pytest.fixture
def approved(pb_home, tmp_path):
    """An approved two-host plan over the example inventory (nothing here can reach its hosts)."""
    import datetime as dt

    from patchbrain.approvals import ApprovalStore, approve, policy_from_env, sign_authorship
    from patchbrain.keys import KeyStore, ensure_lab_keys
    from patchbrain.models import PendingUpdate
    from patchbrain.plans import make_plan

    ks = KeyStore()
    ensure_lab_keys(ks)
    signer = ks.load_private("lab-signing")
    pending = [PendingUpdate(h, "labdemo", "1.0", "1.1", "apt") for h in ("app-01", "app-02")]
    plan = make_plan(
        pending, inventory="", spec="1,100%", author=signer.public.fingerprint, author_name=signer.name
    )
    plan = sign_authorship(plan, signer)
    approval = approve(
        plan,
        ks.load_private("lab-approver-1"),
        keystore=ks,
        ttl=dt.timedelta(hours=1),
        policy=policy_from_env(),
    )
    ApprovalStore(Store()).add(approval)
    return plan


def test_rollout_is_refused_while_another_live_rollout_holds_a_host(approved, pb_home):
    from pathlib import Path

    from patchbrain.audit import AuditLog
    from patchbrain.executor.rollout import rollout
    from patchbrain.journal import Journal

    inventory = Path(__file__).resolve().parents[2] / "inventory" / "example-small.ini"
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_in_child, args=(Store().path, "other", ["app-02"], ready, stop))
    child.start()
    try:
        assert ready.wait(60)
        with pytest.raises(
            RolloutLocked, match=f"app-02 held by the rollout of plan other \\(pid {child.pid} on"
        ):
            rollout(approved, inventory=inventory)
    finally:
        stop.set()
        child.join(60)
    assert Journal(Store()).plan(approved.plan_id) is None  # nothing started
    [refused] = [r for r in AuditLog(Store()).records() if r.action == "rollout.refused"]
    assert refused.subject == approved.plan_id and refused.payload["holders"][0]["pid"] == child.pid
    assert not (pb_home / "artifacts").exists()
    assert holders(Store()) == []  # the refused rollout left no rows behind


def test_resume_of_a_plan_never_rolled_out_is_bad_input_and_frees_the_lock(approved, pb_home):
    from pathlib import Path

    from patchbrain.errors import BadInput
    from patchbrain.executor.rollout import rollout

    inventory = Path(__file__).resolve().parents[2] / "inventory" / "example-small.ini"
    with pytest.raises(BadInput, match="never rolled out here"):
        rollout(approved, inventory=inventory, resume=True)
    assert holders(Store()) == []


def test_a_resumed_wave_refused_before_it_starts_keeps_its_reverified_hosts(approved, pb_home):
    """Halted before the resumed wave starts (here its before_wave refuses): the hosts re-verified as
    patched stay patched (never `skipped`, which the journal would refuse), and the wave can be resumed."""
    from pathlib import Path

    from patchbrain.executor.resume import Reading
    from patchbrain.executor.rollout import WaveHooks, rollout
    from patchbrain.journal import Journal
    from patchbrain.plans import plan_document
    from patchbrain.safety.options import SafetyOptions

    inventory = Path(__file__).resolve().parents[2] / "inventory" / "example-small.ini"
    journal = Journal(Store())
    plan = approved
    journal.add_plan(
        plan.plan_id,
        inventory=str(inventory),
        document=plan_document(plan),
        waves=[list(w) for w in plan.waves],
    )
    [[canary], [second]] = plan.waves
    for host in (canary, second):
        journal.transition(plan.plan_id, host, "running")
    journal.transition(plan.plan_id, canary, "patched")
    journal.set_wave(plan.plan_id, 0, "done")
    journal.set_wave(plan.plan_id, 1, "running")  # the controller died here

    def refuse(ctx):
        raise RefusedByPolicy("not now")

    def reverify(plan, hosts, inventory):
        return {h: Reading(h, True, {"labdemo": "1.1"}) for h in hosts}

    result = rollout(
        plan,
        inventory=inventory,
        resume=True,
        reverify=reverify,
        hooks=WaveHooks(before_wave=refuse),
        safety=SafetyOptions(enabled=False),
    )
    assert result.state == "halted" and result.halt is not None and result.halt.kind == "policy"
    assert result.halt.reason == "wave 2 refused: not now"
    assert result.resumed is not None and result.resumed["reverified"][second]["state"] == "patched"
    assert journal.host_states(plan.plan_id) == {canary: "patched", second: "patched"}
    assert [w.state for w in journal.plan(plan.plan_id).waves] == ["done", "skipped"]
    assert holders(Store()) == []
