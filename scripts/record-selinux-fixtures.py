#!/usr/bin/env python3
"""Record real SELinux tool output for tests/fixtures/posture/selinux/recorded/ from the qemu guest.

Boots the cached SELinux guest (patchbrain.lab.selinux_vm, a Debian 12 kernel enforcing Debian's `default`
policy; the image is built first if it is missing, about 5 minutes) from a throwaway qcow2 overlay, so the
cached image is never written. In each state below it runs the posture role's own probe
(roles/posture/files/posture_probe.py) over SSH with the role's SELinux spec (`__posture_selinux_probes`
and `__posture_selinux_files` from roles/posture/vars/main.yml), exactly what `posture_collect_selinux`
runs on a managed host, and saves what it returned:

  recorded/STATE/NAME.txt     the probe's stdout for NAME (commands: trailing newlines stripped, as the role
                              returns them; files: read whole)
  recorded/STATE/probes.json  rc, stderr and missing for every probe
  recorded/manifest.json      guest kernel, Debian and package versions, and the commands behind each state

Every state is made for real on the guest, recorded, then undone before the next one (see STATES); the
`restored` state is recorded after all of them were undone, and `runtime_disabled` last, after a reboot
with SELINUX=disabled (skip it with --no-reboot). Usage, as root:
  scripts/record-selinux-fixtures.py [--out DIR] [--no-reboot]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from patchbrain.errors import PatchbrainError
from patchbrain.lab import selinux_vm

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests/fixtures/posture/selinux/recorded"
PACKAGES = (
    "selinux-utils",
    "policycoreutils",
    "policycoreutils-python-utils",
    "semodule-utils",
    "selinux-policy-default",
    "libselinux1",
    "libsemanage2",
    "libsepol2",
    "python3",
)
BOOLEAN = "allow_execmem"  # off in Debian's default policy; on lets every domain map memory W+X
ALLOWED_BOOLEAN = "httpd_can_network_connect"  # off too; the usual example of an allow-listed boolean
PERMISSIVE_DOMAIN = "httpd_t"
MODULE_DISABLED = "games"  # a small module nothing in the guest uses
# A real, minimal CIL module (semodule compiles CIL itself; no checkmodule needed): one type, nothing allowed.
MODULE_ADDED = "labdemo"
MODULE_CIL = f"(type {MODULE_ADDED}_t)\n(roletype object_r {MODULE_ADDED}_t)\n"


def sed_config(key: str, value: str) -> list[str]:
    return ["sed", "-i", f"s/^{key}=.*/{key}={value}/", "/etc/selinux/config"]


@dataclasses.dataclass(frozen=True)
class State:
    name: str
    what: str
    apply: tuple[tuple[str, ...], ...] = ()
    undo: tuple[tuple[str, ...], ...] = ()
    # apply, probe and undo in one SSH session: for a change after which sshd no longer lets root log in
    one_session: bool = False


STATES = (
    State("baseline", "the guest as booted: enforcing, policy `default`, no change"),
    State(
        "runtime_permissive",
        "runtime mode set to permissive with setenforce 0",
        (("setenforce", "0"),),
        (("setenforce", "1"),),
    ),
    State(
        "config_permissive",
        "SELINUX=permissive written to /etc/selinux/config",
        (tuple(sed_config("SELINUX", "permissive")),),
        (tuple(sed_config("SELINUX", "enforcing")),),
    ),
    State(
        "config_disabled",
        "SELINUX=disabled written to /etc/selinux/config",
        (tuple(sed_config("SELINUX", "disabled")),),
        (tuple(sed_config("SELINUX", "enforcing")),),
    ),
    State(
        "config_policy_type",
        "SELINUXTYPE=mls written to /etc/selinux/config (a file change only: no mls policy is installed; "
        "sshd then refuses new root logins, so the change, the probe and the undo share one SSH session)",
        (tuple(sed_config("SELINUXTYPE", "mls")),),
        (tuple(sed_config("SELINUXTYPE", "default")),),
        one_session=True,
    ),
    State(
        "boolean_on",
        f"boolean {BOOLEAN} turned on with setsebool (runtime)",
        (("setsebool", BOOLEAN, "on"),),
        (("setsebool", BOOLEAN, "off"),),
    ),
    State(
        "boolean_httpd_on",
        f"boolean {ALLOWED_BOOLEAN} turned on with setsebool (runtime)",
        (("setsebool", ALLOWED_BOOLEAN, "on"),),
        (("setsebool", ALLOWED_BOOLEAN, "off"),),
    ),
    State(
        "permissive_domain",
        f"domain {PERMISSIVE_DOMAIN} made permissive with semanage permissive -a "
        f"(semanage installs it as policy module permissive_{PERMISSIVE_DOMAIN})",
        (("semanage", "permissive", "-a", PERMISSIVE_DOMAIN),),
        (("semanage", "permissive", "-d", PERMISSIVE_DOMAIN),),
    ),
    State(
        "module_disabled",
        f"policy module {MODULE_DISABLED} disabled with semodule -d",
        (("semodule", "-d", MODULE_DISABLED),),
        (("semodule", "-e", MODULE_DISABLED),),
    ),
    State(
        "module_added",
        f"a one-type CIL policy module {MODULE_ADDED} installed with semodule -i",
        (
            ("sh", "-c", f"printf '%s' '{MODULE_CIL}' > /root/{MODULE_ADDED}.cil"),
            ("semodule", "-i", f"/root/{MODULE_ADDED}.cil"),
        ),
        (("semodule", "-r", MODULE_ADDED), ("rm", "-f", f"/root/{MODULE_ADDED}.cil")),
    ),
    State("restored", "every change above undone (setenforce, sed, setsebool, semanage -d, semodule -e/-r)"),
)
DISABLED = State(
    "runtime_disabled",
    "SELINUX=disabled in /etc/selinux/config, then a reboot: the kernel comes up without a loaded policy",
    (tuple(sed_config("SELINUX", "disabled")), ("systemctl", "reboot")),
)


def probe_spec() -> dict[str, Any]:
    """The posture role's SELinux probe spec, from its own vars file."""
    role_vars = yaml.safe_load((ROOT / "roles/posture/vars/main.yml").read_text())
    return {"commands": role_vars["__posture_selinux_probes"], "files": role_vars["__posture_selinux_files"]}


def run_probe(
    guest: selinux_vm.Guest, source: str, spec: dict[str, Any], around: State | None = None
) -> dict[str, Any]:
    """Run the role's probe on the guest as the role does (`python3 -c SOURCE SPEC`); its JSON result.

    With `around`, its apply steps run first and its undo steps after, in the same SSH session."""
    argv = ["python3", "-c", source, json.dumps(spec)]
    if around is not None:
        apply = "; ".join(shlex.join(a) for a in around.apply)
        undo = "; ".join(shlex.join(a) for a in around.undo)
        script = f'set -e; {apply}; rc=0; python3 -c "$0" "$1" || rc=$?; {undo}; exit $rc'
        argv = ["sh", "-c", script, source, json.dumps(spec)]
    out = guest.ssh(argv, timeout=900).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def save(out: Path, state: str, result: dict[str, Any]) -> None:
    folder = out / state
    folder.mkdir(parents=True)
    meta = {}
    for name, res in sorted(result.items()):
        (folder / f"{name}.txt").write_text(res["stdout"])
        meta[name] = {k: res[k] for k in ("rc", "stderr", "missing")}
    (folder / "probes.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def ssh_steps(guest: selinux_vm.Guest, steps: tuple[tuple[str, ...], ...]) -> list[dict[str, Any]]:
    """Run each step on the guest (it must succeed); what each printed on stderr, for the manifest."""
    done = []
    for argv in steps:
        started = time.monotonic()
        proc = guest.ssh(list(argv), timeout=1800)
        done.append(
            {"argv": list(argv), "stderr": proc.stderr.strip(), "seconds": round(time.monotonic() - started)}
        )
    return done


def reboot(guest: selinux_vm.Guest) -> None:
    """Reboot the guest (qemu keeps running on the same overlay) and wait, bounded, for a new boot id."""
    old = guest.ssh(["cat", "/proc/sys/kernel/random/boot_id"]).stdout.strip()
    guest.ssh(["systemctl", "reboot"], check=False, timeout=60)
    deadline = time.monotonic() + selinux_vm.BOOT_TIMEOUT
    while time.monotonic() < deadline:
        time.sleep(5)  # a TCG reboot takes tens of seconds at least
        proc = guest.ssh(["cat", "/proc/sys/kernel/random/boot_id"], check=False, timeout=30)
        if proc.returncode == 0 and proc.stdout.strip() not in ("", old):
            return
    raise selinux_vm.GuestTimeout("the guest did not come back after a reboot", guest.serial_log)


def versions(guest: selinux_vm.Guest) -> dict[str, Any]:
    fmt = "${Package} ${Version}\n"
    pkgs = guest.ssh(["dpkg-query", "-W", "-f", fmt, *PACKAGES]).stdout.split("\n")
    return {
        "kernel": guest.ssh(["uname", "-r"]).stdout.strip(),
        "debian": guest.ssh(["cat", "/etc/debian_version"]).stdout.strip(),
        "packages": dict(line.split(" ", 1) for line in pkgs if line),
    }


def record(out: Path, *, with_reboot: bool) -> None:
    source = (ROOT / "roles/posture/files/posture_probe.py").read_text()
    spec = probe_spec()
    image = selinux_vm.ensure_image()
    manifest: dict[str, Any] = {
        "recorder": "scripts/record-selinux-fixtures.py",
        "image_recipe_digest": image.recipe.digest(),
        "probe_spec": spec,
        "states": {},
    }
    with (
        tempfile.TemporaryDirectory(prefix="pb-selinux-rec-") as tmp,
        selinux_vm.Guest(image, Path(tmp)) as guest,
    ):
        print(f"guest answered SSH after {guest.boot_seconds:.1f} s", flush=True)
        manifest["guest"] = versions(guest)
        manifest["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        states = [*STATES, DISABLED] if with_reboot else list(STATES)
        for state in states:
            started = time.monotonic()
            if state.one_session:
                result = run_probe(guest, source, spec, around=state)
                applied = [{"argv": list(a), "one_session": True} for a in state.apply]
                undone = [{"argv": list(a), "one_session": True} for a in state.undo]
            else:
                if state is DISABLED:
                    applied = ssh_steps(guest, state.apply[:-1])
                    reboot(guest)
                    applied.append({"argv": list(state.apply[-1]), "stderr": "", "seconds": 0})
                else:
                    applied = ssh_steps(guest, state.apply)
                result = run_probe(guest, source, spec)
                undone = ssh_steps(guest, state.undo)
            save(out, state.name, result)
            manifest["states"][state.name] = {"what": state.what, "applied": applied, "undone": undone}
            print(f"recorded {state.name} in {time.monotonic() - started:.0f} s", flush=True)
        guest.poweroff()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture folder (replaced whole)")
    parser.add_argument("--no-reboot", action="store_true", help="skip the runtime_disabled state")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    started = time.monotonic()
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp_out, ignore_errors=True)
    tmp_out.mkdir(parents=True)
    try:
        record(tmp_out, with_reboot=not args.no_reboot)
        shutil.rmtree(args.out, ignore_errors=True)
        tmp_out.rename(args.out)
    except PatchbrainError as exc:
        print(f"record-selinux-fixtures: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp_out, ignore_errors=True)  # a failed run leaves the committed fixtures as they were
    print(f"recorded SELinux fixtures under {args.out} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
