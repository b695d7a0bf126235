"""Parse SELinux tool output: getenforce, sestatus, /sys/fs/selinux/enforce, /etc/selinux/config,
`getsebool -a`, `semanage permissive -l`, the module list, and the lab stand-in's marker file.

The marker (`SIMULATED_MARKER`) is read from the host like any other state file: present means the
SELinux tools there are patchbrain's lab shim, so every result built on them is labelled simulated.
"""

from __future__ import annotations

import hashlib
import re

from patchbrain.errors import BadInput
from patchbrain.posture.models import SelinuxState

MODES = ("enforcing", "permissive", "disabled")
SIMULATED_MARKER = "/etc/selinux/SIMULATED"  # patchbrain.lab.shim.MARKER (a unit test keeps them equal)
SIMULATED_LABEL = "simulated SELinux"
_BOOL = re.compile(r"^(\S+)\s+-->\s+(on|off)$")


def _text(text: str, source: str) -> str:
    if "\0" in text:
        raise BadInput("binary data where text was expected", source=source)
    return text


def parse_getenforce(text: str, *, host: str) -> str:
    """`getenforce`: Enforcing, Permissive or Disabled (lower-cased)."""
    mode = _text(text, f"{host}: getenforce").strip().lower()
    if mode not in MODES:
        raise BadInput(f"unexpected mode {text.strip()[:40]!r}", source=f"{host}: getenforce")
    return mode


def parse_enforce_file(text: str, *, host: str) -> str:
    """/sys/fs/selinux/enforce: 1 enforcing, 0 permissive."""
    value = _text(text, f"{host}: /sys/fs/selinux/enforce").strip()
    if value not in ("0", "1"):
        raise BadInput(f"unexpected value {value[:20]!r}", source=f"{host}: /sys/fs/selinux/enforce")
    return "enforcing" if value == "1" else "permissive"


def parse_sestatus(text: str, *, host: str) -> dict[str, str]:
    """`sestatus`: its `Key: value` lines, keys lower-cased."""
    out: dict[str, str] = {}
    for line in _text(text, f"{host}: sestatus").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out[key.strip().lower()] = value.strip()
    if "selinux status" not in out:
        raise BadInput("no 'SELinux status:' line", source=f"{host}: sestatus", field="SELinux status")
    return out


def parse_config(text: str, *, host: str) -> tuple[str | None, str | None]:
    """/etc/selinux/config: (SELINUX=, SELINUXTYPE=), lower-cased; the last assignment wins."""
    source = f"{host}: /etc/selinux/config"
    mode = ptype = None
    for lineno, raw in enumerate(_text(text, source).splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise BadInput(f"line {lineno}: not KEY=VALUE: {raw[:60]!r}", source=source)
        value = value.strip().strip("\"'")
        if key.strip() == "SELINUX":
            if value.lower() not in MODES:
                raise BadInput(f"line {lineno}: unknown mode {value!r}", source=source, field="SELINUX")
            mode = value.lower()
        elif key.strip() == "SELINUXTYPE":
            ptype = value
    return mode, ptype


def parse_getsebool(text: str, *, host: str) -> tuple[tuple[str, bool], ...]:
    """`getsebool -a`: (name, on) pairs, sorted by name."""
    source = f"{host}: getsebool -a"
    out: dict[str, bool] = {}
    for lineno, line in enumerate(_text(text, source).splitlines(), 1):
        line = line.strip()
        if not line or line.lower().startswith("getsebool:  selinux is disabled"):
            continue
        m = _BOOL.match(line)
        if m is None:
            raise BadInput(f"line {lineno}: expected 'name --> on|off', got {line[:60]!r}", source=source)
        out[m.group(1)] = m.group(2) == "on"
    return tuple(sorted(out.items()))


def parse_permissive(text: str, *, host: str) -> tuple[str, ...]:
    """`semanage permissive -l`: every permissive domain, builtin or customized, sorted."""
    domains: set[str] = set()
    for line in _text(text, f"{host}: semanage permissive -l").splitlines():
        word = line.strip()
        if not word or word.lower().endswith("permissive types"):
            continue
        if " " in word:
            raise BadInput(f"unexpected line {word[:60]!r}", source=f"{host}: semanage permissive -l")
        domains.add(word)
    return tuple(sorted(domains))


def parse_modules(text: str, *, host: str) -> tuple[str, tuple[str, ...]]:
    """`semodule -l` (or --list-modules=full): (sha256 of the sorted list, the module names).

    An empty store prints "No modules." (recorded on the SELinux guest with SELINUXTYPE naming a policy
    that is not installed): that is an empty list, not a module named "No"."""
    names = sorted(
        line.split()[-1] if len(line.split()) == 3 else line.split()[0]
        for line in _text(text, f"{host}: semodule -l").splitlines()
        if line.strip() and line.strip() != "No modules."
    )
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()
    return digest, tuple(names)


def build(raw: dict[str, str], *, host: str) -> SelinuxState | None:
    """A SelinuxState from whichever SELinux sources the host had (None when it had none)."""
    if not raw:
        return None
    runtime = None
    loaded = None
    config_mode = ptype = None
    if "sestatus" in raw:
        st = parse_sestatus(raw["sestatus"], host=host)
        if st["selinux status"].lower() == "disabled":
            runtime = "disabled"
        else:
            runtime = st.get("current mode", "").lower() or None
            if runtime is not None and runtime not in MODES:
                raise BadInput(
                    f"unexpected current mode {runtime!r}", source=f"{host}: sestatus", field="Current mode"
                )
        loaded = st.get("loaded policy name")
        if st.get("mode from config file"):
            config_mode = st["mode from config file"].lower()
    if "enforce_file" in raw:
        runtime = parse_enforce_file(raw["enforce_file"], host=host)
    if "getenforce" in raw:
        runtime = parse_getenforce(raw["getenforce"], host=host)
    if "config" in raw:
        file_mode, ptype = parse_config(raw["config"], host=host)
        config_mode = file_mode or config_mode
    booleans = parse_getsebool(raw["getsebool"], host=host) if "getsebool" in raw else ()
    permissive = parse_permissive(raw["permissive"], host=host) if "permissive" in raw else ()
    mhash, modules = parse_modules(raw["modules"], host=host) if "modules" in raw else (None, ())
    return SelinuxState(
        runtime_mode=runtime,
        config_mode=config_mode,
        policy_type=ptype,
        loaded_policy=loaded,
        booleans=booleans,
        permissive_domains=permissive,
        modules_hash=mhash,
        modules=modules,
        simulated="simulated" in raw,  # the marker's presence; its text is only a note for people
    )
