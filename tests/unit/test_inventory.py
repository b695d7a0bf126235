"""Inventory loading: Ansible resolves it, patchbrain validates its variables and names host and field."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest

from patchbrain.cli import main
from patchbrain.errors import BadInput
from patchbrain.inventory import load_hosts

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "inv.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_example_fleet_loads_with_groups_and_windows():
    hosts = {h.name: h for h in load_hosts(REPO / "inventory" / "example-fleet.yml")}
    assert set(hosts) == {
        "web-01.example.org",
        "web-02.example.org",
        "build-01.example.org",
        "db-01.example.org",
        "db-02.example.org",
    }
    db = hosts["db-01.example.org"]
    assert db.platform == "baremetal" and db.canary is False and db.criticality == 5
    assert hosts["build-01.example.org"].pkg_mgr == "dnf"
    (window,) = hosts["web-01.example.org"].windows
    assert window.duration == dt.timedelta(hours=4)
    saturday_3am = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)
    assert window.contains(saturday_3am)
    assert not window.contains(saturday_3am + dt.timedelta(hours=4))


def test_ini_example_loads():
    hosts = {h.name: h for h in load_hosts(REPO / "inventory" / "example-small.ini")}
    assert hosts["storage-01"].platform == "baremetal"
    assert hosts["storage-01"].canary is False
    assert hosts["app-01"].exposure == 4


@pytest.mark.parametrize(
    ("hostvars", "field", "message"),
    [
        ("patchbrain_platform: cloud", "patchbrain_platform", "vm"),
        ("patchbrain_criticality: 9", "patchbrain_criticality", "1 to 5"),
        ("patchbrain_exposure: high", "patchbrain_exposure", "integer"),
        ("patchbrain_canary: maybe", "patchbrain_canary", "true or false"),
        ("patchbrain_pkg_mgr: pacman", "patchbrain_pkg_mgr", "one of"),
        ("patchbrain_critcality: 3", "patchbrain_critcality", "unknown"),
        (
            "patchbrain_windows: [{rrule: 'FREQ=SOMETIMES', duration: 1h}]",
            "patchbrain_windows[0].rrule",
            "RRULE",
        ),
        (
            "patchbrain_windows: [{rrule: 'FREQ=DAILY', duration: 3 days}]",
            "patchbrain_windows[0].duration",
            "4h",
        ),
    ],
)
def test_bad_variable_names_host_and_field(tmp_path, hostvars, field, message):
    inv = write(
        tmp_path,
        f"""
        all:
          hosts:
            web1:
              {hostvars}
        """,
    )
    with pytest.raises(BadInput) as exc:
        load_hosts(inv)
    text = str(exc.value)
    assert "host web1" in text and str(inv) in text
    assert exc.value.field == field
    assert message in text


def test_host_in_both_platform_groups_is_refused(tmp_path):
    inv = write(
        tmp_path,
        """
        all:
          children:
            vm: {hosts: {h1: {}}}
            baremetal: {hosts: {h1: {}}}
        """,
    )
    with pytest.raises(BadInput, match="both"):
        load_hosts(inv)


def test_platform_inherited_through_child_groups(tmp_path):
    inv = write(
        tmp_path,
        """
        all:
          children:
            baremetal:
              children:
                racks: {hosts: {r1: {}}}
        """,
    )
    (host,) = load_hosts(inv)
    assert host.platform == "baremetal"
    assert "racks" in host.groups and "baremetal" in host.groups


def test_unsafe_values_stay_plain_data(tmp_path):
    inv = write(
        tmp_path,
        """
        all:
          hosts:
            h1:
              ansible_host: !unsafe "{{ lookup('pipe', 'touch /tmp/pb-pwned-inv') }}"
        """,
    )
    (host,) = load_hosts(inv)
    assert host.address == "{{ lookup('pipe', 'touch /tmp/pb-pwned-inv') }}"
    assert not Path("/tmp/pb-pwned-inv").exists()


def test_unparseable_inventory_is_bad_input(tmp_path):
    inv = write(tmp_path, "all: [this is: not: an inventory\n")
    with pytest.raises(BadInput, match="Ansible cannot parse"):
        load_hosts(inv)


def test_cli_check_json(capsys):
    code = main(["inventory", "check", "-i", str(REPO / "inventory" / "example-fleet.yml"), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["hosts"]) == 5
    assert {h["platform"] for h in doc["hosts"]} == {"vm", "baremetal"}


def test_cli_check_bad_input_exit_2(tmp_path, capsys):
    inv = write(tmp_path, "all: {hosts: {h1: {patchbrain_platform: cloud}}}\n")
    assert main(["inventory", "check", "-i", str(inv)]) == 2
    assert "patchbrain_platform" in capsys.readouterr().err


def test_an_inherited_non_blocking_stdin_does_not_stop_the_inventory_load(tmp_path):
    """A killed ssh can leave the stdin a whole process tree shares in O_NONBLOCK mode; Ansible refuses to
    start on such a stdin, so patchbrain never hands its own stdin to Ansible's tools."""
    import os
    import subprocess
    import sys

    code = (
        "import os\n"
        "assert not os.get_blocking(0)\n"
        "from pathlib import Path\n"
        "from patchbrain.inventory import load_hosts\n"
        f"print(len(load_hosts(Path({str(REPO / 'inventory' / 'example-fleet.yml')!r}))))\n"
    )
    read, write = os.pipe()
    try:
        os.set_blocking(read, False)
        proc = subprocess.run(
            [sys.executable, "-c", code], stdin=read, capture_output=True, text=True, timeout=120, check=False
        )
    finally:
        os.close(read)
        os.close(write)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "5"
