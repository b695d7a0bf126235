"""Scriptlet pre-scan: read a package's maintainer scripts without installing it and report every command
that touches SELinux or the firewall, writes their configuration, or schedules work to run later.

Findings are evidence shown before the canary, not a verdict: a script can hide a command from any text
scan (variables, eval, a binary it ships). The drift gate after the canary is what proves a weakening.
"""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
import tarfile
from pathlib import Path

from patchbrain.errors import BadInput, EnvironmentProblem

DEB_SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config", "triggers")
MAX_SCRIPT_BYTES = 4 << 20
TIMEOUT = 60

_SEP = r"(?:^|[\s;&|(`{\"']|\$\()"
_END = r"(?=$|[\s;&|)`}\"'])"
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "selinux",
        re.compile(
            _SEP
            + r"(?:/\S*/)?(setenforce|semanage|setsebool|togglesebool|semodule|load_policy|selinuxenabled"
            r"|setfiles|chcon)" + _END
        ),
    ),
    (
        "firewall",
        re.compile(
            _SEP + r"(?:/\S*/)?(nft|iptables(?:-legacy|-nft)?(?:-restore|-apply)?|ip6tables(?:-legacy|-nft)?"
            r"(?:-restore)?|ebtables|arptables|firewall-cmd|firewall-offline-cmd|ufw)" + _END
        ),
    ),
    (
        "control-config",
        re.compile(
            r"(/etc/selinux\b|/sys/fs/selinux\b|/etc/nftables(?:\.conf|\.d)?\b|/etc/iptables\b"
            r"|/etc/sysconfig/(?:ip6?tables|selinux)\b|/etc/firewalld\b|/etc/ufw\b|/etc/default/ufw\b"
            r"|/usr/lib/firewalld\b|/lib/ufw\b)"
        ),
    ),
    (
        "deferred",
        re.compile(
            _SEP
            + r"(systemd-run|nohup|batch|crontab|disown)"
            + _END
            + r"|"
            + _SEP
            + r"(at)\s+(?:-f\s|now\b|now\s*\+|midnight\b|noon\b|teatime\b|\d)"
            + r"|(/etc/cron[\w.]*|/var/spool/cron\b|\.timer\b)"
            + r"|(?<![&|])&\s*(?:$|;|#|\)|disown)"
            + r"|"
            + _SEP
            + r"(setsid)"
            + _END
        ),
    ),
    ("network-fetch", re.compile(_SEP + r"(curl|wget)" + _END)),
)
_WRITE = re.compile(r">|\btee\b|\bsed\s+-i|\b(?:cp|mv|install|ln|rm|truncate|dd)\b")


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One line of one maintainer script that touches a control."""

    script: str
    line: int
    category: str  # selinux | firewall | control-config | deferred | network-fetch
    text: str
    writes: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class PrescanReport:
    """Every finding in one package file."""

    path: str
    package: str
    version: str
    findings: tuple[Finding, ...]
    scripts: tuple[str, ...]


def scan_text(script: str, text: str) -> list[Finding]:
    """Findings in one script's text (comments ignored, one finding per category per line)."""
    out: list[Finding] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        for category, pattern in PATTERNS:
            if pattern.search(line):
                writes = category == "control-config" and bool(_WRITE.search(line))
                out.append(Finding(script, lineno, category, line[:300], writes))
    return out


def _strip_comment(line: str) -> str:
    if line.lstrip().startswith("#"):
        return ""
    # a ` #` outside quotes starts a comment; good enough for maintainer scripts
    quote = None
    for i, ch in enumerate(line):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote == ch else ch
        elif ch == "#" and quote is None and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _run(argv: list[str], source: str) -> bytes:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False)
    except FileNotFoundError as exc:
        raise EnvironmentProblem(f"{argv[0]} is not installed; it is needed to read {source}") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[:300]
        raise BadInput(f"{argv[0]} could not read the package: {err}", source=source)
    return proc.stdout


def deb_scripts(path: Path) -> tuple[str, str, dict[str, str]]:
    """(package, version, {script name: text}) of a .deb, via `dpkg-deb --ctrl-tarfile`."""
    source = str(path)
    fields = _run(["dpkg-deb", "--show", "--showformat=${Package}\\n${Version}\\n", "--", str(path)], source)
    name, _, version = fields.decode("utf-8", "replace").strip().partition("\n")
    data = _run(["dpkg-deb", "--ctrl-tarfile", "--", str(path)], source)
    scripts: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar.getmembers():
                base = member.name.removeprefix("./")
                if base not in DEB_SCRIPTS or not member.isfile():
                    continue
                if member.size > MAX_SCRIPT_BYTES:
                    raise BadInput(
                        f"{base} is larger than {MAX_SCRIPT_BYTES} bytes", source=source, field=base
                    )
                fh = tar.extractfile(member)
                if fh is not None:
                    scripts[base] = fh.read().decode("utf-8", "replace")
    except tarfile.TarError as exc:
        raise BadInput(f"control archive unreadable: {exc}", source=source) from exc
    return name, version, scripts


_RPM_HEADER = re.compile(r"^(\w+) (?:scriptlet|program)(?: \(using ([^)]*)\))?:\s*(.*)$")


def rpm_scripts(path: Path) -> tuple[str, str, dict[str, str]]:
    """(name, version-release, {scriptlet: text}) of an .rpm, via `rpm -qp --scripts --triggers`."""
    source = str(path)
    nv = _run(
        ["rpm", "-qp", "--nosignature", "--qf", "%{NAME}\\n%{VERSION}-%{RELEASE}\\n", "--", str(path)], source
    )
    name, _, version = nv.decode("utf-8", "replace").strip().partition("\n")
    text = _run(["rpm", "-qp", "--nosignature", "--scripts", "--triggers", "--", str(path)], source)
    scripts: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.decode("utf-8", "replace").splitlines():
        m = _RPM_HEADER.match(line)
        if m is not None:
            current = m.group(1)
            scripts.setdefault(current, [])
            if m.group(3):  # `postinstall program: /sbin/ldconfig` carries the command on the header line
                scripts[current].append(m.group(3))
            continue
        if current is not None:
            scripts[current].append(line)
    return name, version, {k: "\n".join(v) for k, v in scripts.items()}


def scan_file(path: Path) -> PrescanReport:
    """Read a .deb or .rpm without installing it and report its control-touching scriptlet lines."""
    if not path.is_file():
        raise BadInput("no such package file", source=str(path))
    if path.suffix == ".deb":
        name, version, scripts = deb_scripts(path)
    elif path.suffix == ".rpm":
        name, version, scripts = rpm_scripts(path)
    else:
        raise BadInput("not a .deb or .rpm file name", source=str(path))
    findings = [f for script, text in sorted(scripts.items()) for f in scan_text(script, text)]
    return PrescanReport(str(path), name, version, tuple(findings), tuple(sorted(scripts)))
