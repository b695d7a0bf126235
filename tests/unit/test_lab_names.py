"""Lab naming: instance tokens, resource names within the kernel's limits, subnets, the base recipe hash."""

from __future__ import annotations

import dataclasses
import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchbrain.errors import BadInput
from patchbrain.lab import base, names
from patchbrain.lab.state import HostRecord, LabState

instances = st.from_regex(names.INSTANCE_RE, fullmatch=True)


@given(instances, st.integers(1, names.MAX_HOSTS))
def test_every_resource_name_fits_and_is_recognised(instance, index):
    n = names.Names(instance)
    for name in (n.bridge, n.veth(index), n.peer(index), n.netns(index)):
        assert len(name) <= 15
        assert names.RESOURCE_RE.match(name)
        assert n.owns(name)


@given(instances, instances)
def test_distinct_instances_own_disjoint_names(a, b):
    if a == b:
        return
    na, nb = names.Names(a), names.Names(b)
    if na.token == nb.token:  # only a hash collision could do this; it must not be a plain/hashed clash
        assert not a[0].isdigit() or not b[0].isdigit()
        return
    assert not na.owns(nb.bridge)
    assert not na.owns(nb.veth(1))


def test_plain_and_hashed_tokens_never_collide():
    assert names.token("pb") == "pb"
    assert names.token("abc123") == "abc123"
    hashed = names.token("content-lab")
    assert hashed[0].isdigit() and len(hashed) == 6
    assert names.token("Pb") != "pb"


def test_names_of_other_things_are_not_lab_resources():
    for other in (
        "eth0",
        "pbl-",
        "pbl-pb-x1",
        "pbl-toolongtoken-br",
        "pbpost-rec-1",
        "docker0",
        "pbl-pb-br0",
    ):
        assert not names.RESOURCE_RE.match(other)


@pytest.mark.parametrize("bad", ["", "-x", "a b", "a/b", "x" * 41, "é"])
def test_bad_instance_names_are_refused(bad):
    with pytest.raises(BadInput, match="PATCHBRAIN_LAB"):
        names.check_instance(bad)


def test_instance_from_env(monkeypatch):
    monkeypatch.delenv("PATCHBRAIN_LAB", raising=False)
    assert names.instance_from_env() == "pb"
    monkeypatch.setenv("PATCHBRAIN_LAB", "mine")
    assert names.instance_from_env() == "mine"


def test_subnet_candidates_cover_the_pool_once_starting_with_the_preferred():
    cands = names.candidate_subnets("pb")
    assert cands[0] == names.preferred_subnet("pb")
    assert len(cands) == len(set(cands)) == 254
    assert all(c.subnet_of(names.SUBNET_POOL) and c.prefixlen == 24 for c in cands)


def test_host_addresses():
    net = ipaddress.IPv4Network("10.213.7.0/24")
    assert str(names.bridge_address(net)) == "10.213.7.1"
    assert str(names.host_address(net, 1)) == "10.213.7.11"
    assert str(names.host_address(net, 64)) == "10.213.7.74"
    with pytest.raises(BadInput):
        names.host_address(net, 65)


@pytest.mark.parametrize("bad", ["10.213.0.0/16", "8.8.8.0/24", "10.0.0.1/24", "nonsense"])
def test_forced_subnet_must_be_a_private_24(bad):
    with pytest.raises(BadInput, match="PATCHBRAIN_LAB_SUBNET"):
        names.parse_subnet(bad)


def test_host_index_round_trip():
    assert names.host_index(names.host_name(7)) == 7
    for bad in ("h00", "h65", "web1", "h1"):
        with pytest.raises(BadInput):
            names.host_index(bad)


def test_recipe_digest_is_stable_and_follows_every_change():
    r = base.Recipe()
    assert r.digest() == base.Recipe(packages=tuple(reversed(r.packages))).digest()
    changed = [
        dataclasses.replace(r, packages=(*r.packages, "curl")),
        dataclasses.replace(r, suite="trixie"),
        dataclasses.replace(r, variant="buildd"),
        dataclasses.replace(r, arch="arm64"),
        dataclasses.replace(r, post_build_version=r.post_build_version + 1),
    ]
    digests = {r.digest()} | {c.digest() for c in changed}
    assert len(digests) == len(changed) + 1
    assert base.base_dir(r).name == f"base-{r.digest()}"


def test_a_base_from_another_recipe_is_not_complete(tmp_path):
    r = base.Recipe()
    d = tmp_path / "b"
    (d / "root/usr/sbin").mkdir(parents=True)
    (d / "root/usr/bin").mkdir(parents=True)
    (d / "root/usr/sbin/sshd").write_text("")
    (d / "root/usr/bin/python3").write_text("")
    assert not base.is_complete(d, r)  # no recipe.json: an interrupted build
    (d / "recipe.json").write_text(json.dumps({"digest": "0" * 16}))
    assert not base.is_complete(d, r)
    (d / "recipe.json").write_text(json.dumps({"digest": r.digest()}))
    assert base.is_complete(d, r)
    (d / "root/usr/sbin/sshd").unlink()
    assert not base.is_complete(d, r)


def test_the_recipe_hook_for_later_packages_is_part_of_the_recipe():
    assert set(base.EXTRA_PACKAGES) <= set(base.Recipe().packages)
    assert {"openssh-server", "python3", "python3-apt", "nftables", "iproute2"} <= set(base.BASE_PACKAGES)


def test_state_round_trips_through_json():
    s = LabState(instance="x", token="x", subnet="10.213.1.0/24", bridge="pbl-x-br", base="/b")
    s.hosts["h01"] = HostRecord("h01", 1, "pbl-x-h1", "pbl-x-v1", "pbl-x-p1", "10.213.1.11", "/d", 42, 7)
    assert LabState.from_json(s.to_json()) == s


def test_host_mac_is_fixed_unicast_and_local():
    from patchbrain.lab.net import host_mac

    mac = host_mac(ipaddress.IPv4Address("10.213.7.11"))
    assert mac == "02:70:62:d5:07:0b"
    assert int(mac[:2], 16) & 0b11 == 0b10  # locally administered, unicast
    assert host_mac(ipaddress.IPv4Address("10.213.7.12")) != mac


def test_a_dropped_lock_file_is_replaced_for_the_next_holder(tmp_path):
    import threading

    from patchbrain.lab.system import drop_lock_file, file_lock

    lock = tmp_path / ".x.lock"
    order: list[str] = []
    with file_lock(lock):
        waiter = threading.Thread(target=lambda: _hold(lock, order))
        waiter.start()
        order.append("first")
        drop_lock_file(lock)
    waiter.join(10)
    assert order == ["first", "second"]
    assert lock.exists()  # the waiter locked a fresh file


def _hold(lock, order):
    from patchbrain.lab.system import file_lock

    with file_lock(lock):
        order.append("second")
