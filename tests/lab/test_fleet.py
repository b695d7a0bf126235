"""The lab fleet over real SSH: Ansible reaches every host, hosts are isolated, firewalled and resettable."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from patchbrain.lab import Lab, host, net

pytestmark = pytest.mark.lab

BIN = Path(sys.executable).parent
LAB_HOSTS = 4  # the session fleet's size (tests/lab/conftest.py)


def _out(lab: Lab, name: str, *argv: str) -> str:
    proc = lab.exec(name, argv)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_ansible_ping_reaches_every_host_with_strict_host_keys(lab):
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(BIN / "ansible"), "all", "-m", "ansible.builtin.ping", "-i", str(lab.inventory_path())],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count('"ping": "pong"') == LAB_HOSTS


def test_a_wrong_host_key_is_refused(lab, tmp_path):
    recs = {r.name: r for r in lab.hosts()}
    other_key = host.host_public_key(Path(recs["h02"].dir))
    lying = tmp_path / "known_hosts"
    lying.write_text(f"{recs['h01'].address} {other_key}\n")
    argv = [a.replace(str(lab.known_hosts), str(lying)) for a in lab.ssh_argv("h01", "true")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode != 0
    assert "host key" in proc.stderr.lower()
    assert lab.exec("h01", ["true"]).returncode == 0


def test_status_reads_each_host(lab):
    hosts = lab.status()
    assert [h.name for h in hosts] == [f"h{i:02d}" for i in range(1, LAB_HOSTS + 1)]
    assert all(h.up for h in hosts)
    assert {h.os_release for h in hosts} == {"Debian GNU/Linux 12 (bookworm)"}
    assert [h.platform for h in hosts] == ["vm", "vm", "vm", "baremetal"]
    assert all("lab" in h.groups and h.platform in h.groups for h in hosts)


def test_status_json_from_the_cli(lab):
    env = dict(os.environ, PATCHBRAIN_LAB=lab.instance)
    proc = subprocess.run(
        [sys.executable, "-m", "patchbrain", "lab", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    doc = json.loads(proc.stdout)
    assert [(h["name"], h["up"]) for h in doc] == [(f"h{i:02d}", True) for i in range(1, LAB_HOSTS + 1)]


def test_up_from_the_cli_is_idempotent_and_makes_the_lab_keys_once(lab, tmp_path):
    env = dict(os.environ, PATCHBRAIN_LAB=lab.instance, PATCHBRAIN_KEYS=str(tmp_path / "keys"))

    def patchbrain(*argv: str) -> object:
        proc = subprocess.run(
            [sys.executable, "-m", "patchbrain", *argv], capture_output=True, text=True, env=env, timeout=300
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)

    fingerprints = []
    for _ in range(2):  # the fleet is already up: nothing changes, and the keys are made only once
        hosts = patchbrain("lab", "up", str(LAB_HOSTS), "--json")
        assert [h["name"] for h in hosts] == [f"h{i:02d}" for i in range(1, LAB_HOSTS + 1)]
        listing = patchbrain("keys", "list", "--json")
        keys = {k["name"]: k for k in listing["keys"]}
        assert set(keys) == {"lab-approver-1", "lab-approver-2", "lab-signing"}
        assert all(k["has_private"] and k["problem"] is None for k in keys.values())
        fingerprints.append({n: k["fingerprint"] for n, k in keys.items()})
    assert fingerprints[0] == fingerprints[1]
    assert len(set(fingerprints[0].values())) == 3


def test_each_host_has_its_own_namespaces(lab):
    assert _out(lab, "h03", "hostname").strip() == "h03"
    assert "patchbrain-supervisor" in _out(lab, "h03", "cat", "/proc/1/cmdline")
    pids = _out(lab, "h03", "ps", "-e", "-o", "pid=").split()
    assert len(pids) < 10  # only the host's own processes are visible
    root = _out(lab, "h03", "findmnt", "-n", "-o", "FSTYPE", "/").strip()
    assert root == "overlay"


def test_hosts_have_no_route_off_the_lab(lab):
    routes = _out(lab, "h01", "ip", "route")
    assert "default" not in routes
    proc = lab.exec("h01", ["ip", "route", "get", "1.1.1.1"])
    assert proc.returncode != 0
    assert "unreachable" in proc.stderr.lower()


def test_firewall_drops_everything_but_ssh(lab):
    addr = {r.name: r.address for r in lab.hosts()}["h01"]
    ruleset = _out(lab, "h01", "nft", "list", "ruleset")
    assert "policy drop" in ruleset and "tcp dport 22 accept" in ruleset
    start = "setsid python3 -m http.server 8080 --bind 0.0.0.0 </dev/null >/dev/null 2>&1 &"
    assert lab.exec("h01", ["sh", "-c", start]).returncode == 0
    probe = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/', timeout=5).status)"
    for _ in range(50):  # the listener inside the host answers on loopback...
        got = lab.exec("h01", ["python3", "-c", probe])
        if got.returncode == 0:
            break
        time.sleep(0.1)
    assert got.stdout.strip() == "200"
    with pytest.raises(TimeoutError):  # ...but packets from the bridge are dropped, not refused
        socket.create_connection((addr, 8080), timeout=2).close()
    socket.create_connection((addr, 22), timeout=2).close()


def test_reset_gives_a_fresh_host(lab):
    before_boot = _out(lab, "h02", "cat", "/run/patchbrain/boot_id")
    before_key = {r.name: host.host_public_key(Path(r.dir)) for r in lab.hosts()}["h02"]
    _out(lab, "h02", "sh", "-c", "echo dirty > /root/marker && apt-get --version > /etc/motd")
    assert _out(lab, "h02", "cat", "/root/marker").strip() == "dirty"
    started = time.monotonic()
    lab.reset("h02")
    assert time.monotonic() - started < 10
    assert lab.exec("h02", ["test", "-e", "/root/marker"]).returncode == 1
    assert _out(lab, "h02", "cat", "/run/patchbrain/boot_id") != before_boot
    after_key = {r.name: host.host_public_key(Path(r.dir)) for r in lab.hosts()}["h02"]
    assert after_key != before_key  # a new host key, and known_hosts follows it (exec used strict checking)


def test_up_is_idempotent(lab):
    before = {r.name: (r.pid, r.pid_start) for r in lab.hosts()}
    boot = _out(lab, "h01", "cat", "/run/patchbrain/boot_id")
    lab.up(LAB_HOSTS)
    lab.up(2)  # never shrinks
    assert {r.name: (r.pid, r.pid_start) for r in lab.hosts()} == before
    assert _out(lab, "h01", "cat", "/run/patchbrain/boot_id") == boot
    assert all(h.up for h in lab.status())


def test_supervisor_restarts_sshd(lab):
    rec = {r.name: r for r in lab.hosts()}["h04"]
    pids = net.pids_in([rec.netns])[rec.netns]
    listener = [p for p in pids if b"[listener]" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(listener) == 1
    os.kill(listener[0], 9)
    deadline = time.monotonic() + 10
    while not host.ssh_banner(rec.address):
        assert time.monotonic() < deadline, "sshd was not restarted"
        time.sleep(0.1)
    assert _out(lab, "h04", "hostname").strip() == "h04"


def test_reboot_request_boots_the_host_again_and_keeps_its_disk(lab):
    boot = _out(lab, "h03", "cat", "/run/patchbrain/boot_id")
    _out(lab, "h03", "sh", "-c", "echo kept > /root/kept")
    lab.exec("h03", ["kill", "-USR1", "1"])
    deadline = time.monotonic() + 15
    while True:
        got = lab.exec("h03", ["cat", "/run/patchbrain/boot_id"], timeout=15)
        if got.returncode == 0 and got.stdout != boot:
            break
        assert time.monotonic() < deadline, "host did not come back from the reboot"
        time.sleep(0.2)
    assert _out(lab, "h03", "cat", "/root/kept").strip() == "kept"


def test_sshd_takes_keys_only(lab):
    conf = _out(lab, "h01", "sshd", "-T")
    for line in ("permitrootlogin without-password", "passwordauthentication no", "usepam no"):
        assert line in conf.splitlines()
    argv = lab.ssh_argv("h01", "true")
    key_at = argv.index("-i")
    no_key = argv[:key_at] + argv[key_at + 2 :]
    no_key[1:1] = [
        "-o",
        "PreferredAuthentications=password,keyboard-interactive",
        "-o",
        "NumberOfPasswordPrompts=1",
    ]
    proc = subprocess.run(
        no_key, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False
    )
    assert proc.returncode == 255
    assert "Permission denied" in proc.stderr


def test_ansible_reboot_module_reboots_a_host(lab):
    boot = _out(lab, "h02", "cat", "/run/patchbrain/boot_id")
    # a reboot takes seconds when idle; the generous limit is for CI under load (the test fails on a
    # host that never comes back or comes back with the same boot id, not on a slow one)
    args = "boot_time_command='cat /run/patchbrain/boot_id' reboot_timeout=600"
    proc = subprocess.run(
        [
            str(BIN / "ansible"),
            "h02",
            "-i",
            str(lab.inventory_path()),
            "-m",
            "ansible.builtin.reboot",
            "-a",
            args,
        ],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
        timeout=900,
        check=False,
    )
    console = (lab.dir / "hosts" / "h02" / "console.log").read_text(errors="replace")[-2000:]
    assert proc.returncode == 0, proc.stdout + proc.stderr + "\nh02 console:\n" + console
    assert '"rebooted": true' in proc.stdout
    assert _out(lab, "h02", "cat", "/run/patchbrain/boot_id") != boot


def test_a_halted_host_is_down_until_up_starts_it_with_its_disk(lab):
    _out(lab, "h01", "sh", "-c", "echo kept > /root/kept && shutdown -h now")
    deadline = time.monotonic() + 15
    while {h.name: h.up for h in lab.status()}["h01"]:
        assert time.monotonic() < deadline, "host did not halt"
        time.sleep(0.2)
    lab.up(LAB_HOSTS)
    assert all(h.up for h in lab.status())
    assert _out(lab, "h01", "cat", "/root/kept").strip() == "kept"


def test_running_inventory_follows_the_instance(lab, monkeypatch):
    from patchbrain.lab import running_inventory

    monkeypatch.setenv("PATCHBRAIN_LAB", lab.instance)
    assert running_inventory() == lab.inventory_path()
    monkeypatch.setenv("PATCHBRAIN_LAB", f"{lab.instance}none")
    assert running_inventory() is None
