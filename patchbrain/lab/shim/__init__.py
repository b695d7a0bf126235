"""Files installed into every lab host: the SELinux stand-in (simulated).

(The reboot/shutdown shim is the fleet's: patchbrain/lab/hostfiles/shutdown.sh.)

`install(root)` writes them into a root filesystem (the lab base, before any host uses it). The SELinux
shim's files carry the marker /etc/selinux/SIMULATED: `lab status` reads it through the host's root, and
the posture probe and the verifier read it over SSH like any SELinux state file
(`patchbrain.posture.selinux.SIMULATED_MARKER`), so every report labels the host simulated from that
reading (README, "What the lab simulates").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

HERE = Path(__file__).resolve().parent
SBIN = "usr/local/sbin"  # the shim programs themselves
# The tool names, where the real tools live. Not /usr/local/sbin: apt runs maintainer scripts with
# PATH=/usr/sbin:/usr/bin:/sbin:/bin, so a postinst calling `setenforce` must find it in /usr/sbin.
TOOL_DIR = "usr/sbin"
SELINUX_TOOLS: tuple[str, ...] = (
    "getenforce",
    "setenforce",
    "sestatus",
    "getsebool",
    "setsebool",
    "selinuxenabled",
)
MARKER = "/etc/selinux/SIMULATED"
BOOT_ID_FILE = "/run/patchbrain/boot_id"
BOOT_TIME_COMMAND = f"cat {BOOT_ID_FILE}"
Mode = Literal["enforcing", "permissive", "disabled"]

MARKER_TEXT = (
    "SELinux on this host is SIMULATED by patchbrain's lab shim (/usr/local/sbin/selinux-shim).\n"
    "The kernel does not enforce any policy here; getenforce/sestatus/setenforce read and write files.\n"
    "Results that depend on SELinux must be labelled simulated.\n"
)


def selinux_config(mode: Mode = "enforcing", policy: str = "targeted") -> str:
    """The text of /etc/selinux/config."""
    return (
        "# This file controls the state of SELinux on the system.\n"
        "# SELINUX= can take one of these three values:\n"
        "#     enforcing - SELinux security policy is enforced.\n"
        "#     permissive - SELinux prints warnings instead of enforcing.\n"
        "#     disabled - No SELinux policy is loaded.\n"
        f"SELINUX={mode}\n"
        "# SELINUXTYPE= can take one of these three values:\n"
        "#     targeted - Targeted processes are protected,\n"
        "#     minimum - Modification of targeted policy. Only selected processes are protected.\n"
        "#     mls - Multi Level Security protection.\n"
        f"SELINUXTYPE={policy}\n"
    )


def host_files(mode: Mode = "enforcing") -> dict[str, tuple[bytes, int]]:
    """Regular files to install: absolute path in the host -> (content, mode)."""
    return {
        f"/{SBIN}/selinux-shim": ((HERE / "selinux_shim.py").read_bytes(), 0o755),
        "/etc/selinux/config": (selinux_config(mode).encode(), 0o644),
        MARKER: (MARKER_TEXT.encode(), 0o644),
    }


def host_links() -> dict[str, str]:
    """Symlinks to install: absolute path in the host -> (relative) target."""
    links = {f"/{TOOL_DIR}/{tool}": "../local/sbin/selinux-shim" for tool in SELINUX_TOOLS}
    return links


def install(root: Path, mode: Mode = "enforcing") -> list[str]:
    """Write the shim files and links under `root`; returns the host paths written."""
    written: list[str] = []
    for path, (data, perm) in host_files(mode).items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        tmp.chmod(perm)
        os.replace(tmp, target)
        written.append(path)
    for path, dest in host_links().items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(dest)
        written.append(path)
    return written


def is_simulated(root: Path) -> bool:
    """True when the root filesystem carries the simulated-SELinux marker."""
    return (root / MARKER.lstrip("/")).is_file()
