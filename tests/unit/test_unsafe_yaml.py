"""Variables files written for Ansible: no string in them is ever templated, and types survive.

The last test runs the real ansible-playbook on this machine (local connection, nothing but `debug`) with
a vars file holding a `lookup('pipe', ...)` payload, and checks the payload never ran on the controller.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible._internal._datatag._tags import TrustedAsTemplate
from ansible.parsing.yaml.loader import AnsibleLoader

from patchbrain.executor.unsafe_yaml import dump_unsafe

PAYLOADS = ["{{ lookup('pipe','id') }}", "; touch /tmp/pwned", "{% for x in range(3) %}x{% endfor %}"]


def _load(text: str):
    return yaml.load(text, Loader=AnsibleLoader)  # noqa: S506 - ansible-core's own safe loader


def test_types_survive_and_no_string_is_trusted():
    data = {
        "packages": {"h1": [{"name": PAYLOADS[0], "version": "1.10"}, {"name": "x", "version": "2"}]},
        "flag": None,
        "count": 3,
        "word": "hello",
        "list": ["1.0", PAYLOADS[1], "true"],
    }
    loaded = _load(dump_unsafe(data))
    assert loaded == data
    assert _load(dump_unsafe({})) == {}
    assert isinstance(loaded["packages"]["h1"][0]["version"], str)  # not the float 1.1
    strings = [loaded["word"], *loaded["list"], *(v for p in loaded["packages"]["h1"] for v in p.values())]
    assert strings and not any(TrustedAsTemplate.is_tagged_on(s) for s in strings)


def test_top_level_strings_that_would_change_type_are_refused():
    with pytest.raises(TypeError, match="nest it"):
        dump_unsafe({"version": "1.10"})
    with pytest.raises(TypeError):
        dump_unsafe({"bad": {1: "x"}})


def test_nothing_in_the_vars_file_runs_on_the_controller(tmp_path):
    marker = tmp_path / "pwned"
    payload = "{{ lookup('pipe', 'touch " + str(marker) + "') }}"
    varsfile = tmp_path / "vars.yml"
    varsfile.write_text(dump_unsafe({"pb_pkgs": {"localhost": [{"name": payload, "version": payload}]}}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        '    - ansible.builtin.debug:\n        msg: "{{ item.name }} {{ item.version }}"\n'
        '      loop: "{{ pb_pkgs[inventory_hostname] }}"\n'
    )
    exe = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [str(exe), "-i", "localhost,", "-c", "local", "-e", f"@{varsfile}", str(playbook)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lookup('pipe'" in proc.stdout  # printed as text
    assert not marker.exists()
    # control: the same value in a plain (trusted) vars file does run, so the test can fail
    varsfile.write_text(yaml.safe_dump({"pb_pkgs": {"localhost": [{"name": payload, "version": "1"}]}}))
    subprocess.run(
        [str(exe), "-i", "localhost,", "-c", "local", "-e", f"@{varsfile}", str(playbook)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert marker.exists()
