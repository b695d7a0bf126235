"""`lab down` and `lab down --all` leave nothing behind, and touch nothing the lab does not own."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest

from patchbrain.lab import Lab, net
from patchbrain.lab.system import process_start_time

pytestmark = pytest.mark.lab


def _mount_lines_mentioning(text: str) -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                found += [
                    ln for ln in Path(f"/proc/{entry.name}/mountinfo").read_text().splitlines() if text in ln
                ]
            except OSError:
                continue
    return found


def _alive(pid: int) -> bool:
    """True if `pid` still runs (a zombie waiting for the machine's init to reap it has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_down_leaves_no_namespace_mount_bridge_veth_process_or_file(lab_fleet):
    lab = Lab(f"{lab_fleet.instance}d")
    try:
        lab.up(2)
        recs = lab.hosts()
        spaces = [r.netns for r in recs]
        pids = [(p, process_start_time(p)) for ps in net.pids_in(spaces).values() for p in ps]
        links = [lab.names.bridge] + [r.veth for r in recs]
        assert len(pids) >= 2 * 4  # launcher, unshare, supervisor, sshd per host
        assert set(links) <= net.link_names()
        assert _mount_lines_mentioning(str(lab.dir))  # the overlays exist while up
        subnet_before = net.subnet_users(ipaddress.IPv4Network(lab._load().subnet))
        assert subnet_before
    finally:
        lab.down()
    assert not set(spaces) & net.netns_names(), "namespace left"
    assert not set(links) & net.link_names(), "bridge or veth left"
    alive = [p for p, start in pids if _alive(p) and process_start_time(p) == start]  # pids wrap fast here
    assert not alive, f"processes left: {alive}"
    assert not _mount_lines_mentioning(str(lab.dir)), "mount left"
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    assert not [ln for ln in mounts if any(f"/run/netns/{ns} " in ln for ns in spaces)], "netns mount left"
    assert not lab.dir.exists(), "files left"
    assert not lab.is_up()


def test_down_all_after_a_sigkilled_up_cleans_up_only_lab_resources(lab_fleet, sandbox):
    lab_fleet.up(1)  # makes sure the base is built before the sandbox runs
    got = sandbox(
        """
        import json, os, signal, subprocess, sys, time
        from pathlib import Path
        from patchbrain.lab import names, net

        def sh(*argv):
            subprocess.run(argv, check=True, capture_output=True)

        env = dict(os.environ, PATCHBRAIN_LAB="killed")
        # things the lab does not own, some with similar names
        sh("ip", "netns", "add", "keepme")
        sh("ip", "netns", "add", "pbl")
        sh("ip", "link", "add", "keep0", "type", "bridge")
        sh("ip", "link", "add", "pbl-notours0", "type", "bridge")
        keeper = subprocess.Popen(["ip", "netns", "exec", "keepme", "sleep", "600"])
        # a leftover named like the lab but recorded nowhere (a SIGKILL before the record was written)
        sh("ip", "link", "add", "pbl-zz-br", "type", "bridge")
        sh("ip", "netns", "add", "pbl-zz-h1")
        orphan = subprocess.Popen(["ip", "netns", "exec", "pbl-zz-h1", "sleep", "600"])

        # a live instance of another PATCHBRAIN_HOME: --all from this home must keep it
        home2 = dict(os.environ, PATCHBRAIN_LAB="other", PATCHBRAIN_HOME=os.environ["PATCHBRAIN_HOME"] + "2")
        lab = [sys.executable, "-m", "patchbrain", "lab"]
        subprocess.run([*lab, "up", "1"], env=home2, check=True, capture_output=True)
        same_name = subprocess.run([*lab, "up", "1"], env=dict(os.environ, PATCHBRAIN_LAB="other"),
                                   capture_output=True, text=True)
        # another, started before the machine-wide registry existed: only its launcher names its home
        home3 = dict(home2, PATCHBRAIN_LAB="third")
        subprocess.run([*lab, "up", "1"], env=home3, check=True, capture_output=True)
        os.unlink("/run/patchbrain-lab/third.json")
        up = subprocess.Popen([sys.executable, "-m", "patchbrain", "lab", "up", "6"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        owner = names.Names("killed")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and up.poll() is None:
            spaces = sorted(n for n in net.netns_names() if owner.owns(n))
            if len(spaces) >= 2:
                break
            time.sleep(0.005)
        up.send_signal(signal.SIGKILL)
        up.wait()
        time.sleep(0.2)
        at_kill = sorted(n for n in net.netns_names() if owner.owns(n))
        pids = [p for ps in net.pids_in(at_kill + ["pbl-zz-h1"]).values() for p in ps]

        down = subprocess.run([sys.executable, "-m", "patchbrain", "lab", "down", "--all"], env=env,
                              capture_output=True, text=True)
        time.sleep(0.1)
        other_ok = subprocess.run([*lab, "ssh", "h01", "hostname"], env=home2, capture_output=True, text=True)
        other_down = subprocess.run([*lab, "down"], env=home2, capture_output=True, text=True)
        third_ok = subprocess.run([*lab, "ssh", "h01", "hostname"], env=home3, capture_output=True, text=True)
        subprocess.run([*lab, "down"], env=home3, check=True)
        def alive(pid):
            try:
                return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
            except OSError:
                return False
        print(json.dumps({
            "up_rc": up.returncode, "at_kill": at_kill, "pids": pids, "down_rc": down.returncode,
            "down_err": down.stderr, "links": sorted(net.link_names()), "netns": sorted(net.netns_names()),
            "alive": [p for p in pids if alive(p)], "keeper": keeper.poll() is None,
            "orphan": orphan.poll() is None, "down_out": down.stdout,
            "same_name_rc": same_name.returncode, "same_name_err": same_name.stderr,
            "other_ok": other_ok.stdout.strip(), "third_ok": third_ok.stdout.strip(),
            "other_down": other_down.returncode,
            "mounts": [l for l in Path("/proc/self/mountinfo").read_text().splitlines()
                       if "pbl-killed-" in l or "pbl-zz-" in l],
            "lab_dir": sorted(str(p) for p in Path(os.environ["PATCHBRAIN_HOME"], "lab").glob("*")),
        }))
        """
    )
    assert got["up_rc"] == -9
    assert got["at_kill"], "lab up was killed before it created anything"
    assert got["pids"], "no host process was running at the kill"
    assert got["down_rc"] == 0, got["down_err"]
    assert got["alive"] == []
    assert not got["orphan"]
    assert got["mounts"] == []
    assert got["lab_dir"] == []
    assert [n for n in got["netns"] if n.startswith("pbl-")] == []
    assert "keepme" in got["netns"] and "pbl" in got["netns"]
    assert {"keep0", "pbl-notours0"} <= set(got["links"])
    assert not [n for n in got["links"] if n.startswith("pbl-") and n != "pbl-notours0"]
    assert got["keeper"]
    assert got["other_ok"] == "h01", got["down_out"]  # another home's live instance survived --all
    assert got["third_ok"] == "h01", got["down_out"]
    assert "kept pbl-other-*" in got["down_out"] and "kept pbl-third-*" in got["down_out"]
    assert got["other_down"] == 0
    assert got["same_name_rc"] == 2 and "another PATCHBRAIN_HOME" in got["same_name_err"]


def test_a_subnet_in_use_by_something_else_is_refused(sandbox):
    got = sandbox(
        """
        import json, os, subprocess, sys
        from patchbrain.lab import names

        def sh(*argv):
            subprocess.run(argv, check=True, capture_output=True)

        sh("ip", "link", "add", "busy0", "type", "bridge")
        sh("ip", "addr", "add", "10.213.77.1/24", "dev", "busy0")
        sh("ip", "addr", "add", f"{names.preferred_subnet('auto').network_address + 5}/24", "dev", "busy0")
        lab = [sys.executable, "-m", "patchbrain", "lab"]
        forced_env = dict(os.environ, PATCHBRAIN_LAB="forced", PATCHBRAIN_LAB_SUBNET="10.213.77.0/24")
        forced = subprocess.run([*lab, "up", "1"], capture_output=True, text=True, env=forced_env)
        auto_env = dict(os.environ, PATCHBRAIN_LAB="auto")
        auto = subprocess.run([*lab, "up", "1", "--json"], capture_output=True, text=True, env=auto_env)
        subprocess.run([*lab, "down"], env=auto_env, check=True)
        print(json.dumps({"rc": forced.returncode, "err": forced.stderr, "auto_rc": auto.returncode,
                          "auto": auto.stdout, "auto_err": auto.stderr,
                          "preferred": str(names.preferred_subnet("auto"))}))
        """
    )
    assert got["rc"] == 2
    err = got["err"].strip()
    assert "\n" not in err and "10.213.77.0/24" in err and "busy0" in err
    assert got["auto_rc"] == 0, got["auto_err"]
    [h] = json.loads(got["auto"])
    assert ipaddress.IPv4Address(h["address"]) not in ipaddress.IPv4Network(got["preferred"])
    assert h["up"]


def test_up_after_a_sigkilled_up_recovers_and_down_cleans_up(lab_fleet, sandbox):
    lab_fleet.up(1)  # the base is built
    got = sandbox(
        """
        import json, os, signal, subprocess, sys, time
        from patchbrain.lab import Lab, names, net

        env = dict(os.environ, PATCHBRAIN_LAB="again")
        lab = [sys.executable, "-m", "patchbrain", "lab"]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        up = subprocess.Popen([*lab, "up", "5"], env=env, **quiet)
        owner = names.Names("again")
        while up.poll() is None and len([n for n in net.netns_names() if owner.owns(n)]) < 3:
            time.sleep(0.005)
        up.send_signal(signal.SIGKILL)
        up.wait()
        again = subprocess.run([*lab, "up", "5", "--json"], env=env, capture_output=True, text=True)
        hosts = json.loads(again.stdout) if again.returncode == 0 else []
        ping = subprocess.run([*lab, "ssh", "h05", "hostname"], env=env, capture_output=True, text=True)
        down = subprocess.run([*lab, "down"], env=env, capture_output=True, text=True)
        left = sorted(n for n in net.netns_names() | net.link_names() if owner.owns(n))
        print(json.dumps({"rc": again.returncode, "err": again.stderr, "up": [h["up"] for h in hosts],
                          "hostname": ping.stdout.strip(), "down_rc": down.returncode, "left": left,
                          "dir": Lab("again").dir.exists()}))
        """
    )
    assert got["rc"] == 0, got["err"]
    assert got["up"] == [True] * 5
    assert got["hostname"] == "h05"
    assert got["down_rc"] == 0
    assert got["left"] == []
    assert not got["dir"]
