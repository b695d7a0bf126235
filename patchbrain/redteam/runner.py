"""Run scenarios, each in its own scratch folder and PATCHBRAIN_HOME, and score them."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from patchbrain.redteam.base import Context, Scenario, ScenarioResult, Unavailable
from patchbrain.redteam.defences import switched_off

if TYPE_CHECKING:
    from patchbrain.lab import Lab

log = logging.getLogger(__name__)

# Variables that would point a scenario at the operator's real state: cleared while it runs.
_ISOLATED = (
    "PATCHBRAIN_HOME",
    "PATCHBRAIN_DB",
    "PATCHBRAIN_KEYS",
    "PATCHBRAIN_AUDIT_KEY",
    "PATCHBRAIN_AUDIT_KEY_PASSPHRASE_FILE",
    "PATCHBRAIN_AUDIT_EVERY",
    "PATCHBRAIN_APPROVAL_QUORUM_HOSTS",
    "PATCHBRAIN_APPROVAL_QUORUM",
    "PATCHBRAIN_APPROVAL_MAX_TTL",
    "PATCHBRAIN_APPROVAL_REQUIRE_AUTHOR",
    "PATCHBRAIN_FEED_ALLOW_DOMAINS",
)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How scenarios reach hosts, and which defences the test-only hook switched off."""

    lab_instance: str | None = None  # use this running lab (explicit flag); None: scenarios bring their own
    own_lab: bool = True  # may a scenario bring up (and tear down) a lab instance of its own
    own_lab_instance: str = "redteam"
    staging_inventory: Path | None = None  # attack this inventory (confirmed by the operator), no lab
    staging_target: str | None = None
    workdir: Path | None = None  # keep scratch folders here (default: a temporary folder, removed)
    disabled: tuple[str, ...] = ()


@contextlib.contextmanager
def isolated_home(home: Path) -> Iterator[None]:
    """PATCHBRAIN_HOME=home (and nothing else of the operator's state) for the block."""
    saved = {k: os.environ.get(k) for k in _ISOLATED}
    try:
        for k in _ISOLATED:
            os.environ.pop(k, None)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.environ["PATCHBRAIN_HOME"] = str(home)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_one(
    scenario: Scenario,
    opts: RunOptions,
    base: Path,
    progress: Callable[[str], None],
    shared: Lab | None = None,
) -> ScenarioResult:
    """Run one scenario and score it: passed only if it made checks and every one passed. `shared`: the
    runner's own lab, used instead of an own lab of the scenario's (reset afterwards)."""
    from patchbrain.lab import Lab

    work = base / scenario.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    lab = Lab(opts.lab_instance) if opts.lab_instance else shared  # resolved in the operator's home
    ctx = Context(
        workdir=work,
        home=work / "home",
        lab=lab,
        own_lab=opts.own_lab,
        lab_instance=opts.own_lab_instance,
        staging_inventory=opts.staging_inventory,
        staging_target=opts.staging_target,
        log=progress,
    )
    start = time.monotonic()
    status, detail, checks = "error", "", []
    try:
        with isolated_home(ctx.home), switched_off(opts.disabled):
            checks = scenario.run(ctx)
        status = "passed" if checks and all(c.passed for c in checks) else "failed"
        if not checks:
            detail = "the scenario made no checks"
    except Unavailable as exc:
        status, detail = "unavailable", f"not available: {exc}"
    except Exception as exc:
        log.debug("scenario %s raised", scenario.name, exc_info=True)
        status, detail = "error", f"{type(exc).__name__}: {exc}"[:1000]
    if shared is not None and lab is shared and scenario.needs_hosts:
        try:
            shared.reset()  # the next scenario starts from fresh hosts
        except Exception:
            log.warning("could not reset the shared lab after %s", scenario.name, exc_info=True)
    return ScenarioResult(
        name=scenario.name,
        status=status,  # type: ignore[arg-type]
        attacked=scenario.attacked,
        checks=tuple(checks),
        detail=detail,
        seconds=time.monotonic() - start,
        disabled=tuple(d for d in opts.disabled if d in scenario.defences),
    )


def run(
    scenarios: Sequence[Scenario], opts: RunOptions, progress: Callable[[str], None] = lambda _m: None
) -> list[ScenarioResult]:
    """Run `scenarios` in order; scratch folders go under opts.workdir, else a temporary folder."""
    if opts.workdir is not None:
        opts.workdir.mkdir(parents=True, exist_ok=True)
        with shared_lab(scenarios, opts, opts.workdir, progress) as lab:
            return [_one(s, opts, opts.workdir, progress, lab) for s in scenarios]
    with (
        tempfile.TemporaryDirectory(prefix="patchbrain-redteam-") as tmp,
        shared_lab(scenarios, opts, Path(tmp), progress) as lab,
    ):
        return [_one(s, opts, Path(tmp), progress, lab) for s in scenarios]


@contextlib.contextmanager
def shared_lab(
    scenarios: Sequence[Scenario], opts: RunOptions, base: Path, progress: Callable[[str], None]
) -> Iterator[Lab | None]:
    """One own lab instance for every scenario that needs hosts (as many hosts as the most needs), when
    more than one of them runs and no lab was named: brought up once, reset between scenarios, torn down at
    the end. None (each scenario brings its own, or reports itself not available) otherwise."""
    from patchbrain.lab import Lab

    needing = [s for s in scenarios if s.needs_hosts]
    if (
        opts.lab_instance
        or opts.staging_inventory is not None
        or not opts.own_lab
        or len(needing) < 2
        or os.geteuid() != 0
    ):
        yield None
        return
    hosts = max(max(s.hosts for s in needing), 1)
    with isolated_home(base / "shared-lab"):
        lab = Lab(opts.own_lab_instance)
    progress(
        f"bringing up lab instance {opts.own_lab_instance!r} ({hosts} apt hosts) for {len(needing)} scenarios"
    )
    try:
        with isolated_home(base / "shared-lab"):
            lab.up(hosts)
        yield lab
    finally:
        progress(f"tearing down lab instance {opts.own_lab_instance!r}")
        with isolated_home(base / "shared-lab"):
            lab.down()


def _one(
    s: Scenario, opts: RunOptions, base: Path, progress: Callable[[str], None], shared: Lab | None = None
) -> ScenarioResult:
    progress(f"{s.number}. {s.name}: running")
    result = run_one(s, opts, base, progress, shared)
    progress(f"{s.number}. {s.name}: {result.status} ({result.seconds:.1f} s)")
    return result
