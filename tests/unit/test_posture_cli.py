"""`patchbrain posture diff|prescan|snapshot`: exit codes and output, on recorded fixtures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from posture_helpers import document, fixture, recorded_getenforce

from patchbrain import cli
from patchbrain.posture import snapshot


def write(path, **nft_ss):
    doc = document(
        "web1", nft_ruleset=fixture(f"nft/{nft_ss.get('nft', 'base')}.json"), ss=fixture("ss/base.txt")
    )
    path.write_text(json.dumps(snapshot.file_document({"web1": doc})))
    return str(path)


def test_diff_no_drift_exits_0(tmp_path, capsys):
    code = cli.main(["posture", "diff", write(tmp_path / "a"), write(tmp_path / "b", nft="reordered")])
    assert code == 0
    assert "no drift" in capsys.readouterr().out


def test_diff_weakening_exits_3_and_names_the_rule(tmp_path, capsys):
    code = cli.main(["posture", "diff", write(tmp_path / "a"), write(tmp_path / "b", nft="open_port")])
    out = capsys.readouterr().out
    assert code == 3
    assert "web1: WEAKENS" in out and "tcp dport 8080 accept" in out and "DRIFT" in out


def test_diff_unknown_exits_3(tmp_path):
    assert (
        cli.main(["posture", "diff", write(tmp_path / "a"), write(tmp_path / "b", nft="outside_model")]) == 3
    )


def test_diff_json(tmp_path, capsys):
    code = cli.main(
        ["posture", "diff", "--json", write(tmp_path / "a"), write(tmp_path / "b", nft="output_exfil_rule")]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 3 and doc["ok"] is False and doc["counts"]["weakens"] == 1
    assert doc["blocking"][0]["admitted"] == [["tcp", 4444, 4444]]


def test_diff_policy_allows_expected_port(tmp_path):
    pol = tmp_path / "drift.yml"
    pol.write_text("version: 1\nallow:\n  - package: labdemo\n    ports: ['8080/tcp']\n")
    args = [
        "posture",
        "diff",
        write(tmp_path / "a"),
        write(tmp_path / "b", nft="open_port"),
        "--policy",
        str(pol),
    ]
    assert cli.main(args) == 3
    assert cli.main([*args, "--package", "labdemo"]) == 0


@pytest.mark.parametrize("content", [b"\x00\xffbinary", b'{"schema": "patchbrain.posture.snapshot/1", "ho'])
def test_diff_bad_input_exits_2_naming_the_file(tmp_path, capsys, content):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    assert cli.main(["posture", "diff", write(tmp_path / "a"), str(bad)]) == 2
    assert "bad.json" in capsys.readouterr().err


def test_diff_bad_tool_output_exits_2_naming_host_and_source(tmp_path, capsys):
    doc = document("db9", nft_ruleset='{"nftables": [{"metainfo": {"json_schema_version": 7}}]}')
    after = tmp_path / "after.json"
    after.write_text(json.dumps(snapshot.file_document({"db9": doc})))
    before = tmp_path / "before.json"
    before.write_text(
        json.dumps(snapshot.file_document({"db9": document("db9", nft_ruleset=fixture("nft/base.json"))}))
    )
    assert cli.main(["posture", "diff", str(before), str(after)]) == 2
    err = capsys.readouterr().err
    assert "db9: nft -j list ruleset" in err and "json_schema_version" in err


@pytest.mark.slow
def test_snapshot_runs_the_role_through_ansible_runner(tmp_path, capsys, pb_home):
    inv = tmp_path / "hosts.ini"
    inv.write_text(
        f"probe1 ansible_connection=local ansible_python_interpreter={sys.executable} "
        "posture_collect_firewall=false\n"
    )
    out = tmp_path / "snap.json"
    code = cli.main(["posture", "snapshot", "-i", str(inv), "--json", "-o", str(out)])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0, printed
    assert printed["failed"] == {} and "ss" in printed["hosts"]["probe1"]["sources"]
    # read from this machine: simulated only where the lab's marker file is
    assert printed["hosts"]["probe1"]["selinux_simulated"] is Path("/etc/selinux/SIMULATED").is_file()
    docs = snapshot.load_file(out)
    assert set(docs) == {"probe1"} and docs["probe1"]["probes"]["ss"]["rc"] == 0
    assert "nft_ruleset" not in docs["probe1"]["probes"]
    # the same snapshot twice: no drift
    assert cli.main(["posture", "diff", str(out), str(out)]) == 0


def test_diff_reads_directories_of_host_documents(tmp_path, capsys):
    # the layout `ansible-playbook playbooks/posture.yml -e posture_dest_dir=DIR` writes
    for side, nft in (("before", "base"), ("after", "iif_wildcard")):
        d = tmp_path / side
        d.mkdir()
        for host in ("web1", "web2"):
            doc = document(host, nft_ruleset=fixture(f"nft/{nft}.json"))
            (d / f"{host}.json").write_text(json.dumps(doc))
    assert cli.main(["posture", "diff", str(tmp_path / "before"), str(tmp_path / "after")]) == 3
    out = capsys.readouterr().out
    assert "web1: WEAKENS" in out and "web2: WEAKENS" in out and "iifname eth* tcp dport 3306 accept" in out


def _selinux_doc(host: str, *, marker: bool, mode: str = "enforcing") -> dict:
    from patchbrain.lab.shim import MARKER_TEXT

    probes = {"getenforce": recorded_getenforce(mode), "ss": fixture("ss/base.txt")}
    if marker:
        probes["selinux_simulated"] = MARKER_TEXT
    return document(host, **probes)


def test_snapshot_labels_each_host_whose_selinux_is_simulated(tmp_path, capsys, monkeypatch, pb_home):
    from patchbrain.posture import collect

    docs = {"lab1": _selinux_doc("lab1", marker=True), "web1": _selinux_doc("web1", marker=False)}
    monkeypatch.setattr(collect, "run_role", lambda inv, limit=None: collect.Collection(docs, {}, tmp_path))
    inv = tmp_path / "hosts.ini"
    inv.write_text("lab1\nweb1\n")
    assert cli.main(["posture", "snapshot", "-i", str(inv), "-o", str(tmp_path / "a.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("lab1: selinux=enforcing (simulated) tables=0")
    assert lines[1].startswith("web1: selinux=enforcing tables=0")
    assert cli.main(["posture", "snapshot", "-i", str(inv), "--json", "-o", str(tmp_path / "b.json")]) == 0
    hosts = json.loads(capsys.readouterr().out)["hosts"]
    assert hosts["lab1"]["selinux_simulated"] is True and hosts["web1"]["selinux_simulated"] is False


def test_diff_says_which_hosts_have_simulated_selinux(tmp_path, capsys):
    def write_docs(name: str, mode: str) -> str:
        path = tmp_path / name
        docs = {
            "lab1": _selinux_doc("lab1", marker=True, mode=mode),
            "web1": _selinux_doc("web1", marker=False),
        }
        path.write_text(json.dumps(snapshot.file_document(docs)))
        return str(path)

    before, after = write_docs("a", "enforcing"), write_docs("b", "permissive")
    assert cli.main(["posture", "diff", before, after]) == 3
    out = capsys.readouterr().out
    assert "lab1: WEAKENS: SELinux runtime mode changed enforcing -> permissive (simulated SELinux)" in out
    assert "SELinux simulated on lab1: " in out and "web1" not in out.split("SELinux simulated on")[1]
    assert cli.main(["posture", "diff", "--json", before, after]) == 3
    assert json.loads(capsys.readouterr().out)["selinux_simulated"] == ["lab1"]
