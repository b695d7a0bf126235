"""Execution nodes: config, slicing, and the real transmit | worker | process stream.

The stream tests run a real `ansible-runner worker` as the "node", reached through `sh -c` instead of
SSH (the lab tests use SSH to real lab hosts), on tests/fixtures/runner/capture.yml's local hosts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from patchbrain.errors import BadInput
from patchbrain.executor import nodes
from patchbrain.executor.request import RunHooks, RunRequest
from patchbrain.executor.runner import run

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "runner"
RUNNER = str(Path(sys.executable).parent / "ansible-runner")


class LocalPool(nodes.NodePool):
    """A pool whose "SSH" is a local shell: the stream, the worker and the processor are all real."""

    def ssh_argv(self, node, remote, *, forward=False):
        return ["sh", "-c", remote]


def _cfg(tmp_path, controller=1, runner=RUNNER, n=1):
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    node_list = tuple(
        nodes.Node(
            f"n{i}", "127.0.0.1", 1, known_hosts=kh, ansible_runner=runner, workdir=str(tmp_path / f"w{i}")
        )
        for i in range(1, n + 1)
    )
    return nodes.NodeConfig(controller, node_list, kh)


def _req(tmp_path, ident, hosts=("local-a", "local-b")):
    return RunRequest(
        playbook=str(FIXTURES / "capture.yml"),
        inventory=FIXTURES / "inventory.ini",
        ident=ident,
        group="p-w1",
        artifacts_root=tmp_path / "art",
        limit=hosts,
    )


def test_slices_follow_capacity_and_cover_every_host_once(tmp_path):
    cfg = nodes.NodeConfig(
        10,
        (
            nodes.Node("n1", "10.0.0.2", 10, known_hosts=tmp_path),
            nodes.Node("n2", "10.0.0.3", 20, known_hosts=tmp_path),
        ),
        tmp_path,
    )
    hosts = [f"h{i:02d}" for i in range(1, 31)]
    slices = nodes.plan_slices(hosts, cfg, forks=10)
    assert [(s.worker, len(s.hosts), s.forks) for s in slices] == [
        ("controller", 8, 8),
        ("n1", 7, 7),
        ("n2", 15, 15),
    ]
    assert [h for s in slices for h in s.hosts] == hosts
    few = nodes.plan_slices(["a", "b"], cfg, forks=10)
    assert sorted(h for s in few for h in s.hosts) == ["a", "b"] and all(s.hosts for s in few)
    # The run's forks cap the controller's share, not the nodes'.
    assert nodes.plan_slices(hosts, cfg, forks=2)[0].hosts == tuple(hosts[:2])


def test_config_round_trip_and_refusals(tmp_path):
    cfg = nodes.NodeConfig(
        4,
        (nodes.Node("n1", "10.0.0.2", 8, identity=tmp_path / "k", known_hosts=tmp_path / "kh"),),
        tmp_path / "t",
    )
    path = tmp_path / "nodes.yml"
    path.write_text(nodes.render_config(cfg))
    assert nodes.load_config(path) == cfg
    path.write_text(
        "nodes:\n  - {name: n1, address: '10.0.0.2; rm -rf /', capacity: 2, known_hosts: /k}\n"
        "targets: {known_hosts: /t}\n"
    )
    with pytest.raises(BadInput) as exc:
        nodes.load_config(path)
    assert exc.value.field == "nodes[0].address"
    path.write_text("nodes: []\ncontroller: {capacity: 0}\ntargets: {known_hosts: /t}\n")
    with pytest.raises(BadInput, match="no capacity"):
        nodes.load_config(path)
    with pytest.raises(BadInput):
        nodes.Node("controller", "10.0.0.2", 1)


def test_a_sliced_run_gives_what_a_local_run_gives(tmp_path):
    local = run(_req(tmp_path, "local"), RunHooks())
    seen = []
    with LocalPool(_cfg(tmp_path)) as pool:
        split = pool.run(_req(tmp_path, "split"), RunHooks(on_event=seen.append))
    for host in ("local-a", "local-b"):
        assert split.host_outcome(host) == local.host_outcome(host)
    assert split.host_outcome("local-b") == "failed"
    assert split.data == local.data and split.unknown == frozenset()
    assert split.remote == {"local-b"}  # the node's host, to be re-read by the controller
    assert {e.host for e in seen} == {"local-a", "local-b"}
    node_dir = tmp_path / "art" / "p-w1" / "split-n1"
    assert (node_dir / "status").read_text().strip() == "failed"
    assert (
        sorted(node_dir.glob("job_events/*.json"))
        and json.loads((node_dir / "node.json").read_text())["node"] == "n1"
    )
    assert not list((tmp_path / "w1").iterdir())  # the node keeps nothing once the slice is done
    assert [
        s["worker"] for s in json.loads((tmp_path / "art" / "p-w1" / "split" / "slices.json").read_text())
    ] == [
        "controller",
        "n1",
    ]


def test_a_node_that_dies_leaves_its_hosts_unknown(tmp_path):
    with LocalPool(_cfg(tmp_path, runner="/bin/false")) as pool:
        res = pool.run(_req(tmp_path, "dead"), RunHooks())
    assert res.host_outcome("local-a") == "ok"
    assert res.unknown == {"local-b"} and res.host_outcome("local-b") == "unknown"
    record = json.loads((tmp_path / "art" / "p-w1" / "dead-n1" / "node.json").read_text())
    assert record["lost"] is True


def test_only_nodes_no_controller(tmp_path):
    with LocalPool(_cfg(tmp_path, controller=0, n=2)) as pool:
        res = pool.run(_req(tmp_path, "nodes"), RunHooks())
    assert res.remote == {"local-a", "local-b"}
    assert res.host_outcome("local-a") == "ok" and res.host_outcome("local-b") == "failed"


def test_the_lab_nodes_file_is_a_valid_nodes_file(tmp_path):
    from patchbrain.lab.inventory import render_nodes

    path = tmp_path / "nodes.yml"
    path.write_text(
        render_nodes(
            [("h31", "10.213.1.41"), ("h32", "10.213.1.42")], key=tmp_path / "k", known_hosts=tmp_path / "kh"
        )
    )
    cfg = nodes.load_config(path)
    assert [(n.name, n.address, n.capacity) for n in cfg.nodes] == [
        ("h31", "10.213.1.41", 10),
        ("h32", "10.213.1.42", 10),
    ]
    assert (
        cfg.target_key == (tmp_path / "k").resolve()
        and cfg.nodes[0].known_hosts == (tmp_path / "kh").resolve()
    )
