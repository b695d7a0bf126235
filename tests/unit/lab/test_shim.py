"""The SELinux stand-in: run as a program (as on a host) against a temporary root, output compared with
the real tools' formats (policycoreutils sestatus, libselinux getenforce/setenforce/getsebool)."""

from __future__ import annotations

import os
import subprocess

import pytest

from patchbrain.lab import shim

REAL_SESTATUS_ENFORCING = """\
SELinux status:                 enabled
SELinuxfs mount:                /sys/fs/selinux
SELinux root directory:         /etc/selinux
Loaded policy name:             targeted
Current mode:                   enforcing
Mode from config file:          enforcing
Policy MLS status:              enabled
Policy deny_unknown status:     allowed
Memory protection checking:     actual (secure)
Max kernel policy version:      33
"""


@pytest.fixture
def root(tmp_path):
    shim.install(tmp_path)
    return tmp_path


def tool(root, name, *args):
    """Run a tool through its symlink, exactly as a host's PATH lookup would."""
    env = dict(os.environ, SELINUX_SHIM_ROOT=str(root))
    path = root / ("usr/local/sbin" if name == "selinux-shim" else "usr/sbin") / name
    assert name == "selinux-shim" or os.readlink(path) == "../local/sbin/selinux-shim"
    return subprocess.run([str(path), *args], capture_output=True, text=True, env=env, check=False)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="setenforce changes the mode only as root")


def test_default_host_is_enforcing_and_marked_simulated(root):
    assert tool(root, "getenforce").stdout == "Enforcing\n"
    assert tool(root, "sestatus").stdout == REAL_SESTATUS_ENFORCING
    assert tool(root, "selinuxenabled").returncode == 0
    assert shim.is_simulated(root)
    assert tool(root, "selinux-shim", "status").stdout == "Enforcing simulated\n"


@needs_root
def test_setenforce_switches_the_running_mode_only(root):
    assert tool(root, "setenforce", "0").returncode == 0
    assert tool(root, "getenforce").stdout == "Permissive\n"
    out = tool(root, "sestatus").stdout
    assert "Current mode:                   permissive\n" in out
    assert "Mode from config file:          enforcing\n" in out
    assert tool(root, "setenforce", "Enforcing").returncode == 0
    assert tool(root, "getenforce").stdout == "Enforcing\n"
    # a reboot (the boot step) restores the mode from the config
    tool(root, "setenforce", "permissive")
    tool(root, "selinux-shim", "boot")
    assert tool(root, "getenforce").stdout == "Enforcing\n"


def test_setenforce_usage_matches_libselinux(root):
    bad = tool(root, "setenforce", "sideways")
    assert bad.returncode == 1
    assert bad.stderr == f"usage:  {root}/usr/sbin/setenforce [ Enforcing | Permissive | 1 | 0 ]\n"
    assert tool(root, "setenforce").returncode == 1


def test_config_disabled_takes_effect_at_boot(root):
    config = root / "etc/selinux/config"
    assert tool(root, "getenforce").stdout == "Enforcing\n"
    config.write_text(config.read_text().replace("SELINUX=enforcing", "SELINUX=disabled"))
    # still enforcing until the next boot, but sestatus shows the config's mode at once
    assert tool(root, "getenforce").stdout == "Enforcing\n"
    assert "Mode from config file:          disabled\n" in tool(root, "sestatus").stdout
    tool(root, "selinux-shim", "boot")
    assert tool(root, "getenforce").stdout == "Disabled\n"
    assert tool(root, "sestatus").stdout == "SELinux status:                 disabled\n"
    refused = tool(root, "setenforce", "1")
    assert refused.returncode == 1
    assert refused.stderr.endswith("setenforce: SELinux is disabled\n")
    assert tool(root, "selinuxenabled").returncode == 1
    assert tool(root, "getsebool", "-a").stderr.endswith("getsebool:  SELinux is disabled\n")


@needs_root
def test_booleans_runtime_and_persistent(root):
    assert tool(root, "getsebool", "ssh_sysadm_login").stdout == "ssh_sysadm_login --> off\n"
    assert tool(root, "setsebool", "ssh_sysadm_login", "on").returncode == 0
    assert tool(root, "getsebool", "ssh_sysadm_login").stdout == "ssh_sysadm_login --> on\n"
    tool(root, "selinux-shim", "boot")
    assert tool(root, "getsebool", "ssh_sysadm_login").stdout == "ssh_sysadm_login --> off\n"
    assert tool(root, "setsebool", "-P", "httpd_can_network_connect=1").returncode == 0
    tool(root, "selinux-shim", "boot")
    assert tool(root, "getsebool", "httpd_can_network_connect").stdout == "httpd_can_network_connect --> on\n"
    listing = tool(root, "getsebool", "-a").stdout.splitlines()
    assert listing == sorted(listing) and len(listing) == len(shim_defaults())


def test_boolean_errors_match_the_real_tools(root):
    missing = tool(root, "getsebool", "no_such_bool")
    assert (missing.returncode, missing.stderr) == (255, "Error getting active value for no_such_bool\n")
    bad = tool(root, "setsebool", "ssh_sysadm_login", "maybe")
    assert (bad.returncode, bad.stderr) == (
        255,
        "setsebool: illegal value maybe for boolean ssh_sysadm_login\n",
    )
    unknown = tool(root, "setsebool", "no_such_bool", "on")
    assert (unknown.returncode, unknown.stderr) == (
        255,
        "Could not change active booleans: Invalid boolean\n",
    )


def test_installed_tool_set(root):
    for name in shim.SELINUX_TOOLS:
        assert (root / "usr/sbin" / name).resolve() == (root / "usr/local/sbin/selinux-shim").resolve()
    assert (root / "etc/selinux/config").read_text().count("\nSELINUX=enforcing\n") == 1


def shim_defaults():
    from patchbrain.lab.shim import selinux_shim

    return selinux_shim.DEFAULT_BOOLEANS
