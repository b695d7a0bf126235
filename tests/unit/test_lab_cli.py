"""`patchbrain lab`: input checks that need no root, and a standard-library-only import path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from patchbrain import cli


@pytest.mark.parametrize("n", ["0", "65", "-1"])
def test_up_refuses_n_out_of_range(n, capsys):
    assert cli.main(["lab", "up", n]) == 2
    assert "1..64" in capsys.readouterr().err


def test_bad_instance_name_is_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv("PATCHBRAIN_LAB", "bad name")
    assert cli.main(["lab", "status"]) == 2
    err = capsys.readouterr().err.strip()
    assert "PATCHBRAIN_LAB" in err and "\n" not in err


def test_status_of_an_instance_that_never_ran(pb_home, monkeypatch, capsys):
    monkeypatch.setenv("PATCHBRAIN_LAB", "never")
    assert cli.main(["lab", "status"]) == 0
    assert "no lab hosts" in capsys.readouterr().out
    assert cli.main(["lab", "inventory"]) == 2


def test_lab_cli_loads_only_the_standard_library():
    """CI runs `python3 -m patchbrain lab down --all` before any venv exists: no site-packages at all."""
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from patchbrain.cli import build_parser\n"
        "import patchbrain.lab, patchbrain.lab.base, patchbrain.cli.cmd_lab\n"
        "build_parser().parse_args(['lab', 'down', '--all'])\n"
        "top = {m.split('.')[0] for m in sys.modules} - {'__main__', 'patchbrain'}\n"
        "print(','.join(sorted(m for m in top if m not in sys.stdlib_module_names)))\n"
    )
    out = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_up_as_a_normal_user_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["lab", "up", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs root" in err and "\n" not in err


def test_missing_tool_names_the_package(monkeypatch):
    from patchbrain.errors import EnvironmentProblem
    from patchbrain.lab import system

    monkeypatch.setattr(system.shutil, "which", lambda name: None)
    with pytest.raises(
        EnvironmentProblem, match=r"missing tool 'debootstrap' \(apt-get install debootstrap\)"
    ):
        system.require_tools("debootstrap")


def test_not_linux_is_refused(monkeypatch):
    from patchbrain.errors import EnvironmentProblem
    from patchbrain.lab import system

    monkeypatch.setattr(system.sys, "platform", "darwin")
    with pytest.raises(EnvironmentProblem, match="needs Linux"):
        system.require_linux_root()
