"""The lab repositories, checked with the real clients: apt-get and dnf run against the served repo
with private state folders (nothing on the machine changes), and refuse tampered or unsigned indexes."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from patchbrain.errors import BadInput
from patchbrain.lab import packages, repo

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("dpkg-deb", "rpmbuild", "apt-ftparchive", "createrepo_c", "gpg")),
    reason="needs dpkg-deb, rpmbuild, apt-ftparchive, createrepo_c and gpg",
)


@pytest.fixture(scope="module")
def pkgs(tmp_path_factory):
    out = tmp_path_factory.mktemp("pkgs")
    return {
        "base": packages.build("base", out / "base"),
        "benign": packages.build("benign", out / "benign"),
        "provides": [packages.build_provides_rpm(out / "provides")],
        "accept-all": packages.build("accept-all", out / "aa", version="1.2"),
        "open-port": packages.build("open-port", out / "op", version="1.2"),
    }


@pytest.fixture
def lab_repo(tmp_path, pkgs):
    r = repo.LabRepo(tmp_path / "repo")
    r.publish(pkgs["base"] + pkgs["benign"] + pkgs["provides"])
    return r


@pytest.fixture
def served(lab_repo):
    with lab_repo.serve("127.0.0.1") as server:
        yield lab_repo, server


class AptClient:
    """apt-get with every state folder private to the test."""

    def __init__(self, root: Path, source: str) -> None:
        self.root = root
        for d in ("state/lists/partial", "cache/archives/partial", "parts", "etc"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "status").touch()
        (root / "etc/sources.list").write_text(source)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        r = self.root
        opts = {
            "Dir::Etc::sourcelist": r / "etc/sources.list",
            "Dir::Etc::sourceparts": r / "parts",
            "Dir::Etc::Trusted": "/dev/null",
            "Dir::Etc::TrustedParts": r / "parts",
            "Dir::Etc::Preferences": "/dev/null",
            "Dir::Etc::PreferencesParts": r / "parts",
            "Dir::State": r / "state",
            "Dir::State::status": r / "status",
            "Dir::Cache": r / "cache",
            "Debug::NoLocking": "1",
            "APT::Sandbox::User": "root",
        }
        argv = ["apt-get"]
        for k, v in opts.items():
            argv += ["-o", f"{k}={v}"]
        return subprocess.run([*argv, *args], capture_output=True, text=True, check=False, timeout=120)


class DnfClient:
    """dnf with a private installroot, repo folder and cache."""

    def __init__(self, root: Path, repo_text: str) -> None:
        self.root = root
        (root / "repos").mkdir(parents=True)
        (root / "installroot").mkdir()
        (root / "repos/lab.repo").write_text(repo_text)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        r = self.root
        argv = [
            "dnf",
            "-y",
            f"--installroot={r / 'installroot'}",
            f"--setopt=reposdir={r / 'repos'}",
            f"--setopt=cachedir={r / 'cache'}",
            "--releasever=12",
            "--setopt=install_weak_deps=0",
        ]
        return subprocess.run([*argv, *args], capture_output=True, text=True, check=False, timeout=120)


def _apt(tmp_path, lab_repo, server):
    source = repo.apt_source(server.url).replace(repo.APT_KEYRING, str(lab_repo.binary_key))
    return AptClient(tmp_path / "aptc", source)


@pytest.fixture
def dnf_client(tmp_path, served):
    lab_repo, server = served
    text = repo.dnf_repo(server.url).replace(repo.RPM_KEY, str(lab_repo.armored_key))
    client = DnfClient(tmp_path / "dnfc", text)
    yield client
    # dnf starts a gpg-agent for each repository keyring it verifies with: stop them.
    for ring in (tmp_path / "dnfc").rglob("pubring"):
        subprocess.run(["gpgconf", "--homedir", str(ring), "--kill", "gpg-agent"], check=False)


def test_signatures_verify_with_the_published_key(lab_repo, tmp_path):
    dist = lab_repo.apt / "dists" / repo.SUITE
    keyring = str(lab_repo.binary_key)
    subprocess.run(["gpgv", "--keyring", keyring, str(dist / "InRelease")], check=True, capture_output=True)
    subprocess.run(
        ["gpgv", "--keyring", keyring, str(dist / "Release.gpg"), str(dist / "Release")],
        check=True,
        capture_output=True,
    )
    repodata = lab_repo.rpm / "repodata"
    subprocess.run(
        ["gpgv", "--keyring", keyring, str(repodata / "repomd.xml.asc"), str(repodata / "repomd.xml")],
        check=True,
        capture_output=True,
    )
    db = tmp_path / "rpmdb"
    subprocess.run(["rpm", "--dbpath", str(db), "--import", str(lab_repo.armored_key)], check=True)
    for pub in lab_repo.published("rpm"):
        out = subprocess.run(
            ["rpm", "--dbpath", str(db), "-K", str(pub.path)], capture_output=True, text=True, check=True
        ).stdout
        assert "signatures OK" in out


def test_old_versions_stay_published(lab_repo, pkgs):
    lab_repo.publish(pkgs["accept-all"])
    assert lab_repo.versions("labdemo", "deb") == ["1.0", "1.1", "1.2"]
    assert lab_repo.versions("labdemo", "rpm") == ["1.0", "1.1", "1.2"]
    index = (lab_repo.apt / f"dists/lab/main/binary-{repo._machine_arch()}/Packages").read_text()
    assert [line for line in index.splitlines() if line.startswith("Version:")] == [
        "Version: 1.0",
        "Version: 1.1",
        "Version: 1.2",
    ]


def test_republishing_the_same_file_is_a_no_op_and_a_changed_one_is_refused(lab_repo, pkgs):
    assert lab_repo.publish(pkgs["base"]) == []
    lab_repo.publish(pkgs["accept-all"])
    before = {p: p.read_bytes() for p in lab_repo.www.rglob("*") if p.is_file()}
    with pytest.raises(BadInput, match="already published with different content"):
        lab_repo.publish(pkgs["open-port"][:1])
    with pytest.raises(BadInput, match="already published with different content"):
        lab_repo.publish(pkgs["open-port"][1:])
    assert before == {p: p.read_bytes() for p in lab_repo.www.rglob("*") if p.is_file()}


def test_publish_refuses_files_that_are_not_packages(lab_repo, tmp_path):
    bogus = tmp_path / "labdemo_9.9_all.deb"
    bogus.write_bytes(b"not a deb")
    with pytest.raises(BadInput):
        lab_repo.publish([bogus])
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(BadInput):
        lab_repo.publish([other])


def test_apt_trusts_the_signed_repo_and_sees_every_version(served, tmp_path):
    lab_repo, server = served
    client = _apt(tmp_path, lab_repo, server)
    up = client.run("update")
    assert up.returncode == 0, up.stderr
    policy = client.run("-s", "install", "labdemo=1.0")
    assert policy.returncode == 0, policy.stderr
    assert "Inst labdemo (1.0 patchbrain lab:lab [all])" in policy.stdout
    newest = client.run("-s", "install", "labdemo")
    assert "Inst labdemo (1.1 " in newest.stdout


def test_apt_refuses_a_tampered_packages_index(served, tmp_path):
    lab_repo, server = served
    bindir = lab_repo.apt / f"dists/lab/main/binary-{repo._machine_arch()}"
    text = (bindir / "Packages").read_text()
    forged = text.replace("Version: 1.1", "Version: 1.9")  # same size: only the hash can tell
    assert forged != text and len(forged) == len(text)
    (bindir / "Packages").write_text(forged)
    (bindir / "Packages.gz").write_bytes(gzip.compress(forged.encode(), mtime=0))
    client = _apt(tmp_path, lab_repo, server)
    up = client.run("update")
    assert up.returncode != 0
    assert "Hash Sum mismatch" in up.stderr or "unexpected size" in up.stderr, up.stderr
    assert "labdemo" not in client.run("-s", "install", "labdemo").stdout


def test_apt_refuses_an_unsigned_repo(served, tmp_path):
    lab_repo, server = served
    dist = lab_repo.apt / "dists" / repo.SUITE
    (dist / "InRelease").unlink()
    (dist / "Release.gpg").unlink()
    up = _apt(tmp_path, lab_repo, server).run("update")
    assert up.returncode != 0
    assert "is not signed" in up.stderr


def test_apt_refuses_a_repo_signed_by_another_key(served, tmp_path, pkgs):
    _lab_repo, server = served
    other = repo.LabRepo(tmp_path / "other")
    other.publish(pkgs["base"])
    client = AptClient(
        tmp_path / "aptc2",
        repo.apt_source(server.url).replace(repo.APT_KEYRING, str(other.binary_key)),
    )
    up = client.run("update")
    assert up.returncode != 0
    assert "NO_PUBKEY" in up.stderr or "not signed" in up.stderr, up.stderr


needs_dnf = pytest.mark.skipif(shutil.which("dnf") is None, reason="needs dnf")


@needs_dnf
def test_dnf_reads_the_signed_repo(dnf_client):
    client = dnf_client
    made = client.run("makecache")
    assert made.returncode == 0, made.stderr
    listed = client.run("--showduplicates", "list", "--available", "labdemo")
    assert "1.0-1" in listed.stdout and "1.1-1" in listed.stdout


@needs_dnf
def test_dnf_refuses_tampered_primary_metadata(served, dnf_client):
    lab_repo, _ = served
    primary = next((lab_repo.rpm / "repodata").glob("*-primary.xml.gz"))
    xml = gzip.decompress(primary.read_bytes()).decode()
    primary.write_bytes(gzip.compress(xml.replace('ver="1.1"', 'ver="1.9"').encode(), mtime=0))
    made = dnf_client.run("makecache")
    assert made.returncode != 0
    assert "checksum doesn't match" in made.stderr, made.stderr


@needs_dnf
def test_dnf_refuses_a_forged_repomd(served, dnf_client):
    lab_repo, _ = served
    repomd = lab_repo.rpm / "repodata" / "repomd.xml"
    repomd.write_text(repomd.read_text().replace("<revision>", "<revision>1"))
    made = dnf_client.run("makecache")
    assert made.returncode != 0
    assert "Bad GPG signature" in made.stderr or "signature" in made.stderr.lower(), made.stderr


def test_host_config_snippets_pin_the_lab_key():
    url = "http://10.77.0.1:8080"
    assert repo.apt_source(url) == f"deb [signed-by={repo.APT_KEYRING}] {url}/apt lab main\n"
    for text in (repo.dnf_repo(url), repo.zypper_repo(url)):
        assert f"baseurl={url}/rpm\n" in text
        assert "gpgcheck=1\n" in text and "repo_gpgcheck=1\n" in text
        assert f"gpgkey=file://{repo.RPM_KEY}\n" in text
    assert "skip_if_unavailable=0\n" in repo.dnf_repo(url)


def test_server_binds_only_the_given_address(lab_repo):
    import socket

    with lab_repo.serve("127.0.0.1") as server:
        assert server.url.startswith("http://127.0.0.1:")
        with socket.create_connection(("127.0.0.1", server.port), timeout=2):
            pass
        with pytest.raises(OSError), socket.create_connection(("127.0.0.2", server.port), timeout=2):
            pass
    assert server.proc.poll() is not None
