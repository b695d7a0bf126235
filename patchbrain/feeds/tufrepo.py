"""A TUF repository of feed files (python-tuf's Metadata API), for an organisation to mirror internally.

Layout of a repository folder (serve it as is over HTTP, or copy it to an air-gapped mirror)::

    DIR/repo.json                 thresholds and expiry periods (not secret)
    DIR/pending.json              targets added but not yet published
    DIR/metadata/1.root.json ...  every root version (clients walk them to rotate keys), root.json = newest
    DIR/metadata/N.targets.json   consistent snapshots: each version is its own file
    DIR/metadata/N.snapshot.json
    DIR/metadata/timestamp.json   written last on every publish
    DIR/targets/<sha256>.<name>   feed files, named by hash (a mirror mid-copy never mixes versions)

Signing keys are Ed25519 PEM files (PKCS#8, 0600) in a key folder, named `<role>-<n>.pem`, loaded into
securesystemslib `CryptoSigner`s. Keep the root keys offline: `publish` needs only the targets, snapshot
and timestamp keys.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from patchbrain.errors import BadInput

log = logging.getLogger(__name__)

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
DEFAULT_EXPIRY_DAYS: dict[str, float] = {"root": 365.0, "targets": 90.0, "snapshot": 7.0, "timestamp": 1.0}
DEFAULT_THRESHOLDS: dict[str, int] = {"root": 1, "targets": 1, "snapshot": 1, "timestamp": 1}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_KEY_RE = re.compile(r"^(root|targets|snapshot|timestamp)-(\d+)\.pem$")
SPEC_VERSION = "1.0.31"


@dataclasses.dataclass(frozen=True, slots=True)
class RepoSettings:
    """Thresholds and expiry periods (days) per top-level role."""

    thresholds: dict[str, int]
    expiry_days: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"thresholds": self.thresholds, "expiry_days": self.expiry_days}

    @classmethod
    def from_dict(cls, doc: Any, source: str) -> RepoSettings:
        if not isinstance(doc, dict):
            raise BadInput("not a JSON object", source=source)
        th = {**DEFAULT_THRESHOLDS, **doc.get("thresholds", {})}
        ex = {**DEFAULT_EXPIRY_DAYS, **doc.get("expiry_days", {})}
        return cls(check_thresholds(th), check_expiry(ex))


@dataclasses.dataclass(frozen=True, slots=True)
class PublishResult:
    """What `publish` wrote: the new versions and the targets now listed."""

    targets_version: int
    snapshot_version: int
    timestamp_version: int
    targets: tuple[str, ...]


def check_thresholds(values: dict[str, Any]) -> dict[str, int]:
    out = {}
    for role in TOP_ROLES:
        v = values.get(role, DEFAULT_THRESHOLDS[role])
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 16:
            raise BadInput("must be an integer from 1 to 16", source="repository settings", field=role)
        out[role] = v
    return out


def check_expiry(values: dict[str, Any]) -> dict[str, float]:
    out = {}
    for role in TOP_ROLES:
        v = values.get(role, DEFAULT_EXPIRY_DAYS[role])
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0 < float(v) <= 3660:
            raise BadInput("must be a number of days in (0, 3660]", source="expiry", field=role)
        out[role] = float(v)
    return out


def parse_role_values(items: Iterable[str], *, what: str) -> dict[str, str]:
    """`role=value` strings (from the CLI) into a dict; BadInput names a bad item."""
    out = {}
    for item in items:
        role, sep, value = item.partition("=")
        if not sep or role not in TOP_ROLES:
            raise BadInput(f"expected ROLE=VALUE with ROLE one of {', '.join(TOP_ROLES)}", field=what)
        out[role] = value
    return out


# --- keys ----------------------------------------------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def generate_key(path: Path, passphrase: bytes | None = None) -> Any:
    """A new Ed25519 key written to `path` (PKCS#8 PEM, 0600); returns its securesystemslib public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from securesystemslib.signer import SSlibKey

    priv = Ed25519PrivateKey.generate()
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(path, pem)
    return SSlibKey.from_crypto(priv.public_key())


def load_signer(path: Path, passphrase: bytes | None = None) -> Any:
    """A `CryptoSigner` for the PEM private key at `path`."""
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import CryptoSigner

    st = path.stat()
    if st.st_mode & 0o077:
        raise BadInput(
            f"private key is readable by others (mode {st.st_mode & 0o777:o}); chmod 600", source=str(path)
        )
    try:
        priv = serialization.load_pem_private_key(path.read_bytes(), password=passphrase or None)
    except (ValueError, TypeError) as exc:
        raise BadInput(f"cannot load the private key ({exc})", source=str(path)) from exc
    return CryptoSigner(priv)


def role_key_files(keydir: Path, role: str) -> list[Path]:
    """The key files of `role` in `keydir`, in number order."""
    if not keydir.is_dir():
        return []
    found = []
    for p in keydir.iterdir():
        m = _KEY_RE.match(p.name)
        if m and m.group(1) == role:
            found.append((int(m.group(2)), p))
    return [p for _, p in sorted(found)]


# --- the repository -------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class FeedRepository:
    """A TUF repository folder: `init`, `add` feed files, `publish` signed metadata."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.meta_dir = self.path / "metadata"
        self.targets_dir = self.path / "targets"

    # -- helpers ---------------------------------------------------------------------------------------

    def settings(self) -> RepoSettings:
        p = self.path / "repo.json"
        if not p.exists():
            raise BadInput(
                "not a patchbrain feed repository (no repo.json); run `feeds repo init`",
                source=str(self.path),
            )
        return RepoSettings.from_dict(json.loads(p.read_text()), str(p))

    def _signers(self, keydir: Path, role: str, threshold: int, passphrase: bytes | None) -> list[Any]:
        """The signers of `role` whose keys the current root lists (retired keys are skipped)."""
        root = self._load("root.json").signed
        listed = set(root.roles[role].keyids)
        signers = [load_signer(f, passphrase) for f in role_key_files(keydir, role)]
        signers = [s for s in signers if s.public_key.keyid in listed]
        if len(signers) < threshold:
            raise BadInput(
                f"role {role} needs {threshold} signing key(s) the root lists, "
                f"found {len(signers)} ({role}-N.pem)",
                source=str(keydir),
            )
        return signers

    def _verifies(self, role: str, md: Any) -> bool:
        from tuf.api.exceptions import UnsignedMetadataError

        try:
            self._load("root.json").verify_delegate(role, md)
        except UnsignedMetadataError:
            return False
        return True

    def rotate(
        self,
        keydir: Path,
        role: str,
        *,
        threshold: int | None = None,
        count: int | None = None,
        passphrase: bytes | None = None,
        now: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """Replace every key of `role` with new ones (e.g. after a compromise) in a new root version.

        The new root is signed by the old root keys (to their threshold) and, when `role` is root, by the
        new ones too, so clients holding any earlier root walk to it. Old key files are renamed
        `*.pem.retired`. Run `publish` afterwards: it re-signs what the new keys must sign.
        """
        from tuf.api.metadata import Root

        if role not in TOP_ROLES:
            raise BadInput(f"one of {', '.join(TOP_ROLES)}", field="role")
        settings = self.settings()
        now = now or _now()
        keydir = Path(keydir)
        root_md = self._load("root.json")
        root: Root = root_md.signed
        old_root_signers = self._signers(keydir, "root", root.roles["root"].threshold, passphrase)
        threshold = threshold or root.roles[role].threshold
        want = max(threshold, count or 0)
        old_files = role_key_files(keydir, role)
        top = max((int(_KEY_RE.match(p.name).group(2)) for p in old_files), default=0)  # type: ignore[union-attr]
        for keyid in list(root.roles[role].keyids):
            root.revoke_key(keyid, role)
        new_files = []
        for n in range(top + 1, top + 1 + want):
            path = keydir / f"{role}-{n}.pem"
            root.add_key(generate_key(path, passphrase), role)
            new_files.append(path)
        root.roles[role].threshold = threshold
        root.version += 1
        root.expires = self._expires("root", settings, now)
        root_md.signatures.clear()
        signers = list(old_root_signers)
        if role == "root":
            signers += [load_signer(p, passphrase) for p in new_files]
        for s in signers:
            root_md.sign(s, append=True)
        root_md.verify_delegate("root", root_md)  # the new root must satisfy itself
        self._write(root_md, f"{root.version}.root.json")
        self._write(root_md, "root.json")
        for p in old_files:
            p.rename(p.with_name(p.name + ".retired"))
        return {"root_version": root.version, "role": role, "keyids": sorted(root.roles[role].keyids)}

    def _write(self, md: Any, name: str) -> None:
        from tuf.api.serialization.json import JSONSerializer

        _atomic_write(self.meta_dir / name, md.to_bytes(JSONSerializer(compact=False)))

    def _sign(self, md: Any, signers: list[Any], role: str) -> None:
        md.signatures.clear()
        for s in signers:
            md.sign(s, append=True)
        # A threshold only counts keys the root lists: verify before writing anything.
        root = self._load("root.json") if role != "root" else md
        root.verify_delegate(role, md)

    def _load(self, name: str) -> Any:
        from tuf.api.metadata import Metadata

        return Metadata.from_file(str(self.meta_dir / name))

    def _expires(self, role: str, settings: RepoSettings, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(days=settings.expiry_days[role])

    # -- init ------------------------------------------------------------------------------------------

    def init(
        self,
        keydir: Path,
        *,
        thresholds: dict[str, int] | None = None,
        key_counts: dict[str, int] | None = None,
        expiry_days: dict[str, float] | None = None,
        passphrase: bytes | None = None,
        now: dt.datetime | None = None,
    ) -> dict[str, list[str]]:
        """Create the repository: keys (kept if present), root v1, empty targets, snapshot and timestamp.

        Returns the key ids per role. Refuses a folder that already holds a repository.
        """
        from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

        if (self.path / "repo.json").exists() or (self.meta_dir / "1.root.json").exists():
            raise BadInput("already a feed repository", source=str(self.path))
        settings = RepoSettings(
            check_thresholds({**DEFAULT_THRESHOLDS, **(thresholds or {})}),
            check_expiry({**DEFAULT_EXPIRY_DAYS, **(expiry_days or {})}),
        )
        now = now or _now()
        keydir = Path(keydir)
        keydir.mkdir(parents=True, exist_ok=True, mode=0o700)
        root = Root(expires=self._expires("root", settings, now), consistent_snapshot=True)
        signers: dict[str, list[Any]] = {}
        keyids: dict[str, list[str]] = {}
        for role in TOP_ROLES:
            want = max(settings.thresholds[role], (key_counts or {}).get(role, 0))
            files = role_key_files(keydir, role)
            n = len(files)
            while n < want:
                n += 1
                generate_key(keydir / f"{role}-{n}.pem", passphrase)
            signers[role] = [load_signer(f, passphrase) for f in role_key_files(keydir, role)]
            for s in signers[role]:
                root.add_key(s.public_key, role)
            root.roles[role].threshold = settings.thresholds[role]
            keyids[role] = [s.public_key.keyid for s in signers[role]]

        self.meta_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        root_md = Metadata(root)
        self._sign(root_md, signers["root"], "root")
        self._write(root_md, "1.root.json")
        self._write(root_md, "root.json")
        targets_md = Metadata(Targets(expires=self._expires("targets", settings, now)))
        self._sign(targets_md, signers["targets"], "targets")
        self._write(targets_md, "1.targets.json")
        snapshot_md = Metadata(Snapshot(expires=self._expires("snapshot", settings, now)))
        snapshot_md.signed.meta["targets.json"] = self._metafile(1, "1.targets.json")
        self._sign(snapshot_md, signers["snapshot"], "snapshot")
        self._write(snapshot_md, "1.snapshot.json")
        ts = Timestamp(
            expires=self._expires("timestamp", settings, now),
            snapshot_meta=self._metafile(1, "1.snapshot.json"),
        )
        ts_md = Metadata(ts)
        self._sign(ts_md, signers["timestamp"], "timestamp")
        self._write(ts_md, "timestamp.json")
        _atomic_write(self.path / "repo.json", json.dumps(settings.to_dict(), indent=2).encode() + b"\n")
        _atomic_write(self.path / "pending.json", b"{}\n")
        log.info("initialised feed repository %s", self.path)
        return keyids

    def _metafile(self, version: int, name: str) -> Any:
        from tuf.api.metadata import MetaFile

        data = (self.meta_dir / name).read_bytes()
        return MetaFile(
            version=version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}
        )

    # -- add -------------------------------------------------------------------------------------------

    def add(self, files: Iterable[Path], *, names: Iterable[str | None] = ()) -> list[dict[str, Any]]:
        """Copy feed files into targets/ (named by hash) and stage them for the next `publish`.

        The format is detected now, so a file patchbrain cannot read is refused before it is signed.
        """
        from patchbrain.feeds.detect import detect_format

        self.settings()
        pending = self._pending()
        added = []
        name_list = list(names)
        for i, f in enumerate(files):
            f = Path(f)
            if not f.is_file():
                raise BadInput("no such file (feed repositories hold files, not folders)", source=str(f))
            name = (name_list[i] if i < len(name_list) else None) or f.name
            if not _NAME_RE.match(name):
                raise BadInput(
                    "target names are letters, digits, '.', '_' and '-'", source=name, field="name"
                )
            fmt = detect_format(f)
            digest = _sha256_file(f)
            dest = self.targets_dir / f"{digest}.{name}"
            if not dest.exists():
                tmp = dest.with_name(f".{dest.name}.tmp")
                shutil.copyfile(f, tmp)
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
            entry = {"length": f.stat().st_size, "sha256": digest, "format": fmt}
            pending[name] = entry
            added.append({"name": name, **entry})
        _atomic_write(
            self.path / "pending.json", json.dumps(pending, indent=2, sort_keys=True).encode() + b"\n"
        )
        return added

    def _pending(self) -> dict[str, Any]:
        p = self.path / "pending.json"
        if not p.exists():
            return {}
        doc = json.loads(p.read_text())
        if not isinstance(doc, dict):
            raise BadInput("not a JSON object", source=str(p))
        return doc

    def remove(self, names: Iterable[str]) -> None:
        """Stage the removal of targets (by name) for the next `publish`."""
        pending = self._pending()
        for n in names:
            pending[n] = None
        _atomic_write(
            self.path / "pending.json", json.dumps(pending, indent=2, sort_keys=True).encode() + b"\n"
        )

    # -- publish ---------------------------------------------------------------------------------------

    def current_versions(self) -> tuple[int, int, int]:
        """(targets, snapshot, timestamp) versions now published."""
        ts = self._load("timestamp.json")
        snap_v = ts.signed.snapshot_meta.version
        snap = self._load(f"{snap_v}.snapshot.json")
        return snap.signed.meta["targets.json"].version, snap_v, ts.signed.version

    def publish(
        self, keydir: Path, *, passphrase: bytes | None = None, now: dt.datetime | None = None
    ) -> PublishResult:
        """Sign and write new targets (when files were added or removed), snapshot and timestamp.

        Without staged changes this refreshes snapshot and timestamp only (run it from cron well within
        the timestamp expiry, or clients refuse the repository as frozen).
        """
        from tuf.api.metadata import TargetFile

        settings = self.settings()
        now = now or _now()
        keydir = Path(keydir)
        th = settings.thresholds
        targets_v, snap_v, ts_v = self.current_versions()
        pending = self._pending()
        targets_md = self._load(f"{targets_v}.targets.json")
        if pending or not self._verifies("targets", targets_md):
            tsigners = self._signers(keydir, "targets", th["targets"], passphrase)
            for name, entry in pending.items():
                if entry is None:
                    targets_md.signed.targets.pop(name, None)
                    continue
                tf = TargetFile(
                    length=int(entry["length"]),
                    hashes={"sha256": entry["sha256"]},
                    path=name,
                    unrecognized_fields={"custom": {"patchbrain": {"format": entry["format"]}}},
                )
                targets_md.signed.targets[name] = tf
            targets_v += 1
            targets_md.signed.version = targets_v
            targets_md.signed.expires = self._expires("targets", settings, now)
            self._sign(targets_md, tsigners, "targets")
            self._write(targets_md, f"{targets_v}.targets.json")
        ssigners = self._signers(keydir, "snapshot", th["snapshot"], passphrase)
        tssigners = self._signers(keydir, "timestamp", th["timestamp"], passphrase)
        snap_md = self._load(f"{snap_v}.snapshot.json")
        snap_v += 1
        snap_md.signed.version = snap_v
        snap_md.signed.expires = self._expires("snapshot", settings, now)
        snap_md.signed.meta["targets.json"] = self._metafile(targets_v, f"{targets_v}.targets.json")
        self._sign(snap_md, ssigners, "snapshot")
        self._write(snap_md, f"{snap_v}.snapshot.json")
        ts_md = self._load("timestamp.json")
        ts_v += 1
        ts_md.signed.version = ts_v
        ts_md.signed.expires = self._expires("timestamp", settings, now)
        ts_md.signed.snapshot_meta = self._metafile(snap_v, f"{snap_v}.snapshot.json")
        self._sign(ts_md, tssigners, "timestamp")
        self._write(ts_md, "timestamp.json")  # last: a mirror sees the new state only when it is whole
        _atomic_write(self.path / "pending.json", b"{}\n")
        log.info("published targets v%s snapshot v%s timestamp v%s", targets_v, snap_v, ts_v)
        return PublishResult(targets_v, snap_v, ts_v, tuple(sorted(targets_md.signed.targets)))

    def list_targets(self) -> dict[str, dict[str, Any]]:
        """The published targets: name -> length, sha256, format."""
        targets_v, _, _ = self.current_versions()
        md = self._load(f"{targets_v}.targets.json")
        out = {}
        for name, tf in md.signed.targets.items():
            custom = tf.unrecognized_fields.get("custom", {}).get("patchbrain", {})
            out[name] = {
                "length": tf.length,
                "sha256": tf.hashes.get("sha256"),
                "format": custom.get("format"),
            }
        return out
