"""Health checks per host or group, declared in inventory variables, run by patchbrain itself.

    patchbrain_health_checks:
      - {name: labdemo runs, command: [labdemo], timeout: 20}   # on the host, over patchbrain's own SSH
      - {name: ssh answers, tcp: 22}                             # from the controller to the host address
      - {name: web, http: {port: 8080, path: /health, status: [200]}}

Group variables apply to every member (Ansible merges them). A command is an argv list, each item shell-
quoted for the remote shell; nothing from the inventory is ever interpreted as a command line. A check
passes on exit 0, an accepted TCP connection, or an HTTP status in `status` (default 200-399).
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import re
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from patchbrain.errors import BadInput
from patchbrain.verify import commands
from patchbrain.verify.read import Session, SshAccess

log = logging.getLogger(__name__)

VAR = "patchbrain_health_checks"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,63}$")
_PATH = re.compile(r"^/[A-Za-z0-9._~/?=&%+-]{0,255}$")


@dataclasses.dataclass(frozen=True, slots=True)
class HealthCheck:
    """One declared check."""

    name: str
    kind: Literal["command", "tcp", "http"]
    argv: tuple[str, ...] = ()
    port: int = 0
    path: str = "/"
    statuses: tuple[int, ...] = ()
    timeout_s: float = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class CheckResult:
    """One run of one check."""

    host: str
    check: str
    ok: bool
    detail: str


def _port(value: Any, where: str, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise BadInput(f"must be a port number from 1 to 65535, got {value!r}", source=where, field=field)
    return value


def parse_checks(value: Any, *, source: str) -> tuple[HealthCheck, ...]:
    """Validate one host's `patchbrain_health_checks` (BadInput names the host and the entry)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadInput("must be a list of checks", source=source, field=VAR)
    out = []
    for i, raw in enumerate(value):
        field = f"{VAR}[{i}]"
        if not isinstance(raw, Mapping):
            raise BadInput("each check is a mapping", source=source, field=field)
        kinds = [k for k in ("command", "tcp", "http") if k in raw]
        if len(kinds) != 1:
            raise BadInput("a check has exactly one of command, tcp, http", source=source, field=field)
        unknown = set(raw) - {"name", "timeout", *kinds}
        if unknown:
            raise BadInput(f"unknown keys {sorted(unknown)}", source=source, field=field)
        name = raw.get("name", f"{kinds[0]}-{i + 1}")
        if not isinstance(name, str) or not _NAME.match(name):
            raise BadInput(f"bad check name {name!r}", source=source, field=f"{field}.name")
        timeout = raw.get("timeout", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
            raise BadInput("timeout must be 1..300 seconds", source=source, field=f"{field}.timeout")
        kind = kinds[0]
        body = raw[kind]
        if kind == "command":
            if (
                not isinstance(body, list)
                or not body
                or not all(isinstance(a, str) and a and "\0" not in a for a in body)
            ):
                raise BadInput("command must be a non-empty argv list of strings", source=source, field=field)
            out.append(HealthCheck(name, "command", argv=tuple(body), timeout_s=float(timeout)))
        elif kind == "tcp":
            out.append(
                HealthCheck(name, "tcp", port=_port(body, source, f"{field}.tcp"), timeout_s=float(timeout))
            )
        else:
            if not isinstance(body, Mapping) or set(body) - {"port", "path", "status"}:
                raise BadInput("http takes {port, path, status}", source=source, field=f"{field}.http")
            path = body.get("path", "/")
            if not isinstance(path, str) or not _PATH.match(path):
                raise BadInput(f"bad path {path!r}", source=source, field=f"{field}.http.path")
            status = body.get("status", list(range(200, 400)))
            if not isinstance(status, list) or not all(
                isinstance(s, int) and 100 <= s <= 599 for s in status
            ):
                raise BadInput(
                    "status must be a list of HTTP codes", source=source, field=f"{field}.http.status"
                )
            out.append(
                HealthCheck(
                    name,
                    "http",
                    port=_port(body.get("port"), source, f"{field}.http.port"),
                    path=path,
                    statuses=tuple(status),
                    timeout_s=float(timeout),
                )
            )
    return tuple(out)


def checks_from_listing(data: Mapping[str, Any], *, source: str) -> dict[str, tuple[HealthCheck, ...]]:
    """Every host's checks from an `ansible-inventory --list` document (hosts without checks left out)."""
    hostvars: Mapping[str, Mapping[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    out = {}
    for host, hv in hostvars.items():
        checks = parse_checks(hv.get(VAR), source=f"{source}: host {host}")
        if checks:
            out[host] = checks
    return out


def _run_command(session: Session, host: str, check: HealthCheck) -> CheckResult:
    try:
        rc, out, err = session.run(commands.line(check.argv))
    except (OSError, EOFError) as exc:
        return CheckResult(host, check.name, False, f"no answer within {check.timeout_s:g}s ({exc})")
    if rc == 0:
        return CheckResult(host, check.name, True, "exit 0")
    text = (err.strip() or out.strip())[:200]
    return CheckResult(host, check.name, False, f"exit {rc}" + (f": {text}" if text else ""))


def _run_tcp(address: str, host: str, check: HealthCheck) -> CheckResult:
    try:
        with socket.create_connection((address, check.port), timeout=check.timeout_s):
            return CheckResult(host, check.name, True, f"tcp/{check.port} accepted")
    except OSError as exc:
        return CheckResult(host, check.name, False, f"tcp/{check.port}: {exc}")


def _run_http(address: str, host: str, check: HealthCheck) -> CheckResult:
    conn = http.client.HTTPConnection(address, check.port, timeout=check.timeout_s)
    try:
        conn.request("GET", check.path)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return CheckResult(host, check.name, False, f"http {check.port}{check.path}: {exc}")
    finally:
        conn.close()
    ok = status in (check.statuses or tuple(range(200, 400)))
    return CheckResult(host, check.name, ok, f"http {check.port}{check.path}: status {status}")


def run_checks(
    host: str, access: SshAccess, checks: Sequence[HealthCheck], *, timeout: float
) -> list[CheckResult]:
    """Run every check of one host; a host patchbrain cannot reach fails each command check."""
    results: list[CheckResult] = []
    session: Session | None = None
    cmd_checks = [c for c in checks if c.kind == "command"]
    if cmd_checks:
        try:
            session = Session(access, timeout)
        except Exception as exc:  # paramiko raises many kinds; any of them means "cannot check"
            results += [CheckResult(host, c.name, False, f"cannot reach the host: {exc}") for c in cmd_checks]
    try:
        for check in checks:
            if check.kind == "command":
                if session is not None:
                    results.append(_run_command(session, host, check))
            elif check.kind == "tcp":
                results.append(_run_tcp(access.address, host, check))
            else:
                results.append(_run_http(access.address, host, check))
    finally:
        if session is not None:
            session.close()
    return results
