"""The drift gate on a real lab fleet: snapshot, install each labdemo variant (apt and dnf hosts), snapshot,
classify. Every sabotaged variant must be `weakens` with the right reason, firewall ones confirmed by a real
packet from the bridge; the benign update must give no weakening.

Runs its own lab instance (posture-<pid>): h01/h03 apt, h02/h04 dnf. Variants are installed in
rounds, one variant per host, so each round costs two snapshots of the whole fleet.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time

import pytest
from lab_helpers import address, bridge, own_fleet, probe, sh

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
    # the lab's repository server (patchbrain.lab.repo.RepoServer) is left running on purpose, and its
    # Popen object warns when collected; that is the lab's business, not this test's
    pytest.mark.filterwarnings(r"ignore:subprocess \d+ is still running:ResourceWarning"),
]

INSTANCE = "posture"
HOSTS = {"h01": "apt", "h02": "dnf", "h03": "apt", "h04": "dnf"}
PROBE_PORT = 5555  # a listener the tests start before the update; the base firewall drops it
VARIANTS = (
    "benign",
    "open-port",
    "accept-all",
    "flush-ruleset",
    "input-policy-accept",
    "open-output",
    "selinux-permissive",
    "selinux-config-disabled",
)
# variant -> (kind that must be `weakens`, text its reason must contain)
EXPECTED = {
    "open-port": ("firewall.admits", "tcp dport 4444 accept"),
    "accept-all": ("firewall.admits", "rule `accept`"),
    "flush-ruleset": ("firewall.table_deleted", "table nft:inet filter was deleted"),
    "input-policy-accept": (
        "firewall.policy",
        "input chain nft inet filter input policy changed drop -> accept",
    ),
    "open-output": ("firewall.policy", "output chain nft inet filter output policy changed drop -> accept"),
    "selinux-permissive": ("selinux.runtime_mode", "runtime mode changed enforcing -> permissive"),
    "selinux-config-disabled": ("selinux.config_mode", "changed enforcing -> disabled"),
}
FIREWALL_IN = {
    "open-port": 4444,
    "accept-all": PROBE_PORT,
    "flush-ruleset": PROBE_PORT,
    "input-policy-accept": PROBE_PORT,
}


@dataclasses.dataclass
class Outcome:
    variant: str
    mgr: str
    host: str
    changes: list
    blocking: list
    probe_before: str = ""
    probe_after: str = ""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from own_fleet(tmp_path_factory, INSTANCE, len(HOSTS), ("apt", "dnf"))


@pytest.fixture(scope="module")
def content(lab):
    from patchbrain.lab.content import LabContent

    return LabContent(lab.dir)


def probe_out(lab, host, port):
    """A real TCP connection from the host to the bridge: 'open' or 'blocked'."""
    code = (
        "import socket,sys\n"
        "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); print('open')\n"
        "except OSError: print('blocked')"
    )
    return sh(lab, host, "python3", "-c", code, bridge(lab), str(port)).stdout.strip()


def start_listener(lab, host, port):
    # detached from the SSH session's descriptors, or ssh waits for the listener to exit
    sh(
        lab,
        host,
        "sh",
        "-c",
        f"setsid -f /usr/lib/labdemo/labdemo-listen {int(port)} </dev/null >/dev/null 2>&1",
    )
    deadline = time.monotonic() + 10
    while "LISTEN" not in sh(lab, host, "ss", "-ltnH", f"sport = :{port}").stdout:
        assert time.monotonic() < deadline, f"listener on {host}:{port} did not start"
        time.sleep(0.2)


SHIM_COMMANDS = ("getenforce", "sestatus", "setenforce", "getsebool", "setsebool", "selinuxenabled")


def shim_on_package_manager_path(lab, host):
    """Make the SELinux shim visible to maintainer scripts.

    The lab installs it in /usr/local/sbin, but apt runs dpkg with PATH=/usr/sbin:/usr/bin:/sbin:/bin
    (DPkg::Path) and rpm runs scriptlets with /sbin:/bin:/usr/sbin:/usr/bin, so `setenforce 0` in a
    postinst finds nothing and the selinux-permissive variant does nothing. On a real host setenforce is in
    /usr/sbin; link the shim there, as the lab should (reported to the lab's owner).
    """
    links = "; ".join(
        f"[ -e /usr/sbin/{c} ] || ln -s /usr/local/sbin/{c} /usr/sbin/{c}" for c in SHIM_COMMANDS
    )
    sh(lab, host, "sh", "-c", links)


def install(lab, host, mgr, version):
    if mgr == "apt":
        sh(lab, host, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q", "update")
        sh(
            lab,
            host,
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "-y",
            "-q",
            "install",
            f"labdemo={version}",
        )
    else:
        sh(lab, host, "dnf", "-y", "-q", "--refresh", "install", f"labdemo-{version}-1")


def snapshot(lab):
    from patchbrain.posture.collect import run_role

    result = run_role(lab.inventory_path())
    assert result.failed == {}, result.failed
    assert set(result.documents) == set(HOSTS)
    return result.documents


@pytest.fixture(scope="module")
def outcomes(lab, content):
    """Every variant on an apt and a dnf host, in rounds of one variant per host."""
    from patchbrain.posture import gate

    versions = {v: content.publish_variant(v)[0] for v in VARIANTS}
    jobs = [(v, mgr) for v in VARIANTS for mgr in ("apt", "dnf")]
    hosts_by_mgr = {m: [h for h, hm in HOSTS.items() if hm == m] for m in ("apt", "dnf")}
    results: dict[tuple[str, str], Outcome] = {}
    out_server = socket.socket()
    out_server.bind((bridge(lab), 0))
    out_server.listen(16)
    out_port = out_server.getsockname()[1]
    try:
        while jobs:
            assigned: dict[str, tuple[str, str]] = {}
            for v, mgr in list(jobs):
                free = [h for h in hosts_by_mgr[mgr] if h not in assigned]
                if free:
                    assigned[free[0]] = (v, mgr)
                    jobs.remove((v, mgr))
            lab.reset(*HOSTS)
            for host in assigned:
                shim_on_package_manager_path(lab, host)
                start_listener(lab, host, PROBE_PORT)
            before = snapshot(lab)
            probes_before = {}
            for host, (v, _mgr) in assigned.items():
                if v in FIREWALL_IN:
                    probes_before[host] = probe(address(lab, host), FIREWALL_IN[v])
                elif v == "open-output":
                    probes_before[host] = probe_out(lab, host, out_port)
            for host, (v, mgr) in assigned.items():
                install(lab, host, mgr, versions[v])
            after = snapshot(lab)
            for host, (v, mgr) in assigned.items():
                report = gate.compare({host: before[host]}, {host: after[host]}, packages=["labdemo"])
                o = Outcome(v, mgr, host, list(report.changes), list(report.blocking))
                if host in probes_before:
                    o.probe_before = probes_before[host]
                    o.probe_after = (
                        probe(address(lab, host), FIREWALL_IN[v])
                        if v in FIREWALL_IN
                        else probe_out(lab, host, out_port)
                    )
                results[(v, mgr)] = o
    finally:
        out_server.close()
    return results


@pytest.mark.parametrize("mgr", ["apt", "dnf"])
def test_benign_update_gives_no_weakening(outcomes, mgr):
    o = outcomes[("benign", mgr)]
    assert o.blocking == [], [c.reason for c in o.blocking]
    assert not any(c.effect == "weakens" for c in o.changes)


@pytest.mark.parametrize("mgr", ["apt", "dnf"])
@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_sabotaged_variant_is_classified_weakens_with_the_right_reason(outcomes, variant, mgr):
    o = outcomes[(variant, mgr)]
    kind, text = EXPECTED[variant]
    hits = [c for c in o.changes if c.kind == kind and c.effect == "weakens"]
    assert hits, [(c.effect, c.kind, c.reason) for c in o.changes]
    assert any(text in c.reason for c in hits), [c.reason for c in hits]
    assert o.blocking, "a weakening must block the rollout"


@pytest.mark.parametrize("mgr", ["apt", "dnf"])
@pytest.mark.parametrize("variant", sorted(FIREWALL_IN))
def test_firewall_weakening_is_confirmed_by_a_real_packet_from_the_bridge(outcomes, variant, mgr):
    o = outcomes[(variant, mgr)]
    assert (o.probe_before, o.probe_after) == ("filtered", "open")


@pytest.mark.parametrize("mgr", ["apt", "dnf"])
def test_output_weakening_is_confirmed_by_a_real_packet_to_the_bridge(outcomes, mgr):
    o = outcomes[("open-output", mgr)]
    assert (o.probe_before, o.probe_after) == ("blocked", "open")
    assert any("output path now accepts" in c.reason for c in o.changes if c.effect == "weakens")


def test_open_port_also_shows_the_new_listener(outcomes):
    o = outcomes[("open-port", "apt")]
    assert any(c.kind == "sockets.listen" and c.subject.endswith(":4444") for c in o.blocking)


def test_delayed_job_is_caught_by_prescan_and_by_a_later_snapshot(lab, content):
    """The install returns before the job weakens the firewall: the pre-scan flags it up front, and a
    snapshot taken once the job has run classifies it `weakens` (a snapshot taken too early cannot).
    Both formats: a Debian postinst on the apt host h01, an RPM %post on the dnf host h02."""
    from patchbrain.posture import gate, prescan

    delay = 45
    version, published = content.publish_variant("delayed-open-port", delay=delay)
    assert {p.fmt for p in published} == {"deb", "rpm"}
    for p in published:
        assert {"firewall", "deferred"} <= {f.category for f in prescan.scan_file(p.path).findings}, p.path
    lab.reset(*HOSTS)
    before = snapshot(lab)
    started = time.monotonic()
    targets = {"h01": "apt", "h02": "dnf"}
    for host, mgr in targets.items():
        install(lab, host, mgr, version)
    early = snapshot(lab)
    if time.monotonic() - started < delay:
        report = gate.compare({h: before[h] for h in targets}, {h: early[h] for h in targets})
        assert not any(c.area == "firewall" and c.effect == "weakens" for c in report.changes)
    deadline = started + delay + 120
    for host in targets:
        a = address(lab, host)
        while probe(a, 4446, timeout=1) != "open":
            assert time.monotonic() < deadline, f"the delayed job never opened the port on {host}"
            time.sleep(2)
    late = snapshot(lab)
    for host in targets:
        report = gate.compare({host: before[host]}, {host: late[host]})
        assert any(
            c.kind == "firewall.admits" and ("tcp", 4446, 4446) in c.admitted for c in report.blocking
        ), (host, [c.reason for c in report.changes])


def test_cli_snapshot_defaults_to_the_running_lab_and_diff_exits_3(lab, content, tmp_path, capsys):
    from patchbrain import cli

    lab.reset("h01")
    version, _ = content.publish_variant("accept-all")
    a, b = tmp_path / "before.json", tmp_path / "after.json"
    assert cli.main(["posture", "snapshot", "--limit", "h01", "-o", str(a)]) == 0
    install(lab, "h01", "apt", version)
    assert cli.main(["posture", "snapshot", "--limit", "h01", "-o", str(b)]) == 0
    capsys.readouterr()
    assert cli.main(["posture", "diff", str(a), str(b)]) == 3
    out = capsys.readouterr().out
    assert "h01: WEAKENS" in out and "DRIFT" in out
