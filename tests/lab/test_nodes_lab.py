"""Execution nodes on the lab: 30 apt targets and 2 nodes (h31, h32: ansible-runner in their image).

A rollout sliced over the controller and the nodes (transmit | ssh | worker | process) must end exactly
like a local one; a node killed mid-slice leaves its hosts unknown until the controller re-reads them,
and nothing is installed twice; a node that claims to have patched hosts it did not touch is caught by
the controller's own reading. Versions and dpkg's log are read over SSH, outside Ansible.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from lab_helpers import own_fleet, sh

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

TARGETS = 30
NODES = ("h31", "h32")
CLI = [sys.executable, "-m", "patchbrain"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    env = {"PATCHBRAIN_CANARY_BAKE": "0s"}  # the safety loop runs; its bake is tests/lab/test_safety_lab.py's
    yield from own_fleet(
        tmp_path_factory, "nodes", TARGETS, ("apt",), lab_keys=True, nodes=len(NODES), env=env
    )


def cli(*args, check=True, timeout=1800):
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"patchbrain {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def make_plan(tmp_path, spec, limit):
    from patchbrain.plans import load_plan

    cli("discover", "--limit", ",".join(limit))
    path = tmp_path / f"plan-{len(list(tmp_path.glob('plan-*.yaml')))}.yaml"
    cli("plan", "--waves", spec, "--out", str(path), "--author-key", "lab-signing")
    cli("approve", str(path), "--key", "lab-approver-1")
    return path, load_plan(path)


def installed(lab, host):
    return sh(lab, host, "dpkg-query", "-W", "-f", "${Version}", "labdemo", timeout=120).stdout.strip()


def installs(lab, host, version):
    """How many times dpkg installed labdemo `version` on the host (its own log, read over SSH)."""
    log = sh(lab, host, "cat", "/var/log/dpkg.log", timeout=120).stdout
    return sum(1 for line in log.splitlines() if f" status installed labdemo:all {version}" in line)


def targets(n=TARGETS):
    return [f"h{i:02d}" for i in range(1, n + 1)]


def node_options(lab, **kw):
    from patchbrain.executor.nodes import NodePool, controller_reader, load_config
    from patchbrain.executor.rollout import RolloutOptions

    pool = NodePool(load_config(lab.nodes_file))
    opts = RolloutOptions(run=pool.run, read_installed=controller_reader(lab.inventory_path()), **kw)
    return pool, opts


def summary(store, journal, plan):
    from patchbrain.audit import AuditLog

    pid = plan.plan_id
    record = journal.plan(pid)
    histories = {h: [t.state for t in journal.history(pid, h)] for h in plan.hosts}
    audit = [
        (r.action, r.subject.replace(pid, "PLAN"), r.payload.get("state"), r.payload.get("states"))
        for r in AuditLog(store).records(action="rollout.*")
        if r.subject.startswith(pid)
    ]
    return record.state, [w.state for w in record.waves], dict(record.hosts), histories, audit


def test_a_rollout_split_over_two_nodes_ends_like_a_local_one(fleet, tmp_path):
    from patchbrain.executor.rollout import RolloutOptions, rollout
    from patchbrain.journal import Journal
    from patchbrain.store import Store

    store = Store()
    journal = Journal(store)
    inv = fleet.inventory_path()
    path, plan = make_plan(tmp_path, "1,10%,50%,100%", targets())
    local = rollout(plan, inventory=inv, plan_file=path, options=RolloutOptions(forks=10), store=store)
    assert local.state == "done", local.halt
    assert {installed(fleet, h) for h in targets()} == {plan.hosts["h01"].packages[0].version}
    expected = summary(store, journal, plan)

    fleet.reset(*targets())
    path2, plan2 = make_plan(tmp_path, "1,10%,50%,100%", targets())
    assert [len(w) for w in plan2.waves] == [len(w) for w in plan.waves]
    pool, opts = node_options(fleet, forks=10)
    with pool:
        split = rollout(plan2, inventory=inv, plan_file=path2, options=opts, store=store)
    assert split.state == "done", split.halt
    assert summary(store, journal, plan2)[:3] == expected[:3]
    # the same journal, host by host, and the same audit trail, record by record
    got = summary(store, journal, plan2)
    assert sorted(got[3].values()) == sorted(expected[3].values())
    assert got[4] == expected[4]
    # the last wave really went through both nodes and the controller
    last = split.waves[-1].artifacts
    slices = sorted(p.name for p in last.iterdir() if p.name.endswith(("-controller", "-h31", "-h32")))
    assert {s.rsplit("-", 1)[1] for s in slices} == {"controller", "h31", "h32"}
    assert all((last / s / "job_events").is_dir() for s in slices)
    for host in targets():
        assert installed(fleet, host) == plan2.hosts[host].packages[0].version
        assert installs(fleet, host, plan2.hosts[host].packages[0].version) == 1
    # the nodes keep nothing of the slices (no inventory, no vars, no known_hosts) once they are done
    for node in NODES:
        assert sh(fleet, node, "ls", "-A", "/run/patchbrain-node", check=False).stdout.strip() == ""


def test_a_node_killed_mid_slice_leaves_unknown_hosts_that_are_re_read(fleet, tmp_path):
    from patchbrain.executor.events import TaskChanged, TaskOk
    from patchbrain.executor.rollout import WaveHooks, rollout
    from patchbrain.lab import net

    hosts = targets(9)
    fleet.reset(*hosts)
    path, plan = make_plan(tmp_path, "1,100%", hosts)
    pool, opts = node_options(fleet, forks=3)
    lost = slices_of(pool, plan.waves[1], 3)[NODES[1]]  # the victim's share of the second wave
    victim = next(r for r in fleet.hosts() if r.name == NODES[1])
    installed_on: set[str] = set()
    killed = threading.Event()

    def on_event(event):
        # once the install is done on every host of the victim's slice, kill the node: it never sends
        # the play's end, the postflight or the stats
        if isinstance(event, TaskOk | TaskChanged) and event.task == "Install the named versions with apt":
            installed_on.add(event.host)
            if set(lost) <= installed_on and not killed.is_set():
                killed.set()
                net.kill_namespaces([victim.netns])

    try:
        with pool:
            result = rollout(plan, inventory=fleet.inventory_path(), plan_file=path, options=opts,
                             hooks=WaveHooks(on_event=on_event))  # fmt: skip
        remote = [h for node in NODES for h in slices_of(pool, plan.waves[1], 3).get(node, ())]
        check_killed_slice(fleet, plan, hosts, lost, result, killed, remote)
    finally:
        fleet.reset(NODES[1])  # boot the node again for the next tests, whatever happened here


def check_killed_slice(fleet, plan, hosts, lost, result, killed, remote):
    from patchbrain.journal import Journal
    from patchbrain.store import Store

    assert killed.is_set()
    journal = Journal(Store())
    for host in lost:
        states = [t.state for t in journal.history(plan.plan_id, host)]
        want = plan.hosts[host].packages[0].version
        # unknown first, then what the controller read over its own channel: installed once
        assert states == ["pending", "running", "unknown", "patched"], (host, states)
        assert installed(fleet, host) == want and installs(fleet, host, want) == 1
    for host in set(hosts) - set(lost):
        assert journal.host_states(plan.plan_id)[host] == "patched"
        assert installs(fleet, host, plan.hosts[host].packages[0].version) == 1
    assert result.state == "done", result.halt
    # the drift gate judged every host a node ran (lost or not) from the controller's own readings only
    drift = journal.plan(plan.plan_id).waves[1].summary["safety"]["drift"]
    assert set(drift["verifier_only"]) == set(remote)


def slices_of(pool, hosts, forks):
    from patchbrain.executor.nodes import plan_slices

    return {s.worker: s.hosts for s in plan_slices(list(hosts), pool.cfg, forks)}


FORGE = r'''#!/usr/bin/python3
# A compromised execution node: skip the install, then claim the planned versions are installed.
# Anchored on the patch role's task names; if the role changed so the forge no longer applies, the play
# fails here instead of quietly running an honest node.
import os, re, sys
roles = os.environ["ANSIBLE_ROLES_PATH"].split(":")[0]
path = os.path.join(roles, "patch", "tasks", "main.yml")
text = open(path).read()
install = r"(- name: Install the named versions\n(?:  .*\n)*?)  when: .*\n"
text, n = re.subn(install, r"\1  when: false\n", text, count=1)
anchor = "- name: Return the patch result through set_stats"
if n != 1 or anchor not in text:
    sys.exit("forge: the patch role changed; cannot forge")
forged = """- name: Claim success
  ansible.builtin.set_fact:
    __patch_versions_after: "{% for p in patch_packages %}{{ p.name }}\\t{{ p.version }}\\tii\\n{% endfor %}"

""" + anchor
text = text.replace(anchor, forged, 1)
open(path, "w").write(text)
os.execv("/opt/patchbrain-node/bin/ansible-playbook.real", ["ansible-playbook", *sys.argv[1:]])
'''


def test_a_node_that_claims_hosts_it_did_not_patch_is_caught(fleet, tmp_path):
    from patchbrain.executor.rollout import rollout

    hosts = targets(6)
    liar = NODES[0]
    fleet.reset(*hosts, liar)
    try:
        forge_node(fleet, liar)
        path, plan = make_plan(tmp_path, "3,100%", hosts)
        pool, opts = node_options(fleet, forks=2)
        with pool:
            result = rollout(plan, inventory=fleet.inventory_path(), plan_file=path, options=opts)
        liar_hosts = slices_of(pool, plan.waves[0], 2)[liar]
        assert liar_hosts  # the liar has a share of the canary wave, which is where the rollout stops
        assert result.state == "halted" and result.halt.kind == "failures" and len(result.waves) == 1
        by_host = {h.host: h for h in result.waves[0].hosts}
        for host in liar_hosts:
            want = plan.hosts[host].packages[0].version
            assert installed(fleet, host) == "1.0"  # the node never installed anything
            assert by_host[host].state == "mismatch", by_host[host]
            # the forged claim reached the controller, and lost against its own reading
            assert f"the execution node reported labdemo {want} (patched)" in by_host[host].message
            assert "the controller read labdemo 1.0" in by_host[host].message
        assert set(result.halt.hosts) == set(liar_hosts)
        for host in set(plan.waves[0]) - set(liar_hosts):
            assert by_host[host].state == "patched"
        for host in plan.waves[1]:
            assert installed(fleet, host) == "1.0"  # later waves never started
    finally:
        fleet.reset(liar)


def forge_node(fleet, node):
    """Put FORGE in front of the node's ansible-playbook."""
    bin_dir = "/opt/patchbrain-node/bin"
    sh(fleet, node, "mv", f"{bin_dir}/ansible-playbook", f"{bin_dir}/ansible-playbook.real")
    sh(fleet, node, "sh", "-c", f"cat > {bin_dir}/ansible-playbook <<'EOF'\n{FORGE}EOF\n")
    sh(fleet, node, "chmod", "755", f"{bin_dir}/ansible-playbook")


def test_a_sabotaged_update_is_still_halted_at_the_canary_through_a_node(fleet, tmp_path):
    """The pre-scan gate sees what the canary's node collected; nothing is installed anywhere.

    Runs last: it publishes a sabotaged build above everything else in the module's repository."""
    from patchbrain.executor.rollout import Halt, WaveHooks, rollout
    from patchbrain.lab.content import LabContent

    hosts = targets(6)
    fleet.reset(*hosts)
    version, _ = LabContent(fleet.dir).publish_variant("accept-all")
    path, plan = make_plan(tmp_path, "1,100%", hosts)
    assert {p.version for h in plan.hosts.values() for p in h.packages} == {version}
    pool, opts = node_options(fleet, forks=3)
    canary_slices = slices_of(pool, plan.waves[0], 3)
    assert set(canary_slices) <= {"h31", "h32"}  # the canary is a node's slice
    seen = {}

    def gate(ctx, findings):
        seen.update(findings)
        hits = [h for h, fs in findings.items() if any(f.category == "firewall" for f in fs)]
        return Halt("prescan", "maintainer script touches the firewall", tuple(hits)) if hits else None

    with pool:
        result = rollout(
            plan,
            inventory=fleet.inventory_path(),
            plan_file=path,
            options=opts,
            hooks=WaveHooks(prescan_gate=gate),
        )
    assert result.state == "halted" and result.halt.kind == "prescan" and len(result.waves) == 1
    assert set(result.halt.hosts) == set(plan.waves[0])
    assert all(any(f.category == "firewall" and "nft" in f.text for f in seen[h]) for h in plan.waves[0])
    for host in hosts:
        assert installed(fleet, host) == "1.0"
