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
def lab_host(ctx: Context, hosts: int = 1, *, staging: bool = False) -> Iterator[Any]:
    """The lab to attack: the one chosen with flags, else an own instance of `hosts` apt hosts brought up
    and torn down. With a staging inventory: that fleet (`redteam.staging.StagingHosts`) for a scenario
    that can run there (`staging`), else Unavailable (the attack needs lab powers)."""
    if ctx.staging_inventory is not None:
        if not staging:
            raise Unavailable(
                "needs lab powers (publishing packages to a repository the hosts trust, resetting, killing "
                "or cutting hosts): runs on a lab only, never on a staging inventory"
            )
        from patchbrain.redteam.staging import StagingHosts

        yield StagingHosts(ctx.staging_inventory, ctx.workdir, ctx.staging_target)
        return
    if ctx.lab is not None:
        ctx.lab.inventory_path()  # BadInput when it is not up
        have = len(ctx.lab.hosts())
        if have < hosts:
            raise Unavailable(f"needs {hosts} lab hosts; lab {ctx.lab.instance!r} has {have}")
        yield ctx.lab
        return
    if not ctx.own_lab:
        raise Unavailable("needs a lab host: pass --lab NAME (a running lab) or allow an own lab instance")
    if os.geteuid() != 0:
        raise Unavailable("needs a lab host, and bringing one up needs root")
    from patchbrain.lab import Lab

    lab = Lab(ctx.lab_instance)
    ctx.log(f"  bringing up lab instance {ctx.lab_instance!r} ({hosts} apt host(s))")
    try:
        lab.up(hosts)
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


def installed_version(lab: Any, package: str, *, host: str = HOST) -> str:
    """The installed version on `host`, read with the real dpkg-query by absolute path over SSH."""
    proc = lab.exec(host, ["/usr/bin/dpkg-query", "-W", "-f", "${Version}", package], timeout=120)
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


def labdemo_plan(
    lab: Any,
    candidates: dict[str, str],
    spec: str,
    path: Path,
    *,
    author_key: str,
    approver_key: str,
    approve: bool = True,
    canaries: Sequence[str] | None = None,
) -> Any:
    """A plan for labdemo at `candidates` ({host: version}) without a discovery run: hosts from the lab
    inventory at their base version (1.0 / 1.0-1), signed by `author_key`, written to `path`, approved
    with `approver_key` (both created in the current keystore when missing); returns the loaded plan.
    `canaries`: the hosts flagged canary (the canary wave), instead of the inventory's flags."""
    from patchbrain.approvals import policy_from_env, record_approval, sign_authorship
    from patchbrain.inventory import load_hosts
    from patchbrain.keys import KeyStore
    from patchbrain.models import PendingUpdate
    from patchbrain.plans import dump_plan, load_plan, make_plan
    from patchbrain.store import Store

    inv = lab.inventory_path()
    hosts = [h for h in load_hosts(inv) if h.name in candidates]
    if canaries is not None:
        hosts = [dataclasses.replace(h, canary=h.name in canaries) for h in hosts]
    pending = [
        PendingUpdate(
            h.name,
            "labdemo",
            "1.0" if (h.pkg_mgr or "apt") == "apt" else "1.0-1",
            candidates[h.name],
            h.pkg_mgr or "apt",
        )
        for h in hosts
    ]
    keys = KeyStore()
    for key in (author_key, approver_key):
        if not (keys.dir / f"{key}.key").exists():
            keys.new(key)
    author = keys.load_private(author_key)
    plan = make_plan(
        pending,
        inventory=str(inv),
        hosts=hosts,
        spec=spec,
        author=author.public.fingerprint,
        author_name=author.name,
    )
    path.write_text(dump_plan(sign_authorship(plan, author)))
    if approve:
        record_approval(
            load_plan(path),
            keys.load_private(approver_key),
            keystore=keys,
            store=Store(),
            plan_file=path,
            ttl=dt.timedelta(hours=1),
            policy=policy_from_env(),
        )
    return load_plan(path)


def stateless_ruleset(lab: Any, host: str) -> str:
    """`nft -s list ruleset` on `host` over plain SSH (counters and handles left out, so comparable)."""
    proc = lab.exec(host, ["nft", "-s", "list", "ruleset"], timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{host}: nft list ruleset failed: {str(proc.stderr).strip()}")
    return str(proc.stdout)


def selinux_mode(lab: Any, host: str) -> str:
    """`getenforce` on `host` over plain SSH."""
    return str(lab.exec(host, ["getenforce"], timeout=120).stdout).strip()


def second_channel(lab: Any, hosts: Sequence[str], packages: Sequence[str] = ("labdemo",)) -> dict[str, Any]:
    """The verifier's readings of `hosts` over patchbrain's own SSH channel ({host: HostReading})."""
    from patchbrain.inventory import load_hosts
    from patchbrain.verify import access_from_inventory, read_hosts

    inv = lab.inventory_path()
    want = [h for h in load_hosts(inv) if h.name in hosts]
    return dict(read_hosts(want, list(packages), access=access_from_inventory(inv)))
