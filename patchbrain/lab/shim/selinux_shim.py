#!/usr/bin/python3
"""SELinux stand-in for lab hosts: getenforce, sestatus, setenforce, getsebool, setsebool, selinuxenabled.

SIMULATED. The lab's kernel has no active SELinux, so lab hosts get this shim instead (installed as
/usr/local/sbin/selinux-shim, with one symlink per tool name in /usr/sbin, where the real tools live).
It keeps the kernel's side in files and prints exactly what the real tools print, so probes and
playbooks run unchanged; the file /etc/selinux/SIMULATED marks every host that uses it, and patchbrain's
status and reports say so.

State:
  /etc/selinux/config            SELINUX= and SELINUXTYPE=, read at boot (as the kernel would) and by sestatus
  /run/selinux-shim/enforce      the running mode: 1 enforcing, 0 permissive (absent file = disabled)
  /run/selinux-shim/booted       written at boot; without it the first call boots the state from the config
  /run/selinux-shim/booleans     running boolean values ("name value" lines)
  /etc/selinux/<type>/shim-booleans   persistent values (setsebool -P), loaded at boot

Standard library only; it runs on the host's own Python.
"""

from __future__ import annotations

import contextlib
import os
import sys

CONFIG = "/etc/selinux/config"
RUN = "/run/selinux-shim"
MARKER = "/etc/selinux/SIMULATED"
COL = 32
DEFAULT_BOOLEANS = {
    "daemons_dump_core": 0,
    "deny_ptrace": 0,
    "httpd_can_network_connect": 0,
    "nis_enabled": 0,
    "secure_mode_insmod": 0,
    "selinuxuser_execmod": 1,
    "ssh_sysadm_login": 0,
    "use_nfs_home_dirs": 0,
}


def _root() -> str:
    """Prefix for every path (empty on a host; tests point it at a temporary folder)."""
    return os.environ.get("SELINUX_SHIM_ROOT", "")


def _p(path: str) -> str:
    return _root() + path


def read_config() -> dict[str, str]:
    """SELINUX and SELINUXTYPE from /etc/selinux/config (missing or unreadable: disabled)."""
    values: dict[str, str] = {}
    try:
        with open(_p(CONFIG), encoding="utf-8") as fh:
            for raw in fh:
                line = raw.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip('"')
    except OSError:
        return {"SELINUX": "disabled", "SELINUXTYPE": "targeted"}
    return values


def config_mode() -> int:
    """selinux_getenforcemode(): 1 enforcing, 0 permissive, -1 disabled."""
    return {"enforcing": 1, "permissive": 0}.get(read_config().get("SELINUX", "").lower(), -1)


def policy_type() -> str:
    return read_config().get("SELINUXTYPE", "targeted") or "targeted"


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _read_booleans(path: str) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 2 and parts[1] in ("0", "1"):
                    values[parts[0]] = int(parts[1])
    except OSError:
        pass
    return values


def _write_booleans(path: str, values: dict[str, int]) -> None:
    _write(path, "".join(f"{k} {v}\n" for k, v in sorted(values.items())))


def _persistent_path() -> str:
    return _p(f"/etc/selinux/{policy_type()}/shim-booleans")


def boot() -> None:
    """What the kernel does at boot: the running mode comes from the config; booleans from the policy."""
    run = _p(RUN)
    os.makedirs(run, mode=0o755, exist_ok=True)
    mode = config_mode()
    enforce = os.path.join(run, "enforce")
    if mode < 0:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(enforce)
    else:
        _write(enforce, f"{mode}\n")
    booleans = dict(DEFAULT_BOOLEANS)
    booleans.update(_read_booleans(_persistent_path()))
    _write_booleans(os.path.join(run, "booleans"), booleans)
    _write(os.path.join(run, "booted"), "1\n")


def _ensure_booted() -> None:
    if not os.path.exists(os.path.join(_p(RUN), "booted")):
        boot()


def enabled() -> bool:
    """is_selinux_enabled()."""
    _ensure_booted()
    return os.path.exists(os.path.join(_p(RUN), "enforce"))


def getenforce_value() -> int:
    """security_getenforce(): 1 or 0 (only meaningful when enabled)."""
    with open(os.path.join(_p(RUN), "enforce"), encoding="utf-8") as fh:
        return 1 if fh.read().strip() == "1" else 0


def _tab(label: str) -> str:
    return f"{label:<{COL}}"


# ---------------------------------------------------------------- the tools


def cmd_getenforce(argv: list[str]) -> int:
    if not enabled():
        print("Disabled")
    else:
        print("Enforcing" if getenforce_value() else "Permissive")
    return 0


def cmd_selinuxenabled(argv: list[str]) -> int:
    return 0 if enabled() else 1


def cmd_setenforce(argv: list[str]) -> int:
    prog = argv[0]
    if len(argv) != 2:
        sys.stderr.write(f"usage:  {prog} [ Enforcing | Permissive | 1 | 0 ]\n")
        return 1
    if not enabled():
        sys.stderr.write(f"{prog}: SELinux is disabled\n")
        return 1
    arg = argv[1]
    if arg in ("0", "1"):
        value = int(arg)
    elif arg.lower() == "enforcing":
        value = 1
    elif arg.lower() == "permissive":
        value = 0
    else:
        sys.stderr.write(f"usage:  {prog} [ Enforcing | Permissive | 1 | 0 ]\n")
        return 1
    if os.geteuid() != 0:
        sys.stderr.write(f"{prog}:  security_setenforce() failed:  Permission denied\n")
        return 2
    _write(os.path.join(_p(RUN), "enforce"), f"{value}\n")
    return 0


def cmd_sestatus(argv: list[str]) -> int:
    show_bools = False
    for arg in argv[1:]:
        if arg.startswith("-") and set(arg[1:]) <= {"v", "b"} and len(arg) > 1:
            show_bools = show_bools or "b" in arg
        else:
            name = os.path.basename(argv[0])
            print(f"\nUsage: {name} [OPTION]\n")
            print("  -v  Verbose check of process and file contexts.")
            print("  -b  Display current state of booleans.")
            print("\nWithout options, show SELinux status.")
            return 255
    out = [_tab("SELinux status:")]
    if not enabled():
        print(out[0] + "disabled")
        return 0
    mode = config_mode()
    lines = [
        ("SELinux status:", "enabled"),
        ("SELinuxfs mount:", "/sys/fs/selinux"),
        ("SELinux root directory:", "/etc/selinux"),
        ("Loaded policy name:", policy_type()),
        ("Current mode:", "enforcing" if getenforce_value() else "permissive"),
        ("Mode from config file:", {1: "enforcing", 0: "permissive"}.get(mode, "disabled")),
        ("Policy MLS status:", "enabled"),
        ("Policy deny_unknown status:", "allowed"),
        ("Memory protection checking:", "actual (secure)"),
        ("Max kernel policy version:", "33"),
    ]
    for label, value in lines:
        print(_tab(label) + value)
    if show_bools:
        booleans = _read_booleans(os.path.join(_p(RUN), "booleans"))
        width = max([COL, *(len(k) + 1 for k in booleans)])
        print("\nPolicy booleans:")
        for name in sorted(booleans):
            print(f"{name:<{width}}" + ("on" if booleans[name] else "off"))
    return 0


def cmd_getsebool(argv: list[str]) -> int:
    prog = argv[0]
    args = argv[1:]
    if not args or (args[0] == "-a" and len(args) > 1):
        sys.stderr.write(f"usage:  {prog} -a or {prog} boolean...\n")
        return 1
    if not enabled():
        sys.stderr.write(f"{prog}:  SELinux is disabled\n")
        return 1
    booleans = _read_booleans(os.path.join(_p(RUN), "booleans"))
    names = sorted(booleans) if args == ["-a"] else args
    if args == ["-a"] and not names:
        print("No booleans")
        return 0
    for name in names:
        if name not in booleans:
            sys.stderr.write(f"Error getting active value for {name}\n")
            return 255
        print(f"{name} --> {'on' if booleans[name] else 'off'}")
    return 0


def _usage_setsebool() -> int:
    sys.stderr.write("\nUsage:  setsebool [ -NPV ] boolean value | bool1=val1 bool2=val2...\n\n")
    return 1


def cmd_setsebool(argv: list[str]) -> int:
    args = argv[1:]
    if not args:
        return _usage_setsebool()
    permanent = False
    while args and args[0].startswith("-") and len(args[0]) > 1:
        flags = args.pop(0)[1:]
        if not set(flags) <= {"P", "N", "V"}:
            return _usage_setsebool()
        permanent = permanent or "P" in flags
    if not args:
        sys.stderr.write("Error: boolean name required\n")
        return _usage_setsebool()
    if not enabled():
        sys.stderr.write("setsebool:  SELinux is disabled.\n")
        return 1
    if "=" not in args[0]:
        if len(args) != 2:
            return _usage_setsebool()
        pairs = [f"{args[0]}={args[1]}"]
    else:
        pairs = args
    changes: dict[str, int] = {}
    for pair in pairs:
        if "=" not in pair:
            sys.stderr.write(f"setsebool: '=' not found in boolean expression {pair}\n")
            return 255
        name, _, raw = pair.partition("=")
        if raw == "1" or raw.lower() in ("true", "on"):
            changes[name] = 1
        elif raw == "0" or raw.lower() in ("false", "off"):
            changes[name] = 0
        else:
            sys.stderr.write(f"setsebool: illegal value {raw} for boolean {name}\n")
            return 255
    running_path = os.path.join(_p(RUN), "booleans")
    running = _read_booleans(running_path)
    for name in changes:
        if name not in running:
            if permanent:
                sys.stderr.write(f"Boolean {name} is not defined\n")
            else:
                sys.stderr.write("Could not change active booleans: Invalid boolean\n")
            return 255
    if os.geteuid() != 0:
        sys.stderr.write("Could not change active booleans. Please try as root: Permission denied\n")
        return 255
    running.update(changes)
    _write_booleans(running_path, running)
    if permanent:
        path = _persistent_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        stored = _read_booleans(path)
        stored.update(changes)
        _write_booleans(path, stored)
    return 0


def cmd_shim(argv: list[str]) -> int:
    """`selinux-shim boot` (at host boot) or `selinux-shim status` (one line for reports)."""
    if argv[1:] == ["boot"]:
        boot()
        return 0
    if argv[1:] == ["status"]:
        mode = "Disabled" if not enabled() else ("Enforcing" if getenforce_value() else "Permissive")
        simulated = os.path.exists(_p(MARKER))
        print(f"{mode} {'simulated' if simulated else 'unmarked'}")
        return 0
    sys.stderr.write("usage: selinux-shim boot|status\n")
    return 2


TOOLS = {
    "getenforce": cmd_getenforce,
    "setenforce": cmd_setenforce,
    "sestatus": cmd_sestatus,
    "getsebool": cmd_getsebool,
    "setsebool": cmd_setsebool,
    "selinuxenabled": cmd_selinuxenabled,
    "selinux-shim": cmd_shim,
}


def main(argv: list[str]) -> int:
    name = os.path.basename(argv[0])
    if name.endswith(".py"):  # run directly (tests): the tool is the first argument
        argv = argv[1:]
        name = os.path.basename(argv[0]) if argv else ""
    tool = TOOLS.get(name)
    if tool is None:
        sys.stderr.write(f"selinux-shim: unknown tool name {name!r} (one of {', '.join(TOOLS)})\n")
        return 2
    return tool(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
