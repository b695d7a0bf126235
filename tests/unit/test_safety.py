"""The safety loop's parts that need no hosts: durations, health-check declarations and runs, the signal
intake, snapshot hooks, and the restore decision over recorded posture documents."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import pytest
from posture_helpers import (
    document,
    fixture,
    recorded_config,
    recorded_getenforce,
    selinux_recorded,
)
from verify_sshd import LocalSshd

from patchbrain.errors import BadInput
from patchbrain.safety import health, restore, snapshots
from patchbrain.safety.options import SafetyOptions, parse_seconds
from patchbrain.safety.signals import SignalIntake, parse_signals
from patchbrain.verify import HostReading, SshAccess, commands


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0), ("90", 90), ("90s", 90), ("2m", 120), ("1h 30m", 5400)]
)
def test_durations(text, seconds):
    assert parse_seconds(text, source="t", field="f") == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5s", "8d", "200h"])
def test_bad_durations_name_the_field(text):
    with pytest.raises(BadInput, match="--canary-bake"):
        parse_seconds(text, source="command line", field="--canary-bake")


def test_options_from_env(monkeypatch):
    monkeypatch.setenv("PATCHBRAIN_CANARY_BAKE", "10s")
    monkeypatch.delenv("PATCHBRAIN_BAREMETAL_BAKE", raising=False)
    opts = SafetyOptions.from_env(settle_s=1, signals_file=None)
    assert (opts.canary_bake_s, opts.baremetal_bake_s, opts.settle_s) == (10, 600, 1)
    assert SafetyOptions.from_env(canary_bake_s=0).canary_bake_s == 0


# -- health checks ---------------------------------------------------------------------------------------


def test_health_check_declarations():
    checks = health.parse_checks(
        [
            {"name": "labdemo runs", "command": ["labdemo"], "timeout": 20},
            {"tcp": 22},
            {"name": "web", "http": {"port": 8080, "path": "/health", "status": [200]}},
        ],
        source="inv: host h1",
    )
    assert [(c.name, c.kind) for c in checks] == [
        ("labdemo runs", "command"),
        ("tcp-2", "tcp"),
        ("web", "http"),
    ]
    assert checks[0].argv == ("labdemo",) and checks[0].timeout_s == 20
    assert checks[2].statuses == (200,) and checks[2].path == "/health"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("labdemo", "patchbrain_health_checks"),
        ([{"command": "labdemo --check"}], "patchbrain_health_checks[0]"),
        ([{"command": ["a"], "tcp": 22}], "patchbrain_health_checks[0]"),
        ([{"tcp": 70000}], "patchbrain_health_checks[0].tcp"),
        ([{"http": {"port": 80, "path": "x; rm -rf /"}}], "patchbrain_health_checks[0].http.path"),
        ([{"name": "{{ lookup('pipe','id') }}", "tcp": 22}], "patchbrain_health_checks[0].name"),
        ([{"tcp": 22, "shell": "id"}], "patchbrain_health_checks[0]"),
    ],
)
def test_bad_health_checks_name_host_and_entry(value, field):
    with pytest.raises(BadInput) as err:
        health.parse_checks(value, source="inv: host h1")
    assert err.value.field == field and "host h1" in str(err.value)


def test_checks_from_an_inventory_listing():
    data = {"_meta": {"hostvars": {"h1": {"patchbrain_health_checks": [{"tcp": 22}]}, "h2": {}}}}
    assert list(health.checks_from_listing(data, source="inv")) == ["h1"]


@pytest.fixture
def sshd(tmp_path):
    server = LocalSshd(
        tmp_path,
        {
            commands.line(["labdemo"]): (0, "labdemo 1.1\n", ""),
            commands.line(["systemctl", "is-active", "web"]): (3, "inactive\n", ""),
        },
    )
    yield server
    server.close()


def test_health_checks_run_over_the_verifier_channel_and_from_the_controller(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line())
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    open_port = listener.getsockname()[1]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    web = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        checks = health.parse_checks(
            [
                {"name": "runs", "command": ["labdemo"]},
                {"name": "web unit", "command": ["systemctl", "is-active", "web"]},
                {"name": "open", "tcp": open_port},
                {"name": "ok", "http": {"port": web.server_port, "path": "/ok"}},
                {"name": "down", "http": {"port": web.server_port, "path": "/down"}},
            ],
            source="t",
        )
        access = SshAccess("127.0.0.1", port=sshd.port, key_file=sshd.client_key_file, known_hosts=known)
        results = {r.check: r for r in health.run_checks("h1", access, checks, timeout=10)}
    finally:
        web.shutdown()
        web.server_close()
        listener.close()
    assert results["runs"].ok and results["open"].ok and results["ok"].ok
    assert not results["web unit"].ok and "exit 3" in results["web unit"].detail
    assert not results["down"].ok and "status 503" in results["down"].detail
    # the declared argv reached the host only as quoted arguments of the fixed env prefix
    assert commands.line(["systemctl", "is-active", "web"]) in sshd.commands


def test_a_host_that_cannot_be_reached_fails_its_command_checks(tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    checks = health.parse_checks([{"name": "runs", "command": ["true"]}], source="t")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    [r] = health.run_checks("h1", SshAccess("127.0.0.1", port=port, known_hosts=known), checks, timeout=5)
    assert not r.ok and "cannot reach" in r.detail


# -- signals ---------------------------------------------------------------------------------------------


def test_signals_parse_documents_and_json_lines():
    doc = parse_signals(
        json.dumps({"signals": [{"host": "h1", "status": "critical", "source": "nagios"}]}), origin="f"
    )
    assert [(s.host, s.failing) for s in doc] == [("h1", True)]
    lines = parse_signals('{"host": "h2", "status": "ok"}\n{"host": "h3"}\n', origin="f")
    assert [(s.host, s.failing) for s in lines] == [("h2", False), ("h3", True)]
    with pytest.raises(BadInput, match="line 2"):
        parse_signals('{"host": "h2"}\nnot json\n', origin="f")
    with pytest.raises(BadInput):
        parse_signals('[{"status": "failed"}]', origin="f")


def test_intake_reads_file_and_socket_once_each(tmp_path):
    file = tmp_path / "signals.json"
    file.write_text(json.dumps([{"host": "h1", "status": "failed", "message": "http 500"}]))
    sock_path = tmp_path / "signals.sock"
    intake = SignalIntake(file, sock_path)
    intake.start()
    try:
        assert oct(sock_path.stat().st_mode & 0o777) == "0o600"
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(sock_path))
        client.sendall(b'{"host": "h2", "status": "down", "source": "pager"}\n')
        client.close()
        got: list = []
        for _ in range(100):  # the intake thread reads the connection; wait for it, at most 10 s
            got += list(intake.drain())
            if {s.host for s in got} == {"h1", "h2"}:
                break
            threading.Event().wait(0.1)
        assert sorted((s.host, s.origin.split(":")[0]) for s in got) == [("h1", "file"), ("h2", "socket")]
        assert list(intake.drain()) == []  # each signal once
    finally:
        intake.stop()
    assert not sock_path.exists()


# -- snapshot hooks --------------------------------------------------------------------------------------


def test_snapshot_hooks_are_for_vms_and_come_in_pairs():
    data = {
        "_meta": {
            "hostvars": {
                "v": {"patchbrain_snapshot_pre": ["/bin/true"], "patchbrain_snapshot_revert": ["/bin/true"]}
            }
        }
    }
    assert snapshots.hooks_from_listing(data, {"v": "vm"}, source="i")["v"].pre == ("/bin/true",)
    with pytest.raises(BadInput, match="bare metal"):
        snapshots.hooks_from_listing(data, {"v": "baremetal"}, source="i")
    half = {"_meta": {"hostvars": {"v": {"patchbrain_snapshot_pre": ["/bin/true"]}}}}
    with pytest.raises(BadInput, match="both"):
        snapshots.hooks_from_listing(half, {"v": "vm"}, source="i")
    bad = {
        "_meta": {
            "hostvars": {"v": {"patchbrain_snapshot_pre": "snap $(id)", "patchbrain_snapshot_revert": ["x"]}}
        }
    }
    with pytest.raises(BadInput, match="argv"):
        snapshots.hooks_from_listing(bad, {"v": "vm"}, source="i")


def test_snapshot_hook_gets_the_host_name_as_last_argument(tmp_path):
    out = tmp_path / "seen"
    ok, _ = snapshots.run_hook(("sh", "-c", f'echo "$1" > {out}', "hook"), "h07")
    assert ok and out.read_text() == "h07\n"
    ok, said = snapshots.run_hook(("false",), "h07")
    assert not ok and "exit 1" in said


# -- restore ---------------------------------------------------------------------------------------------


def _doc(nft: str, mode: str, config: str, ss: str) -> dict:
    return document(
        "h1",
        nft_ruleset=fixture(f"nft/{nft}.json"),
        getenforce=recorded_getenforce(mode),
        selinux_config=recorded_config(config),
        ss=fixture(f"ss/{ss}.txt"),
    )


def test_restore_state_from_a_preflight_document():
    pre = _doc("lab_base", "enforcing", "enforcing", "base")
    state = restore.restore_state(pre, host="h1")
    assert state["nft_ruleset"] == fixture("nft/lab_base.json")
    assert state["selinux_mode"] == "enforcing"
    assert state["selinux_config"] == recorded_config("enforcing")
    assert "tcp 0.0.0.0:22" in state["listeners"] and all(" " in x for x in state["listeners"])
    assert state["selinux_booleans"] is None  # no getsebool probe: the booleans are left alone
    with_bools = document(
        "h1",
        getenforce=recorded_getenforce("enforcing"),
        getsebool=selinux_recorded("baseline", "getsebool"),
    )
    bools = restore.restore_state(with_bools, host="h1")["selinux_booleans"]
    expected = {
        line.split(" --> ")[0]: line.endswith("--> on")
        for line in selinux_recorded("baseline", "getsebool").splitlines()
        if " --> " in line
    }
    assert bools == expected and any(bools.values()) and not all(bools.values())
    missing = {
        "schema": 1,
        "host": "h1",
        "probes": {"nft_ruleset": {"rc": None, "stdout": "", "missing": True}},
    }
    assert restore.restore_state(missing, host="h1") == {
        "nft_ruleset": None,
        "selinux_mode": None,
        "selinux_config": None,
        "selinux_booleans": None,
        "listeners": None,
    }
    vs = restore.rollback_vars(
        ["h1", "h2"], versions={"h1": {"labdemo": "1.0", "extra": None}}, pre_docs={"h1": pre}
    )
    assert vs["h1"]["packages"] == [{"name": "labdemo", "version": "1.0"}] and vs["h1"]["remove"] == ["extra"]
    assert vs["h2"] == {"packages": [], "remove": []}


def _same(a, b):
    return a == b


def test_restored_only_when_both_channels_show_a_neutral_diff_and_the_versions():
    pre = _doc("lab_base", "enforcing", "enforcing", "base")
    reordered = _doc("reordered", "enforcing", "enforcing", "base")
    assert restore.non_neutral(_doc("base", "enforcing", "enforcing", "base"), reordered, "h1", "x") == []
    ok = HostReading("h1", True, family="deb", versions={"labdemo": "1.0"}, posture=pre)
    kw = {"pre_verifier": None, "versions": {"labdemo": "1.0"}, "same_version": _same}
    assert restore.judge("h1", pre_ansible=pre, after_ansible=pre, reading=ok, **kw) == []
    # still open on the Ansible side
    bad = _doc("lab_accept_all", "enforcing", "enforcing", "base")
    why = restore.judge("h1", pre_ansible=pre, after_ansible=bad, reading=ok, **kw)
    assert why and why[0].startswith("ansible: weakens firewall")
    # Ansible says fine, the verifier reads SELinux permissive: not restored
    perm = HostReading(
        "h1",
        True,
        family="deb",
        versions={"labdemo": "1.0"},
        posture=_doc("lab_base", "permissive", "enforcing", "base"),
    )
    why = restore.judge("h1", pre_ansible=pre, after_ansible=pre, reading=perm, **kw)
    assert len(why) == 1 and why[0].startswith("verifier: weakens selinux")
    # the version did not go back
    old = HostReading("h1", True, family="deb", versions={"labdemo": "1.2"}, posture=pre)
    assert restore.judge("h1", pre_ansible=pre, after_ansible=pre, reading=old, **kw) == [
        "verifier: labdemo is 1.2, pre-flight was 1.0"
    ]
    # a new listener left behind
    listen = _doc("lab_base", "enforcing", "enforcing", "new_listener")
    assert restore.judge("h1", pre_ansible=pre, after_ansible=listen, reading=ok, **kw)
    # unreadable over the second channel: never "restored"
    gone = HostReading("h1", False, error="timed out")
    assert restore.judge("h1", pre_ansible=pre, after_ansible=pre, reading=gone, **kw) == [
        "verifier: host not readable (timed out)"
    ]


# -- the loop's own rules (no hosts needed) -------------------------------------------------------------


def _loop(pb_home, bare: tuple[str, ...] = (), **opts):
    """A loop over a plan of a, b (canary) and c, with the `bare` hosts marked bare metal in the plan
    (as a hand-made plan could say; the planner itself keeps to one)."""
    import dataclasses

    from patchbrain.executor.rollout import WaveContext
    from patchbrain.models import Host, PendingUpdate
    from patchbrain.plans import make_plan
    from patchbrain.safety.loop import SafetyLoop
    from patchbrain.store import Store

    hosts = [Host(h, h, canary=h != "c") for h in "abc"]
    plan = make_plan(
        [PendingUpdate(h.name, "labdemo", "1.0", "1.1", "apt") for h in hosts],
        inventory="inv",
        hosts=hosts,
        spec="2,100%",
    )
    marked = {
        n: dataclasses.replace(ph, platform="baremetal" if n in bare else "vm")
        for n, ph in plan.hosts.items()
    }
    plan = dataclasses.replace(plan, hosts=marked)
    loop = SafetyLoop(
        plan,
        inventory=pb_home / "inv",
        store=Store(),
        options=SafetyOptions(**{"verify": False, **opts}),
        hosts={h.name: h for h in hosts},
        access={},
        checks={},
        vm_hooks={},
    )
    return loop, plan, WaveContext


def test_canary_bake_is_longer_with_bare_metal_and_later_waves_keep_the_plans(pb_home):
    loop, plan, _ = _loop(pb_home, canary_bake_s=30, baremetal_bake_s=300)
    assert plan.waves[0] == ("a", "b")
    assert loop.bake_s(0) == 30 and loop.bake_s(1) == 0
    loop, plan, _ = _loop(pb_home, ("a",), canary_bake_s=30, baremetal_bake_s=300)
    assert loop.bake_s(0) == 300 and loop.bake_s(1) == 0


def test_a_canary_with_too_much_bare_metal_is_refused(pb_home, tmp_path):
    from patchbrain.errors import RefusedByPolicy

    loop, plan, ctx = _loop(pb_home, ("a", "b"))
    with pytest.raises(RefusedByPolicy, match="2 bare-metal hosts"):
        loop.before_wave(ctx(plan, 0, plan.waves[0], tmp_path))
    loop, plan, ctx = _loop(pb_home, ("a",))
    loop.before_wave(ctx(plan, 0, plan.waves[0], tmp_path))  # one is allowed
    loop.close()


def test_a_resumed_waves_carried_hosts_keep_the_interrupted_runs_baseline(pb_home, tmp_path):
    from patchbrain.executor.rollout import WaveOutcome
    from patchbrain.journal import Journal
    from patchbrain.plans import plan_document

    loop, plan, ctx = _loop(pb_home)
    journal = Journal(loop.store)
    journal.add_plan(plan.plan_id, inventory="inv", document=plan_document(plan), waves=[["a", "b"], ["c"]])
    pre = _doc("lab_base", "enforcing", "enforcing", "base")
    journal.save_snapshot(plan.plan_id, 0, "a", "verify-pre", pre)  # the interrupted run read a, not b
    for host in ("a", "b"):  # patched by the interrupted run, re-verified by the resume: carried
        for state in ("running", "verifying", "patched"):
            journal.transition(plan.plan_id, host, state)
    loop.before_wave(ctx(plan, 0, plan.waves[0], tmp_path))
    assert loop.carried == {"a", "b"}
    assert journal.snapshots(plan.plan_id, 0, "verify-pre") == {"a": pre}  # never overwritten
    outcome = WaveOutcome(plan.plan_id, 0, tmp_path, (), {}, {}, {})
    rec: dict = {}
    assert loop._baselines(["a", "b"], 0, outcome, rec) == {"a": pre}
    assert rec["no_baseline"] == ["b"]  # named, neither drift nor unknown
    # a host that ran in this wave and has no baseline at all is still unknown to the gate (empty)
    assert loop._baselines(["c"], 0, outcome, rec) == {"c": {}} and rec["no_baseline"] == ["b"]
    blocking, _ = loop._gate({"c": {}}, {"c": pre}, ["c"], "verifier")
    assert blocking and blocking[0].effect == "unknown"
    loop.close()


def test_a_carried_host_found_drifted_on_resume_is_rolled_back_from_the_journals_preflight(
    pb_home, tmp_path, monkeypatch
):
    from patchbrain.executor.rollout import HostResult, WaveOutcome
    from patchbrain.journal import Journal
    from patchbrain.plans import plan_document

    loop, plan, ctx = _loop(pb_home, verify=True)
    journal = Journal(loop.store)
    journal.add_plan(plan.plan_id, inventory="inv", document=plan_document(plan), waves=[["a", "b"], ["c"]])

    def doc(host: str, nft: str) -> dict:
        return document(host, nft_ruleset=fixture(f"nft/{nft}.json"), ss=fixture("ss/base.txt"))

    for host in ("a", "b"):  # the interrupted run snapshotted and patched both; the resume carries them
        journal.save_snapshot(plan.plan_id, 0, host, "pre", doc(host, "lab_base"))
        for state in ("running", "verifying", "patched"):
            journal.transition(plan.plan_id, host, state)
    monkeypatch.setattr(loop, "_read", lambda hosts: {})
    loop.before_wave(ctx(plan, 0, plan.waves[0], tmp_path))
    readings = {
        h: HostReading(
            h,
            True,
            family="deb",
            versions={"labdemo": "1.1"},
            posture=doc(h, "lab_accept_all" if h == "a" else "lab_base"),
        )
        for h in ("a", "b")
    }
    monkeypatch.setattr(loop, "_read", lambda hosts: {h: readings[h] for h in hosts})
    rolled: dict = {}

    def rollback(index, hosts, outcome, reason):
        # what the rollback restores each host from (rollback() reads it through _pre_doc)
        rolled.update(hosts=list(hosts), pre={h: loop._pre_doc(h, outcome) for h in hosts}, reason=reason)
        return {}

    monkeypatch.setattr(loop, "rollback", rollback)
    carried = tuple(HostResult(h, "patched", {"labdemo": "1.1"}, {}, {"labdemo": "1.1"}, None) for h in "ab")
    halt = loop.after_wave(WaveOutcome(plan.plan_id, 0, tmp_path, carried, {}, {}, {}))
    assert halt is not None and halt.kind == "drift" and halt.hosts == ("a",)
    # the rollback gets every rollbackable host of the wave, with the interrupted run's pre-flight documents
    assert rolled["hosts"] == ["a", "b"] and rolled["pre"] == {h: doc(h, "lab_base") for h in "ab"}
    assert rolled["reason"].startswith("drift: ")
    loop.close()


def test_rollback_never_hands_an_unreachable_host_to_ansible(pb_home, tmp_path):
    from patchbrain.executor.rollout import WaveOutcome
    from patchbrain.journal import Journal
    from patchbrain.plans import plan_document

    loop, plan, _ = _loop(pb_home, verify_timeout_s=5.0)
    from patchbrain.verify.read import SshAccess

    loop.access = {h: SshAccess("127.0.0.1", port=_closed_port()) for h in "abc"}  # nothing listens there
    journal = Journal(loop.store)
    journal.add_plan(plan.plan_id, inventory="inv", document=plan_document(plan), waves=[["a", "b"], ["c"]])
    for state in ("running", "patched"):
        journal.transition(plan.plan_id, "a", state)
    outcome = WaveOutcome(plan.plan_id, 0, tmp_path, (), {}, {}, {})
    out = loop.rollback(0, ["a"], outcome, "drift: test")
    assert out["a"]["restored"] is False
    assert out["a"]["reason"].startswith("not reachable over the second channel before the rollback")
    assert journal.host_states(plan.plan_id)["a"] == "not_restored"
    assert not (pb_home / "artifacts").exists() or not list((pb_home / "artifacts").rglob("*rollback*"))
    loop.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_hosts_an_execution_node_ran_are_gated_on_the_verifiers_readings_only(pb_home, tmp_path):
    """A node lost mid-slice sent no postflight snapshot, a lying node may send any snapshot it likes:
    neither decides; the verifier's own readings (before and after the wave) do."""
    from patchbrain.executor.rollout import HostResult, WaveHooks, WaveOutcome
    from patchbrain.journal import Journal
    from patchbrain.plans import plan_document

    server = LocalSshd(
        tmp_path,
        {
            commands.versions_line("deb", ["labdemo"]): (0, "labdemo\t1.1\tii \n", ""),
            commands.probe_line("nft_ruleset"): (0, fixture("nft/lab_base.json"), ""),
            commands.probe_line("getenforce"): (0, "Enforcing\n", ""),
            commands.probe_line("selinux_config"): (0, recorded_config("enforcing"), ""),
        },
    )
    try:
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line())
        loop, plan, ctx = _loop(pb_home, verify=True, verify_timeout_s=30.0)
        loop.access = {
            h: SshAccess("127.0.0.1", port=server.port, key_file=server.client_key_file, known_hosts=known)
            for h in "abc"
        }
        journal = Journal(loop.store)
        waves = [list(w) for w in plan.waves]
        journal.add_plan(plan.plan_id, inventory="inv", document=plan_document(plan), waves=waves)
        hooks = loop.hooks(WaveHooks())
        first = ctx(plan, 0, plan.waves[0], tmp_path)
        hooks.before_wave(first)  # starts the verifier's pre-patch read, alongside the preflight run
        assert hooks.prescan_gate(first, {}) is None  # the gate, before the patch run, waits for it
        assert set(loop.verify_pre) == {"a", "b"}
        assert set(journal.snapshots(plan.plan_id, 0, "verify-pre")) == {"a", "b"}
        for host in ("a", "b"):
            for state in ("running", "patched"):
                journal.transition(plan.plan_id, host, state)

        def doc(host, mode):
            return document(
                host,
                nft_ruleset=fixture("nft/lab_base.json"),
                getenforce=recorded_getenforce(mode),
                selinux_config=recorded_config("enforcing"),
            )

        # a: its node was lost after the install (a pre-flight snapshot, no postflight); b: its node
        # reports SELinux turned permissive, which the controller does not see
        pre = {"a": doc("a", "enforcing"), "b": doc("b", "enforcing")}
        post = {"b": doc("b", "permissive")}
        results = tuple(
            HostResult(h, "patched", {"labdemo": "1.1"}, {"labdemo": "0.9"}, {"labdemo": "1.1"}, False)
            for h in ("a", "b")
        )
        outcome = WaveOutcome(plan.plan_id, 0, tmp_path, results, pre, post, {}, remote=frozenset("ab"))
        hosts = ["a", "b"]
        blocking, _ = loop._gate(pre, post, hosts, "ansible")
        assert {c.host for c in blocking} == {"a", "b"}  # as Ansible's snapshots they would halt
        assert loop.after_wave(outcome) is None
        rec = loop.records[0]
        assert rec["drift"]["verifier_only"] == hosts and rec["drift"]["blocking"] == []
        assert all(rec["verify"][h]["verdict"] == "ok" for h in hosts)
        assert {h: journal.host_states(plan.plan_id)[h] for h in hosts} == dict.fromkeys(hosts, "patched")
        # the rollback's target is the controller's own pre-flight, never the node's snapshot
        assert loop._pre_doc("b", outcome) == loop.verify_pre["b"].posture
        assert loop._pre_versions("b", outcome) == {"labdemo": "1.1"}  # what it read before the wave
        loop.verify_pre.clear()
        assert loop._pre_doc("b", outcome) is None
        # without its own reading: the plan's installed version, never the 0.9 only the node named
        assert loop._pre_versions("b", outcome) == {"labdemo": "1.0"}
        loop.close()
    finally:
        server.close()


# -- VM snapshot hooks in the rollback ------------------------------------------------------------------


class _FakeVm:
    """A VM host `a` as the verifier sees it: weakened and at 1.1 until its snapshot is reverted."""

    def __init__(self) -> None:
        self.reverted = False
        self.reachable = True

    def read(self, hosts):
        good = document("a", nft_ruleset=fixture("nft/lab_base.json"), ss=fixture("ss/base.txt"))
        bad = document("a", nft_ruleset=fixture("nft/lab_accept_all.json"), ss=fixture("ss/base.txt"))
        out = {}
        for h in hosts:
            if not self.reachable and not self.reverted:
                out[h] = HostReading(h, False, error="connection refused")
                continue
            back = self.reverted
            out[h] = HostReading(
                h,
                True,
                family="deb",
                versions={"labdemo": "1.0" if back else "1.1"},
                posture=good if back else bad,
            )
        return out


def _vm_loop(pb_home, tmp_path, monkeypatch, revert_ok: bool = True):
    from patchbrain.executor.rollout import WaveOutcome
    from patchbrain.journal import Journal
    from patchbrain.plans import plan_document

    loop, plan, ctx = _loop(pb_home, verify=True)
    log = tmp_path / "hook.log"
    vm = _FakeVm()

    def revert_hook(*argv):  # the controller-side revert command, as snapshots.run_hook runs it
        ok, said = real_run_hook(
            ("sh", "-c", f'echo "revert $1" >> {log}; exit {0 if revert_ok else 7}', "x"), argv[-1]
        )
        vm.reverted = ok
        return ok, said

    real_run_hook = snapshots.run_hook
    hook = snapshots.SnapshotHook(pre=("sh", "-c", f'echo "pre $1" >> {log}', "x"), revert=("vm-revert",))
    loop.vm_hooks = {"a": hook}
    monkeypatch.setattr(
        snapshots,
        "run_hook",
        lambda argv, host: revert_hook(*argv, host) if argv == hook.revert else real_run_hook(argv, host),
    )
    monkeypatch.setattr(loop, "_read", vm.read)
    monkeypatch.setattr(restore.time, "sleep", lambda s: None)
    journal = Journal(loop.store)
    journal.add_plan(plan.plan_id, inventory="inv", document=plan_document(plan), waves=[["a", "b"], ["c"]])
    vm.reverted = True  # the pre-patch read sees the host as it was before the wave
    loop.before_wave(ctx(plan, 0, ("a",), tmp_path))
    loop.join_pre_read()
    vm.reverted = False  # then the wave patched it and weakened it
    for state in ("running", "patched"):
        journal.transition(plan.plan_id, "a", state)
    return loop, plan, vm, log, journal, WaveOutcome(plan.plan_id, 0, tmp_path, (), {}, {}, {})


def _actions(loop, pattern):
    from patchbrain.audit import AuditLog

    return [(r.subject, r.payload) for r in AuditLog(loop.store).records(action=pattern)]


def test_a_vm_that_cannot_be_rolled_back_by_packages_is_reverted_to_its_snapshot(
    pb_home, tmp_path, monkeypatch
):
    loop, plan, vm, log, journal, outcome = _vm_loop(pb_home, tmp_path, monkeypatch)
    assert log.read_text() == "pre a\n"  # taken before the wave patched, with the host name last
    assert [s for s, p in _actions(loop, "safety.snapshot.pre") if p["ok"]] == ["a"]
    vm.reachable = False  # the package rollback cannot reach it: only the snapshot can bring it back
    out = loop.rollback(0, ["a"], outcome, "drift: test")
    assert log.read_text() == "pre a\nrevert a\n"
    assert out["a"]["restored"] is True and out["a"]["method"] == "snapshot-hook"
    assert journal.host_states(plan.plan_id)["a"] == "restored"
    ((subject, payload),) = _actions(loop, "safety.snapshot.revert")
    assert subject == "a" and payload["ok"] is True and payload["argv"] == ["vm-revert"]
    assert [p["method"] for _, p in _actions(loop, "rollback.host")] == ["snapshot-hook"]
    assert journal.snapshots(plan.plan_id, 0, "restore-verify")["a"] == vm.read(["a"])["a"].posture
    loop.close()


def test_a_failed_snapshot_revert_leaves_the_vm_not_restored_and_says_why(pb_home, tmp_path, monkeypatch):
    loop, plan, vm, _log, journal, outcome = _vm_loop(pb_home, tmp_path, monkeypatch, revert_ok=False)
    vm.reachable = False
    out = loop.rollback(0, ["a"], outcome, "drift: test")
    assert out["a"]["restored"] is False and out["a"]["method"] == "snapshot-hook"
    assert "snapshot revert failed" in out["a"]["reason"] and "exit 7" in out["a"]["reason"]
    assert journal.host_states(plan.plan_id)["a"] == "not_restored"
    assert [p["ok"] for _, p in _actions(loop, "safety.snapshot.revert")] == [False]
    loop.close()


def test_a_failing_snapshot_hook_refuses_to_patch_the_vm(pb_home, tmp_path):
    from patchbrain.errors import RefusedByPolicy

    loop, plan, ctx = _loop(pb_home)
    loop.vm_hooks = {"a": snapshots.SnapshotHook(pre=("false",), revert=("true",))}
    with pytest.raises(RefusedByPolicy, match="snapshot hook of a failed"):
        loop.before_wave(ctx(plan, 0, plan.waves[0], tmp_path))
    assert [p["ok"] for _, p in _actions(loop, "safety.snapshot.pre")] == [False]
    loop.close()


def test_a_vm_the_package_rollback_left_weakened_is_reverted_to_its_snapshot(pb_home, tmp_path, monkeypatch):
    import types

    from patchbrain.safety import loop as loop_module

    loop, _plan, _vm, log, _journal, outcome = _vm_loop(pb_home, tmp_path, monkeypatch)
    runs = []

    def rollback_run(req, hooks):  # the rollback playbook "ran" but the host is still weakened
        runs.append(req.limit)
        return types.SimpleNamespace(data={}, host_outcome=lambda host: "ok")

    monkeypatch.setattr(loop_module.runner, "run", rollback_run)
    out = loop.rollback(0, ["a"], outcome, "drift: test")
    assert runs == [("a",)]  # packages first, then the snapshot
    assert log.read_text() == "pre a\nrevert a\n"
    assert out["a"]["restored"] is True and out["a"]["method"] == "snapshot-hook"
    (payload,) = [p for _, p in _actions(loop, "safety.snapshot.revert")]
    assert payload["after"]  # what the package rollback left wrong is kept in the audit record
    loop.close()
