"""Read hosts over patchbrain's own SSH channel (paramiko): versions, posture probes, SELinux mode (and
whether it is the lab's simulated stand-in: the marker file is one of the probes).

Host keys are checked strictly against the inventory's known_hosts file (the lab writes
`<lab dir>/known_hosts`); a host whose key is unknown or different is refused, never added. Nothing read
here changes a host: every command is one of `commands.py`'s fixed read-only command lines.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import json
import logging
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import paramiko

from patchbrain import pkgspec
from patchbrain.errors import BadInput, PatchbrainError
from patchbrain.executor.discovery import parse_dpkg_installed, parse_rpm_installed
from patchbrain.models import Host
from patchbrain.posture.snapshot import RAW_SCHEMA, parse_document
from patchbrain.verify import commands

log = logging.getLogger(__name__)

MAX_OUTPUT = 16 * 1024 * 1024  # bytes per command; more is refused, not truncated silently


@dataclasses.dataclass(frozen=True, slots=True)
class SshAccess:
    """How to reach one host: address, port, user, private key, known_hosts file."""

    address: str
    port: int = 22
    user: str = "root"
    key_file: Path | None = None
    known_hosts: Path | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HostReading:
    """What the verifier read from one host (`reachable` False: `error` says why; nothing else is set)."""

    host: str
    reachable: bool
    error: str = ""
    family: pkgspec.Family | None = None
    versions: Mapping[str, str | None] = dataclasses.field(default_factory=dict)  # None: not installed
    ruleset: str | None = None  # `nft -j list ruleset` output, None when nft is missing
    selinux_mode: str | None = None  # enforcing | permissive | disabled, None when unknown
    selinux_config_mode: str | None = None
    # read from the host: /etc/selinux/SIMULATED present (SELinux there is the lab's stand-in); None unknown
    selinux_simulated: bool | None = None
    posture: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # a raw posture document
    host_key: str = ""  # SHA-256 fingerprint of the key the host presented
    read_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the full posture document is left out)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("posture", "ruleset")}
        out["ruleset_sha256"] = _sha256(self.ruleset) if self.ruleset is not None else None
        return out


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _known_hosts_of(common_args: str) -> Path | None:
    """UserKnownHostsFile from an `ansible_ssh_common_args` string, if it names exactly one."""
    try:
        words = shlex.split(common_args)
    except ValueError:
        return None
    opts = []
    for i, word in enumerate(words):
        if word == "-o" and i + 1 < len(words):
            opts.append(words[i + 1])
        elif word.startswith("-o") and len(word) > 2:
            opts.append(word[2:])
    for opt in opts:
        key, sep, value = opt.partition("=")
        if sep and key.strip().lower() == "userknownhostsfile":
            files = value.split()
            return Path(files[0]) if len(files) == 1 else None
    return None


def access_from_inventory(path: Path) -> dict[str, SshAccess]:
    """Each host's SSH access from the inventory's variables (ansible_host, ansible_port, ansible_user,
    ansible_ssh_private_key_file, UserKnownHostsFile in ansible_ssh_common_args)."""
    from patchbrain.inventory import read_inventory

    return access_from_listing(read_inventory(path), source=str(path))


def access_from_listing(data: Mapping[str, Any], *, source: str) -> dict[str, SshAccess]:
    """`access_from_inventory` over an `ansible-inventory --list` document already read."""
    hostvars: Mapping[str, Mapping[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    out: dict[str, SshAccess] = {}
    for name, hv in hostvars.items():
        where = f"{source}: host {name}"
        port = hv.get("ansible_port", hv.get("ansible_ssh_port", 22))
        try:
            port = int(port)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"not a port: {port!r}", source=where, field="ansible_port") from exc
        key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
        common = hv.get("ansible_ssh_common_args")
        out[name] = SshAccess(
            address=str(hv.get("ansible_host", name)),
            port=port,
            user=str(hv.get("ansible_user", "root")),
            key_file=Path(str(key)).expanduser() if key else None,
            known_hosts=_known_hosts_of(common) if isinstance(common, str) else None,
        )
    return out


class Session:
    """One paramiko connection (strict host keys); `run(command_line)` returns (rc, stdout, stderr)."""

    def __init__(self, access: SshAccess, timeout: float) -> None:
        self.timeout = timeout
        self.client = paramiko.SSHClient()
        if access.known_hosts is not None:
            if not access.known_hosts.is_file():
                raise BadInput("known_hosts file not found", source=str(access.known_hosts))
            self.client.load_host_keys(str(access.known_hosts))
        else:
            self.client.load_system_host_keys()
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.client.connect(
            access.address,
            port=access.port,
            username=access.user,
            key_filename=str(access.key_file) if access.key_file else None,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            allow_agent=access.key_file is None,
            look_for_keys=access.key_file is None,
        )

    def host_key(self) -> str:
        import base64
        import hashlib

        transport = self.client.get_transport()
        if transport is None:
            return ""
        key = transport.get_remote_server_key()
        digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
        return f"{key.get_name()} SHA256:{digest}"

    def run(self, command: str) -> tuple[int, str, str]:
        _, stdout, stderr = self.client.exec_command(command, timeout=self.timeout)
        out = stdout.read(MAX_OUTPUT + 1)
        err = stderr.read(64 * 1024)
        rc = stdout.channel.recv_exit_status()
        if len(out) > MAX_OUTPUT:
            raise BadInput(f"more than {MAX_OUTPUT} bytes of output", source=command[:80])
        return rc, out.decode("utf-8", errors="replace"), err.decode("utf-8", errors="replace")

    def close(self) -> None:
        self.client.close()


def _probe_result(rc: int, stdout: str, stderr: str) -> dict[str, Any]:
    """One probe as the posture role records it (command module: trailing newline stripped)."""
    if rc == 127 and not stdout:
        return {"rc": None, "stdout": "", "stderr": stderr.strip(), "missing": True}
    return {"rc": rc, "stdout": stdout.rstrip("\n"), "stderr": stderr.rstrip("\n"), "missing": False}


def _read_batched(
    session: Session, host: str, family: pkgspec.Family, names: Sequence[str]
) -> dict[str, dict[str, Any]] | None:
    """Every probe (and the version query) in one command; None when the host cannot run it or its answer
    is not the expected shape, so the caller runs each fixed command on its own instead."""
    rc, out, err = session.run(commands.probe_script_line(family, names))
    if rc != 0:
        log.debug("verifier: one-command read of %s exited %s (%s); reading probe by probe", host, rc, err)
        return None
    try:
        doc = json.loads(out)
    except ValueError:
        doc = None
    wanted = [n for n, _ in commands.PROBES + commands.FILES] + ([commands.VERSIONS_PROBE] if names else [])
    if not isinstance(doc, dict) or not all(_is_probe(doc.get(n)) for n in wanted):
        log.warning("verifier: %s gave an odd answer to the one-command read; reading probe by probe", host)
        return None
    probes: dict[str, dict[str, Any]] = {}
    for name in wanted:
        p = doc[name]
        # the shape `_probe_result` gives each fixed command: trailing newlines stripped (a state file too),
        # and a missing tool or file has no exit status
        probes[name] = {
            "rc": None if p["missing"] else p["rc"],
            "stdout": p["stdout"].rstrip("\n"),
            "stderr": p["stderr"].rstrip("\n"),
            "missing": p["missing"],
        }
    return probes


def _is_probe(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"rc", "stdout", "stderr", "missing"}
        and (value["rc"] is None or type(value["rc"]) is int)
        and isinstance(value["stdout"], str)
        and isinstance(value["stderr"], str)
        and type(value["missing"]) is bool
    )


def _family(host: Host) -> pkgspec.Family:
    return pkgspec.family_of(host.pkg_mgr or "apt")


def _read_one(host: Host, access: SshAccess, names: Sequence[str], timeout: float) -> HostReading:
    family = _family(host)
    version_cmd = commands.versions_line(family, names) if names else None
    try:
        session = Session(access, timeout)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log.warning("verifier cannot reach %s: %s", host.name, why)
        return HostReading(host.name, False, error=why, family=family, read_at=_now())
    try:
        probes = _read_batched(session, host.name, family, names)
        if probes is None:  # no usable Python on the host: each probe on its own
            if version_cmd is not None:
                probes = {commands.VERSIONS_PROBE: _probe_result(*session.run(version_cmd))}
            else:
                probes = {}
            for name, _ in commands.PROBES + commands.FILES:
                probes[name] = _probe_result(*session.run(commands.probe_line(name)))
        versions: dict[str, str | None] = {}
        if version_cmd is not None:
            out = str(probes.pop(commands.VERSIONS_PROBE, {}).get("stdout", ""))
            parsed = parse_dpkg_installed(out) if family == "deb" else parse_rpm_installed(out)
            versions = {n: parsed.get(n) for n in names}
        key = session.host_key()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        return HostReading(host.name, False, error=f"{type(exc).__name__}: {exc}", family=family)
    finally:
        session.close()
    read_at = _now()
    doc: dict[str, Any] = {"schema": RAW_SCHEMA, "host": host.name, "collected_at": read_at, "probes": probes}
    nft = probes["nft_ruleset"]
    mode = config_mode = simulated = None
    try:
        snap = parse_document(doc, host=host.name)
        simulated = snap.selinux is not None and snap.selinux.simulated
        if snap.selinux is not None:
            mode, config_mode = snap.selinux.runtime_mode, snap.selinux.config_mode
    except BadInput as exc:
        log.warning("verifier: %s", exc)
    return HostReading(
        host=host.name,
        reachable=True,
        family=family,
        versions=versions,
        ruleset=None if nft["missing"] else str(nft["stdout"]),
        selinux_mode=mode,
        selinux_config_mode=config_mode,
        selinux_simulated=simulated,
        posture=doc,
        host_key=key,
        read_at=read_at,
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_hosts(
    hosts: Iterable[Host],
    packages: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    known_hosts: Path | None = None,
    access: Mapping[str, SshAccess] | None = None,
    key_file: Path | None = None,
    user: str = "root",
    timeout: float = 30.0,
    workers: int = 8,
) -> dict[str, HostReading]:
    """Read every host over SSH, in parallel; `packages` is one list for all or `{host: [names]}`.

    Access per host comes from `access` (see `access_from_inventory`), else the host's address with
    `key_file`/`user`. `known_hosts`, when given, replaces every host's known_hosts file. Names are
    validated before any connection (BadInput names the bad one). A host that cannot be reached, or whose
    key is not the known one, comes back with `reachable=False` and the reason.
    """
    hosts = list(hosts)
    if known_hosts is not None and not known_hosts.is_file():
        raise BadInput("known_hosts file not found", source=str(known_hosts))
    jobs: list[tuple[Host, SshAccess, tuple[str, ...]]] = []
    for host in hosts:
        names = tuple(packages.get(host.name, ()) if isinstance(packages, Mapping) else packages)
        if names:
            commands.versions_line(_family(host), names)  # validate now, before any connection
        acc = (access or {}).get(host.name) or SshAccess(host.address, user=user, key_file=key_file)
        if known_hosts is not None:
            acc = dataclasses.replace(acc, known_hosts=known_hosts)
        jobs.append((host, acc, names))
    out: dict[str, HostReading] = {}
    if not jobs:
        return out
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        futures = {pool.submit(_read_one, h, a, n, timeout): h.name for h, a, n in jobs}
        for fut in concurrent.futures.as_completed(futures):
            name = futures[fut]
            try:
                out[name] = fut.result()
            except (TimeoutError, PatchbrainError) as exc:
                out[name] = HostReading(name, False, error=str(exc), read_at=_now())
    return {h.name: out[h.name] for h in hosts}
