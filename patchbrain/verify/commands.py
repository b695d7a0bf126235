"""The verifier's fixed, read-only commands as remote command lines (SSH exec takes one string).

Every command runs under `env -i` with a fixed PATH that leaves out /usr/local (where a tampered tool
would most likely sit) and LC_ALL=C; package tools are called by absolute path. The only variable parts are
package names, validated against the Debian or RPM grammar and shell-quoted as separate arguments.
A read is one command when the host has a system Python (`probe_script_line`: the posture role's probe
script runs these same probes and the version query), else one command per probe.
"""

from __future__ import annotations

import functools
import json
import shlex
from collections.abc import Sequence

from patchbrain import pkgspec
from patchbrain.errors import BadInput
from patchbrain.posture.selinux import SIMULATED_MARKER

ENV = ("env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C")
DPKG_QUERY = ("/usr/bin/dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n")
RPM_QUERY = ("/usr/bin/rpm", "-q", "--qf", "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\tii\n")
# A missing file or tool exits 127 with nothing on stdout: recorded as missing, like the posture role does.
_READ_FILE = ("sh", "-c", 'test -e "$1" || exit 127; exec cat -- "$1"', "sh")

# Same probes, names and argv as roles/posture/vars/main.yml (a unit test keeps them in step).
PROBES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("nft_ruleset", ("nft", "-j", "list", "ruleset")),
    ("iptables_save", ("iptables-save",)),
    ("ip6tables_save", ("ip6tables-save",)),
    ("iptables_legacy_save", ("iptables-legacy-save",)),
    ("ip6tables_legacy_save", ("ip6tables-legacy-save",)),
    ("firewalld_state", ("firewall-cmd", "--state")),
    ("firewalld_zones", ("firewall-cmd", "--list-all-zones")),
    ("ufw_status", ("ufw", "status", "verbose")),
    ("getenforce", ("getenforce",)),
    ("sestatus", ("sestatus",)),
    ("getsebool", ("getsebool", "-a")),
    ("semanage_permissive", ("semanage", "permissive", "-l")),
    ("semodule", ("semodule", "-l")),
    ("ss", ("ss", "-H", "-tulpn")),
)
FILES: tuple[tuple[str, str], ...] = (
    ("selinux_enforce", "/sys/fs/selinux/enforce"),
    ("selinux_config", "/etc/selinux/config"),
    ("selinux_simulated", SIMULATED_MARKER),  # the lab's SELinux stand-in marks its hosts with it
)


def line(argv: Sequence[str]) -> str:
    """One remote command line: `env -i PATH=... LC_ALL=C argv...`, every item shell-quoted."""
    return shlex.join([*ENV, *argv])


def probe_line(name: str) -> str:
    """The command line of posture probe `name` (a tool's argv or a state file read)."""
    for probe, argv in PROBES:
        if probe == name:
            return line(argv)
    for probe, path in FILES:
        if probe == name:
            return line([*_READ_FILE, path])
    raise KeyError(name)


# Runs the posture role's own probe script (every probe and state file, one JSON object) with the first
# system Python found; exits 127 when there is none, and the verifier then runs each probe on its own.
_PYTHON = (
    "sh",
    "-c",
    'for p in /usr/bin/python3 /usr/libexec/platform-python; do [ -x "$p" ] && exec "$p" -c "$1" "$2"; done; '
    "exit 127",
    "sh",
)
VERSIONS_PROBE = "patchbrain_versions"  # the version query's name inside the one-command read


def probe_script_line(family: pkgspec.Family, names: Sequence[str]) -> str:
    """Every probe, every state file and (when `names`) the installed versions in ONE remote command: the
    posture role's `posture_probe.py`, given the same probes as `PROBES`/`FILES` plus the version query,
    prints them as one JSON object {name: {rc, stdout, stderr, missing}}."""
    probes = [{"name": name, "argv": list(argv)} for name, argv in PROBES]
    if names:
        probes.append({"name": VERSIONS_PROBE, "argv": versions_argv(family, names)})
    spec = {"commands": probes, "files": [{"name": name, "path": path} for name, path in FILES]}
    return line([*_PYTHON, _probe_source(), json.dumps(spec, sort_keys=True)])


@functools.cache
def _probe_source() -> str:
    """The posture role's probe script, read once per process (not once per host and read)."""
    from patchbrain.resources import roles_dir

    return (roles_dir() / "posture" / "files" / "posture_probe.py").read_text(encoding="utf-8")


def versions_argv(family: pkgspec.Family, names: Sequence[str]) -> list[str]:
    """The argv of the installed-versions query of `names` (each validated; BadInput names the bad one)."""
    checked = [pkgspec.check_name(n, family, source="verifier package list", field="name") for n in names]
    if not checked:
        raise BadInput("no package names to query", source="verifier package list")
    return [*(DPKG_QUERY if family == "deb" else RPM_QUERY), *checked]


def versions_line(family: pkgspec.Family, names: Sequence[str]) -> str:
    """The query of installed versions of `names` as a command line (names validated as `versions_argv`)."""
    return line(versions_argv(family, names))
