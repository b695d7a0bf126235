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


class _FakeKernel:
    """Stands in for /proc: which namespace files exist and what /proc/filesystems lists."""

    def __init__(self, missing: set[str], filesystems: str) -> None:
        self.missing, self.filesystems, self.modprobed = missing, filesystems, []

    def install(self, monkeypatch, system) -> None:
        real_exists, real_read = Path.exists, Path.read_text
        monkeypatch.setattr(Path, "exists", lambda p: False if str(p) in self.missing else real_exists(p))
        monkeypatch.setattr(
            Path,
            "read_text",
            lambda p, *a, **k: self.filesystems if str(p) == "/proc/filesystems" else real_read(p, *a, **k),
        )
        monkeypatch.setattr(system, "run", lambda argv, **kw: self.modprobed.append(argv))


@pytest.mark.parametrize(
    ("missing", "filesystems", "message"),
    [
        ({"/proc/self/ns/net"}, "nodev\toverlay\n", "no network namespaces (CONFIG_NET_NS)"),
        ({"/proc/self/ns/mnt"}, "nodev\toverlay\n", "no pid or mount namespaces"),
        (set(), "nodev\tproc\nnodev\ttmpfs\n", "no overlayfs (modprobe overlay failed)"),
    ],
)
def test_a_missing_kernel_feature_is_a_one_line_error(
    pb_home, monkeypatch, capsys, missing, filesystems, message
):
    from patchbrain.lab import system

    kernel = _FakeKernel(missing, filesystems)
    kernel.install(monkeypatch, system)
    monkeypatch.setattr(system, "require_linux_root", lambda: None)
    monkeypatch.setattr(system, "require_tools", lambda *names: None)
    from patchbrain.lab import fleet

    monkeypatch.setattr(fleet, "require_linux_root", lambda: None)
    monkeypatch.setattr(fleet, "require_tools", lambda *names: None)
    assert cli.main(["lab", "up", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    # overlayfs may only be a module not loaded yet: the lab tries modprobe before it refuses
    assert kernel.modprobed == ([["modprobe", "overlay"]] if not missing else [])


def test_overlayfs_loaded_by_modprobe_is_accepted(monkeypatch):
    from patchbrain.lab import system

    kernel = _FakeKernel(set(), "nodev\tproc\n")
    kernel.install(monkeypatch, system)
    monkeypatch.setattr(system, "run", lambda argv, **kw: setattr(kernel, "filesystems", "nodev\toverlay\n"))
    system.require_kernel_features()
