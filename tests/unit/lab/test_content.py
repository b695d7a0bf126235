"""Lab content wiring that needs no fleet: flavours, the host files, the firewall/port agreement, the CLI."""

from __future__ import annotations

import json
import shutil

import pytest

from patchbrain import cli
from patchbrain.errors import BadInput
from patchbrain.lab import content, host, inventory, repo, shim


def test_flavours_parse_and_rotate():
    assert content.parse_flavors("apt, dnf,zypper") == ("apt", "dnf", "zypper")
    for bad in ("", "yum", "apt,pacman"):
        with pytest.raises(BadInput):
            content.parse_flavors(bad)
    flavors = ("apt", "dnf", "zypper")
    assert [content.flavor_for(i, flavors) for i in range(1, 7)] == ["apt", "dnf", "zypper"] * 2
    assert content.flavor_for(5, ("apt",)) == "apt"


def test_hosts_may_reach_the_repository_port_and_nothing_else_outbound():
    out = host.NFT_RULES.split("chain output {", 1)[1].split("}", 1)[0]
    assert "policy drop;" in out
    rules = [line.strip() for line in out.splitlines()[2:] if line.strip()]
    assert rules == [
        'oif "lo" accept',
        "ct state established,related accept",
        f'tcp dport {content.REPO_PORT} accept comment "the lab\'s package repository (content.REPO_PORT)"',
    ]


def test_inventory_carries_the_package_manager(tmp_path):
    text = inventory.render(
        instance="t",
        hosts=[("h01", 1, "10.0.0.2"), ("h02", 2, "10.0.0.3")],
        key=tmp_path / "k",
        known_hosts=tmp_path / "kh",
        pkg_mgrs={"h02": "dnf"},
    )
    assert text.count('patchbrain_pkg_mgr: "apt"') == 1
    assert text.count('patchbrain_pkg_mgr: "dnf"') == 1


@pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")
def test_instance_layer_gets_shims_repo_configs_and_key(tmp_path):
    lc = content.LabContent(tmp_path / "lab")
    lc.repo.init()
    layer = tmp_path / "layer"
    lc.write_layer(layer, "10.213.7.1")
    url = f"http://10.213.7.1:{content.REPO_PORT}"
    assert (layer / repo.APT_SOURCE.lstrip("/")).read_text() == repo.apt_source(url)
    assert (layer / repo.DNF_REPO.lstrip("/")).read_text() == repo.dnf_repo(url)
    assert (layer / repo.ZYPPER_REPO.lstrip("/")).read_text() == repo.zypper_repo(url)
    assert (layer / repo.APT_KEYRING.lstrip("/")).read_bytes() == lc.repo.binary_key.read_bytes()
    assert (layer / content.RPM_MACROS.lstrip("/")).read_text() == "%_dbpath /var/lib/rpm\n"
    assert shim.is_simulated(layer)
    assert (layer / "usr/sbin/getenforce").is_symlink()


def test_build_packages_lists_what_each_variant_really_does(capsys):
    assert cli.main(["lab", "build-packages", "--list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    sabotaged = [item for item in listing if item["sabotaged"]]
    assert len(sabotaged) == 8
    assert all(item["claims"] and item["really"] != "nothing harmful" for item in sabotaged)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_build_packages_writes_one_variant(tmp_path, capsys):
    code = cli.main(
        ["lab", "build-packages", "--out", str(tmp_path), "--variant", "benign", "--version", "1.5", "--json"]
    )
    assert code == 0
    built = json.loads(capsys.readouterr().out)
    assert [p.rsplit("/", 1)[1] for p in built["benign"]] == [
        "labdemo_1.5_all.deb",
        "labdemo-1.5-1.noarch.rpm",
    ]


def test_publish_needs_files_or_a_variant(pb_home, monkeypatch, capsys):
    monkeypatch.setenv("PATCHBRAIN_LAB", "nolab")
    assert cli.main(["lab", "publish"]) == 2
    assert cli.main(["lab", "publish", "--variant", "benign"]) == 2
    assert "not up" in capsys.readouterr().err
