"""Sync feed files from a TUF repository (python-tuf's ngclient), screen them, then load them in one go.

`trust(root.json)` stores the root of trust once, under the state dir. `sync(URL|DIR)` then:

1. updates the TUF metadata in a staging copy of the client's metadata folder (ngclient: root rotation,
   timestamp, snapshot, targets; signatures, thresholds, versions, expiry, hashes and lengths checked),
   and downloads every target the signed targets metadata lists (files not listed are never fetched);
2. parses every new file and runs the poisoning screens (`patchbrain.feeds.screening`);
3. loads everything in ONE store transaction: clean items into the CVE store, flagged ones into the
   quarantine; only then the staging metadata replaces the client's metadata.

A refusal at any step leaves the store and the trusted metadata as they were. Syncs and refusals are
audited (`feeds.sync`, `feeds.sync.refused`). Refusals by verification raise `FeedRefused` (exit 5,
refused by policy); an unreachable or incomplete repository raises `FeedUnavailable` (exit 2).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.ngclient import FetcherInterface

from patchbrain import config
from patchbrain.errors import BadInput, ExitCode, PatchbrainError, RefusedByPolicy
from patchbrain.feeds.screening import Flag, History, Item, ScreenConfig, default_allow_domains, screen
from patchbrain.store import Store

log = logging.getLogger(__name__)

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class FeedRefused(RefusedByPolicy):
    """The repository failed TUF verification: `kind` is unsigned, rollback, expired, tampered,
    mix-and-match or invalid."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(f"feed sync refused ({kind}): {message}")


class FeedUnavailable(PatchbrainError):
    """The repository could not be reached or is missing files."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str) -> None:
        self.kind = "unavailable"
        super().__init__(f"feed sync failed (unavailable): {message}")


@dataclasses.dataclass(frozen=True, slots=True)
class SyncedFile:
    """One target of a sync: what was loaded and what was held back."""

    name: str
    sha256: str
    format: str
    records: int
    quarantined: int
    skipped: bool


@dataclasses.dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync did."""

    sync_id: str
    source: str
    timestamp_version: int
    snapshot_version: int
    targets_version: int
    files: tuple[SyncedFile, ...]
    quarantined: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["files"] = [dataclasses.asdict(f) for f in self.files]
        return d


def check_repo_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= _NAME_CHARS or name.startswith("."):
        raise BadInput("repository names are letters, digits, '.', '_' and '-'", field="--name")
    return name


def tuf_dir(name: str = "default") -> Path:
    """The client state of one trusted repository: state_dir()/tuf/NAME."""
    return config.state_dir() / "tuf" / check_repo_name(name)


# --- trust -------------------------------------------------------------------------------------------


def trust(
    root_file: Path, name: str = "default", *, replace: bool = False, store: Store | None = None
) -> dict[str, Any]:
    """Make `root_file` the root of trust of repository `name` (checked: a root, signed by its threshold).

    Refuses to replace an existing trust anchor unless `replace` (an operator decision, audited).
    """
    from tuf.api.exceptions import RepositoryError, UnsignedMetadataError
    from tuf.api.metadata import Metadata, Root
    from tuf.ngclient import Updater

    from patchbrain.audit import default_actor, open_audit_log

    root_file = Path(root_file)
    try:
        data = root_file.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read ({exc.strerror})", source=str(root_file)) from exc
    try:
        md = Metadata.from_bytes(data)
    except RepositoryError as exc:
        raise BadInput(f"not TUF metadata ({exc})", source=str(root_file)) from exc
    if not isinstance(md.signed, Root):
        raise BadInput(f"not a root role but {md.signed.type}", source=str(root_file))
    try:
        md.verify_delegate(Root.type, md)
    except UnsignedMetadataError as exc:
        raise FeedRefused("unsigned", f"{root_file} is not signed by its own root threshold ({exc})") from exc
    d = tuf_dir(name)
    meta = d / "metadata"
    if meta.exists():
        if not replace:
            raise RefusedByPolicy(
                f"repository {name!r} already has a trusted root; pass --replace to change it"
            )
        shutil.rmtree(meta)
    meta.mkdir(parents=True, mode=0o700)
    os.chmod(d, 0o700)
    Updater(str(meta), "file:///nonexistent/", fetcher=DirFetcher(meta), bootstrap=data)
    (d / "trusted_root.json").write_bytes(data)
    root = md.signed
    info = {
        "name": name,
        "root_version": root.version,
        "root_sha256": hashlib.sha256(data).hexdigest(),
        "expires": root.expires.isoformat(),
        "roles": {
            role: {"threshold": r.threshold, "keyids": sorted(r.keyids)} for role, r in root.roles.items()
        },
        "replaced": bool(replace),
    }
    open_audit_log(store or Store()).append(default_actor(), "feeds.trust", name, info)
    return info


# --- fetching a folder --------------------------------------------------------------------------------


class DirFetcher(FetcherInterface):
    """ngclient fetcher for a mirror folder (file:// URLs), confined to that folder.

    Missing files answer like HTTP 404, so ngclient's root-version walk ends where it would on a server.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _fetch(self, url: str) -> Iterator[bytes]:
        parts = urlsplit(url)
        if parts.scheme != "file":
            raise DownloadError(f"not a file URL: {url}")
        path = Path(unquote(parts.path)).resolve()
        if not path.is_relative_to(self.root):
            raise DownloadHTTPError(f"{path} is outside the mirror", 403)
        if not path.is_file():
            raise DownloadHTTPError(f"{path} not found", 404)
        return _chunks(path)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 16):
            yield chunk


def _endpoints(source: str) -> tuple[str, str, Any]:
    """(metadata URL, targets URL, fetcher or None) for a URL or a mirror folder."""
    if source.startswith(("http://", "https://")):
        base = source.rstrip("/") + "/"
        return base + "metadata/", base + "targets/", None
    if "://" in source:
        raise BadInput("only http(s) URLs and local folders are supported", source=source)
    root = Path(source).resolve()
    if not (root / "metadata").is_dir():
        raise FeedUnavailable(f"{root} has no metadata/ folder: not a feed repository mirror")
    return (root / "metadata").as_uri() + "/", (root / "targets").as_uri() + "/", DirFetcher(root)


# --- errors -------------------------------------------------------------------------------------------


def _classify(exc: BaseException, stage: str) -> PatchbrainError:
    from tuf.api import exceptions as tex

    if isinstance(exc, tex.UnsignedMetadataError):
        return FeedRefused(
            "unsigned", f"{stage}: metadata not signed by its role's threshold of trusted keys ({exc})"
        )
    if isinstance(exc, tex.ExpiredMetadataError):
        return FeedRefused(
            "expired", f"{stage}: {exc}; the repository is frozen or its publisher stopped signing"
        )
    if isinstance(exc, tex.BadVersionNumberError):
        text = str(exc)
        if text.startswith("Expected"):
            return FeedRefused(
                "mix-and-match", f"{stage}: {text}: served metadata is not the version signed for"
            )
        return FeedRefused("rollback", f"{stage}: {text}: older metadata than already trusted")
    if isinstance(exc, tex.LengthOrHashMismatchError | tex.DownloadLengthMismatchError):
        if stage == "targets":
            return FeedRefused("tampered", f"a feed file does not match its signed length and hash ({exc})")
        return FeedRefused(
            "mix-and-match",
            f"{stage}: a metadata file does not match the hash its parent role signed ({exc})",
        )
    if isinstance(exc, tex.DownloadHTTPError):
        return FeedUnavailable(f"{stage}: HTTP {exc.status_code}: {exc}")
    if isinstance(exc, tex.DownloadError):
        return FeedUnavailable(f"{stage}: {exc.__cause__ or exc}")
    if isinstance(exc, tex.RepositoryError):
        return FeedRefused("invalid", f"{stage}: {exc}")
    return FeedUnavailable(f"{stage}: {exc}")


# --- sync ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Target:
    name: str
    path: Path
    sha256: str
    format: str
    items: list[Item]
    skipped: bool


def _parse(path: Path, fmt: str, name: str) -> list[Item]:
    """Every item of one file, for screening (CVE claims, KEV entries, id-only markers for EPSS/OSV)."""
    items: list[Item] = []
    if fmt == "nvd-1.1":
        from patchbrain.feeds.nvd import iter_nvd11

        items = [Item(r.cve_id, "nvd", name, record=r) for r in iter_nvd11(path)]
    elif fmt == "nvd-2.0":
        from patchbrain.feeds.nvd import iter_nvd20

        items = [Item(r.cve_id, "nvd", name, record=r) for r in iter_nvd20(path)]
    elif fmt == "cve5":
        from patchbrain.feeds.cve5 import iter_cve5

        items = [Item(c.record.cve_id, f"cve5/{c.source}", name, record=c.record) for c in iter_cve5(path)]
    elif fmt == "kev":
        from patchbrain.feeds.kev import load_kev_catalog

        items = [Item(e.cve_id, "kev", name, kev=e) for e in load_kev_catalog(path).entries.values()]
    elif fmt == "epss":
        from patchbrain.feeds.epss import iter_epss

        items = [Item(s.cve_id, "epss", name) for s in iter_epss(path)]
    elif fmt == "osv":
        from patchbrain.feeds.osv import iter_osv

        items = [Item(c, "osv", name) for adv in iter_osv(path) for c in adv.cve_ids]
    return items


def history_from_store(store: Store) -> History:
    """What the CVE store knows now, as screening history."""
    from patchbrain.feeds.cvestore import CveStore
    from patchbrain.feeds.records import CveRecord, Reference

    CveStore(store)
    h = History()
    conn = store.connection()
    cur = conn.execute(
        "SELECT cve_id, source, assigner, published, description, cvss3_score, cvss2_score, cvss4_score, "
        "refs, cpes, rejected FROM cve_claims"
    )
    for r in cur:
        rec = CveRecord(
            cve_id=r["cve_id"],
            published=dt.datetime.fromisoformat(r["published"]) if r["published"] else None,
            description=r["description"],
            assigner=r["assigner"],
            cvss3_score=r["cvss3_score"],
            cvss2_score=r["cvss2_score"],
            cvss4_score=r["cvss4_score"],
            cpes=tuple(json.loads(r["cpes"])),
            references=tuple(Reference(u, tuple(t), s) for u, t, s in json.loads(r["refs"])),
            rejected=bool(r["rejected"]),
        )
        h.add_record(rec, r["source"])
    h.add_ids("kev", (row[0] for row in conn.execute("SELECT cve_id FROM kev")))
    h.add_ids("epss", (row[0] for row in conn.execute("SELECT cve_id FROM epss")))
    h.add_ids("osv", (row[0] for row in conn.execute("SELECT cve_id FROM advisory_cves")))
    return h


def default_screen_config() -> ScreenConfig:
    """The screens as configured: allow-list from $PATCHBRAIN_FEED_ALLOW_DOMAINS (a file), else default."""
    from patchbrain.feeds.screening import load_allow_domains

    env = os.environ.get("PATCHBRAIN_FEED_ALLOW_DOMAINS")
    if env:
        try:
            return ScreenConfig(allow_domains=load_allow_domains(env))
        except OSError as exc:
            raise BadInput(
                f"cannot read ({exc.strerror})", source=env, field="PATCHBRAIN_FEED_ALLOW_DOMAINS"
            ) from exc
    return ScreenConfig(allow_domains=default_allow_domains())


def sync(
    source: str,
    name: str = "default",
    *,
    store: Store | None = None,
    screen_config: ScreenConfig | None = None,
) -> SyncResult:
    """Update from the repository at `source` (http(s) URL or mirror folder); see the module docstring."""
    from patchbrain.audit import default_actor, open_audit_log

    store = store or Store()
    audit = open_audit_log(store)
    d = tuf_dir(name)
    if not (d / "metadata" / "root.json").exists():
        raise BadInput(
            f"no trusted root for repository {name!r}: run `patchbrain feeds trust ROOT.json` first"
        )
    sync_id = uuid.uuid4().hex
    staging = d / f"staging-{sync_id}"
    try:
        try:
            result = _sync(source, name, d, staging, sync_id, store, screen_config)
        except (FeedRefused, FeedUnavailable, BadInput) as exc:
            audit.append(
                default_actor(),
                "feeds.sync.refused",
                name,
                {
                    "sync_id": sync_id,
                    "source": source,
                    "kind": getattr(exc, "kind", "bad-input"),
                    "reason": str(exc),
                },
            )
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    audit.append(default_actor(), "feeds.sync", name, result.to_dict())
    return result


def _sync(
    source: str,
    name: str,
    d: Path,
    staging: Path,
    sync_id: str,
    store: Store,
    screen_config: ScreenConfig | None,
) -> SyncResult:
    from tuf.api import exceptions as tex
    from tuf.api.metadata import Metadata, Snapshot, Targets, Timestamp
    from tuf.ngclient import Updater

    from patchbrain.feeds.cvestore import CveStore
    from patchbrain.feeds.detect import detect_format
    from patchbrain.feeds.quarantine import Quarantine, kev_to_dict, record_to_dict

    meta_url, targets_url, fetcher = _endpoints(source)
    shutil.copytree(d / "metadata", staging / "metadata", symlinks=True)
    (staging / "targets").mkdir()
    errors = (tex.RepositoryError, tex.DownloadError, OSError)
    stage = "metadata"
    try:
        updater = Updater(
            str(staging / "metadata"),
            meta_url,
            str(staging / "targets"),
            targets_url,
            fetcher=fetcher,
            bootstrap=None,
        )
        updater.refresh()
        ts = Metadata[Timestamp].from_file(str(staging / "metadata" / "timestamp.json")).signed
        snap = Metadata[Snapshot].from_file(str(staging / "metadata" / "snapshot.json")).signed
        targets_md = Metadata[Targets].from_file(str(staging / "metadata" / "targets.json")).signed
        stage = "targets"
        downloaded: list[tuple[str, Path, str, str | None]] = []
        for tname in sorted(targets_md.targets):
            info = updater.get_targetinfo(tname)
            if info is None:
                raise tex.RepositoryError(f"target {tname} vanished from the signed metadata")
            path = Path(updater.download_target(info))
            custom = info.unrecognized_fields.get("custom", {}).get("patchbrain", {})
            downloaded.append((tname, path, info.hashes["sha256"], custom.get("format")))
    except errors as exc:
        raise _classify(exc, stage) from exc

    cves = CveStore(store)
    quarantine = Quarantine(store)
    targets: list[_Target] = []
    for tname, path, digest, signed_fmt in downloaded:
        fmt = detect_format(path)
        if signed_fmt and signed_fmt != fmt:
            raise FeedRefused("invalid", f"target {tname} is signed as {signed_fmt} but reads as {fmt}")
        if cves.loaded(digest, fmt) is not None:
            targets.append(_Target(tname, path, digest, fmt, [], True))
            continue
        targets.append(_Target(tname, path, digest, fmt, _parse(path, fmt, tname), False))

    new_items = [it for t in targets for it in t.items]
    flags: dict[tuple[str, str], list[Flag]] = {}
    if new_items:
        cfg = screen_config or default_screen_config()
        flags = screen(new_items, history_from_store(store), cfg)
    held = set(flags)

    def keep(cve_id: str, source_: str) -> bool:
        return (cve_id, source_) not in held

    files: list[SyncedFile] = []
    by_screen: dict[str, int] = {}
    with store.transaction() as tx:
        for t in targets:
            if t.skipped:
                files.append(SyncedFile(t.name, t.sha256, t.format, 0, 0, True))
                continue
            result, file_id = cves.load_in(
                tx, t.path, fmt=t.format, digest=t.sha256, label=f"tuf:{name}/{t.name}", keep=keep
            )
            count_q = 0
            seen: set[tuple[str, str]] = set()
            for it in t.items:
                if it.key not in held or it.key in seen or (it.record is None and it.kev is None):
                    continue
                seen.add(it.key)
                item = record_to_dict(it.record) if it.record is not None else kev_to_dict(it.kev)  # type: ignore[arg-type]
                quarantine.add(
                    tx,
                    cve_id=it.cve_id,
                    source=it.source,
                    kind="cve" if it.record is not None else "kev",
                    file=f"tuf:{name}/{t.name}",
                    file_id=file_id,
                    sync_id=sync_id,
                    reasons=flags[it.key],
                    item=item,
                )
                count_q += 1
                for f in {f.screen for f in flags[it.key]}:
                    by_screen[f] = by_screen.get(f, 0) + 1
            files.append(SyncedFile(t.name, t.sha256, t.format, result.records, count_q, False))

    # The store has the data: now the verified metadata becomes the client's trusted state.
    old = d / f"metadata.old-{sync_id}"
    os.replace(d / "metadata", old)
    os.replace(staging / "metadata", d / "metadata")
    shutil.rmtree(old, ignore_errors=True)
    return SyncResult(
        sync_id=sync_id,
        source=source,
        timestamp_version=ts.version,
        snapshot_version=snap.version,
        targets_version=targets_md.version,
        files=tuple(files),
        quarantined=by_screen,
    )
