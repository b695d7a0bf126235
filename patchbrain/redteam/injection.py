"""Scenario 8, injection through package names, CVE ids and host variables, on a real lab host: Jinja
lookups and shell metacharacters that would create marker files if anything templated or shelled them.
Checks that patchbrain refuses them in Python (naming the field), that the roles refuse them on their own
when patchbrain's checks are skipped (values handed straight to the playbook), that a variable nothing reads
is never templated during a real discovery, and that no marker appears on the host or the controller.

Needs one host: a running lab chosen with `--lab NAME`, else a lab instance of its own (up, then down), or a
staging inventory (`--staging`, confirmed): every attack but the hostile changelog (which publishes a package
to the lab's repository) runs against its first host (or `--staging-host`)."""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from typing import Any

from patchbrain.redteam.base import Check, Context, Evidence, Scenario
from patchbrain.redteam.common import Outcome, attempt
from patchbrain.redteam.labhost import (
    HOST,
    discover_pending,
    installed_version,
    lab_host,
    plan_approve_rollout,
    publish_labdemo,
)


def payloads(tag: str) -> tuple[str, ...]:
    """Hostile strings, each creating /tmp/pb-redteam-<tag>-* if it ever runs."""
    m = f"/tmp/pb-redteam-{tag}"  # noqa: S108 - a marker path on the lab host, never written by us
    return (
        "{{ lookup('pipe','touch " + m + "-jinja') }}",
        "; touch " + m + "-shell",
        "$(touch " + m + "-subst)",
        "`touch " + m + "-tick`",
    )


def _markers(lab: Any, host: str, tag: str) -> list[str]:
    """Marker files found on the host and on the controller."""
    found = [str(p) for p in Path("/tmp").glob(f"pb-redteam-{tag}-*")]  # noqa: S108
    proc = lab.exec(host, ["sh", "-c", f"ls /tmp/pb-redteam-{tag}-* 2>/dev/null || true"], timeout=120)
    found += [f"{host}:{line}" for line in proc.stdout.split()]
    return found


def run(ctx: Context) -> list[Check]:
    import yaml

    from patchbrain.errors import BadInput
    from patchbrain.executor.request import RunRequest
    from patchbrain.executor.runner import run as run_playbook
    from patchbrain.inventory import load_hosts
    from patchbrain.models import PendingUpdate
    from patchbrain.plans import load_plan, make_plan, plan_document

    tag = secrets.token_hex(4)
    evil = payloads(tag)
    checks: list[Check] = []
    with lab_host(ctx, staging=True) as lab:
        staging = ctx.staging_inventory is not None
        host = lab.target if staging else HOST  # the staging fleet's chosen host, else the lab's h01
        inventory = lab.inventory_path()
        base = plan_document(
            make_plan([PendingUpdate(host, "labdemo", "1.0", "1.1", "apt")], inventory="", spec="1")
        )

        def plan_refused(field: str, value: str) -> Outcome:
            doc = yaml.safe_load(yaml.safe_dump(base))
            pkg = doc["waves"][0][0]["packages"][0]
            if field == "cves":
                pkg["cves"] = [value]
            else:
                pkg[field] = value
            path = ctx.workdir / "hostile-plan.yaml"
            path.write_text(yaml.safe_dump(doc))
            try:
                load_plan(path)
            except BadInput as exc:
                return (
                    True,
                    "refused before anything ran (exit 2), naming the field",
                    [Evidence("refusal", str(exc)[:400])],
                )
            return False, "the hostile plan LOADED: patchbrain's own checks let it through", []

        for field in ("name", "version", "cves"):
            for value in evil[:2]:
                checks.append(
                    attempt(
                        f"plan with a hostile package {field}: {value!r}",
                        functools.partial(plan_refused, field, value),
                    )
                )

        def straight_to_playbook(i: int, name: str, version: str) -> Outcome:
            ev: list[Evidence] = []
            for step, tags in (("pre", ("preflight",)), ("patch", ())):
                result = run_playbook(
                    RunRequest(
                        playbook="rollout.yml",
                        inventory=inventory,
                        ident=f"redteam-{tag}-{i}-{step}",
                        limit=(host,),
                        tags=tags,
                        skip_tags=() if tags else ("preflight",),
                        extravars={"patchbrain_plan_packages": {host: [{"name": name, "version": version}]}},
                    )
                )
                fails = [
                    e
                    for e in result.events
                    if type(e).__name__ == "TaskFailed" and not getattr(e, "ignored", False)
                ]
                task = getattr(fails[-1], "task", "?") if fails else "none"
                ev.append(
                    Evidence(
                        "verifier", f"{step}: host outcome {result.host_outcome(host)}, failed task: {task}"
                    )
                )
                if result.host_outcome(host) != "failed":
                    return False, f"the playbook ACCEPTED the hostile values ({step})", ev
            marks = _markers(lab, host, tag)
            if marks:
                return False, f"a payload RAN: {', '.join(marks)}", ev
            return True, "the role refused the values (grammar assert); no marker on host or controller", ev

        cases = ((evil[0], "1.1"), ("labdemo", evil[0]), (evil[1], "1.1"), ("labdemo", evil[2]))
        for i, (name, version) in enumerate(cases):
            checks.append(
                attempt(
                    "hostile values handed straight to rollout.yml (patchbrain's checks skipped): "
                    f"name={name!r} version={version!r}",
                    functools.partial(straight_to_playbook, i, name, version),
                )
            )

        inv_doc = yaml.safe_load(inventory.read_text())

        def hosts_of(doc: dict[str, Any]) -> dict[str, Any]:
            def walk(node: dict[str, Any]) -> dict[str, Any] | None:
                if host in (node.get("hosts") or {}):
                    return node["hosts"]  # type: ignore[no-any-return]
                for child in (node.get("children") or {}).values():
                    if (found := walk(child or {})) is not None:
                        return found
                return None

            found = walk(doc["all"])
            if found is None:
                raise RuntimeError(f"{host} not found in {inventory}")
            return found

        def read_var() -> Outcome:
            bad = yaml.safe_load(yaml.safe_dump(inv_doc))
            hosts_of(bad)[host]["patchbrain_pkg_mgr"] = evil[0]
            path = ctx.workdir / "hostile-inventory.yml"
            path.write_text(yaml.safe_dump(bad))
            try:
                load_hosts(path)
            except BadInput as exc:
                return (
                    True,
                    "refused before anything ran (exit 2), naming the variable",
                    [Evidence("refusal", str(exc)[:400])],
                )
            return False, "the inventory with a hostile patchbrain_pkg_mgr LOADED", []

        checks.append(attempt("hostile value in a variable patchbrain reads (patchbrain_pkg_mgr)", read_var))

        def unread_vars() -> Outcome:
            from patchbrain.executor import discovery

            doc = yaml.safe_load(yaml.safe_dump(inv_doc))
            for i, p in enumerate(evil):
                hosts_of(doc)[host][f"site_note_{i}"] = p
            path = ctx.workdir / "hostile-vars.yml"
            path.write_text(yaml.safe_dump(doc))
            load_hosts(path)
            result = run_playbook(
                RunRequest(
                    playbook="discover.yml", inventory=path, ident=f"redteam-{tag}-discover", limit=(host,)
                )
            )
            found = discovery.parse_run_data(result.data)
            ev = [
                Evidence(
                    "verifier",
                    f"discovery: host outcome {result.host_outcome(host)}, {len(found)} host document(s)",
                )
            ]
            marks = _markers(lab, host, tag)
            if marks:
                return False, f"a payload RAN: {', '.join(marks)}", ev
            ok = result.host_outcome(host) == "ok" and [d.host for d in found] == [host]
            return (
                ok,
                "a real discovery ran normally with the hostile variables in the inventory; no marker",
                ev,
            )

        checks.append(
            attempt("hostile strings in host variables nothing reads, during a real discovery", unread_vars)
        )

        def hostile_changelog() -> Outcome:
            return _changelog_rollout(ctx, lab, inventory, tag, evil)

        if staging:  # publishing a package needs a repository the hosts trust: the lab's
            ctx.log(
                "  not on staging: the hostile changelog (it publishes a package to the lab's repository)"
            )
        else:
            checks.append(
                attempt(
                    "hostile text around a CVE id in a published package's changelog: real discovery, plan, "
                    "approval and rollout",
                    hostile_changelog,
                )
            )

        def final() -> Outcome:
            marks = _markers(lab, host, tag)
            return (
                not marks,
                "no marker file on the host or the controller after every attack",
                [
                    Evidence(
                        "verifier",
                        f"markers found: {marks or 'none'} "
                        f"(searched /tmp/pb-redteam-{tag}-* on {host} and here)",
                    )
                ],
            )

        checks.append(attempt("sweep: marker files after every attack", final))
    return checks


def _changelog_rollout(ctx: Context, lab: Any, inventory: Path, tag: str, evil: tuple[str, ...]) -> Outcome:
    """Publish labdemo at a new version whose changelog wraps a CVE id in payloads, then discover, plan,
    approve and roll it out on the host for real: only CVE ids may come out, nothing may run."""
    from patchbrain.lab import packages

    cve = "CVE-2026-31337"
    claim = f"SECURITY UPDATE {evil[0]} fixes {cve} {' '.join(evil[1:])}"
    version = publish_labdemo(lab, ctx.workdir / "hostile-deb", claim=claim)
    pending = discover_pending(inventory, f"redteam-{tag}-changelog", packages.PACKAGE)
    ev = [Evidence("verifier", f"discovery: {[(p.package, p.candidate, p.cves) for p in pending]}")]
    # the changelog entries above the installed version: ours, and the benign 1.1's on a fresh host
    allowed = {cve, *packages.VARIANTS["benign"].cves}
    if not pending or pending[0].candidate != version or cve not in pending[0].cves:
        return False, f"discovery did not report {packages.PACKAGE} {version} with {cve}", ev
    if not set(pending[0].cves) <= allowed:
        return False, f"discovery reported CVE ids no changelog entry names: {pending[0].cves}", ev
    out, _plan = plan_approve_rollout(ctx, inventory, pending, "changelog")
    states = [(h.host, h.state) for w in out.waves for h in w.hosts]
    installed = installed_version(lab, packages.PACKAGE)
    ev.append(
        Evidence("verifier", f"rollout {out.state}: {states}; {HOST} has {installed} (dpkg-query over SSH)")
    )
    marks = _markers(lab, HOST, tag)
    if marks:
        return False, f"a payload RAN: {', '.join(marks)}", ev
    ok = out.halt is None and installed == version
    return (
        ok,
        f"only CVE ids ({cve} and the older entry's) came out of the changelog; the approved rollout "
        f"installed {version}; no marker",
        ev,
    )


SCENARIO = Scenario(
    name="injection",
    number=8,
    title="Injection through package names, CVE ids and host variables",
    attacked="plan and inventory validation (plans.py, pkgspec.py, inventory.py), the roles' grammar "
    "checks, `!unsafe` variables",
    defences=("package-grammar",),
    needs_hosts=True,
    run=run,
    hosts=1,
)
