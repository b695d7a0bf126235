"""`Lab`: one instance of the local fleet: up, down, status, reset, inventory, exec."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from contextlib import AbstractContextManager, suppress
from pathlib import Path

from patchbrain.errors import BadInput, EnvironmentProblem
from patchbrain.lab import content, host, inventory, names, net, state
from patchbrain.lab.base import ensure_base
from patchbrain.lab.state import HostRecord, LabState
from patchbrain.lab.system import (
    atomic_write,
    drop_lock_file,
    file_lock,
    process_start_time,
    require_kernel_features,
    require_linux_root,
    require_tools,
    run,
)

log = logging.getLogger(__name__)

BOOT_TIMEOUT = 30.0  # seconds, plus one per host


@dataclasses.dataclass(frozen=True)
class HostStatus:
    """What `lab status` shows for one host."""

    name: str
    address: str
    up: bool
    os_release: str
    groups: tuple[str, ...]
    platform: str
    criticality: int
    exposure: int
    canary: bool
    netns: str
    pkg_mgr: str = "apt"
    selinux: str = "unknown"


class Lab:
    """One lab instance, named by $PATCHBRAIN_LAB unless given; its record lives in state_dir()/lab/NAME."""

    def __init__(self, instance: str | None = None, *, root: Path | None = None) -> None:
        self.instance = names.check_instance(instance) if instance else names.instance_from_env()
        self.names = names.Names(self.instance)
        self.root = root or state.lab_root()
        self.dir = self.root / self.instance
        self.state_file = self.dir / "state.json"
        self.key = self.dir / "id_ed25519"
        self.known_hosts = self.dir / "known_hosts"
        self.inventory_file = self.dir / "inventory.yml"
        self.nodes_file = self.dir / "nodes.yml"  # execution nodes (`lab up N --nodes K`), docs/nodes.md
        self._launchers: dict[str, subprocess.Popen[bytes]] = {}
        self._node_layer: Path | None = None

    # -- records --------------------------------------------------------------------------------------

    def _lock(self) -> AbstractContextManager[None]:
        return file_lock(self.root / f".{self.instance}.lock")

    def _load(self) -> LabState:
        return state.load(self.state_file, self.instance, self.names.token)

    def _save(self, st: LabState) -> None:
        state.save(self.state_file, st)

    def _running(self, rec: HostRecord) -> bool:
        return (
            rec.pid is not None
            and rec.pid_start is not None
            and process_start_time(rec.pid) == rec.pid_start
            and (net.NETNS_DIR / rec.netns).exists()
        )

    def hosts(self) -> list[HostRecord]:
        """The recorded hosts, in index order."""
        return sorted(self._load().hosts.values(), key=lambda h: h.index)

    def is_up(self) -> bool:
        """True when the instance has at least one running host."""
        return any(self._running(h) for h in self.hosts())

    # -- up -------------------------------------------------------------------------------------------

    def up(self, n: int, flavors: Sequence[str] = ("apt",), nodes: int = 0) -> list[HostStatus]:
        """Make sure hosts h01..hNN run (keeping any already running or beyond N); return their status.

        `flavors` are the package managers hosts take in turn (apt, dnf, zypper; see content.py).
        `nodes` more hosts after them are execution nodes (ansible-runner installed, docs/nodes.md): left
        out of the inventory, listed in `nodes.yml` instead.
        """
        if n < 1 or nodes < 0 or n + nodes > names.MAX_HOSTS:
            raise BadInput(f"the lab runs 1..{names.MAX_HOSTS} hosts (nodes included)", field=f"N={n}")
        flavors = content.parse_flavors(",".join(flavors))
        _preflight()
        base = ensure_base()
        if nodes or any(h.pkg_mgr == content.NODE for h in self.hosts()):
            from patchbrain.lab.nodeimage import ensure_node_layer

            self._node_layer = ensure_node_layer(base)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            st = self._load()
            if st.base and st.base != str(base) and any(self._running(h) for h in st.hosts.values()):
                log.warning(
                    "keeping the base of the running hosts; `lab down` then `lab up` to use the new one"
                )
                base = Path(st.base)
            st.base = str(base)
            self.dir.mkdir(mode=0o700, exist_ok=True)
            state.claim(self.names.token, self.instance, self.state_file, token_is_live)
            self._save(st)
            pub = host.ensure_keypair(self.key, f"patchbrain-lab-{self.instance}")
            host.write_layer(self.dir / "layer", pub)
            launch_sh, init_sh = host.write_scripts(self.dir / "bin")
            subnet = self._subnet(st)
            net.create_bridge(st.bridge or self.names.bridge, names.bridge_address(subnet), 24)
            self._content().prepare(
                self.dir / "layer", str(names.bridge_address(subnet)), f"{self.dir / 'layer'}:{base}"
            )

            pids = net.pids_in(h.netns for h in st.hosts.values())
            to_start = [i for i in range(1, n + nodes + 1) if not self._host_ok(st, names.host_name(i), pids)]
            for i in to_start:  # write ahead: every resource is on record before it exists
                flavor = content.flavor_for(i, flavors) if i <= n else content.NODE
                known = st.hosts.get(names.host_name(i))
                if known is not None and known.pkg_mgr == content.NODE:
                    flavor = content.NODE  # a node stays a node (`up` grows, never shrinks)
                st.hosts[names.host_name(i)] = self._record(i, subnet, flavor)
            self._save(st)
            links, spaces = net.link_names(), net.netns_names()
            recs = [st.hosts[names.host_name(i)] for i in to_start]
            for rec in recs:
                if rec.netns in spaces or {rec.veth, rec.peer} & links:  # leftovers of a crashed host
                    self._teardown_host(rec, keep_dir=True)
                host.prepare_dirs(Path(rec.dir))
            net.create_host_nets(self.names.bridge, [_host_net(r) for r in recs])
            for rec in recs:
                self._start(rec, launch_sh, init_sh, st)
            self._save(st)
            self._wait([st.hosts[names.host_name(i)] for i in to_start])
            self._write_access_files(st)
        return self.status()

    def _host_ok(self, st: LabState, name: str, pids: dict[str, list[int]]) -> bool:
        """The host's launcher runs and so does its PID 1 (not halted, not between two boots)."""
        rec = st.hosts.get(name)
        return rec is not None and self._running(rec) and host.pid_one(pids.get(rec.netns, [])) is not None

    def _record(self, index: int, subnet: ipaddress.IPv4Network, pkg_mgr: str = "apt") -> HostRecord:
        name = names.host_name(index)
        return HostRecord(
            name=name,
            index=index,
            netns=self.names.netns(index),
            veth=self.names.veth(index),
            peer=self.names.peer(index),
            address=str(names.host_address(subnet, index)),
            dir=str(self.dir / "hosts" / name),
            pkg_mgr=pkg_mgr,
        )

    def _content(self) -> content.LabContent:
        """The instance's repository, flavour layers and shims (patchbrain/lab/content.py)."""
        return content.LabContent(self.dir)

    def _subnet(self, st: LabState) -> ipaddress.IPv4Network:
        """The instance's /24: recorded, forced by $PATCHBRAIN_LAB_SUBNET, or the first free candidate."""
        with file_lock(self.root / ".subnets.lock"):
            forced = os.environ.get("PATCHBRAIN_LAB_SUBNET")
            if st.subnet:
                candidates = [ipaddress.IPv4Network(st.subnet)]
            elif forced:
                candidates = [names.parse_subnet(forced)]
            else:
                candidates = names.candidate_subnets(self.instance)
            claimed = self._claimed_subnets()
            for subnet in candidates:
                users = [u for u in net.subnet_users(subnet) if u[0] != self.names.bridge]
                other_lab = claimed.get(str(subnet))
                if not users and other_lab is None:
                    st.subnet, st.bridge = str(subnet), self.names.bridge
                    self._save(st)
                    return subnet
                if len(candidates) == 1:
                    who = f"lab instance {other_lab!r}" if other_lab else f"{users[0][0]} ({users[0][1]})"
                    raise EnvironmentProblem(
                        f"subnet {subnet} is already in use by {who}, which this lab instance does not own"
                        " (set PATCHBRAIN_LAB_SUBNET to another private /24)"
                    )
            raise EnvironmentProblem(
                "no free /24 in 10.213.0.0/16 for the lab (each overlaps an address, a route or another"
                " instance here); set PATCHBRAIN_LAB_SUBNET to a free private /24"
            )

    def _claimed_subnets(self) -> dict[str, str]:
        claimed: dict[str, str] = {}
        for other in self.root.glob("*/state.json"):
            if other.parent.name == self.instance:
                continue
            try:
                sub = state.LabState.from_json(other.read_text()).subnet
            except (OSError, ValueError, TypeError):
                continue
            if sub:
                claimed[sub] = other.parent.name
        return claimed

    def _start(self, rec: HostRecord, launch_sh: Path, init_sh: Path, st: LabState) -> None:
        lowers = self._content().lowers(rec.pkg_mgr, f"{self.dir / 'layer'}:{st.base}", self._node_layer)
        proc = host.launch(
            netns=rec.netns,
            launch_sh=launch_sh,
            init_sh=init_sh,
            hostdir=Path(rec.dir),
            name=rec.name,
            lowers=lowers,
        )
        self._launchers[rec.name] = proc
        rec.pid, rec.pid_start = proc.pid, process_start_time(proc.pid)

    def _wait(self, recs: list[HostRecord]) -> None:
        by_name = {r.name: r for r in recs}
        host.wait_ready(
            {r.name: (r.address, Path(r.dir)) for r in recs},
            lambda name: self._running(by_name[name]),
            BOOT_TIMEOUT + len(recs),
        )

    def _write_access_files(self, st: LabState) -> None:
        lines = []
        for rec in sorted(st.hosts.values(), key=lambda h: h.index):
            key = host.host_public_key(Path(rec.dir))
            if key is not None:
                lines.append(f"{rec.address} {key}")
        atomic_write(self.known_hosts, "\n".join(lines) + "\n", 0o644)
        targets = [r for r in st.hosts.values() if r.pkg_mgr != content.NODE]
        text = inventory.render(
            instance=self.instance,
            hosts=[(r.name, r.index, r.address) for r in targets],
            pkg_mgrs={r.name: r.pkg_mgr for r in targets},
            key=self.key,
            known_hosts=self.known_hosts,
        )
        atomic_write(self.inventory_file, text, 0o644)
        nodes = sorted((r for r in st.hosts.values() if r.pkg_mgr == content.NODE), key=lambda r: r.index)
        if nodes:
            atomic_write(
                self.nodes_file,
                inventory.render_nodes(
                    [(r.name, r.address) for r in nodes], key=self.key, known_hosts=self.known_hosts
                ),
                0o644,
            )

    # -- reset ----------------------------------------------------------------------------------------

    def reset(self, *hosts: str) -> None:
        """Stop each host, wipe its overlay upper dir and boot it again: fresh hosts with new host keys.

        With no names, every recorded host is reset. Hosts restart in parallel (about a second in all).
        """
        for name in hosts:
            names.host_index(name)
        _preflight()
        with self._lock():
            st = self._load()
            wanted = list(hosts) or sorted(st.hosts, key=lambda h: st.hosts[h].index)
            missing = [h for h in wanted if h not in st.hosts]
            if missing or st.base is None or st.subnet is None:
                raise BadInput(
                    "no such host in this lab (see `patchbrain lab status`)",
                    source=missing[0] if missing else None,
                )
            recs = [st.hosts[h] for h in wanted]
            net.kill_namespaces([r.netns for r in recs])
            for rec in recs:
                _kill_launcher(rec)
                host.reap(self._launchers.pop(rec.name, None))
                host.prepare_dirs(Path(rec.dir), wipe=True)
                if not (net.NETNS_DIR / rec.netns).exists():
                    subnet = ipaddress.IPv4Network(st.subnet)
                    self._teardown_host(rec, keep_dir=True)
                    net.create_bridge(self.names.bridge, names.bridge_address(subnet), 24)
                    net.create_host_nets(self.names.bridge, [_host_net(rec)])
                self._start(rec, self.dir / "bin/launch.sh", self.dir / "bin/init.sh", st)
            self._save(st)
            self._wait(recs)
            self._write_access_files(st)

    # -- down -----------------------------------------------------------------------------------------

    def down(self) -> None:
        """Remove every process, namespace, interface and file of this instance (recorded or named so)."""
        _preflight(need_tools=("ip",))
        with self._lock():
            st = self._load()
            links, spaces = net.lab_resources()
            owner = state.owner_of(self.names.token)
            foreign = owner is not None and owner.resolve() != self.state_file.resolve()
            if foreign:  # the names belong to another PATCHBRAIN_HOME's live instance: only our records go
                links, spaces = set(), set()
            spaces = {s for s in spaces if self.names.owns(s)} | {h.netns for h in st.hosts.values()}
            net.kill_namespaces(spaces)
            self._content().stop_server()
            for rec in st.hosts.values():
                _kill_launcher(rec)
            for name in self._launchers:
                host.reap(self._launchers[name])
            self._launchers.clear()
            for ns in sorted(spaces):
                net.delete_netns(ns)
            ours = {link for link in links if self.names.owns(link)}
            ours |= {h.veth for h in st.hosts.values()} | {h.peer for h in st.hosts.values()}
            current = net.link_names()
            for link in sorted(ours - {self.names.bridge}):
                if link in current:
                    run(["ip", "link", "del", link], check=False)
            for bridge in {st.bridge} if foreign else {self.names.bridge, st.bridge}:
                if bridge and bridge in current:
                    run(["ip", "link", "del", bridge], check=False)
            _unmount_under(self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
            state.release(self.names.token, self.state_file)
            drop_lock_file(self.root / f".{self.instance}.lock")

    def _teardown_host(self, rec: HostRecord, *, keep_dir: bool) -> None:
        net.kill_namespaces([rec.netns])
        _kill_launcher(rec)
        host.reap(self._launchers.pop(rec.name, None))
        net.delete_netns(rec.netns)
        current = net.link_names()
        for link in (rec.veth, rec.peer):
            if link in current:
                run(["ip", "link", "del", link], check=False)
        if not keep_dir:
            shutil.rmtree(rec.dir, ignore_errors=True)

    # -- status, inventory, exec ----------------------------------------------------------------------

    def status(self) -> list[HostStatus]:
        """Every recorded host: address, up (process alive and sshd answering), OS, groups and host vars."""
        recs = self.hosts()
        pids = net.pids_in(r.netns for r in recs)
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, len(recs) or 1)) as pool:
            banners = dict(
                zip([r.name for r in recs], pool.map(host.ssh_banner, [r.address for r in recs]), strict=True)
            )
        out = []
        for rec in recs:
            hv = inventory.LabHostVars(rec.index)
            pid1 = host.pid_one(pids.get(rec.netns, []))
            up = self._running(rec) and pid1 is not None and banners[rec.name]
            out.append(
                HostStatus(
                    name=rec.name,
                    address=rec.address,
                    up=up,
                    os_release=host.os_release(pid1) if pid1 else "unknown",
                    groups=hv.groups,
                    platform=hv.platform,
                    criticality=hv.criticality,
                    exposure=hv.exposure,
                    canary=hv.canary,
                    netns=rec.netns,
                    pkg_mgr=rec.pkg_mgr,
                    selinux=content.selinux_status(pid1) if pid1 else "unknown",
                )
            )
        return out

    def inventory_path(self) -> Path:
        """The path of the instance's inventory (BadInput when the instance is not up)."""
        if not self.inventory_file.is_file() or not self.is_up():
            raise BadInput(f"lab instance {self.instance!r} is not up (start it with `patchbrain lab up N`)")
        return self.inventory_file

    def _host(self, name: str) -> HostRecord:
        names.host_index(name)
        rec = self._load().hosts.get(name)
        if rec is None:
            raise BadInput(f"no such host in lab instance {self.instance!r}", source=name)
        return rec

    def ssh_argv(self, name: str, remote: str | None = None, *, tty: bool = False) -> list[str]:
        """An `ssh` command line to host `name` (strict host-key checking, the lab's key only)."""
        rec = self._host(name)
        argv = ["ssh", *shlex.split(inventory.ssh_common_args(self.known_hosts)), "-i", str(self.key)]
        argv += ["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
        if tty:
            argv.append("-t")
        argv.append(f"root@{rec.address}")
        if remote is not None:
            argv += ["--", remote]
        return argv

    def exec(
        self, name: str, argv: Sequence[str], *, timeout: float = 120, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` on host `name` over SSH (each argument passed as data, quoted for the remote shell)."""
        cmd = self.ssh_argv(name, shlex.join(argv))
        return subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=check
        )


def down_all(root: Path | None = None) -> list[str]:
    """Remove this home's instances, then leftovers of the lab's pattern that no live instance claims."""
    _preflight(need_tools=("ip",))
    lab_root = root or state.lab_root()
    removed: list[str] = []
    if lab_root.is_dir():
        for entry in sorted(lab_root.iterdir()):
            if entry.is_dir() and names.INSTANCE_RE.match(entry.name):
                Lab(entry.name, root=lab_root).down()
                removed.append(f"removed instance {entry.name}")
        for lock in sorted(lab_root.glob(".*.lock")):  # lock files of instances gone before they were kept
            instance = lock.name[1:-5]
            if names.INSTANCE_RE.match(instance):
                with file_lock(lock):
                    if not (lab_root / instance).exists():
                        drop_lock_file(lock)
    links, spaces = net.lab_resources()
    # Leftovers are what no live instance claims: instances of other PATCHBRAIN_HOMEs keep their hosts.
    claimed = {
        tok
        for tok in {_token_of(n) for n in links | spaces}
        if state.owner_of(tok) is not None and token_is_live(tok)
    }
    claimed |= _tokens_of_live_hosts_elsewhere(spaces, lab_root)
    links = {n for n in links if _token_of(n) not in claimed}
    spaces = {n for n in spaces if _token_of(n) not in claimed}
    for tok in sorted(claimed):
        removed.append(f"kept pbl-{tok}-*: a live instance of another PATCHBRAIN_HOME")
    net.kill_namespaces(spaces)
    for ns in sorted(spaces):
        net.delete_netns(ns)
        removed.append(f"removed netns {ns}")
    current = net.link_names()
    for link in sorted(links, key=lambda n: n.endswith("-br")):  # veths first, bridges last
        if link in current:
            run(["ip", "link", "del", link], check=False)
            removed.append(f"removed link {link}")
    return removed


def _tokens_of_live_hosts_elsewhere(spaces: set[str], lab_root: Path) -> set[str]:
    """Tokens whose hosts run from a recorded instance of another home (its launcher names its folder)."""
    found: set[str] = set()
    for ns, pids in net.pids_in(spaces).items():
        for pid in pids:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(argv) > 1 and argv[1].endswith(b"/bin/launch.sh"):
                instance_dir = Path(os.fsdecode(argv[1])).parent.parent
                if instance_dir.parent != lab_root and (instance_dir / "state.json").is_file():
                    found.add(_token_of(ns))
                break
    return found


def token_is_live(token: str) -> bool:
    """True while some network namespace named for `token` still has a process in it."""
    _links, spaces = net.lab_resources()
    mine = {ns for ns in spaces if _token_of(ns) == token}
    return any(net.pids_in(mine).values())


def _token_of(resource: str) -> str:
    m = names.RESOURCE_RE.match(resource)
    return m.group("token") if m else ""


def _host_net(rec: HostRecord) -> net.HostNet:
    return net.HostNet(rec.netns, rec.veth, rec.peer, ipaddress.IPv4Address(rec.address))


def _kill_launcher(rec: HostRecord) -> None:
    """Kill the recorded launcher's process group if it is still the same process (pid reuse guard)."""
    if rec.pid and rec.pid_start and process_start_time(rec.pid) == rec.pid_start:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(rec.pid, 9)


def _unmount_under(path: Path) -> None:
    """Lazily unmount anything still mounted below `path` in this mount namespace (normally nothing)."""
    prefix = str(path.resolve()) + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[4] for line in lines if len(line.split()) > 4]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        run(["umount", "-l", point], check=False)


def _preflight(need_tools: Sequence[str] = ("ip", "unshare", "ssh-keygen")) -> None:
    require_linux_root()
    require_tools(*need_tools)
    if "unshare" in need_tools:
        require_kernel_features()
