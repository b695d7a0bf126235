"""The real SELinux guest for tests: built once per recipe (cached), booted once per session from a throwaway
overlay, so nothing a test does to it survives the session."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchbrain.lab import selinux_vm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # selinux_helpers, as tests/unit does


@pytest.fixture(scope="session")
def selinux_guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[selinux_vm.Guest]:
    """A booted, enforcing Debian guest reachable as root over SSH on 127.0.0.1."""
    started = time.monotonic()
    image = selinux_vm.ensure_image()
    ready = time.monotonic() - started
    run_dir = tmp_path_factory.mktemp("selinux-guest")
    guest = selinux_vm.Guest(image, run_dir)
    guest.start()
    build = image.build_info().get("seconds", {})
    print(
        f"\nSELinux guest: image ready in {ready:.1f} s (build stages when built: {json.dumps(build)}); "
        f"boot to SSH {guest.boot_seconds:.1f} s",
        file=sys.stderr,
    )
    guest.write_inventory(run_dir / "inventory.json")
    try:
        yield guest
    finally:
        guest.stop()
