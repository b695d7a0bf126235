"""The lab's signed package repositories: apt (apt-ftparchive) and rpm-md (createrepo_c), one gpg key per lab.

Layout under the repository root (in the lab instance dir):

    gnupg/                      private gpg homedir (0700) holding the lab's signing key
    www/                        what the HTTP server serves
      keys/patchbrain-lab.asc   the public key, armored (rpm, dnf, zypper)
      keys/patchbrain-lab.gpg   the public key, binary (apt `signed-by=`)
      apt/pool/main/*.deb       every published .deb: old versions stay, so downgrades remain possible
      apt/dists/lab/...         Packages, Release, InRelease, Release.gpg
      rpm/*.rpm                 every published .rpm, each signed with `rpm --addsign`
      rpm/repodata/...          createrepo_c metadata, repomd.xml signed (repomd.xml.asc)

Publishing copies files in, re-indexes and re-signs. A file whose name and version are already published
with different content is refused: a published version never changes under the hosts.
"""

from __future__ import annotations

import dataclasses
import filecmp
import gzip
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from patchbrain.errors import BadInput, EnvironmentProblem

log = logging.getLogger(__name__)

KEY_NAME = "patchbrain-lab"
SUITE = "lab"
COMPONENT = "main"
APT_KEYRING = f"/etc/apt/keyrings/{KEY_NAME}.gpg"
APT_SOURCE = f"/etc/apt/sources.list.d/{KEY_NAME}.list"
RPM_KEY = f"/etc/pki/rpm-gpg/RPM-GPG-KEY-{KEY_NAME}"
DNF_REPO = f"/etc/yum.repos.d/{KEY_NAME}.repo"
ZYPPER_REPO = f"/etc/zypp/repos.d/{KEY_NAME}.repo"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")
_VERSION_RE = re.compile(r"^[0-9A-Za-z.+~:-]{1,100}$")
_ARCH_RE = re.compile(r"^[a-z0-9_]{1,20}$")


@dataclasses.dataclass(frozen=True, slots=True)
class Published:
    """One package file in the repository."""

    fmt: str  # "deb" or "rpm"
    name: str
    version: str  # deb: the Version field; rpm: VERSION-RELEASE
    arch: str
    path: Path


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise EnvironmentProblem(f"{name} is not installed (make setup installs it)")
    return path


def _run(
    argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> str:
    log.debug("run: %s", " ".join(argv))
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip()[-2000:]
        raise EnvironmentProblem(f"{Path(argv[0]).name} failed ({proc.returncode}): {err}")
    return proc.stdout


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write atomically (temp file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def deb_identity(path: Path) -> tuple[str, str, str]:
    """(Package, Version, Architecture) of a .deb, validated (BadInput if it is not one)."""
    try:
        out = _run(
            [
                _tool("dpkg-deb"),
                "--show",
                "--showformat=${Package}\\n${Version}\\n${Architecture}\\n",
                str(path),
            ]
        )
    except EnvironmentProblem as exc:
        raise BadInput(f"not a readable .deb: {exc}", source=str(path)) from None
    name, version, arch = ([*out.splitlines(), "", "", ""])[:3]
    return _check_identity(path, name, version, arch)


def rpm_identity(path: Path) -> tuple[str, str, str]:
    """(NAME, VERSION-RELEASE, ARCH) of an .rpm, validated (BadInput if it is not one)."""
    try:
        out = _run(
            [
                _tool("rpm"),
                "-qp",
                "--nosignature",
                "--nodigest",
                "--qf",
                "%{NAME}\\n%{VERSION}-%{RELEASE}\\n%{ARCH}\\n",
                str(path),
            ],
            env=dict(os.environ, LC_ALL="C"),
        )
    except EnvironmentProblem as exc:
        raise BadInput(f"not a readable .rpm: {exc}", source=str(path)) from None
    name, version, arch = ([*out.splitlines(), "", "", ""])[:3]
    return _check_identity(path, name, version, arch)


def _check_identity(path: Path, name: str, version: str, arch: str) -> tuple[str, str, str]:
    if not _NAME_RE.match(name):
        raise BadInput("package name is not a plain package name", source=str(path), field="name")
    if not _VERSION_RE.match(version):
        raise BadInput("version has unexpected characters", source=str(path), field="version")
    if not _ARCH_RE.match(arch):
        raise BadInput("architecture has unexpected characters", source=str(path), field="arch")
    return name, version, arch


class LabRepo:
    """A lab's apt and rpm repositories under `root`, signed with the lab's own key."""

    def __init__(self, root: Path, *, label: str = "patchbrain lab") -> None:
        self.root = root
        self.label = label
        self.gnupg = root / "gnupg"
        self.www = root / "www"
        self.apt = self.www / "apt"
        self.rpm = self.www / "rpm"
        self.keys = self.www / "keys"

    # ------------------------------------------------------------ key

    def _gpg(self, *args: str) -> list[str]:
        return [_tool("gpg"), "--homedir", str(self.gnupg), "--batch", "--no-tty", "--quiet", *args]

    @property
    def armored_key(self) -> Path:
        return self.keys / f"{KEY_NAME}.asc"

    @property
    def binary_key(self) -> Path:
        return self.keys / f"{KEY_NAME}.gpg"

    def fingerprint(self) -> str:
        """The fingerprint of the lab's signing key (EnvironmentProblem if there is none yet)."""
        out = _run(self._gpg("--with-colons", "--list-secret-keys"))
        for line in out.splitlines():
            if line.startswith("fpr:"):
                return line.split(":")[9]
        raise EnvironmentProblem(f"no signing key in {self.gnupg}")

    def init(self) -> str:
        """Create the folders and the lab's signing key if missing; return the key's fingerprint."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.gnupg.mkdir(mode=0o700, exist_ok=True)
        self.gnupg.chmod(0o700)
        for d in (self.www, self.keys, self.apt / "pool" / COMPONENT, self.rpm):
            d.mkdir(parents=True, exist_ok=True)
        with self._agent():
            try:
                fpr = self.fingerprint()
            except EnvironmentProblem:
                uid = f"{self.label} signing key <{KEY_NAME}@patchbrain.invalid>"
                _run(
                    self._gpg(
                        "--pinentry-mode",
                        "loopback",
                        "--passphrase",
                        "",
                        "--quick-generate-key",
                        uid,
                        "rsa3072",
                        "sign",
                        "never",
                    ),
                    timeout=600,
                )
                fpr = self.fingerprint()
                log.info("created lab signing key %s", fpr)
            _write(self.armored_key, _run(self._gpg("--armor", "--export", fpr)).encode())
            binary = subprocess.run(self._gpg("--export", fpr), capture_output=True, check=True).stdout
            _write(self.binary_key, binary)
        if not (self.apt / "dists").exists():
            self.reindex()
        return fpr

    @contextmanager
    def _agent(self) -> Iterator[None]:
        """Stop the gpg-agent that gpg starts for this homedir when done, so no daemon outlives us."""
        try:
            yield
        finally:
            subprocess.run(
                [_tool("gpgconf"), "--homedir", str(self.gnupg), "--kill", "gpg-agent"],
                capture_output=True,
                check=False,
            )

    def _sign(self, src: Path, dst: Path, *, clear: bool = False, armor: bool = True) -> None:
        mode = "--clearsign" if clear else "--detach-sign"
        args = ["--pinentry-mode", "loopback", "--passphrase", "", "--yes", "--digest-algo", "SHA256"]
        args += ["--local-user", self.fingerprint(), "--armor" if armor else "--no-armor"]
        tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
        _run(self._gpg(*args, mode, "--output", str(tmp), str(src)))
        tmp.chmod(0o644)
        os.replace(tmp, dst)

    # ------------------------------------------------------------ publish

    def published(self, fmt: str | None = None) -> list[Published]:
        """Every package file in the repository (optionally one format), sorted by path."""
        out: list[Published] = []
        if fmt in (None, "deb"):
            for path in sorted((self.apt / "pool" / COMPONENT).glob("*.deb")):
                out.append(Published("deb", *deb_identity(path), path))
        if fmt in (None, "rpm"):
            for path in sorted(self.rpm.glob("*.rpm")):
                out.append(Published("rpm", *rpm_identity(path), path))
        return out

    def versions(self, name: str, fmt: str) -> list[str]:
        """Published versions of `name` in format `fmt` (rpm: without the release)."""
        return [
            p.version.rsplit("-", 1)[0] if fmt == "rpm" else p.version
            for p in self.published(fmt)
            if p.name == name
        ]

    def publish(self, files: Sequence[Path]) -> list[Published]:
        """Add .deb/.rpm files, re-index and re-sign both repositories; returns what was added.

        Files already published with identical content are accepted again (no-op); a different file under
        a published name and version is refused (BadInput) before anything is changed.
        """
        plan: list[tuple[Path, Path, str, tuple[str, str, str]]] = []
        for src in files:
            src = Path(src)
            if not src.is_file():
                raise BadInput("no such file", source=str(src))
            if src.suffix == ".deb":
                ident = deb_identity(src)
                dst = (
                    self.apt
                    / "pool"
                    / COMPONENT
                    / f"{ident[0]}_{ident[1].replace(':', '%3a')}_{ident[2]}.deb"
                )
                plan.append((src, dst, "deb", ident))
            elif src.suffix == ".rpm":
                ident = rpm_identity(src)
                dst = self.rpm / f"{ident[0]}-{ident[1]}.{ident[2]}.rpm"
                plan.append((src, dst, "rpm", ident))
            else:
                raise BadInput("only .deb and .rpm files can be published", source=str(src))
        for src, dst, fmt, _ in plan:
            if dst.exists() and not self._same(src, dst, fmt):
                raise BadInput(
                    f"{dst.name} is already published with different content; publish a new version",
                    source=str(src),
                )
        self.init()
        added: list[Published] = []
        for src, dst, fmt, ident in plan:
            if dst.exists():
                continue
            tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
            try:
                shutil.copyfile(src, tmp)
                tmp.chmod(0o644)
                if fmt == "rpm":
                    self._rpm_sign(tmp)
                    self._source_record(dst).write_text(_sha256(src) + "\n")
                os.replace(tmp, dst)
            finally:
                tmp.unlink(missing_ok=True)
            added.append(Published(fmt, *ident, dst))
            log.info("published %s", dst.name)
        if added or not self._indexed():
            self.reindex()
        return added

    def _indexed(self) -> bool:
        """True when both signed indexes exist (a no-op publish then leaves them untouched)."""
        return (self.apt / "dists" / SUITE / "InRelease").is_file() and (
            self.rpm / "repodata" / "repomd.xml.asc"
        ).is_file()

    def _same(self, src: Path, dst: Path, fmt: str) -> bool:
        if fmt == "deb":
            return filecmp.cmp(src, dst, shallow=False)
        # Published RPMs carry our signature, so compare with the unsigned source's recorded digest.
        record = self._source_record(dst)
        return record.exists() and record.read_text().strip() == _sha256(src)

    def _source_record(self, dst: Path) -> Path:
        """Where the digest of the unsigned source of a published RPM is kept (outside www/)."""
        folder = self.root / "rpm-sources"
        folder.mkdir(exist_ok=True)
        return folder / f"{dst.name}.sha256"

    def _rpm_sign(self, path: Path) -> None:
        with self._agent():
            fpr = self.fingerprint()
            argv = [_tool("rpmsign"), "--addsign"]
            for key, value in (
                ("_gpg_path", str(self.gnupg)),
                ("__gpg", _tool("gpg")),  # Debian's rpm expects gpg2, which bookworm no longer ships
                ("_gpg_name", fpr),
                ("_gpg_digest_algo", "sha256"),
                ("_dbpath", str(self.root / ".rpmdb")),  # never the machine's own rpm database
                ("_gpg_sign_cmd_extra_args", "--batch --pinentry-mode loopback --passphrase ''"),
            ):
                argv += ["--define", f"{key} {value}"]
            _run([*argv, str(path)], env=dict(os.environ, GNUPGHOME=str(self.gnupg)))

    def reindex(self) -> None:
        """Rebuild and re-sign the apt and rpm indexes from the files in the pools."""
        with self._agent():
            self._reindex_apt()
            self._reindex_rpm()

    def _reindex_apt(self, arch: str | None = None) -> None:
        arch = arch or _machine_arch()
        dist = self.apt / "dists" / SUITE
        bindir = dist / COMPONENT / f"binary-{arch}"
        bindir.mkdir(parents=True, exist_ok=True)
        packages = _run([_tool("apt-ftparchive"), "packages", f"pool/{COMPONENT}"], cwd=self.apt)
        _write(bindir / "Packages", packages.encode())
        _write(bindir / "Packages.gz", gzip.compress(packages.encode(), mtime=0))
        conf = [
            f"APT::FTPArchive::Release::{k}={v}"
            for k, v in (
                ("Origin", KEY_NAME),
                ("Label", self.label),
                ("Suite", SUITE),
                ("Codename", SUITE),
                ("Architectures", arch),
                ("Components", COMPONENT),
                ("Description", "patchbrain lab packages (test content)"),
            )
        ]
        argv = [_tool("apt-ftparchive")]
        for c in conf:
            argv += ["-o", c]
        for stale in ("Release", "InRelease", "Release.gpg"):
            (dist / stale).unlink(missing_ok=True)
        release = _run([*argv, "release", "."], cwd=dist)
        _write(dist / "Release", release.encode())
        self._sign(dist / "Release", dist / "InRelease", clear=True)
        self._sign(dist / "Release", dist / "Release.gpg", armor=True)

    def _reindex_rpm(self) -> None:
        _run([_tool("createrepo_c"), "--quiet", "--no-database", "--update", str(self.rpm)])
        repodata = self.rpm / "repodata"
        self._sign(repodata / "repomd.xml", repodata / "repomd.xml.asc", armor=True)
        shutil.copyfile(self.armored_key, repodata / "repomd.xml.key")

    # ------------------------------------------------------------ serve

    def serve(self, address: str, port: int = 0) -> RepoServer:
        """Serve www/ with `python3 -m http.server` bound to `address` (the lab bridge address)."""
        self.init()
        return RepoServer.start(self.www, address, port)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _machine_arch() -> str:
    return _run([_tool("dpkg"), "--print-architecture"]).strip()


@dataclasses.dataclass
class RepoServer:
    """A running `python3 -m http.server` for one repository."""

    proc: subprocess.Popen[bytes]
    address: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    @classmethod
    def start(cls, directory: Path, address: str, port: int = 0, timeout: float = 10.0) -> RepoServer:
        """Start the server; with port 0 a free port is picked. Waits until it accepts connections."""
        import socket

        if port == 0:
            with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
                s.bind((address, 0))
                port = int(s.getsockname()[1])
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                address,
                "--directory",
                str(directory),
                str(port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((address, port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    raise EnvironmentProblem(f"repository server did not start on {address}:{port}") from None
                time.sleep(0.05)
        return cls(proc, address, port)

    def stop(self) -> None:
        """Stop the server and reap it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> RepoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- host-side configuration (data)


def apt_source(url: str) -> str:
    """The apt source line for a host (the lab key is the only one trusted for it)."""
    return f"deb [signed-by={APT_KEYRING}] {url}/apt {SUITE} {COMPONENT}\n"


def dnf_repo(url: str) -> str:
    """The dnf .repo file for a host: packages and metadata must be signed by the lab key."""
    return (
        f"[{KEY_NAME}]\n"
        "name=patchbrain lab packages\n"
        f"baseurl={url}/rpm\n"
        "enabled=1\n"
        "gpgcheck=1\n"
        "repo_gpgcheck=1\n"
        # Without this, dnf on Debian ignores a repository whose metadata fails verification and exits 0.
        "skip_if_unavailable=0\n"
        f"gpgkey=file://{RPM_KEY}\n"
    )


def zypper_repo(url: str) -> str:
    """The zypper .repo file for a host: packages and metadata must be signed by the lab key."""
    return (
        f"[{KEY_NAME}]\n"
        "name=patchbrain lab packages\n"
        f"baseurl={url}/rpm\n"
        "type=rpm-md\n"
        "enabled=1\n"
        "autorefresh=1\n"
        "gpgcheck=1\n"
        "repo_gpgcheck=1\n"
        "pkg_gpgcheck=1\n"
        f"gpgkey=file://{RPM_KEY}\n"
    )


def host_files(repo: LabRepo, url: str) -> dict[str, tuple[bytes, int]]:
    """Files to place in every lab host (path -> content, mode): the lab key and the three repo configs."""
    return {
        APT_KEYRING: (repo.binary_key.read_bytes(), 0o644),
        RPM_KEY: (repo.armored_key.read_bytes(), 0o644),
        APT_SOURCE: (apt_source(url).encode(), 0o644),
        DNF_REPO: (dnf_repo(url).encode(), 0o644),
        ZYPPER_REPO: (zypper_repo(url).encode(), 0o644),
    }
