"""The SELinux guest's recipe, cache keys, qemu command line and inventory, without booting anything."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest

from patchbrain.errors import EnvironmentProblem
from patchbrain.lab import selinux_vm


def _image(tmp_path: Path) -> selinux_vm.Image:
    recipe = selinux_vm.Recipe()
    folder = selinux_vm.image_dir(recipe, tmp_path)
    folder.mkdir(parents=True)
    img = selinux_vm.Image(folder, recipe)
    for path in (img.disk, img.kernel, img.initrd, img.client_key):
        path.write_text("x")
    img.host_key_pub.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample selinux-guest\n")
    return img


def test_recipe_digest_is_stable_and_ignores_package_order():
    a = selinux_vm.Recipe()
    b = dataclasses.replace(a, packages=tuple(reversed(a.packages)))
    assert a.digest() == b.digest() == selinux_vm.Recipe().digest()
    assert len(a.digest()) == 16


@pytest.mark.parametrize(
    "change",
    [
        {"packages": (*selinux_vm.PACKAGES, "auditd")},
        {"kernel_args": selinux_vm.KERNEL_ARGS + " audit=1"},
        {"disk_size": "3G"},
        {"selinux_config": "SELINUX=permissive\nSELINUXTYPE=default\n"},
        {"build_version": selinux_vm.BUILD_VERSION + 1},
    ],
)
def test_any_recipe_change_changes_the_cache_key(change, tmp_path):
    base = selinux_vm.Recipe()
    other = dataclasses.replace(base, **change)
    assert other.digest() != base.digest()
    assert selinux_vm.image_dir(other, tmp_path) != selinux_vm.image_dir(base, tmp_path)


def test_the_recipe_is_debian_packages_with_selinux_enforcing():
    recipe = selinux_vm.Recipe()
    for pkg in (
        "linux-image-amd64",
        "selinux-basics",
        "selinux-policy-default",
        "systemd-sysv",
        "openssh-server",
    ):
        assert pkg in recipe.packages
    assert "SELINUX=enforcing" in recipe.selinux_config.splitlines()
    assert "security=selinux" in recipe.kernel_args.split()
    assert "enforcing=0" not in recipe.kernel_args  # only the relabel boot is permissive


def test_is_complete_needs_every_file_and_the_same_digest(tmp_path):
    img = _image(tmp_path)
    assert not selinux_vm.is_complete(img.path, img.recipe)  # no recipe.json yet
    (img.path / "recipe.json").write_text(json.dumps({"digest": img.recipe.digest()}))
    assert selinux_vm.is_complete(img.path, img.recipe)
    other = dataclasses.replace(img.recipe, disk_size="3G")
    assert not selinux_vm.is_complete(img.path, other)
    img.initrd.unlink()
    assert not selinux_vm.is_complete(img.path, img.recipe)


def test_ensure_image_reuses_a_complete_cache_without_building(tmp_path, monkeypatch):
    img = _image(tmp_path)
    (img.path / "recipe.json").write_text(json.dumps({"digest": img.recipe.digest()}))

    def no_build(*args, **kwargs):
        raise AssertionError("must not build")

    monkeypatch.setattr(selinux_vm, "_build", no_build)
    assert selinux_vm.ensure_image(img.recipe, tmp_path).path == img.path


def test_qemu_is_headless_software_emulated_and_forwards_ssh_on_loopback_only(tmp_path):
    img = _image(tmp_path)
    q = selinux_vm.Qemu(img, tmp_path / "overlay.qcow2", tmp_path / "serial.log")
    q.port = 40022
    argv = q.argv("qcow2")
    line = shlex.join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert "-enable-kvm" not in argv and "kvm" not in argv[argv.index("-accel") + 1]
    assert argv[argv.index("-display") + 1] == "none"
    assert argv[argv.index("-serial") + 1] == f"file:{tmp_path / 'serial.log'}"
    netdev = argv[argv.index("-netdev") + 1]
    assert "restrict=on" in netdev.split(",")
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in netdev.split(",")
    assert "0.0.0.0" not in line  # noqa: S104 - asserting the forward is NOT on every interface
    assert int(argv[argv.index("-m") + 1]) <= 2048
    assert argv[argv.index("-append") + 1] == img.recipe.kernel_args
    assert "-no-reboot" not in argv
    relabel = selinux_vm.Qemu(img, img.disk, tmp_path / "r.log", extra_args=" enforcing=0", no_reboot=True)
    rargv = relabel.argv("raw")
    assert "-no-reboot" in rargv
    assert rargv[rargv.index("-append") + 1].endswith(" enforcing=0")


def test_inventory_uses_strict_host_keys_and_the_image_key(tmp_path):
    img = _image(tmp_path)
    guest = selinux_vm.Guest(img, tmp_path / "run")
    guest.qemu = selinux_vm.Qemu(img, tmp_path / "o.qcow2", tmp_path / "s.log")
    guest.qemu.port = 40023
    doc = json.loads(guest.inventory().split("\n", 1)[1])
    host = doc["all"]["children"]["selinux"]["hosts"]["selinux_guest"]
    assert host["ansible_host"] == "127.0.0.1"
    assert host["ansible_port"] == 40023
    assert host["ansible_user"] == "root"
    assert host["ansible_ssh_private_key_file"] == str(img.client_key.resolve())
    assert "StrictHostKeyChecking=yes" in host["ansible_ssh_common_args"]
    assert str(guest.known_hosts.resolve()) in host["ansible_ssh_common_args"]
    argv = guest.ssh_argv(["getenforce"])
    assert argv[-1] == "getenforce" and "root@127.0.0.1" in argv and "40023" in argv


def test_timeout_error_carries_the_serial_log_tail(tmp_path):
    log = tmp_path / "serial.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)) + "Kernel panic - not syncing\n")
    err = selinux_vm.GuestTimeout("no SSH after 300 s", log, tail_lines=5)
    assert isinstance(err, EnvironmentProblem)
    assert "no SSH after 300 s" in str(err)
    assert "Kernel panic - not syncing" in str(err)
    assert "line 95" not in str(err) and "line 96" in str(err)


def test_free_port_is_bindable_on_loopback():
    import socket

    port = selinux_vm.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
