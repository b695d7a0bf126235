"""Execution nodes: one run sliced over the controller and remote nodes with ansible-runner's streaming.

A node is any machine with ansible-core and ansible-runner that the controller reaches over SSH. For a
slice the controller builds the run exactly as for a local one (`runner.runner_kwargs`), packs the
private data dir with `streamer='transmit'`, pipes it over SSH (strict host-key checking) into
`ansible-runner worker` on the node, and feeds what comes back to `streamer='process'` here: events,
artifacts, status and rc land in the slice's own artifacts folder, so the rest of patchbrain reads a node
slice like a local one. What a node says is evidence, never the verdict: every host it reported on is
marked `RunResult.remote` (the rollout re-reads those hosts over the controller's own channel), and a
slice whose stream breaks before the playbook's stats marks its hosts `RunResult.unknown`.

Targets are reached from the node with the controller's key through SSH agent forwarding: the key stays
in a private ssh-agent on the controller, held only while the rollout runs (see docs/nodes.md).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from patchbrain import resources
from patchbrain.errors import BadInput, EnvironmentProblem
from patchbrain.executor import runner
from patchbrain.executor.request import RunHooks, RunRequest

log = logging.getLogger(__name__)

NODE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_ADDRESS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
REMOTE_ROOT = "/run/patchbrain-node"  # a tmpfs on the node: slices never touch its disk
DEFAULT_RUNNER = "/opt/patchbrain-node/bin/ansible-runner"
LOCAL = "controller"
# The node side: unpack into a fresh folder under REMOTE_ROOT, run the worker (its pid kept for a cancel),
# remove the folder whatever happens. fd 3 carries the stream to the background job (whose stdin
# would otherwise be /dev/null).
_REMOTE_SCRIPT = """\
set -u
umask 077
d=$1
mkdir -p "${d%/*}"
rm -rf "$d" "$d.pid"
exec 3<&0
"$2" worker --private-data-dir "$d" <&3 3<&- &
exec 3<&-
pid=$!
echo "$pid" > "$d.pid"
trap 'kill -TERM "$pid" 2>/dev/null' HUP INT TERM
wait "$pid"
rc=$?
wait "$pid" 2>/dev/null
rm -rf "$d" "$d.pid"
exit "$rc"
"""
_CANCEL_SCRIPT = 'p=$(cat "$1.pid" 2>/dev/null) && kill -TERM "$p"'


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    """One execution node: where to reach it and how many forks it runs."""

    name: str
    address: str
    capacity: int
    user: str = "root"
    port: int = 22
    identity: Path | None = None  # the controller's key for logging in to the node (else the agent's)
    known_hosts: Path | None = None  # the node's host key (strict checking against this file)
    ansible_runner: str = DEFAULT_RUNNER
    workdir: str = REMOTE_ROOT  # where slices are unpacked on the node (a tmpfs keeps them off disk)

    def __post_init__(self) -> None:
        if not NODE_NAME.match(self.name) or self.name == LOCAL:
            raise BadInput(f"bad node name {self.name!r} (a-z, 0-9, -; not {LOCAL!r})", field="name")
        if not _ADDRESS.match(self.address):
            raise BadInput(f"bad node address {self.address!r}", field="address")
        if not _USER.match(self.user):
            raise BadInput(f"bad node user {self.user!r}", field="user")
        if not 1 <= self.capacity <= 500:
            raise BadInput(f"node capacity is 1..500 forks, got {self.capacity}", field="capacity")
        if not 1 <= self.port <= 65535:
            raise BadInput(f"bad node port {self.port}", field="port")
        for name in ("ansible_runner", "workdir"):
            value = getattr(self, name)
            if not value.startswith("/") or any(c.isspace() for c in value):
                raise BadInput(f"{name} must be an absolute path without spaces", field=name)


@dataclasses.dataclass(frozen=True, slots=True)
class NodeConfig:
    """The controller's own share (forks, 0 for none) and the nodes; `target_known_hosts` is shipped to
    every slice so nodes check the targets' host keys; `target_key` is the key forwarded to the nodes."""

    controller_capacity: int
    nodes: tuple[Node, ...]
    target_known_hosts: Path
    target_key: Path | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.controller_capacity <= 500:
            raise BadInput("controller capacity is 0..500 forks", field="controller.capacity")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise BadInput("node names must be unique", field="nodes")
        if self.controller_capacity == 0 and not self.nodes:
            raise BadInput("no capacity at all: give the controller forks or declare a node", field="nodes")

    @property
    def total(self) -> int:
        return self.controller_capacity + sum(n.capacity for n in self.nodes)


def _path(value: Any, source: str, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise BadInput("must be a path", source=source, field=where)
    return Path(value).expanduser()


def load_config(path: Path) -> NodeConfig:
    """Read a nodes file (YAML; see docs/nodes.md). BadInput names the file and the field."""
    import yaml

    source = str(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"cannot read the nodes file: {exc}", source=source) from exc
    if not isinstance(doc, dict):
        raise BadInput("a nodes file is a mapping (controller, targets, nodes)", source=source)
    unknown = set(doc) - {"controller", "targets", "nodes"}
    if unknown:
        raise BadInput(f"unknown keys {sorted(unknown)}", source=source)
    controller = doc.get("controller") or {}
    targets = doc.get("targets") or {}
    if not isinstance(controller, dict) or not isinstance(targets, dict):
        raise BadInput("controller and targets are mappings", source=source)
    nodes = []
    entries = doc.get("nodes") or []
    if not isinstance(entries, list):
        raise BadInput("nodes is a list", source=source, field="nodes")
    for i, entry in enumerate(entries):
        where = f"nodes[{i}]"
        if not isinstance(entry, dict):
            raise BadInput("each node is a mapping", source=source, field=where)
        extra = set(entry) - {"name", "address", "capacity", "user", "port", "ssh_key", "known_hosts",
                              "ansible_runner"}  # fmt: skip
        if extra:
            raise BadInput(f"unknown keys {sorted(extra)}", source=source, field=where)
        try:
            nodes.append(
                Node(
                    name=str(entry.get("name", "")),
                    address=str(entry.get("address", "")),
                    capacity=int(entry.get("capacity", 0)),
                    user=str(entry.get("user", "root")),
                    port=int(entry.get("port", 22)),
                    identity=_path(entry["ssh_key"], source, f"{where}.ssh_key")
                    if "ssh_key" in entry
                    else None,
                    known_hosts=_path(entry.get("known_hosts"), source, f"{where}.known_hosts"),
                    ansible_runner=str(entry.get("ansible_runner", DEFAULT_RUNNER)),
                )
            )
        except (TypeError, ValueError) as exc:
            raise BadInput(f"bad node entry: {exc}", source=source, field=where) from exc
        except BadInput as exc:
            raise BadInput(str(exc), source=source, field=f"{where}.{exc.field}") from exc
    try:
        return NodeConfig(
            controller_capacity=int(controller.get("capacity", 10)),
            nodes=tuple(nodes),
            target_known_hosts=_path(targets.get("known_hosts"), source, "targets.known_hosts"),
            target_key=_path(targets["ssh_key"], source, "targets.ssh_key") if "ssh_key" in targets else None,
        )
    except BadInput as exc:
        raise BadInput(str(exc), source=source, field=exc.field) from exc


def render_config(cfg: NodeConfig) -> str:
    """A nodes file for `cfg` (the format `load_config` reads)."""
    import yaml

    doc: dict[str, Any] = {
        "controller": {"capacity": cfg.controller_capacity},
        "targets": {"known_hosts": str(cfg.target_known_hosts)},
        "nodes": [],
    }
    if cfg.target_key is not None:
        doc["targets"]["ssh_key"] = str(cfg.target_key)
    for n in cfg.nodes:
        entry: dict[str, Any] = {"name": n.name, "address": n.address, "capacity": n.capacity}
        if n.user != "root":
            entry["user"] = n.user
        if n.port != 22:
            entry["port"] = n.port
        if n.identity is not None:
            entry["ssh_key"] = str(n.identity)
        if n.known_hosts is not None:
            entry["known_hosts"] = str(n.known_hosts)
        entry["ansible_runner"] = n.ansible_runner
        doc["nodes"].append(entry)
    return "# patchbrain execution nodes (docs/nodes.md)\n" + yaml.safe_dump(doc, sort_keys=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Slice:
    """The hosts one worker (the controller or a node) runs, with its forks."""

    worker: str  # LOCAL or a node name
    hosts: tuple[str, ...]
    forks: int


def plan_slices(hosts: Sequence[str], cfg: NodeConfig, forks: int) -> list[Slice]:
    """Split `hosts` (in order) into contiguous slices proportional to each worker's capacity.

    Largest remainder: every host goes to exactly one slice, no worker gets more than its share rounded
    up, empty slices are left out. The controller's share is also capped by `forks` (the run's setting).
    """
    workers: list[tuple[str, int]] = []
    if cfg.controller_capacity:
        workers.append((LOCAL, min(cfg.controller_capacity, forks)))
    workers += [(n.name, n.capacity) for n in cfg.nodes]
    total = sum(c for _, c in workers)
    n = len(hosts)
    exact = [n * c / total for _, c in workers]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(workers)), key=lambda i: (counts[i] - exact[i], i))[: n - sum(counts)]:
        counts[i] += 1
    out, at = [], 0
    for (name, cap), count in zip(workers, counts, strict=True):
        if count:
            out.append(Slice(name, tuple(hosts[at : at + count]), max(1, min(cap, count))))
            at += count
    return out


def _accepts_connections(path: Path) -> bool:
    """True once a Unix socket is listening: ssh-agent binds (the file appears) before it listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
    return True


class SshAgent:
    """A private ssh-agent holding the target key for one slice; killed (by its pid) on close.

    `destinations` are ssh-add destination constraints (`node`, `node>target`, ...; OpenSSH 8.9+): the
    agent then lets the key sign only for those hops, checked against the host keys in `known_hosts`, so
    a node can use the forwarded key for the hosts of its slice and for nothing else.
    """

    def __init__(
        self,
        key: Path,
        lifetime_s: int = 86400,
        *,
        destinations: Sequence[str] = (),
        known_hosts: Sequence[Path] = (),
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pb-agent-"))
        self.socket = self.dir / "agent.sock"
        self.proc = subprocess.Popen(
            ["ssh-agent", "-D", "-a", str(self.socket)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not _accepts_connections(self.socket):  # the socket file exists before listen()
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise EnvironmentProblem("ssh-agent did not start")
                time.sleep(0.05)
            argv = ["ssh-add", "-q", "-t", str(lifetime_s)]
            for path in known_hosts:
                argv += ["-H", str(path)]
            for dest in destinations:
                argv += ["-h", dest]
            added = subprocess.run(
                [*argv, str(key)],
                env={**os.environ, "SSH_AUTH_SOCK": str(self.socket)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if added.returncode != 0:
                raise EnvironmentProblem(f"ssh-add {key} failed: {added.stderr.strip()}")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the agent: the key is gone from memory and every forwarded socket stops answering."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class NodePool:
    """Runs requests sliced over the controller and the nodes of `cfg`; use as `RolloutOptions.run`.

    with NodePool(cfg) as pool:
        rollout(plan, inventory=inv, options=RolloutOptions(run=pool.run, read_installed=...))
    """

    def __init__(self, cfg: NodeConfig, *, agent_lifetime_s: int = 21600) -> None:
        self.cfg = cfg
        self._lifetime = agent_lifetime_s
        self._agents: set[SshAgent] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> NodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop any agent still running (normally each slice's agent stops when the slice ends)."""
        with self._lock:
            agents, self._agents = self._agents, set()
        for agent in agents:
            agent.close()

    def _agent_for(self, node: Node, req: RunRequest) -> SshAgent | None:
        """The slice's own agent: the target key, usable only from `node` to the slice's hosts."""
        if self.cfg.target_key is None:
            return None
        from patchbrain.inventory import load_hosts

        addresses = {h.name: h.address for h in load_hosts(req.inventory)}
        hops = [node.address] + [f"{node.address}>{addresses[h]}" for h in req.limit if h in addresses]
        files = [self.cfg.target_known_hosts] + ([node.known_hosts] if node.known_hosts else [])
        lifetime = min(self._lifetime, req.timeout_s + 600) if req.timeout_s else self._lifetime
        agent = SshAgent(self.cfg.target_key, lifetime, destinations=hops, known_hosts=files)
        with self._lock:
            self._agents.add(agent)
        return agent

    def _drop_agent(self, agent: SshAgent | None) -> None:
        if agent is not None:
            with self._lock:
                self._agents.discard(agent)
            agent.close()

    def run(self, req: RunRequest, hooks: RunHooks) -> runner.RunResult:
        """Run `req` sliced by capacity; one merged result (the local-only case is a plain local run)."""
        hosts = req.limit
        if not hosts:
            raise BadInput("a run over execution nodes needs an explicit host list (limit)", field="limit")
        slices = plan_slices(hosts, self.cfg, req.forks)
        if len(slices) == 1 and slices[0].worker == LOCAL:
            return runner.run(req, hooks)
        folder = runner.run_dir(req)
        folder.mkdir(parents=True, mode=0o700)
        (folder / "slices.json").write_text(
            json.dumps([dataclasses.asdict(s) for s in slices], indent=1) + "\n", encoding="utf-8"
        )
        nodes = {n.name: n for n in self.cfg.nodes}
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(slices)) as pool:
            futures = []
            for s in slices:
                sub = dataclasses.replace(
                    req, ident=f"{req.ident}-{s.worker}", limit=s.hosts, forks=min(req.forks, s.forks)
                )
                if s.worker == LOCAL:
                    futures.append(pool.submit(runner.run, sub, hooks))
                else:
                    futures.append(pool.submit(self.run_remote, nodes[s.worker], sub, hooks))
            parts = [f.result() for f in futures]
        return runner.merge_results(req.ident, folder, parts)

    # -- one remote slice ------------------------------------------------------------------------------

    def ssh_argv(self, node: Node, remote: str, *, forward: bool = False) -> list[str]:
        """`ssh` to the node: strict host-key checking, keepalives, agent forwarding when an agent runs."""
        argv = ["ssh", "-F", "none", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        if node.known_hosts is not None:
            argv += ["-o", f"UserKnownHostsFile={node.known_hosts}"]
        if node.identity is not None:
            argv += ["-o", "IdentitiesOnly=yes", "-i", str(node.identity)]
        argv += ["-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=6"]
        argv += ["-o", "LogLevel=ERROR", "-A" if forward else "-a"]
        argv += ["-p", str(node.port), f"{node.user}@{node.address}", "--", remote]
        return argv

    @staticmethod
    def _env(agent: SshAgent | None) -> dict[str, str]:
        env = dict(os.environ)
        if agent is not None:
            env["SSH_AUTH_SOCK"] = str(agent.socket)
        return env

    def run_remote(self, node: Node, req: RunRequest, hooks: RunHooks) -> runner.RunResult:
        """One slice on `node`: transmit | ssh node ansible-runner worker | process; never raises for a
        broken node (its hosts come back `unknown`)."""
        folder = runner.run_dir(req)
        remote_dir = f"{node.workdir}/{req.ident}"
        kwargs = stream_kwargs(req, hooks, remote_dir, node, self.cfg.target_known_hosts)
        handlers = {k: kwargs.pop(k) for k in ("event_handler", "status_handler", "cancel_callback")}
        remote = shlex.join(["sh", "-c", _REMOTE_SCRIPT, "sh", remote_dir, node.ansible_runner])
        started = time.time()
        record: dict[str, Any] = {"node": node.name, "address": node.address, "hosts": list(req.limit)}
        stderr_path = folder / "node-ssh.stderr"
        agent = self._agent_for(node, req)
        try:
            with open(stderr_path, "wb") as err:
                self._stream(node, agent, remote, remote_dir, kwargs, handlers, folder, err, record)
        finally:
            self._drop_agent(agent)  # the key leaves the agent (and the node's reach) with the slice
        record["seconds"] = round(time.time() - started, 3)
        result = runner.read_result(folder)
        if "processed" not in result.stats:  # no playbook stats: the node never finished the play
            record["lost"] = True
            _write_missing(folder / "status", "error")
            _write_missing(folder / "rc", "255")
            log.warning(
                "execution node %s lost during %s (ssh rc %s): %d host(s) now unknown",
                node.name,
                req.ident,
                record.get("ssh_rc"),
                len(req.limit),
            )
            result = runner.read_result(folder)
            result = dataclasses.replace(result, unknown=frozenset(req.limit))
        (folder / "node.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        return dataclasses.replace(result, remote=frozenset(req.limit))

    def _stream(
        self,
        node: Node,
        agent: SshAgent | None,
        remote: str,
        remote_dir: str,
        kwargs: dict[str, Any],
        handlers: dict[str, Any],
        folder: Path,
        err: IO[bytes],
        record: dict[str, Any],
    ) -> None:
        """transmit -> ssh -> process for one slice; records the stream's status and ssh's exit code."""
        import ansible_runner

        proc = subprocess.Popen(
            self.ssh_argv(node, remote, forward=agent is not None),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=self._env(agent),
            start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        stop = threading.Event()
        watcher = threading.Thread(
            target=self._watch_cancel, args=(node, remote_dir, handlers["cancel_callback"], proc, stop)
        )
        watcher.start()
        try:
            _transmit(ansible_runner, kwargs, proc.stdin)
            processor = ansible_runner.interface.run(
                streamer="process",
                _input=proc.stdout,
                private_data_dir=kwargs["private_data_dir"],
                artifact_dir=str(folder),
                ident=kwargs["ident"],
                settings=kwargs.get("settings"),
                quiet=True,
                event_handler=handlers["event_handler"],
                status_handler=handlers["status_handler"],
            )
            record["stream_status"] = processor.status
        finally:
            stop.set()
            watcher.join()
            with contextlib.suppress(OSError):
                proc.stdout.close()
            try:
                record["ssh_rc"] = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                record["ssh_rc"] = proc.wait()

    def _watch_cancel(
        self,
        node: Node,
        remote_dir: str,
        cancel: Any,
        proc: subprocess.Popen[bytes],
        stop: threading.Event,
    ) -> None:
        """Poll the caller's cancel; on cancel, ask the node's worker to stop (SIGTERM: it cancels the
        playbook and still sends its artifacts back), and cut the connection if it does not within 60 s."""
        while not stop.wait(1.0):
            if cancel is None or not cancel():
                continue
            log.warning("canceling the slice on node %s", node.name)
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(
                    self.ssh_argv(node, shlex.join(["sh", "-c", _CANCEL_SCRIPT, "sh", remote_dir])),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    env=self._env(None),
                    timeout=60,
                    check=False,
                )
            if not stop.wait(60):
                _kill_group(proc)
            return


def _transmit(ansible_runner: Any, kwargs: dict[str, Any], out: IO[bytes]) -> None:
    """Stream the job to the worker; a node that hangs up early shows as a lost slice, not a crash."""
    try:
        ansible_runner.interface.run(streamer="transmit", _output=out, **kwargs)
    except (BrokenPipeError, ConnectionResetError) as exc:
        log.warning("the execution node closed the stream while receiving the job: %s", exc)
    finally:
        with contextlib.suppress(OSError):
            out.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _write_missing(path: Path, text: str) -> None:
    if not path.exists():
        path.write_text(text + "\n", encoding="utf-8")


def stream_kwargs(
    req: RunRequest, hooks: RunHooks, remote_dir: str, node: Node, target_known_hosts: Path
) -> dict[str, Any]:
    """ansible-runner arguments for a slice run by `ansible-runner worker` in `remote_dir` on `node`.

    Built by the same `runner.runner_kwargs` as a local run (same ansible.cfg, vars file, tags, forks,
    timeouts, host-key checking), then made self-contained: the playbooks, roles, inventory and the
    targets' known_hosts are copied into the private data dir, and paths point where the worker unpacks
    it. The inventory is the controller's own file, unchanged; one extra vars file makes the node use
    the forwarded key and the shipped known_hosts.
    """
    kwargs = runner.runner_kwargs(req, hooks)
    private = Path(kwargs["private_data_dir"])
    playbook = Path(kwargs["playbook"])
    shutil.copytree(playbook.parent, private / "project")
    shutil.copytree(resources.roles_dir(), private / "roles")
    inventory = Path(kwargs["inventory"])
    (private / "inventory").mkdir(mode=0o700)
    if inventory.is_dir():
        shutil.copytree(inventory, private / "inventory" / inventory.name)
    else:
        shutil.copyfile(inventory, private / "inventory" / inventory.name)
    shutil.copyfile(target_known_hosts, private / "known_hosts")
    cfg_text = (private / "ansible.cfg").read_text(encoding="utf-8")
    cfg_text = cfg_text.replace(f"roles_path = {resources.roles_dir()}", f"roles_path = {remote_dir}/roles")
    (private / "ansible.cfg").write_text(cfg_text, encoding="utf-8")
    known = f"UserKnownHostsFile={remote_dir}/known_hosts"
    ssh_args = shlex.join(
        ["-F", "none", "-o", known, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]
    )
    node_vars = {"ansible_ssh_common_args": ssh_args, "ansible_ssh_private_key_file": ""}
    fd = os.open(private / "node-vars.yml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(node_vars) + "\n")  # our own values (validated ident paths); JSON is YAML
    cmdline = shlex.split(kwargs["cmdline"])
    cmdline[1] = f"@{remote_dir}/vars.yml"  # runner_kwargs puts `-e @VARS` first
    cmdline += ["-e", f"@{remote_dir}/node-vars.yml"]
    runner_bin = str(Path(node.ansible_runner).parent)
    kwargs.update(
        private_data_dir=str(private),
        playbook=playbook.name,
        inventory=inventory.name,  # dump_artifacts resolves it under <private>/inventory
        cmdline=shlex.join(cmdline),
        envvars={
            **kwargs["envvars"],
            "PATH": f"{runner_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ANSIBLE_CONFIG": f"{remote_dir}/ansible.cfg",
            "ANSIBLE_ROLES_PATH": f"{remote_dir}/roles",
        },
    )
    for key in ("artifact_dir", "project_dir", "rotate_artifacts"):
        kwargs.pop(key, None)
    return kwargs


def controller_reader(
    inventory: Path, *, timeout: float = 60.0, workers: int = 8
) -> Callable[[Mapping[str, Mapping[str, str]]], Mapping[str, Mapping[str, str] | None]]:
    """`RolloutOptions.read_installed` through the independent verifier (`patchbrain.verify`): the
    controller's own paramiko sessions, strict host keys from the inventory, fixed read-only commands.
    A host it cannot read comes back None (it stays unknown, or counts as a mismatch)."""

    def read(wanted: Mapping[str, Mapping[str, str]]) -> Mapping[str, Mapping[str, str] | None]:
        from patchbrain.inventory import load_hosts
        from patchbrain.verify import access_from_inventory, read_hosts

        hosts = [h for h in load_hosts(inventory) if h.name in wanted]
        readings = read_hosts(
            hosts,
            {h: sorted(p) for h, p in wanted.items()},
            access=access_from_inventory(inventory),
            timeout=timeout,
            workers=workers,
        )
        out: dict[str, Mapping[str, str] | None] = dict.fromkeys(wanted)
        for host, r in readings.items():
            if r.reachable:
                out[host] = {name: v for name, v in r.versions.items() if v is not None}
            else:
                log.warning("the controller could not read %s: %s", host, r.error)
        return out

    return read


@contextlib.contextmanager
def node_pool(cfg: NodeConfig) -> Iterator[NodePool]:
    """`NodePool(cfg)` as a context manager (the agent lives exactly as long as the block)."""
    pool = NodePool(cfg)
    with pool:
        yield pool


def worker_info(node: Node, pool: NodePool | None = None) -> Mapping[str, Any]:
    """`ansible-runner worker --worker-info` on the node (version, CPU count, memory), parsed."""
    import yaml

    p = pool or NodePool(NodeConfig(0, (node,), Path("/dev/null")))
    out = subprocess.run(
        p.ssh_argv(node, shlex.join([node.ansible_runner, "worker", "--worker-info"])),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise EnvironmentProblem(
            f"node {node.name}: worker --worker-info failed: {out.stderr.strip()[-300:]}"
        )
    doc = yaml.safe_load(out.stdout)
    return doc if isinstance(doc, dict) else {}


__all__ = [
    "LOCAL",
    "Node",
    "NodeConfig",
    "NodePool",
    "Slice",
    "controller_reader",
    "load_config",
    "node_pool",
    "plan_slices",
    "render_config",
    "stream_kwargs",
    "worker_info",
]
