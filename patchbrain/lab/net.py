"""The lab's network: one bridge per instance, one network namespace and veth pair per host.

No default route, no NAT, no forwarding: a host reaches the bridge's /24 and nothing else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import signal
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from patchbrain.lab.names import RESOURCE_RE
from patchbrain.lab.system import run

log = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")


def link_names() -> set[str]:
    """Names of every interface in the root network namespace."""
    out = run(["ip", "-j", "link", "show"]).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


def netns_names() -> set[str]:
    """Names of every named network namespace (`ip netns list`)."""
    try:
        return {p.name for p in NETNS_DIR.iterdir()}
    except FileNotFoundError:
        return set()


def lab_resources() -> tuple[set[str], set[str]]:
    """Interfaces and namespaces that carry the lab's naming pattern, whoever created them."""
    links = {n for n in link_names() if RESOURCE_RE.match(n)}
    spaces = {n for n in netns_names() if RESOURCE_RE.match(n)}
    return links, spaces


def subnet_users(subnet: ipaddress.IPv4Network) -> list[tuple[str, str]]:
    """(interface, address or route) pairs in the root namespace that overlap `subnet`."""
    users: list[tuple[str, str]] = []
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]"):
        for info in link.get("addr_info", []):
            net = ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
            if net.overlaps(subnet):
                users.append((link["ifname"], f"{info['local']}/{info['prefixlen']}"))
    for route in json.loads(run(["ip", "-j", "-4", "route", "show", "table", "main"]).stdout or "[]"):
        dst = route.get("dst", "default")
        if dst == "default":
            continue
        if ipaddress.IPv4Network(dst, strict=False).overlaps(subnet):
            users.append((route.get("dev", "?"), f"route {dst}"))
    return users


def create_bridge(name: str, address: ipaddress.IPv4Address, prefixlen: int) -> None:
    """The instance's bridge with its gateway-less address (idempotent)."""
    if name not in link_names():
        run(["ip", "link", "add", name, "type", "bridge"])
    run(["ip", "addr", "replace", f"{address}/{prefixlen}", "dev", name])
    run(["ip", "link", "set", name, "up"])


@dataclasses.dataclass(frozen=True)
class HostNet:
    """One host's network: namespace, veth pair (root end on the bridge), address."""

    netns: str
    veth: str
    peer: str
    address: ipaddress.IPv4Address
    prefixlen: int = 24


def host_mac(address: ipaddress.IPv4Address) -> str:
    """A fixed, locally administered MAC for a host address: a re-created host keeps it, so the bridge's
    neighbour cache never points at a gone interface (that would stall SSH until the entry expires)."""
    return "02:70:62:" + ":".join(f"{b:02x}" for b in address.packed[1:])


def create_host_nets(bridge: str, hosts: Sequence[HostNet]) -> None:
    """Namespaces whose eth0 is one end of a veth pair; the other end is on the bridge.

    The root-namespace side of every host goes through one `ip -batch`; each namespace then needs one more.
    """
    if not hosts:
        return
    outer: list[str] = []
    for h in hosts:
        outer += [
            f"netns add {h.netns}",
            f"link add {h.veth} type veth peer name {h.peer} address {host_mac(h.address)}",
            f"link set {h.veth} master {bridge} up",
            f"link set {h.peer} netns {h.netns}",
        ]
    _batch([], "\n".join(outer))
    for h in hosts:
        inner = [
            f"link set {h.peer} name eth0",
            f"addr add {h.address}/{h.prefixlen} dev eth0",
            "link set eth0 up",
            "link set lo up",
        ]
        _batch(["-n", h.netns], "\n".join(inner))


def _batch(opts: list[str], commands: str) -> None:
    run(["ip", *opts, "-batch", "-"], stdin=commands + "\n")


def netns_inode(name: str) -> tuple[int, int] | None:
    try:
        st = os.stat(NETNS_DIR / name)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def pids_in(namespaces: Iterable[str]) -> dict[str, list[int]]:
    """Processes whose network namespace is one of `namespaces` (one scan of /proc for all of them)."""
    wanted = {ino: name for name in namespaces if (ino := netns_inode(name)) is not None}
    found: dict[str, list[int]] = {name: [] for name in wanted.values()}
    if not wanted:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        name = wanted.get((st.st_dev, st.st_ino))
        if name is not None:
            found[name].append(int(entry.name))
    return found


def kill_namespaces(namespaces: Iterable[str], timeout: float = 10.0) -> None:
    """SIGKILL every process in `namespaces` and wait until none is left."""
    names = list(namespaces)
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pids in pids_in(names).values() for pid in pids]
        if not alive:
            return
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            log.warning("processes still alive in lab namespaces after %.0f s: %s", timeout, alive)
            return
        time.sleep(0.02)


def delete_netns(name: str) -> None:
    if (NETNS_DIR / name).exists():
        run(["ip", "netns", "del", name], check=False)


def delete_link(name: str) -> None:
    if name in link_names():
        run(["ip", "link", "del", name], check=False)
