"""Scenario 6, lying self-report: on a real lab host, shims placed first on the PATH make `apt-get install`
succeed without installing and make `dpkg-query` report the planned version. A real approved rollout then
reports the host as patched (the self-report the seed's breach trusted for 47 days); the independent
verifier (`patchbrain.verify`: its own paramiko channel, tools by absolute path under `env -i`) must read
the real version and name the host as lying. The shims are removed afterwards."""

from __future__ import annotations

import shlex
from typing import Any

from patchbrain.redteam.base import Check, Context, Evidence, Scenario
from patchbrain.redteam.common import Outcome, attempt, audit_evidence, audit_since
from patchbrain.redteam.labhost import (
    HOST,
    discover_pending,
    installed_version,
    lab_host,
    plan_approve_rollout,
    publish_labdemo,
)

SHIM_DIR = "/usr/local/sbin"
_APT_GET = """#!/bin/sh
# patchbrain red-team shim: claims every install succeeded, installs nothing
for a in "$@"; do [ "$a" = install ] && touch /run/pb-redteam-installed && exit 0; done
exec /usr/bin/apt-get "$@"
"""
_DPKG_QUERY = """#!/bin/sh
# patchbrain red-team shim: once an install was claimed, reports the planned labdemo version
[ -e /run/pb-redteam-installed ] || exec /usr/bin/dpkg-query "$@"
/usr/bin/dpkg-query "$@" | sed "s/^labdemo\\t[^\\t]*\\t/labdemo\\t{version}\\t/"
"""


def _install_shims(lab: Any, version: str) -> None:
    script = "set -e\n"
    for name, text in (("apt-get", _APT_GET), ("dpkg-query", _DPKG_QUERY.replace("{version}", version))):
        path = f"{SHIM_DIR}/{name}"
        script += f"printf '%s' {shlex.quote(text)} > {path}\nchmod 0755 {path}\n"
    proc = lab.exec(HOST, ["sh", "-c", script], timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"could not install the shims on {HOST}: {proc.stderr.strip()}")


def _remove_shims(lab: Any) -> None:
    lab.exec(
        HOST,
        ["rm", "-f", f"{SHIM_DIR}/apt-get", f"{SHIM_DIR}/dpkg-query", "/run/pb-redteam-installed"],
        timeout=120,
    )


def run(ctx: Context) -> list[Check]:
    from patchbrain import verify
    from patchbrain.inventory import load_hosts
    from patchbrain.lab import packages
    from patchbrain.store import Store

    checks: list[Check] = []
    with lab_host(ctx) as lab:
        inventory = lab.inventory_path()
        hosts = [h for h in load_hosts(inventory) if h.name == HOST]
        access = verify.access_from_inventory(inventory)
        before = installed_version(lab, packages.PACKAGE)

        def control() -> Outcome:
            readings = verify.read_hosts(hosts, [packages.PACKAGE], access=access)
            report = verify.check_wave(
                readings, {HOST: {packages.PACKAGE: before}}, {HOST: {packages.PACKAGE: before}}
            )
            return (
                report.ok,
                f"control: the verifier agrees with an honest host ({packages.PACKAGE} {before})",
                [Evidence("verifier", str(report.as_dict())[:500])],
            )

        checks.append(attempt("control: an untouched host, read over the verifier's channel", control))
        version = publish_labdemo(lab, ctx.workdir / "deb")
        pending = discover_pending(inventory, f"redteam-selfreport-{version}", packages.PACKAGE)

        def lying() -> Outcome:
            if not pending or pending[0].candidate != version:
                raise RuntimeError(f"discovery did not offer {packages.PACKAGE} {version}: {pending}")
            _install_shims(lab, version)
            try:
                out, _plan = plan_approve_rollout(ctx, inventory, pending, "selfreport")
                real = installed_version(lab, packages.PACKAGE)
                results = {h.host: h for w in out.waves for h in w.hosts}
                said = results[HOST].after if HOST in results else {}
                readings = verify.read_hosts(hosts, [packages.PACKAGE], access=access)
                report = verify.check_wave(readings, {HOST: {packages.PACKAGE: version}}, {HOST: dict(said)})
            finally:
                _remove_shims(lab)
            state = results[HOST].state if HOST in results else "not run"
            ev = [
                Evidence("note", f"rollout {out.state}: {HOST} {state}, Ansible's report: {dict(said)}"),
                Evidence(
                    "verifier", f"{HOST}: {report.hosts[HOST].verdict}: {report.hosts[HOST].describe()}"
                ),
                Evidence(
                    "verifier", f"{HOST} really has {packages.PACKAGE} {real} (/usr/bin/dpkg-query over SSH)"
                ),
            ]
            if out.halt is not None:
                ev.append(
                    Evidence("note", f"the rollout itself halted ({out.halt.kind}): {out.halt.reason}"[:500])
                )
            ev += [
                audit_evidence(r, ("verdict", "detail", "hosts")) for r in audit_since(Store(), 0, "verify.*")
            ]
            fooled = said.get(packages.PACKAGE) == version and real != version
            caught = HOST in report.lying() and report.hosts[HOST].verdict == "disagrees"
            if not fooled:
                return (
                    False,
                    "the shims did not fool the rollout's own read-back: the attack did not take",
                    ev,
                )
            return (
                caught,
                (
                    f"the rollout's self-report said {version} ({state}); the verifier read {real} and named "
                    f"{HOST} as lying"
                    if caught
                    else "the verifier did NOT catch the lie"
                ),
                ev,
            )

        checks.append(
            attempt(
                "package manager shims report success without installing, during a real approved rollout",
                lying,
            )
        )
    return checks


SCENARIO = Scenario(
    name="lying-self-report",
    number=6,
    title="Lying self-report",
    attacked="the independent verifier (patchbrain/verify, its own SSH channel) against the self-report",
    defences=("verifier",),
    needs_hosts=True,
    run=run,
    hosts=1,
)
