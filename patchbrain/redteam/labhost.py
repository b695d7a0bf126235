"""Lab hosts for the scenarios that need them: a running lab chosen with flags, else an instance of the
scenario's own; publishing a labdemo version; a real discovery, plan, approval and rollout on `h01`."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from patchbrain.redteam.base import Context, Unavailable

HOST = "h01"


@contextlib.contextmanager
def lab_host(ctx: Context) -> Iterator[Any]:
    """The lab to attack: the one chosen with flags, else an own instance brought up and torn down."""
    if ctx.lab is not None:
        ctx.lab.inventory_path()  # BadInput when it is not up
        yield ctx.lab
        return
    if not ctx.own_lab:
        raise Unavailable("needs a lab host: pass --lab NAME (a running lab) or allow an own lab instance")
    if os.geteuid() != 0:
        raise Unavailable("needs a lab host, and bringing one up needs root")
    from patchbrain.lab import Lab

    lab = Lab(ctx.lab_instance)
    ctx.log(f"  bringing up lab instance {ctx.lab_instance!r} (1 apt host)")
    try:
        lab.up(1)
        yield lab
    finally:
        ctx.log(f"  tearing down lab instance {ctx.lab_instance!r}")
        lab.down()


def publish_labdemo(lab: Any, out_dir: Path, *, claim: str | None = None) -> str:
    """Build a benign labdemo at the next version (its changelog entry saying `claim`), publish it to the
    lab's repository; returns the version."""
    from patchbrain.lab import packages
    from patchbrain.lab.content import LabContent

    lc = LabContent(lab.dir)
    version = packages.next_version(lc.repo.versions(packages.PACKAGE, "deb"))
    var = packages.variant("benign")
    if claim is not None:
        var = dataclasses.replace(var, claim=claim)
    lc.publish(packages.build(var, out_dir, version=version, formats=("deb",)))
    return version


def discover_pending(inventory: Path, ident: str, package: str) -> list[Any]:
    """A real discovery on HOST; the pending updates of `package`."""
    from patchbrain.executor import discovery
    from patchbrain.executor.request import RunRequest
    from patchbrain.executor.runner import run

    result = run(RunRequest(playbook="discover.yml", inventory=inventory, ident=ident, limit=(HOST,)))
    return [p for d in discovery.parse_run_data(result.data) for p in d.pending if p.package == package]


def installed_version(lab: Any, package: str) -> str:
    """The installed version on HOST, read with the real dpkg-query by absolute path over SSH."""
    proc = lab.exec(HOST, ["/usr/bin/dpkg-query", "-W", "-f", "${Version}", package], timeout=120)
    return str(proc.stdout).strip()


def plan_approve_rollout(
    ctx: Context, inventory: Path, pending: Sequence[Any], name: str
) -> tuple[Any, Path]:
    """Plan `pending` (signed by a scenario author key), approve it with another key, roll it out for real;
    returns (RolloutResult, plan file)."""
    from patchbrain.approvals import policy_from_env, record_approval, sign_authorship
    from patchbrain.executor.rollout import rollout
    from patchbrain.keys import KeyStore
    from patchbrain.plans import dump_plan, load_plan, make_plan
    from patchbrain.store import Store

    keys = KeyStore()
    for key in ("rt-lab-author", "rt-lab-approver"):
        if not (keys.dir / f"{key}.key").exists():
            keys.new(key)
    author = keys.load_private("rt-lab-author")
    plan = make_plan(
        list(pending),
        inventory=str(inventory),
        spec="1",
        author=author.public.fingerprint,
        author_name="rt-lab-author",
    )
    path = ctx.workdir / f"{name}-plan.yaml"
    path.write_text(dump_plan(sign_authorship(plan, author)))
    store = Store()
    record_approval(
        load_plan(path),
        keys.load_private("rt-lab-approver"),
        keystore=keys,
        store=store,
        plan_file=path,
        ttl=dt.timedelta(hours=1),
        policy=policy_from_env(),
    )
    out = rollout(load_plan(path), inventory=inventory, store=store, plan_file=path, keystore=keys)
    return out, path
