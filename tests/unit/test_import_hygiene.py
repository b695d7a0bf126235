"""patchbrain is a headless library: importing it (and its CLI) must never load textual or tui."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["patchbrain", "patchbrain.cli"])
def test_patchbrain_never_loads_textual(module):
    code = (
        f"import {module}, sys\n"
        "from patchbrain.cli import build_parser\n"
        "build_parser()\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'tui')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_importing_patchbrain_configures_no_logging_output():
    code = "import logging, patchbrain, patchbrain.cli; print(len(logging.getLogger().handlers))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
