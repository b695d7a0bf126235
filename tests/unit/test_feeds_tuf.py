"""TUF feed repositories: real repositories in temporary folders, served over HTTP on loopback, and the
attacks TUF exists to stop. Each refusal must leave the store untouched and be audited."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from patchbrain.audit import AuditLog
from patchbrain.cli import main
from patchbrain.errors import ExitCode, RefusedByPolicy
from patchbrain.feeds.screening import ScreenConfig
from patchbrain.feeds.sync import FeedRefused, FeedUnavailable, sync, trust
from patchbrain.feeds.tufrepo import FeedRepository
from patchbrain.store import Store

FIXTURES = Path(__file__).parent.parent / "fixtures"
NVD = FIXTURES / "nvd" / "nvdcve-1.1-sample.json.gz"
KEV = FIXTURES / "kev" / "known_exploited_vulnerabilities-sample.csv"
EPSS = FIXTURES / "epss" / "epss_scores-2024-06-30-sample.csv.gz"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(directory: Path):
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _all_off() -> ScreenConfig:
    """Screens off: these tests are about TUF verification (the screens have their own tests)."""
    from patchbrain.feeds.screening import SCREENS

    return ScreenConfig(allow_domains=frozenset(), disabled=frozenset(SCREENS))


@pytest.fixture
def repo(tmp_path, pb_home):
    r = FeedRepository(tmp_path / "repo")
    r.init(tmp_path / "keys", thresholds={"root": 2})
    r.add([NVD])
    r.publish(tmp_path / "keys")
    trust(r.path / "metadata" / "1.root.json")
    return r


def _counts(store: Store) -> tuple[int, int]:
    from patchbrain.feeds.cvestore import CveStore

    conn = CveStore(store).store.connection()
    claims = conn.execute("SELECT COUNT(*) FROM cve_claims").fetchone()[0]
    kev = conn.execute("SELECT COUNT(*) FROM kev").fetchone()[0]
    return claims, kev


def _actions(store: Store) -> list[tuple[str, dict]]:
    return [(r.action, r.payload) for r in AuditLog(store).records()]


def _refused(store: Store, url: str, kind: str) -> FeedRefused:
    before = _counts(store)
    with pytest.raises(FeedRefused) as err:
        sync(url, store=store, screen_config=_all_off())
    assert err.value.kind == kind, str(err.value)
    assert err.value.exit_code == ExitCode.REFUSED
    assert _counts(store) == before, "a refused sync must not change the store"
    last = _actions(store)[-1]
    assert last[0] == "feeds.sync.refused" and last[1]["kind"] == kind and last[1]["source"] == url
    return err.value


def test_sync_over_http_loads_and_audits(repo, tmp_path):
    store = Store()
    with serve(repo.path) as url:
        res = sync(url, store=store, screen_config=_all_off())
    assert res.targets_version == 2 and [f.name for f in res.files] == [NVD.name]
    assert _counts(store) == (16, 0)
    action, payload = _actions(store)[-1]
    assert action == "feeds.sync" and payload["files"][0]["records"] == 16
    assert [a for a, _ in _actions(store)][:1] == ["feeds.trust"]


def test_sync_from_a_mirror_folder(repo, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(repo.path, mirror)
    store = Store()
    sync(str(mirror), store=store, screen_config=_all_off())
    assert _counts(store) == (16, 0)


def test_tampered_target_is_refused(repo):
    store = Store()
    (target,) = (repo.path / "targets").iterdir()
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    with serve(repo.path) as url:
        err = _refused(store, url, "tampered")
    assert "signed length and hash" in str(err)


def test_one_tampered_file_leaves_nothing_half_applied(repo, tmp_path):
    repo.add([KEV])
    repo.publish(tmp_path / "keys")
    kev_target = next(p for p in (repo.path / "targets").iterdir() if p.name.endswith(KEV.name))
    kev_target.write_bytes(kev_target.read_bytes().replace(b"Microsoft", b"Microsofu", 1))
    store = Store()
    with serve(repo.path) as url:
        _refused(store, url, "tampered")
    assert _counts(store) == (0, 0)  # the NVD file verified fine but was not loaded alone


def test_rollback_to_older_metadata_is_refused(repo, tmp_path):
    store = Store()
    old_ts = (repo.path / "metadata" / "timestamp.json").read_bytes()
    repo.add([KEV])
    repo.publish(tmp_path / "keys")
    with serve(repo.path) as url:
        sync(url, store=store, screen_config=_all_off())
        (repo.path / "metadata" / "timestamp.json").write_bytes(old_ts)  # a mirror replays v2
        _refused(store, url, "rollback")


def test_frozen_expired_timestamp_is_refused(repo, tmp_path):
    store = Store()
    repo.add([KEV])
    # A publisher (or a mirror replaying it) whose last timestamp ran out two days ago.
    repo.publish(tmp_path / "keys", now=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    with serve(repo.path) as url:
        err = _refused(store, url, "expired")
    assert "timestamp.json is expired" in str(err)


def test_mix_and_match_snapshot_is_refused(repo, tmp_path):
    store = Store()
    repo.add([KEV])
    repo.publish(tmp_path / "keys")
    meta = repo.path / "metadata"
    # The mirror serves snapshot v2's (validly signed) content under the name timestamp v3 points to.
    (meta / "3.snapshot.json").write_bytes((meta / "2.snapshot.json").read_bytes())
    with serve(repo.path) as url:
        _refused(store, url, "mix-and-match")


def test_mix_and_match_targets_is_refused(repo, tmp_path):
    store = Store()
    repo.add([KEV])
    repo.publish(tmp_path / "keys")
    meta = repo.path / "metadata"
    (meta / "3.targets.json").write_bytes((meta / "2.targets.json").read_bytes())
    with serve(repo.path) as url:
        _refused(store, url, "mix-and-match")


def test_targets_signed_by_an_unknown_key_are_refused(repo, tmp_path):
    """An attacker holding the snapshot and timestamp keys but not the targets key lists a new file."""
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata

    store = Store()
    repo.add([KEV])
    repo.publish(tmp_path / "keys")
    meta = repo.path / "metadata"
    md = Metadata.from_file(str(meta / "3.targets.json"))
    md.signed.targets.pop(NVD.name)
    md.sign(CryptoSigner.generate_ed25519())  # not a key the root trusts for targets
    md.to_file(str(meta / "3.targets.json"))
    # Re-sign snapshot and timestamp over the forged targets with the real (stolen) keys.
    from patchbrain.feeds.tufrepo import load_signer

    snap = Metadata.from_file(str(meta / "3.snapshot.json"))
    snap.signed.meta["targets.json"] = repo._metafile(3, "3.targets.json")
    snap.sign(load_signer(tmp_path / "keys" / "snapshot-1.pem"))
    snap.to_file(str(meta / "3.snapshot.json"))
    ts = Metadata.from_file(str(meta / "timestamp.json"))
    ts.signed.snapshot_meta = repo._metafile(3, "3.snapshot.json")
    ts.sign(load_signer(tmp_path / "keys" / "timestamp-1.pem"))
    ts.to_file(str(meta / "timestamp.json"))
    with serve(repo.path) as url:
        err = _refused(store, url, "unsigned")
    assert "targets" in str(err)


def test_unsigned_timestamp_is_refused(repo):
    store = Store()
    ts_path = repo.path / "metadata" / "timestamp.json"
    doc = json.loads(ts_path.read_text())
    doc["signatures"] = []
    ts_path.write_text(json.dumps(doc))
    with serve(repo.path) as url:
        _refused(store, url, "unsigned")


def test_unlisted_files_on_the_mirror_are_never_loaded(repo):
    store = Store()
    shutil.copy(KEV, repo.path / "targets" / KEV.name)
    (repo.path / "targets" / ("0" * 64 + "." + KEV.name)).write_bytes(KEV.read_bytes())
    with serve(repo.path) as url:
        res = sync(url, store=store, screen_config=_all_off())
    assert [f.name for f in res.files] == [NVD.name]
    assert _counts(store) == (16, 0)


def test_root_below_its_threshold_is_not_trusted(tmp_path, pb_home):
    from tuf.api.metadata import Metadata

    r = FeedRepository(tmp_path / "repo")
    r.init(tmp_path / "keys", thresholds={"root": 2})
    md = Metadata.from_file(str(r.path / "metadata" / "1.root.json"))
    md.signatures.popitem()
    md.to_file(str(tmp_path / "weak-root.json"))
    with pytest.raises(FeedRefused) as err:
        trust(tmp_path / "weak-root.json")
    assert err.value.kind == "unsigned"


def test_trust_is_given_once(repo):
    with pytest.raises(RefusedByPolicy, match="--replace"):
        trust(repo.path / "metadata" / "1.root.json")


def test_a_repository_trusted_under_another_root_is_refused(repo, tmp_path):
    other = FeedRepository(tmp_path / "other")
    other.init(tmp_path / "other-keys")
    other.add([NVD])
    other.publish(tmp_path / "other-keys")
    store = Store()
    with serve(other.path) as url:
        _refused(store, url, "unsigned")


def test_unreachable_repository(repo):
    store = Store()
    with serve(repo.path) as url:
        pass  # the server is gone
    with pytest.raises(FeedUnavailable):
        sync(url, store=store, screen_config=_all_off())
    assert _actions(store)[-1][1]["kind"] == "unavailable"


def test_cli_exit_codes(repo, tmp_path, capsys, monkeypatch):
    with serve(repo.path) as url:
        assert main(["feeds", "sync", url, "--no-corroboration", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["files"][0]["records"] + out["files"][0]["quarantined"] == 16
        repo.add([KEV])
        repo.publish(tmp_path / "keys", now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
        assert main(["feeds", "sync", url]) == ExitCode.REFUSED
        assert "refused (expired)" in capsys.readouterr().err


def test_cli_repo_commands(tmp_path, pb_home, capsys):
    d, k = tmp_path / "r", tmp_path / "k"
    assert main(["feeds", "repo", "init", str(d), "--keys", str(k), "--threshold", "root=2",
                 "--expiry", "timestamp=0.5", "--json"]) == 0  # fmt: skip
    keyids = json.loads(capsys.readouterr().out)["keyids"]
    assert len(keyids["root"]) == 2 and len(keyids["timestamp"]) == 1
    assert (k / "root-2.pem").stat().st_mode & 0o777 == 0o600
    assert main(["feeds", "repo", "add", str(d), str(NVD), str(EPSS)]) == 0
    assert main(["feeds", "repo", "publish", str(d), "--keys", str(k), "--json"]) == 0
    capsys.readouterr()
    assert main(["feeds", "repo", "init", str(d), "--keys", str(k)]) == ExitCode.BAD_INPUT
    assert (
        main(["feeds", "repo", "init", str(tmp_path / "x"), "--keys", str(k), "--threshold", "root=0"]) == 2
    )
    assert main(["feeds", "trust", str(d / "metadata" / "1.root.json")]) == 0
    assert main(["feeds", "sync", str(d), "--no-corroboration"]) == 0
    assert "records" not in capsys.readouterr().err


def test_signed_but_poisoned_feed_is_screened_over_http(tmp_path, pb_home):
    """TUF proves who signed a file, not that its upstream was honest: a publisher that signs a poisoned
    NVD file (one score inflated past its vector) gets that record quarantined, the rest loaded."""
    import gzip

    from patchbrain.feeds.quarantine import Quarantine
    from patchbrain.feeds.screening import default_allow_domains

    doc = json.loads(gzip.decompress(NVD.read_bytes()))
    for item in doc["CVE_Items"]:
        if item["cve"]["CVE_data_meta"]["ID"] == "CVE-2019-0001":
            item["impact"]["baseMetricV3"]["cvssV3"]["baseScore"] = 9.9
    poisoned = tmp_path / "nvdcve-1.1-2019.json.gz"
    poisoned.write_bytes(gzip.compress(json.dumps(doc).encode()))
    r = FeedRepository(tmp_path / "repo")
    r.init(tmp_path / "keys")
    r.add([poisoned])
    r.publish(tmp_path / "keys")
    trust(r.path / "metadata" / "1.root.json")
    store = Store()
    cfg = ScreenConfig(allow_domains=default_allow_domains(), require_corroboration=False)
    with serve(r.path) as url:
        res = sync(url, store=store, screen_config=cfg)
        assert res.quarantined == {"score_mismatch": 1}
        assert _counts(store) == (15, 0)
        (held,) = Quarantine(store).entries()
        assert held.cve_id == "CVE-2019-0001" and "stated 9.9" in held.reasons[0].detail
        # The same signed file again: already loaded, nothing new held.
        again = sync(url, store=store, screen_config=cfg)
        assert again.files[0].skipped and len(Quarantine(store).entries()) == 1


def test_thresholds_expiry_and_encrypted_keys(tmp_path, pb_home):
    from tuf.api.metadata import Metadata

    from patchbrain.errors import BadInput

    pw = b"correct horse"
    r = FeedRepository(tmp_path / "repo")
    keys = tmp_path / "keys"
    r.init(keys, thresholds={"targets": 2}, expiry_days={"timestamp": 0.5}, passphrase=pw)
    assert b"ENCRYPTED" in (keys / "targets-2.pem").read_bytes()
    ts = Metadata.from_file(str(r.path / "metadata" / "timestamp.json")).signed
    left = ts.expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=11) < left <= dt.timedelta(hours=12)
    r.add([NVD])
    with pytest.raises(BadInput, match="cannot load the private key"):
        r.publish(keys, passphrase=b"wrong")
    (keys / "targets-2.pem").rename(tmp_path / "offline.pem")
    with pytest.raises(BadInput, match="needs 2 signing key"):
        r.publish(keys, passphrase=pw)
    (tmp_path / "offline.pem").rename(keys / "targets-2.pem")
    r.publish(keys, passphrase=pw)
    targets = Metadata.from_file(str(r.path / "metadata" / "2.targets.json"))
    assert len(targets.signatures) == 2
    trust(r.path / "metadata" / "1.root.json")
    store = Store()
    with serve(r.path) as url:
        sync(url, store=store, screen_config=_all_off())
    assert _counts(store) == (16, 0)


def test_mirror_folder_fetcher_is_confined(tmp_path):
    from tuf.api.exceptions import DownloadHTTPError

    from patchbrain.feeds.sync import DirFetcher

    (tmp_path / "mirror").mkdir()
    (tmp_path / "secret").write_text("x")
    (tmp_path / "mirror" / "link").symlink_to(tmp_path / "secret")
    f = DirFetcher(tmp_path / "mirror")
    for url in ((tmp_path / "secret").as_uri(), (tmp_path / "mirror" / "link").as_uri()):
        with pytest.raises(DownloadHTTPError) as err:
            list(f.fetch(url))
        assert err.value.status_code == 403
    with pytest.raises(DownloadHTTPError) as err:
        list(f.fetch((tmp_path / "mirror" / "none.json").as_uri()))
    assert err.value.status_code == 404


def test_key_rotation_after_a_compromise(repo, tmp_path):
    """The timestamp key leaks: rotate it (root v2), publish; clients follow, and the leaked key's
    signatures are refused from then on."""
    from tuf.api.metadata import Metadata

    from patchbrain.feeds.tufrepo import load_signer

    keys = tmp_path / "keys"
    store = Store()
    with serve(repo.path) as url:
        sync(url, store=store, screen_config=_all_off())
        leaked = load_signer(keys / "timestamp-1.pem")
        assert main(["feeds", "repo", "rotate", str(repo.path), "timestamp", "--keys", str(keys)]) == 0
        assert (keys / "timestamp-1.pem.retired").exists() and (keys / "timestamp-2.pem").exists()
        repo.add([KEV])
        repo.publish(keys)
        res = sync(url, store=store, screen_config=_all_off())
        assert res.timestamp_version == 3 and _counts(store) == (16, 20)
        # The attacker re-signs a newer timestamp with the leaked key.
        ts = Metadata.from_file(str(repo.path / "metadata" / "timestamp.json"))
        ts.signed.version += 1
        ts.sign(leaked)
        ts.to_file(str(repo.path / "metadata" / "timestamp.json"))
        _refused(store, url, "unsigned")
        # Root keys rotate too: a client that trusted root v1 walks v2 -> v3.
        repo.rotate(keys, "root", threshold=1)
        repo.publish(keys)
        sync(url, store=store, screen_config=_all_off())
    from patchbrain.feeds.sync import tuf_dir

    assert Metadata.from_file(str(tuf_dir() / "metadata" / "root.json")).signed.version == 3
