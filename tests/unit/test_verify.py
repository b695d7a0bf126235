"""The independent verifier: fixed command lines, strict host keys, and the per-host verdicts."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from posture_helpers import fixture, recorded_config
from verify_sshd import LocalSshd, keygen

from patchbrain.errors import BadInput
from patchbrain.lab.shim import MARKER_TEXT
from patchbrain.models import Host
from patchbrain.posture.snapshot import parse_document
from patchbrain.verify import (
    HostReading,
    SshAccess,
    access_from_inventory,
    check_wave,
    commands,
    read_hosts,
)

ROOT = Path(__file__).resolve().parents[2]
DPKG_LINE = commands.versions_line("deb", ["labdemo", "openssl"])


def test_probes_are_the_posture_roles_probes():
    spec = yaml.safe_load((ROOT / "roles/posture/vars/main.yml").read_text())
    role = [
        (p["name"], tuple(p["argv"]))
        for k in ("__posture_firewall_probes", "__posture_selinux_probes", "__posture_socket_probes")
        for p in spec[k]
    ]
    assert sorted(role) == sorted(commands.PROBES)
    assert sorted((f["name"], f["path"]) for f in spec["__posture_selinux_files"]) == sorted(commands.FILES)


def test_command_lines_are_fixed_and_names_are_separate_quoted_arguments():
    argv = shlex.split(DPKG_LINE)
    assert argv[:4] == ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]
    assert argv[4] == "/usr/bin/dpkg-query" and argv[-2:] == ["labdemo", "openssl"]
    rpm = shlex.split(commands.versions_line("rpm", ["labdemo"]))
    assert rpm[4:7] == ["/usr/bin/rpm", "-q", "--qf"] and rpm[-1] == "labdemo"
    assert shlex.split(commands.probe_line("nft_ruleset"))[4:] == ["nft", "-j", "list", "ruleset"]


@pytest.mark.parametrize(
    "name", ["; touch /tmp/pwned", "$(id)", "labdemo openssl", "-oProxyCommand=id", "`id`", "a'b", ""]
)
def test_hostile_package_names_never_reach_a_command_line(name):
    with pytest.raises(BadInput, match="package name"):
        commands.versions_line("deb", ["labdemo", name])
    with pytest.raises(BadInput):
        read_hosts([Host("h1", "127.0.0.1")], [name], known_hosts=Path(__file__))


def _answers() -> dict[str, tuple[int, str, str]]:
    base = {
        DPKG_LINE: (1, "labdemo\t1.1\tii \n", "dpkg-query: no packages found matching openssl\n"),
        commands.probe_line("nft_ruleset"): (0, fixture("nft/lab_base.json"), ""),
        commands.probe_line("getenforce"): (0, "Permissive\n", ""),
        commands.probe_line("selinux_config"): (0, recorded_config("enforcing"), ""),
        commands.probe_line("selinux_simulated"): (0, MARKER_TEXT, ""),
    }
    return base


@pytest.fixture
def sshd(tmp_path):
    server = LocalSshd(tmp_path, _answers())
    yield server
    server.close()


def _access(sshd: LocalSshd, known: Path) -> dict[str, SshAccess]:
    return {"h1": SshAccess("127.0.0.1", port=sshd.port, key_file=sshd.client_key_file, known_hosts=known)}


def test_reads_versions_ruleset_and_selinux_mode_with_only_fixed_commands(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line())
    readings = read_hosts(
        [Host("h1", "127.0.0.1", pkg_mgr="apt")], ["labdemo", "openssl"], access=_access(sshd, known)
    )
    r = readings["h1"]
    assert r.reachable, r.error
    assert r.versions == {"labdemo": "1.1", "openssl": None}
    assert r.selinux_mode == "permissive" and r.selinux_config_mode == "enforcing"
    assert r.selinux_simulated is True and r.as_dict()["selinux_simulated"] is True  # the marker was read
    assert r.ruleset == fixture("nft/lab_base.json").rstrip("\n")
    assert r.host_key.startswith("ssh-ed25519 SHA256:")
    # the document parses like the posture role's own; tools the server lacks are recorded as missing
    snap = parse_document(dict(r.posture), host="h1")
    assert snap.selinux is not None and snap.selinux.runtime_mode == "permissive"
    assert r.posture["probes"]["ufw_status"]["missing"] is True
    # the server has no Python for the one-command read (exit 127): each fixed command then runs on its own
    one = commands.probe_script_line("deb", ["labdemo", "openssl"])
    expected = {one, DPKG_LINE, *(commands.probe_line(n) for n, _ in commands.PROBES + commands.FILES)}
    assert sshd.commands[0] == one
    assert set(sshd.commands) == expected and len(sshd.commands) == len(expected)


def _one_command_answer() -> str:
    probes = {
        name: {"rc": 2, "stdout": "", "stderr": "", "missing": True}
        for name, _ in commands.PROBES + commands.FILES
    }
    nft = fixture("nft/lab_base.json").rstrip("\n")
    probes["nft_ruleset"] = {"rc": 0, "stdout": nft, "stderr": "", "missing": False}
    probes["getenforce"] = {"rc": 0, "stdout": "Permissive", "stderr": "", "missing": False}
    probes["selinux_config"] = {
        "rc": 0,
        "stdout": recorded_config("enforcing"),
        "stderr": "",
        "missing": False,
    }
    probes["selinux_simulated"] = {"rc": 0, "stdout": MARKER_TEXT, "stderr": "", "missing": False}
    probes[commands.VERSIONS_PROBE] = {
        "rc": 1,
        "stdout": "labdemo\t1.1\tii ",
        "stderr": "dpkg-query: no packages found",
        "missing": False,
    }
    return json.dumps(probes)


def _read_labdemo_openssl(server: LocalSshd, tmp_path: Path) -> HostReading:
    """One apt host's reading of labdemo and openssl from `server` (closed afterwards)."""
    try:
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line())
        return read_hosts(
            [Host("h1", "127.0.0.1", pkg_mgr="apt")], ["labdemo", "openssl"], access=_access(server, known)
        )["h1"]
    finally:
        server.close()


def test_the_one_command_read_runs_the_posture_probe_with_the_same_probes(tmp_path):
    one = commands.probe_script_line("deb", ["labdemo", "openssl"])
    argv = shlex.split(one)
    assert argv[:4] == ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]
    source, spec = argv[-2], yaml.safe_load(argv[-1])
    assert source == (ROOT / "roles/posture/files/posture_probe.py").read_text()
    assert [(c["name"], tuple(c["argv"])) for c in spec["commands"]] == [
        *commands.PROBES,
        (commands.VERSIONS_PROBE, tuple(shlex.split(DPKG_LINE)[4:])),
    ]
    assert [(f["name"], f["path"]) for f in spec["files"]] == list(commands.FILES)
    server = LocalSshd(tmp_path, {one: (0, _one_command_answer(), "")})
    r = _read_labdemo_openssl(server, tmp_path)
    assert server.commands == [one]  # one command, not one per probe
    assert r.reachable, r.error
    assert r.versions == {"labdemo": "1.1", "openssl": None}
    assert r.selinux_mode == "permissive" and r.selinux_config_mode == "enforcing"
    assert r.selinux_simulated is True
    assert r.ruleset == fixture("nft/lab_base.json").rstrip("\n")
    assert commands.VERSIONS_PROBE not in r.posture["probes"]
    # a missing tool is recorded as the probe-by-probe read records it: no exit status
    assert r.posture["probes"]["ufw_status"] == {"rc": None, "stdout": "", "stderr": "", "missing": True}


@pytest.mark.parametrize("answer", ["not json", "[]", '{"nft_ruleset": {"rc": 0}}'])
def test_an_odd_answer_to_the_one_command_read_falls_back_to_each_fixed_command(tmp_path, answer):
    one = commands.probe_script_line("deb", ["labdemo", "openssl"])
    server = LocalSshd(tmp_path, {**_answers(), one: (0, answer, "")})
    r = _read_labdemo_openssl(server, tmp_path)
    assert r.reachable and r.versions == {"labdemo": "1.1", "openssl": None}
    assert r.selinux_mode == "permissive" and r.selinux_simulated is True
    assert server.commands[0] == one and DPKG_LINE in server.commands[1:]


def test_both_reads_give_the_same_document_with_the_marker_and_without(tmp_path):
    """The one-command read and the probe-by-probe read record the marker file alike: present (a file read
    whole, trailing newline stripped) and absent (missing, no exit status)."""
    one = commands.probe_script_line("deb", ["labdemo", "openssl"])
    for marker in (True, False):
        for sub in ("b", "e"):
            (tmp_path / f"{sub}{marker}").mkdir()
        answers = _answers()
        batched = json.loads(_one_command_answer())
        if not marker:
            answers[commands.probe_line("selinux_simulated")] = (127, "", "")  # `test -e` found nothing
            batched["selinux_simulated"] = {
                "rc": None,
                "stdout": "",
                "stderr": "File not found: /etc/selinux/SIMULATED",
                "missing": True,
            }
        batch = _read_labdemo_openssl(
            LocalSshd(tmp_path / f"b{marker}", {one: (0, json.dumps(batched), "")}), tmp_path
        )
        each = _read_labdemo_openssl(LocalSshd(tmp_path / f"e{marker}", answers), tmp_path)
        got = [
            {k: v for k, v in r.posture["probes"]["selinux_simulated"].items() if k != "stderr"}
            for r in (batch, each)
        ]
        assert got[0] == got[1] and got[0]["missing"] is not marker
        assert batch.selinux_simulated is each.selinux_simulated is marker


def test_an_unknown_host_key_is_refused_before_any_command(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    r = read_hosts([Host("h1", "127.0.0.1")], ["labdemo"], access=_access(sshd, known))["h1"]
    assert not r.reachable and "not found in known_hosts" in r.error
    assert r.versions == {} and r.posture == {}
    assert sshd.commands == []


def test_a_changed_host_key_is_refused(sshd, tmp_path):
    import paramiko

    other = paramiko.Ed25519Key.from_private_key_file(keygen(tmp_path / "other"))
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line(other))
    r = read_hosts([Host("h1", "127.0.0.1")], ["labdemo"], access=_access(sshd, known))["h1"]
    assert not r.reachable and "does not match" in r.error
    assert sshd.commands == []


def test_missing_known_hosts_file_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="known_hosts"):
        read_hosts([Host("h1", "127.0.0.1")], ["labdemo"], known_hosts=tmp_path / "nope")


def test_unreachable_host_is_reported_not_raised(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    known = tmp_path / "known_hosts"
    known.write_text("")
    acc = {"h1": SshAccess("127.0.0.1", port=port, known_hosts=known)}
    r = read_hosts([Host("h1", "127.0.0.1")], ["labdemo"], access=acc, timeout=5)["h1"]
    assert not r.reachable and r.error


def _reading(host: str, family: str = "deb", **versions: str | None) -> HostReading:
    return HostReading(host, True, family=family, versions=versions)  # type: ignore[arg-type]


def test_check_wave_verdicts():
    readings = {
        "ok": _reading("ok", labdemo="1.1"),
        "liar": _reading("liar", labdemo="1.0"),
        "honest_fail": _reading("honest_fail", labdemo="1.0"),
        "rpm": _reading("rpm", "rpm", labdemo="1.1-1"),
        "epoch": _reading("epoch", "rpm", labdemo="1:1.1-1"),
        "gone": HostReading("gone", False, error="timed out"),
    }
    expected = {h: {"labdemo": "1.1"} for h in ("ok", "liar", "honest_fail", "gone", "missing")}
    expected |= {"rpm": {"labdemo": "1.1-1"}, "epoch": {"labdemo": "1.1-1"}}
    reported = {
        "ok": {"labdemo": "1.1"},
        "liar": {"labdemo": "1.1"},
        "honest_fail": {"labdemo": "1.0"},
        "rpm": {"labdemo": "1.1-1"},
        "epoch": {"labdemo": "1.1-1"},
    }
    report = check_wave(readings, expected, reported)
    v = report.hosts
    assert v["ok"].verdict == "ok" and v["rpm"].verdict == "ok"
    assert v["liar"].verdict == "disagrees" and v["liar"].lied
    assert "Ansible reported 1.1, the host has 1.0" in v["liar"].describe()
    assert v["honest_fail"].verdict == "disagrees" and not v["honest_fail"].lied
    assert "the plan expects 1.1, the host has 1.0" in v["honest_fail"].describe()
    assert v["epoch"].verdict == "disagrees" and v["epoch"].lied  # epoch 1 is not epoch 0
    assert v["gone"].verdict == "unreachable" and "timed out" in v["gone"].describe()
    assert v["missing"].verdict == "unreachable"
    assert report.lying() == ("epoch", "liar")
    assert report.in_verdict("unreachable") == ("gone", "missing")
    assert not report.ok
    assert report.as_dict()["liar"]["lied"] is True


def test_not_installed_disagrees_with_a_plan():
    report = check_wave({"h": _reading("h", labdemo=None)}, {"h": {"labdemo": "1.1"}}, {})
    assert report.hosts["h"].verdict == "disagrees"
    assert "the host has nothing" in report.hosts["h"].describe()


def test_access_from_a_lab_style_inventory(tmp_path):
    from patchbrain.lab.inventory import render

    key, known = tmp_path / "id_ed25519", tmp_path / "known_hosts"
    inv = tmp_path / "inventory.yml"
    inv.write_text(
        render(
            instance="x", hosts=[("h01", 1, "10.1.2.3"), ("h02", 2, "10.1.2.4")], key=key, known_hosts=known
        )
    )
    access = access_from_inventory(inv)
    assert access["h01"] == SshAccess("10.1.2.3", 22, "root", key.resolve(), known.resolve())
    assert access["h02"].address == "10.1.2.4"
