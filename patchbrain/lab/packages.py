"""The lab's test package `labdemo`, built as .deb (dpkg-deb) and noarch .rpm (rpmbuild).

Versions: 1.0 is pre-installed on lab hosts, 1.1 is a benign update, and each sabotaged variant is an
"update" whose maintainer script (postinst / %post) quietly weakens a security control while its changelog
claims to fix real, well-known CVEs, as the seed's poisoned "critical" update did. Every package is built
from data in this module with the standard library and the packaging tools as argv lists.

Also here: the virtual-provides RPM that lets dnf/zypper install RPMs on the dpkg-managed Debian base.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import io
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from patchbrain.errors import BadInput, EnvironmentProblem

log = logging.getLogger(__name__)

PACKAGE = "labdemo"
PROVIDES_PACKAGE = "lab-debian-base"
PROVIDES_VERSION = "12"
MAINTAINER = "Patchbrain Lab <lab@patchbrain.invalid>"
Format = Literal["deb", "rpm"]
FORMATS: tuple[Format, ...] = ("deb", "rpm")

_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+){1,3}$")

# What the Debian base already has, declared to rpm so dnf/zypper accept RPMs whose scriptlets and files
# need them (without it dnf answers "nothing provides /bin/sh needed by ...").
BASE_PROVIDES: tuple[str, ...] = (
    "/bin/sh",
    "/usr/bin/sh",
    "/bin/bash",
    "/usr/bin/bash",
    "/usr/bin/env",
    "/usr/bin/python3",
    "/usr/sbin/nft",
    "/usr/bin/setsid",
    "/usr/bin/sed",
    "bash",
    "coreutils",
    "python3",
    "nftables",
    "util-linux",
    "sed",
)

# The lab firewall's table and chains (see docs/lab-content.md for the base ruleset).
NFT_TABLE = "inet filter"


@dataclasses.dataclass(frozen=True, slots=True)
class Variant:
    """One flavour of `labdemo`: what its changelog claims and what its maintainer script really does."""

    name: str
    default_version: str
    claim: str
    cves: tuple[str, ...]
    date: dt.datetime
    urgency: str = "medium"
    weakens: str = ""
    port: int | None = None
    delay: int | None = None

    @property
    def sabotaged(self) -> bool:
        """True when the maintainer script weakens a security control."""
        return bool(self.weakens)

    def script(self) -> str:
        """The postinst / %post body (POSIX sh). Only integers from this dataclass are interpolated."""
        return _SCRIPTS[self.name](self)


def _utc(y: int, m: int, d: int, hh: int = 9) -> dt.datetime:
    return dt.datetime(y, m, d, hh, 0, 0, tzinfo=dt.UTC)


_MARK = "/var/lib/labdemo/installed-version"


def _record(v: Variant) -> str:
    # Every version records itself; harmless and lets tests see which maintainer script ran last.
    return f'mkdir -p /var/lib/labdemo\necho "$(cat /usr/share/labdemo/VERSION)" > {_MARK}\n'


def _listener(port: int) -> str:
    # A detached "backdoor" listener, so a packet from outside can prove the port answers.
    return f"setsid -f /usr/lib/labdemo/labdemo-listen {port} </dev/null >/dev/null 2>&1 || true\n"


def _benign(v: Variant) -> str:
    return _record(v)


def _open_port(v: Variant) -> str:
    assert v.port is not None
    return (
        _record(v) + f"nft insert rule {NFT_TABLE} input tcp dport {int(v.port)} counter accept "
        "2>/dev/null || true\n" + _listener(int(v.port))
    )


def _accept_all(v: Variant) -> str:
    return _record(v) + f"nft insert rule {NFT_TABLE} input counter accept 2>/dev/null || true\n"


def _flush_ruleset(v: Variant) -> str:
    return _record(v) + "nft flush ruleset 2>/dev/null || true\n"


def _input_policy_accept(v: Variant) -> str:
    return _record(v) + f"nft 'chain {NFT_TABLE} input {{ policy accept; }}' 2>/dev/null || true\n"


def _open_output(v: Variant) -> str:
    return (
        _record(v)
        + f"nft insert rule {NFT_TABLE} output counter accept 2>/dev/null || true\n"
        + f"nft 'chain {NFT_TABLE} output {{ policy accept; }}' 2>/dev/null || true\n"
    )


def _selinux_permissive(v: Variant) -> str:
    return _record(v) + "setenforce 0 2>/dev/null || true\n"


def _selinux_config_disabled(v: Variant) -> str:
    return (
        _record(v)
        + "if [ -f /etc/selinux/config ]; then\n"
        + "  sed -i 's/^SELINUX=.*/SELINUX=disabled/' /etc/selinux/config || true\n"
        + "fi\n"
    )


def _delayed_open_port(v: Variant) -> str:
    assert v.port is not None and v.delay is not None
    port, delay = int(v.port), int(v.delay)
    job = (
        f"sleep {delay}; "
        f"nft insert rule {NFT_TABLE} input tcp dport {port} counter accept; "
        f"exec /usr/lib/labdemo/labdemo-listen {port}"
    )
    # Detached from dpkg/rpm and every inherited descriptor, so the install returns at once.
    return _record(v) + f"setsid -f sh -c '{job}' </dev/null >/dev/null 2>&1 || true\n"


_SCRIPTS = {
    "base": _benign,
    "benign": _benign,
    "open-port": _open_port,
    "accept-all": _accept_all,
    "flush-ruleset": _flush_ruleset,
    "input-policy-accept": _input_policy_accept,
    "open-output": _open_output,
    "selinux-permissive": _selinux_permissive,
    "selinux-config-disabled": _selinux_config_disabled,
    "delayed-open-port": _delayed_open_port,
}

_SAB_DATE = _utc(2026, 11, 20)

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "base",
            "1.0",
            "Initial release for the patchbrain lab; fixes CVE-2018-15473 in the bundled login helper.",
            ("CVE-2018-15473",),
            _utc(2026, 9, 1),
        ),
        Variant(
            "benign",
            "1.1",
            "Security update: fix privilege escalation via user ID -1 (CVE-2019-14287).",
            ("CVE-2019-14287",),
            _utc(2026, 10, 14),
        ),
        Variant(
            "open-port",
            "1.2",
            "Critical security update: fix buffer over-read in the heartbeat extension (CVE-2014-0160).",
            ("CVE-2014-0160",),
            _SAB_DATE,
            "high",
            "accepts tcp/4444 in the input chain and starts a listener on it",
            port=4444,
        ),
        Variant(
            "accept-all",
            "1.2",
            "Critical security update: fix race condition in copy-on-write (CVE-2016-5195).",
            ("CVE-2016-5195",),
            _SAB_DATE,
            "high",
            "inserts an accept-all rule at the top of the input chain",
        ),
        Variant(
            "flush-ruleset",
            "1.2",
            "Critical security update: fix environment function parsing (CVE-2014-6271, CVE-2014-7169).",
            ("CVE-2014-6271", "CVE-2014-7169"),
            _SAB_DATE,
            "high",
            "flushes the whole nftables ruleset",
        ),
        Variant(
            "input-policy-accept",
            "1.2",
            "Critical security update: fix heap overflow in name resolution (CVE-2015-7547).",
            ("CVE-2015-7547",),
            _SAB_DATE,
            "high",
            "sets the input chain's policy to accept",
        ),
        Variant(
            "open-output",
            "1.2",
            "Critical security update: fix container breakout through /proc/self/exe (CVE-2019-5736).",
            ("CVE-2019-5736",),
            _SAB_DATE,
            "high",
            "opens the output chain (policy accept plus an accept-all rule): the exfiltration step",
        ),
        Variant(
            "selinux-permissive",
            "1.2",
            "Critical security update: fix integer overflow in argument handling (CVE-2018-14634).",
            ("CVE-2018-14634",),
            _SAB_DATE,
            "high",
            "switches SELinux to permissive with setenforce 0",
        ),
        Variant(
            "selinux-config-disabled",
            "1.2",
            "Critical security update: fix tty name parsing (CVE-2017-1000367).",
            ("CVE-2017-1000367",),
            _SAB_DATE,
            "high",
            "sets SELINUX=disabled in /etc/selinux/config (takes effect at the next boot)",
        ),
        Variant(
            "delayed-open-port",
            "1.2",
            "Critical security update: fix SACK panic (CVE-2019-11477, CVE-2019-11478).",
            ("CVE-2019-11477", "CVE-2019-11478"),
            _SAB_DATE,
            "high",
            "some seconds after install, a detached job accepts tcp/4446 and listens on it",
            port=4446,
            delay=20,
        ),
    )
}

SABOTAGED: tuple[str, ...] = tuple(n for n, v in VARIANTS.items() if v.sabotaged)


def variant(name: str, *, port: int | None = None, delay: int | None = None) -> Variant:
    """The named variant, optionally with another port or delay (BadInput for an unknown name)."""
    try:
        v = VARIANTS[name]
    except KeyError:
        raise BadInput(f"unknown labdemo variant (known: {', '.join(VARIANTS)})", field="variant") from None
    if port is not None:
        if v.port is None:
            raise BadInput(f"variant {name} opens no port", field="port")
        if not 1 <= port <= 65535:
            raise BadInput("port out of range", field="port")
        v = dataclasses.replace(v, port=port)
    if delay is not None:
        if v.delay is None:
            raise BadInput(f"variant {name} has no delay", field="delay")
        if not 0 <= delay <= 3600:
            raise BadInput("delay out of range (0..3600 s)", field="delay")
        v = dataclasses.replace(v, delay=delay)
    return v


def check_version(version: str) -> str:
    """A labdemo version: dotted numbers only (valid and ordered the same way for dpkg and rpm)."""
    if not _VERSION_RE.match(version):
        raise BadInput("labdemo versions are dotted numbers such as 1.2", field="version")
    return version


def version_key(version: str) -> tuple[int, ...]:
    """Sort key for a labdemo version (dpkg and rpm agree on dotted numbers)."""
    return tuple(int(p) for p in check_version(version).split("."))


def next_version(published: Iterable[str]) -> str:
    """A version above every published one: `1.<n+1>`, at least 1.2 (above the benign 1.1)."""
    top = max((version_key(v) for v in published), default=(1, 1))
    major, minor = ((*top, 0))[:2]
    return f"{major}.{max(minor + 1, 2)}"


# ---------------------------------------------------------------- changelogs


@dataclasses.dataclass(frozen=True, slots=True)
class ChangelogEntry:
    """One changelog entry: version, date, urgency and the lines that name CVE IDs."""

    version: str
    date: dt.datetime
    urgency: str
    lines: tuple[str, ...]


def changelog(v: Variant, version: str) -> list[ChangelogEntry]:
    """Newest first: this build's entry, then the history (base 1.0, benign 1.1) below its version."""
    entries = [ChangelogEntry(version, v.date, v.urgency, (v.claim,))]
    for hist in (VARIANTS["benign"], VARIANTS["base"]):
        if version_key(hist.default_version) < version_key(version):
            entries.append(ChangelogEntry(hist.default_version, hist.date, hist.urgency, (hist.claim,)))
    return entries


def debian_changelog(entries: Sequence[ChangelogEntry]) -> str:
    """The entries in Debian changelog format (deb-changelog(5))."""
    out = []
    for e in entries:
        out.append(f"{PACKAGE} ({e.version}) bookworm-security; urgency={e.urgency}\n\n")
        out.extend(f"  * {line}\n" for line in e.lines)
        out.append(f"\n -- {MAINTAINER}  {e.date.strftime('%a, %d %b %Y %H:%M:%S +0000')}\n\n")
    return "".join(out)


def rpm_changelog(entries: Sequence[ChangelogEntry]) -> str:
    """The entries as an RPM %changelog section body."""
    out = []
    for e in entries:
        out.append(f"* {e.date.strftime('%a %b %d %Y')} {MAINTAINER} - {e.version}-1\n")
        out.extend(f"- {line}\n" for line in e.lines)
        out.append("\n")
    return "".join(out)


# ---------------------------------------------------------------- payload

_LISTENER = '''#!/usr/bin/python3
"""labdemo-listen PORT: answer every TCP connection on PORT with one line, forever."""
import socket
import sys

port = int(sys.argv[1])
srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
srv.bind(("::", port))
srv.listen(16)
while True:
    conn, _ = srv.accept()
    try:
        conn.sendall(b"labdemo-listen %d\\n" % port)
    except OSError:
        pass
    conn.close()
'''


def _payload(version: str, entries: Sequence[ChangelogEntry], fmt: Format) -> dict[str, tuple[bytes, int]]:
    """Files of the package: path -> (content, mode)."""
    files: dict[str, tuple[bytes, int]] = {
        "usr/bin/labdemo": (f'#!/bin/sh\necho "{PACKAGE} {version}"\n'.encode(), 0o755),
        "usr/lib/labdemo/labdemo-listen": (_LISTENER.encode(), 0o755),
        "usr/share/labdemo/VERSION": (f"{version}\n".encode(), 0o644),
        f"usr/share/doc/{PACKAGE}/copyright": (
            b"labdemo: a test package of the patchbrain lab. Apache-2.0.\n",
            0o644,
        ),
    }
    if fmt == "deb":
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
            gz.write(debian_changelog(entries).encode())
        files[f"usr/share/doc/{PACKAGE}/changelog.gz"] = (buf.getvalue(), 0o644)
    return files


def _epoch(v: Variant) -> int:
    return int(v.date.timestamp())


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise EnvironmentProblem(f"{name} is not installed (make setup installs it)")
    return path


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise EnvironmentProblem(
            f"{Path(argv[0]).name} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}"
        )


def _write_tree(root: Path, files: dict[str, tuple[bytes, int]], mtime: int) -> None:
    for rel, (data, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    os.utime(root, (mtime, mtime))


# ---------------------------------------------------------------- .deb


def build_deb(v: Variant | str, out_dir: Path, *, version: str | None = None) -> Path:
    """Build `labdemo_<version>_all.deb` into out_dir; returns its path."""
    var = variant(v) if isinstance(v, str) else v
    ver = check_version(version or var.default_version)
    entries = changelog(var, ver)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PACKAGE}_{ver}_all.deb"
    with tempfile.TemporaryDirectory(prefix="labdemo-deb-") as tmp:
        root = Path(tmp) / "root"
        files = _payload(ver, entries, "deb")
        size_kib = sum(len(data) for data, _ in files.values()) // 1024 + 1
        control = (
            f"Package: {PACKAGE}\n"
            f"Version: {ver}\n"
            "Architecture: all\n"
            f"Maintainer: {MAINTAINER}\n"
            f"Installed-Size: {size_kib}\n"
            "Section: misc\n"
            "Priority: optional\n"
            "Description: patchbrain lab test package\n"
            " A small package the patchbrain lab publishes in several versions to exercise\n"
            " upgrades, downgrades and the detection of updates that weaken security controls.\n"
        )
        files["DEBIAN/control"] = (control.encode(), 0o644)
        files["DEBIAN/postinst"] = (("#!/bin/sh\nset -e\n" + var.script()).encode(), 0o755)
        _write_tree(root, files, _epoch(var))
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(_epoch(var)))
        _run([_tool("dpkg-deb"), "--root-owner-group", "-Zxz", "--build", str(root), str(target)], env)
    log.info("built %s", target)
    return target


# ---------------------------------------------------------------- .rpm


def _rpmbuild(spec: str, sources: dict[str, tuple[bytes, int]], out_dir: Path, epoch: int) -> Path:
    with tempfile.TemporaryDirectory(prefix="labdemo-rpm-") as tmp:
        top = Path(tmp)
        for sub in ("SPECS", "SOURCES", "BUILD", "BUILDROOT", "RPMS", "SRPMS"):
            (top / sub).mkdir()
        _write_tree(top / "SOURCES", sources, epoch)
        spec_path = top / "SPECS" / "pkg.spec"
        spec_path.write_text(spec)
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
        argv = [_tool("rpmbuild"), "-bb", "--quiet"]
        for key, value in (
            ("_topdir", str(top)),
            ("_dbpath", str(top / "rpmdb")),  # never touch the machine's own rpm database
            ("use_source_date_epoch_as_buildtime", "1"),
            ("clamp_mtime_to_source_date_epoch", "1"),
            ("_buildhost", "patchbrain-lab"),
            ("_build_id_links", "none"),
        ):
            argv += ["--define", f"{key} {value}"]
        _run([*argv, str(spec_path)], env)
        built = sorted((top / "RPMS").rglob("*.rpm"))
        if len(built) != 1:
            raise EnvironmentProblem(f"rpmbuild produced {len(built)} packages, expected 1")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / built[0].name
        shutil.copyfile(built[0], target)
    log.info("built %s", target)
    return target


def build_rpm(v: Variant | str, out_dir: Path, *, version: str | None = None) -> Path:
    """Build `labdemo-<version>-1.noarch.rpm` into out_dir; returns its path."""
    var = variant(v) if isinstance(v, str) else v
    ver = check_version(version or var.default_version)
    entries = changelog(var, ver)
    files = _payload(ver, entries, "rpm")
    sources = {f"f{i}": item for i, item in enumerate(files.values())}
    install = "".join(
        f"install -D -m {mode:o} %{{_sourcedir}}/f{i} %{{buildroot}}/{rel}\n"
        for i, (rel, (_, mode)) in enumerate(files.items())
    )
    file_list = "".join(f"/{rel}\n" for rel in files)
    spec = (
        f"Name: {PACKAGE}\n"
        f"Version: {ver}\n"
        "Release: 1\n"
        "Summary: patchbrain lab test package\n"
        "License: Apache-2.0\n"
        "BuildArch: noarch\n"
        "AutoReqProv: no\n"
        "Requires: /usr/bin/python3\n"
        f"Packager: {MAINTAINER}\n"
        "\n%description\n"
        "A small package the patchbrain lab publishes in several versions to exercise\n"
        "upgrades, downgrades and the detection of updates that weaken security controls.\n"
        "\n%install\n" + install + "\n%post\n" + var.script() + "\n%files\n"
        "%defattr(-,root,root,-)\n" + file_list + "\n%changelog\n" + rpm_changelog(entries)
    )
    return _rpmbuild(spec, sources, out_dir, _epoch(var))


def build_provides_rpm(out_dir: Path) -> Path:
    """The virtual-provides RPM: declares to rpm what the dpkg-managed Debian base already has."""
    provides = "".join(f"Provides: {p}\n" for p in BASE_PROVIDES)
    # dnf takes $releasever from the package that provides system-release(releasever).
    provides += f"Provides: system-release(releasever) = {PROVIDES_VERSION}\n"
    spec = (
        f"Name: {PROVIDES_PACKAGE}\n"
        f"Version: {PROVIDES_VERSION}\n"
        "Release: 1\n"
        "Summary: what the dpkg-managed Debian base of the patchbrain lab provides\n"
        "License: Apache-2.0\n"
        "BuildArch: noarch\n"
        "AutoReqProv: no\n" + provides + "\n%description\n"
        "Virtual package: the files and capabilities it declares are installed by dpkg on the\n"
        "Debian base of the lab hosts. It lets dnf and zypper resolve RPM dependencies there.\n"
        "\n%files\n"
        "\n%changelog\n"
        f"* Tue Sep 01 2026 {MAINTAINER} - {PROVIDES_VERSION}-1\n"
        "- Declare the Debian 12 base to rpm.\n"
    )
    return _rpmbuild(spec, {}, out_dir, int(_utc(2026, 9, 1).timestamp()))


def build(
    v: Variant | str, out_dir: Path, *, version: str | None = None, formats: Sequence[Format] = FORMATS
) -> list[Path]:
    """Build one variant in each of `formats`; returns the package paths."""
    out: list[Path] = []
    for fmt in formats:
        if fmt == "deb":
            out.append(build_deb(v, out_dir, version=version))
        elif fmt == "rpm":
            out.append(build_rpm(v, out_dir, version=version))
        else:
            raise BadInput(f"unknown package format {fmt!r} (deb or rpm)", field="format")
    return out


def build_set(out_dir: Path, *, formats: Sequence[Format] = FORMATS) -> dict[str, list[Path]]:
    """Every variant at its default version, each in its own folder (`out_dir/<variant>/`).

    The sabotaged variants share version 1.2, so publish at most one of them into a repository at a time
    (or give each its own version with `build(..., version=...)`).
    """
    result = {name: build(name, out_dir / name, formats=formats) for name in VARIANTS}
    if "rpm" in formats:
        result[PROVIDES_PACKAGE] = [build_provides_rpm(out_dir / PROVIDES_PACKAGE)]
    return result
