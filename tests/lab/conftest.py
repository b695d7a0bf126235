"""The lab fleet for tests: one instance per pytest session, every host reset before each test uses it.

The instance is named `t<pid>` (or $PATCHBRAIN_TEST_LAB, with `-gw0`, `-gw1`... under pytest-xdist), so
concurrent sessions and workers never share or tear down each other's hosts. Tests that need namespaces of
their own (down --all, subnet conflicts) run in a sandbox: fresh network, mount and pid namespaces, where
nothing of the machine's is visible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchbrain.lab import Lab

sys.path.insert(0, str(Path(__file__).resolve().parent))  # shared helpers: rollout_helpers

LAB_HOSTS = 4
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # lab_helpers, as tests/unit does


# The longest modules go first (2026-11-27, two workers: the red-team safety module took about 13 minutes
# of a worker's time, the node module about 9, each of the others 4 or less). `make lab` runs two workers
# with `--dist loadfile --no-loadscope-reorder`, so each worker starts on one of them and the short modules
# fill in around them; xdist's own order (most tests first) left the longest for last.
LONGEST_FIRST = (
    "test_redteam_safety_lab.py",
    "test_nodes_lab.py",
    "test_faults_lab.py",
    "test_posture_lab.py",
    "test_safety_lab.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put LONGEST_FIRST's modules first, in that order; every other test keeps its place (stable sort)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker gets a store of its own: rollout locks and journals are keyed by host
    name, and every worker's session lab names its hosts h01.. (lab records and keys stay shared)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and not os.environ.get("PATCHBRAIN_DB"):
        from patchbrain.config import state_dir

        os.environ["PATCHBRAIN_DB"] = str(state_dir() / f"test-{worker}.db")


@pytest.fixture(scope="session")
def lab_fleet() -> Iterator[Lab]:
    """One fleet of LAB_HOSTS hosts for the whole session, torn down at the end."""
    name = os.environ.get("PATCHBRAIN_TEST_LAB")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    lab = Lab(f"{name}-{worker}" if name and worker else name or f"t{os.getpid() % 100000}")
    try:
        lab.up(LAB_HOSTS)
        lab.fresh = True  # type: ignore[attr-defined]
        yield lab
    finally:
        lab.down()


@pytest.fixture
def lab(lab_fleet: Lab) -> Lab:
    """The session's fleet with every host fresh (overlay upper dirs wiped by `lab reset`)."""
    if not getattr(lab_fleet, "fresh", False):
        lab_fleet.reset()
    lab_fleet.fresh = False  # type: ignore[attr-defined]
    return lab_fleet


@pytest.fixture
def sandbox(tmp_path: Path):
    """Run a Python snippet as PID 1 of fresh net/mount/pid namespaces; returns what it prints as JSON."""

    def run(code: str, timeout: float = 300) -> dict:
        script = tmp_path / "sandbox.py"
        script.write_text(textwrap.dedent(code))
        env = dict(os.environ, PATCHBRAIN_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
        setup = (
            "mkdir -p /run/netns /run/patchbrain-lab && mount -t tmpfs tmpfs /run/netns"
            ' && mount -t tmpfs tmpfs /run/patchbrain-lab && ip link set lo up && exec "$@"'
        )
        argv = ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private"]
        argv += ["--kill-child", "--", "sh", "-c", setup, "sh", sys.executable, str(script)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return run


STDIN_MARK = ("stdin_left_nonblocking", True)  # a user property: it reaches the controller under xdist


@pytest.fixture(autouse=True)
def _stdin_stays_blocking(request: pytest.FixtureRequest) -> Iterator[None]:
    """A child that dies holding our stdin in O_NONBLOCK mode (a SIGKILLed ssh, for one) leaves it so for
    every later process sharing it, and Ansible then refuses to start. Put it back, and name the test."""
    yield
    try:
        blocking = os.get_blocking(0)
    except OSError:  # no stdin at all
        return
    if not blocking:
        os.set_blocking(0, True)
        request.node.user_properties.append(STDIN_MARK)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which tests left stdin non-blocking (restored after each), from every worker's reports."""
    reports = [r for reps in terminalreporter.stats.values() for r in reps]
    names = sorted({r.nodeid for r in reports if STDIN_MARK in getattr(r, "user_properties", ())})
    if names:
        terminalreporter.write_line("stdin was left non-blocking (and restored) after: " + ", ".join(names))
