"""The independent verifier on real lab hosts (apt and dnf): versions, ruleset and SELinux mode read over
patchbrain's own paramiko channel, and host keys checked strictly against the lab's known_hosts."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = [
    pytest.mark.lab,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

INSTANCE = os.environ.get("PATCHBRAIN_TEST_VERIFY_LAB") or "vrfy"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    from patchbrain.lab import Lab

    home = tmp_path_factory.mktemp("pbhome")
    mp = pytest.MonkeyPatch()
    mp.setenv("PATCHBRAIN_HOME", str(home))
    mp.delenv("PATCHBRAIN_DB", raising=False)
    lab = Lab(INSTANCE)
    try:
        lab.up(2, ("apt", "dnf"))
        yield lab
    finally:
        lab.down()
        mp.undo()


def test_verifier_reads_versions_ruleset_and_selinux_mode_and_rejects_unknown_keys(fleet, tmp_path):
    from patchbrain.inventory import load_hosts
    from patchbrain.posture.snapshot import parse_document
    from patchbrain.verify import access_from_inventory, check_wave, read_hosts

    inv = fleet.inventory_path()
    hosts = load_hosts(inv)
    access = access_from_inventory(inv)
    assert {a.known_hosts for a in access.values()} == {fleet.known_hosts.resolve()}
    readings = read_hosts(hosts, ["labdemo"], access=access)
    assert readings["h01"].reachable and readings["h02"].reachable, readings
    assert readings["h01"].versions == {"labdemo": "1.0"}
    assert readings["h02"].versions == {"labdemo": "1.0-1"}
    for r in readings.values():
        assert r.selinux_mode == "enforcing" and r.selinux_config_mode == "enforcing"  # the lab's shim
        assert r.selinux_simulated is True  # its marker, read over the verifier's own channel
        tables = json.loads(r.ruleset or "{}")["nftables"]
        assert any(t.get("chain", {}).get("name") == "input" for t in tables)
        snap = parse_document(dict(r.posture), host=r.host)
        assert snap.ruleset.tables and snap.sockets is not None
        assert snap.selinux is not None and snap.selinux.simulated
    report = check_wave(readings, {"h01": {"labdemo": "1.0"}, "h02": {"labdemo": "1.0-1"}}, {})
    assert report.ok, report.as_dict()

    # a sabotaged host changes its runtime mode: the verifier sees it, not only Ansible
    assert fleet.exec("h01", ["setenforce", "0"]).returncode == 0
    assert read_hosts(hosts, [], access=access)["h01"].selinux_mode == "permissive"

    # h02's key listed for h01's address: h01 must be refused, never trusted
    lines = fleet.known_hosts.read_text().splitlines()
    by_addr = {line.split()[0]: line.split(maxsplit=1)[1] for line in lines if line.strip()}
    h01, h02 = access["h01"].address, access["h02"].address
    swapped = tmp_path / "known_hosts"
    swapped.write_text(f"{h01} {by_addr[h02]}\n{h02} {by_addr[h02]}\n")
    r = read_hosts(hosts, ["labdemo"], access=access, known_hosts=swapped)
    assert not r["h01"].reachable and "does not match" in r["h01"].error
    assert r["h02"].reachable
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    r = read_hosts(hosts, ["labdemo"], access=access, known_hosts=empty)
    assert all(not x.reachable and "not found in known_hosts" in x.error for x in r.values())
