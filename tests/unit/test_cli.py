"""The CLI's contract: help, version, and exit codes mapped from the error tree."""

from __future__ import annotations

import argparse

import pytest

from patchbrain import cli
from patchbrain.errors import BadInput, DriftDetected, HaltedOnFailures, RefusedByPolicy


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    assert "COMMAND" in capsys.readouterr().out


def _subcommands() -> list[str]:
    parser = cli.build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


@pytest.mark.parametrize("command", _subcommands())
def test_every_command_help_renders_without_literal_format_escapes(capsys, command):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out
    assert "%%" not in out


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BadInput("x", source="f.yml", field="hosts"), 2),
        (DriftDetected("x"), 3),
        (HaltedOnFailures("x"), 4),
        (RefusedByPolicy("x"), 5),
        (RuntimeError("boom"), 1),
    ],
)
def test_errors_map_to_exit_codes(monkeypatch, capsys, error, code):
    def boom(_args: argparse.Namespace) -> int:
        raise error

    parser = cli.build_parser()
    real_parse = parser.parse_args
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", lambda argv: argparse.Namespace(verbose=0, func=boom))
    assert cli.main(["anything"]) == code
    assert real_parse is not None
    assert "patchbrain:" in capsys.readouterr().err


def test_bad_input_names_source_and_field():
    err = BadInput("must be vm or baremetal", source="inventory/hosts.yml:web1", field="patchbrain_platform")
    assert "inventory/hosts.yml:web1" in str(err)
    assert "patchbrain_platform" in str(err)


def test_closed_pipe_is_not_an_internal_error():
    import subprocess
    import sys

    code = (
        "import argparse\n"
        "from patchbrain import cli\n"
        "from patchbrain.cli.common import print_json\n"
        "def big(_a):\n"
        "    print_json({'rows': list(range(200000))})\n"
        "    return 0\n"
        "class P:\n"
        "    def parse_args(self, a):\n"
        "        return argparse.Namespace(verbose=0, func=big)\n"
        "cli.build_parser = P\n"
        "raise SystemExit(cli.main([]))\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.read(10)
        proc.stdout.close()  # the reader goes away, like `| head -c 10`
        err = proc.stderr.read()
        assert proc.wait() == 0, err
    assert "internal error" not in err
