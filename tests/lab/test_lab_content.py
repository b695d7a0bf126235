"""Lab content on a real lab fleet: signed repositories, upgrades and downgrades through apt, dnf and zypper,
tampered indexes refused, each sabotaged labdemo visibly weakening its host, SELinux shim, reboots.

Runs its own lab instance (content-<pid>) with three hosts: h01 apt, h02 dnf, h03 zypper.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import lab_helpers
import pytest
from lab_helpers import address as addr
from lab_helpers import bridge, own_fleet, probe

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

INSTANCE = "content"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from own_fleet(tmp_path_factory, INSTANCE, 3, ("apt", "dnf", "zypper"))


@pytest.fixture(scope="module")
def content(lab):
    from patchbrain.lab.content import LabContent

    return LabContent(lab.dir)


def sh(lab, host, *argv, check=True, timeout=180):
    return lab_helpers.sh(lab, host, *argv, check=check, timeout=timeout)


def installed(lab, host, mgr):
    if mgr == "apt":
        return sh(lab, host, "dpkg-query", "-W", "-f=${Version}", "labdemo").stdout.strip()
    return sh(lab, host, "rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", "labdemo").stdout.strip()


APT_GET = ("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q")
DNF = ("dnf", "-y", "-q")
ZYPPER = ("zypper", "--non-interactive", "--quiet")


def fresh(lab, host):
    lab.reset(host)


# -------------------------------------------------------------------- the fleet as configured


def test_hosts_have_their_package_manager_and_simulated_enforcing_selinux(lab):
    by_name = {s.name: s for s in lab.status()}
    assert {n: s.pkg_mgr for n, s in by_name.items()} == {"h01": "apt", "h02": "dnf", "h03": "zypper"}
    for name, status in by_name.items():
        assert status.up
        assert status.selinux == "Enforcing (simulated)"
        assert sh(lab, name, "getenforce").stdout == "Enforcing\n"
        assert "Current mode:                   enforcing" in sh(lab, name, "sestatus").stdout
        assert "SIMULATED" in sh(lab, name, "cat", "/etc/selinux/SIMULATED").stdout
    inv = lab.inventory_path().read_text()
    for name, mgr in (("h01", "apt"), ("h02", "dnf"), ("h03", "zypper")):
        block = inv.split(f"            {name}:\n", 1)[1].split("\n            h", 1)[0]
        assert f'patchbrain_pkg_mgr: "{mgr}"' in block


def test_labdemo_1_0_is_preinstalled_by_each_manager(lab):
    assert installed(lab, "h01", "apt") == "1.0"
    assert installed(lab, "h02", "dnf") == "1.0-1"
    assert installed(lab, "h03", "zypper") == "1.0-1"
    assert "CVE-2018-15473" in sh(lab, "h02", "rpm", "-q", "--changelog", "labdemo").stdout


# -------------------------------------------------------------------- upgrade and downgrade


def test_apt_upgrade_then_downgrade(lab):
    fresh(lab, "h01")
    sh(lab, "h01", *APT_GET, "update")
    sim = sh(lab, "h01", "apt-get", "-s", "upgrade").stdout
    assert "Inst labdemo [1.0] (1.1 " in sim
    sh(lab, "h01", *APT_GET, "install", "labdemo")
    assert installed(lab, "h01", "apt") == "1.1"
    assert sh(lab, "h01", "labdemo").stdout == "labdemo 1.1\n"
    sh(lab, "h01", *APT_GET, "install", "--allow-downgrades", "labdemo=1.0")
    assert installed(lab, "h01", "apt") == "1.0"


def test_dnf_check_update_upgrade_then_downgrade(lab):
    fresh(lab, "h02")
    check = sh(lab, "h02", "dnf", "-q", "--refresh", "check-update", check=False)
    assert check.returncode == 100, check.stderr
    assert "labdemo.noarch" in check.stdout and "1.1-1" in check.stdout
    sh(lab, "h02", *DNF, "upgrade", "labdemo")
    assert installed(lab, "h02", "dnf") == "1.1-1"
    sh(lab, "h02", *DNF, "downgrade", "labdemo-1.0-1")
    assert installed(lab, "h02", "dnf") == "1.0-1"


def test_zypper_list_updates_upgrade_then_downgrade(lab):
    fresh(lab, "h03")
    sh(lab, "h03", *ZYPPER, "refresh")
    lu = sh(lab, "h03", "zypper", "--non-interactive", "list-updates").stdout
    assert "labdemo" in lu and "1.1-1" in lu
    sh(lab, "h03", *ZYPPER, "update", "labdemo")
    assert installed(lab, "h03", "zypper") == "1.1-1"
    sh(lab, "h03", *ZYPPER, "install", "--oldpackage", "labdemo-1.0-1")
    assert installed(lab, "h03", "zypper") == "1.0-1"


def test_ansible_modules_upgrade_through_apt_and_dnf(lab, tmp_path):
    fresh(lab, "h01")
    fresh(lab, "h02")
    play = tmp_path / "upgrade.yml"
    play.write_text(
        "- name: Upgrade labdemo\n"
        "  hosts: h01,h02\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Upgrade with apt\n"
        "      ansible.builtin.apt:\n"
        "        name: labdemo\n"
        "        state: latest\n"
        "        update_cache: true\n"
        "      when: patchbrain_pkg_mgr == 'apt'\n"
        "    - name: Upgrade with dnf\n"
        "      ansible.builtin.dnf:\n"
        "        name: labdemo\n"
        "        state: latest\n"
        "        update_cache: true\n"
        # The host's facts say Debian/apt, so the module cannot pick its backend by itself.
        "        use_backend: dnf4\n"
        "      when: patchbrain_pkg_mgr == 'dnf'\n"
    )
    run = ansible_playbook(lab, play)
    assert run.returncode == 0, run.stdout[-3000:]
    assert installed(lab, "h01", "apt") == "1.1"
    assert installed(lab, "h02", "dnf") == "1.1-1"


# -------------------------------------------------------------------- tampered indexes


def test_apt_refuses_a_tampered_index(lab, content):
    from patchbrain.lab import repo

    fresh(lab, "h01")
    bindir = next((content.repo.apt / "dists" / repo.SUITE / repo.COMPONENT).glob("binary-*"))
    good = {p: p.read_bytes() for p in (bindir / "Packages", bindir / "Packages.gz")}
    text = good[bindir / "Packages"].decode()
    forged = text.replace("Version: 1.1", "Version: 1.9")
    assert len(forged) == len(text) and forged != text
    try:
        (bindir / "Packages").write_text(forged)
        (bindir / "Packages.gz").write_bytes(gzip.compress(forged.encode(), mtime=0))
        up = sh(lab, "h01", "apt-get", "update", check=False)
        assert up.returncode != 0
        assert "Hash Sum mismatch" in up.stderr or "Some index files failed to download" in up.stderr
        assert "1.9" not in sh(lab, "h01", "apt-cache", "policy", "labdemo").stdout
    finally:
        for p, data in good.items():
            p.write_bytes(data)
    sh(lab, "h01", *APT_GET, "update")


@contextlib.contextmanager
def forged_rpm_primary(content):
    """Until the block ends, the rpm repository's primary metadata claims labdemo 1.9 while repomd.xml (which
    carries its checksum) stays as signed."""
    primary = next((content.repo.rpm / "repodata").glob("*-primary.xml.gz"))
    good = primary.read_bytes()
    try:
        xml = gzip.decompress(good).decode().replace('ver="1.1"', 'ver="1.9"')
        primary.write_bytes(gzip.compress(xml.encode(), mtime=0))
        yield
    finally:
        primary.write_bytes(good)


def test_dnf_refuses_tampered_metadata(lab, content):
    fresh(lab, "h02")
    with forged_rpm_primary(content):
        # repomd.xml is unchanged, so a host with cached metadata would not fetch primary again
        sh(lab, "h02", "dnf", "-q", "clean", "all")
        made = sh(lab, "h02", "dnf", "-y", "--refresh", "makecache", check=False)
        assert made.returncode != 0
        assert "checksum doesn't match" in made.stderr
    sh(lab, "h02", "dnf", "-y", "-q", "--refresh", "makecache")


def test_zypper_refuses_tampered_metadata(lab, content):
    fresh(lab, "h03")
    with forged_rpm_primary(content):
        sh(lab, "h03", *ZYPPER, "clean", "--all")
        refreshed = sh(lab, "h03", "zypper", "--non-interactive", "refresh", "--force", check=False)
        assert refreshed.returncode != 0
        assert "has wrong checksum" in refreshed.stdout + refreshed.stderr
        listed = sh(lab, "h03", "zypper", "--non-interactive", "list-updates", check=False)
        assert "1.9" not in listed.stdout
    sh(lab, "h03", "zypper", "--non-interactive", "--quiet", "refresh", "--force")


# -------------------------------------------------------------------- sabotaged updates


def install_variant(lab, content, host, mgr, name, **kw):
    version, added = content.publish_variant(name, **kw)
    assert {p.fmt for p in added} == {"deb", "rpm"}
    install_version(lab, host, mgr, version)
    return version


def install_version(lab, host, mgr, version):
    if mgr == "apt":
        sh(lab, host, *APT_GET, "update")
        sh(lab, host, *APT_GET, "install", f"labdemo={version}")
        assert installed(lab, host, mgr) == version
    else:
        sh(lab, host, *DNF, "--refresh", "upgrade", "labdemo")
        assert installed(lab, host, mgr) == f"{version}-1"


def start_listener(lab, host, port):
    # Detached from the SSH session's descriptors, or ssh would wait for the listener to exit.
    sh(
        lab,
        host,
        "sh",
        "-c",
        f"setsid -f /usr/lib/labdemo/labdemo-listen {int(port)} </dev/null >/dev/null 2>&1",
    )
    deadline = time.monotonic() + 5
    while "LISTEN" not in sh(lab, host, "ss", "-ltnH", f"sport = :{port}").stdout:
        if time.monotonic() > deadline:
            raise AssertionError(f"listener on {host}:{port} did not start")
        time.sleep(0.1)


@pytest.mark.parametrize(("mgr", "host"), [("apt", "h01"), ("dnf", "h02")])
def test_open_port_variant_opens_a_port_that_answers(lab, content, mgr, host):
    fresh(lab, host)
    a = addr(lab, host)
    assert probe(a, 4444) == "filtered"
    install_variant(lab, content, host, mgr, "open-port")
    assert probe(a, 4444) == "open"
    with socket.create_connection((a, 4444), timeout=3) as s:
        assert s.recv(64) == b"labdemo-listen 4444\n"


@pytest.mark.parametrize("variant", ["accept-all", "flush-ruleset", "input-policy-accept"])
def test_firewall_variants_let_a_blocked_port_answer(lab, content, variant):
    fresh(lab, "h01")
    a = addr(lab, "h01")
    start_listener(lab, "h01", 5555)
    assert probe(a, 5555) == "filtered"  # something listens, the firewall drops
    before = sh(lab, "h01", "nft", "list", "ruleset").stdout
    install_variant(lab, content, "h01", "apt", variant)
    assert probe(a, 5555) == "open"
    assert sh(lab, "h01", "nft", "list", "ruleset").stdout != before


def test_open_output_variant_lets_the_host_reach_out(lab, content):
    fresh(lab, "h01")
    br = bridge(lab)
    srv = socket.socket()
    srv.bind((br, 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    reach = [
        "python3",
        "-c",
        "import socket,sys\n"
        "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); print('open')\n"
        "except OSError as e: print('blocked', e)",
        br,
        str(port),
    ]
    try:
        assert sh(lab, "h01", *reach).stdout.startswith("blocked")  # output policy drop
        install_variant(lab, content, "h01", "apt", "open-output")
        assert sh(lab, "h01", *reach).stdout.startswith("open")
    finally:
        srv.close()


@pytest.mark.parametrize(("mgr", "host"), [("apt", "h01"), ("dnf", "h02")])
def test_selinux_permissive_variant(lab, content, mgr, host):
    fresh(lab, host)
    assert sh(lab, host, "getenforce").stdout == "Enforcing\n"
    install_variant(lab, content, host, mgr, "selinux-permissive")
    assert sh(lab, host, "getenforce").stdout == "Permissive\n"
    assert {s.name: s.selinux for s in lab.status()}[host] == "Permissive (simulated)"


def test_selinux_config_disabled_variant_takes_effect_at_reboot(lab, content):
    fresh(lab, "h01")
    install_variant(lab, content, "h01", "apt", "selinux-config-disabled")
    assert sh(lab, "h01", "grep", "^SELINUX=", "/etc/selinux/config").stdout == "SELINUX=disabled\n"
    assert "Mode from config file:          disabled" in sh(lab, "h01", "sestatus").stdout
    assert sh(lab, "h01", "getenforce").stdout == "Enforcing\n"
    reboot_via_ssh(lab, "h01")
    assert sh(lab, "h01", "getenforce").stdout == "Disabled\n"


def test_delayed_variant_weakens_only_after_install_returned(lab, content):
    fresh(lab, "h01")
    a = addr(lab, "h01")
    delay = 20
    version, _ = content.publish_variant("delayed-open-port", delay=delay)
    started = time.monotonic()
    install_version(lab, "h01", "apt", version)
    # The install returned before the job fired (it would have taken `delay` seconds otherwise) ...
    assert time.monotonic() - started < delay
    assert probe(a, 4446) == "filtered"
    # ... and the weakening comes later, from a job nobody waited for.
    deadline = started + delay + 30
    while probe(a, 4446, timeout=1) != "open":
        assert time.monotonic() < deadline, "the delayed job never opened the port"
        time.sleep(1)
    assert "tcp dport 4446" in sh(lab, "h01", "nft", "list", "chain", "inet", "filter", "input").stdout


# -------------------------------------------------------------------- reboots


def boot_id(lab, host):
    return sh(lab, host, "cat", "/run/patchbrain/boot_id").stdout.strip()


def reboot_via_ssh(lab, host):
    before = boot_id(lab, host)
    sh(lab, host, "reboot")
    deadline = time.monotonic() + 30
    while True:
        time.sleep(0.5)
        proc = lab.exec(host, ["cat", "/run/patchbrain/boot_id"], timeout=10)
        if proc.returncode == 0 and proc.stdout.strip() not in ("", before):
            return
        assert time.monotonic() < deadline, "host did not come back with a new boot id"


def ansible_playbook(lab, play):
    exe = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    env = dict(os.environ, ANSIBLE_PIPELINING="True", ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="True")
    return subprocess.run(
        [exe, "-i", str(lab.inventory_path()), str(play)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


def test_ansible_reboot_changes_the_boot_id(lab, tmp_path):
    from patchbrain.lab.shim import BOOT_TIME_COMMAND

    fresh(lab, "h01")
    fresh(lab, "h02")
    before = {h: boot_id(lab, h) for h in ("h01", "h02")}
    sh(lab, "h01", "sh", "-c", "echo persisted > /root/marker")
    play = tmp_path / "reboot.yml"
    play.write_text(
        "- name: Reboot lab hosts\n"
        "  hosts: h01,h02\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Reboot and wait for the new boot id\n"
        "      ansible.builtin.reboot:\n"
        f"        boot_time_command: {BOOT_TIME_COMMAND}\n"
        "        reboot_timeout: 600\n"  # an upper bound: a loaded 2-core machine needed over 120 s once
    )
    run = ansible_playbook(lab, play)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "rebooted" in run.stdout or "changed=1" in run.stdout
    for host, old in before.items():
        new = boot_id(lab, host)
        assert new and new != old
    assert sh(lab, "h01", "cat", "/root/marker").stdout == "persisted\n"  # disk survives, /run does not
    assert sh(lab, "h01", "getenforce").stdout == "Enforcing\n"
    assert "policy drop" in sh(lab, "h01", "nft", "list", "chain", "inet", "filter", "input").stdout


# -------------------------------------------------------------------- `patchbrain lab publish`


def patchbrain(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "patchbrain"), *argv], capture_output=True, text=True, check=False
    )
    assert not check or proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_lab_publish_adds_files_keeps_old_versions_and_refuses_a_changed_file(lab, content, tmp_path):
    import json

    from patchbrain.lab import packages

    old = {fmt: set(content.repo.versions("labdemo", fmt)) for fmt in ("deb", "rpm")}
    version = packages.next_version([v for vs in old.values() for v in vs])
    patchbrain("lab", "build-packages", "--out", str(tmp_path), "--variant", "benign", "--version", version)
    deb, rpm = (
        tmp_path / "benign" / f"labdemo_{version}_all.deb",
        tmp_path / "benign" / f"labdemo-{version}-1.noarch.rpm",
    )
    doc = json.loads(patchbrain("lab", "publish", str(deb), str(rpm), "--json").stdout)
    assert sorted((r["format"], r["version"]) for r in doc["published"]) == [
        ("deb", version),
        ("rpm", f"{version}-1"),
    ]
    # old versions stay published (downgrades remain possible), and the hosts see the new one signed
    assert old["deb"] < set(content.repo.versions("labdemo", "deb"))
    assert old["rpm"] < set(content.repo.versions("labdemo", "rpm"))
    fresh(lab, "h01")
    sh(lab, "h01", *APT_GET, "update")
    madison = sh(lab, "h01", "apt-cache", "madison", "labdemo").stdout
    assert all(f" {v} " in madison for v in (version, "1.1", "1.0")), madison
    fresh(lab, "h02")
    listed = sh(lab, "h02", *DNF, "--refresh", "list", "--showduplicates", "labdemo").stdout
    assert all(f"{v}-1" in listed for v in (version, "1.1", "1.0")), listed
    # the same files again: nothing new; another file under a published name and version: refused
    again = json.loads(patchbrain("lab", "publish", str(deb), "--json").stdout)
    assert again["published"] == []
    patchbrain(
        "lab",
        "build-packages",
        "--out",
        str(tmp_path / "other"),
        "--variant",
        "open-port",
        "--version",
        version,
    )
    refused = patchbrain("lab", "publish", str(tmp_path / "other" / "open-port" / deb.name), check=False)
    assert refused.returncode == 2 and "already published with different content" in refused.stderr
