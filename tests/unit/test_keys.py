"""Hybrid keys: both halves must verify; bad encodings, bad files and wrong passphrases are refused."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patchbrain.errors import BadInput, ExitCode
from patchbrain.keys import (
    LAB_KEYS,
    InsecureKeyFile,
    KeyLocked,
    KeyNotFound,
    KeyStore,
    PublicKey,
    SignatureError,
    SignatureMalformed,
    decode_signature,
    ensure_lab_keys,
    sign,
    verify,
)

DATA = b"approve plan 42: openssl 3.0.15 on web*"


@pytest.fixture(scope="module")
def keystore(tmp_path_factory):
    ks = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    ks.new("alice")
    ks.new("bob")
    return ks


@pytest.fixture(scope="module")
def alice(keystore):
    return keystore.load_private("alice")


@pytest.fixture(scope="module")
def good_sig(alice):
    return sign(alice, DATA)


def _reencode(sig: bytes, **changes: object) -> bytes:
    doc = json.loads(sig)
    doc.update(changes)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _flip(b64: str, bit: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[bit // 8] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()


def test_sign_verify_round_trip(keystore, good_sig):
    verify(keystore.public("alice"), DATA, good_sig)


def test_signature_encoding_is_self_describing(keystore, good_sig):
    doc = json.loads(good_sig)
    assert doc["v"] == 1
    assert doc["alg"] == "ed25519+ml-dsa-65"
    assert doc["key"] == keystore.public("alice").fingerprint
    assert len(base64.b64decode(doc["ed25519"])) == 64
    assert len(base64.b64decode(doc["ml-dsa-65"])) == 3309


def test_other_data_is_refused(keystore, good_sig):
    with pytest.raises(SignatureError):
        verify(keystore.public("alice"), DATA + b"!", good_sig)


@settings(max_examples=40)
@given(bit=st.integers(min_value=0, max_value=64 * 8 - 1))
def test_one_flipped_bit_in_the_ed25519_part_is_refused(keystore, good_sig, bit):
    doc = json.loads(good_sig)
    bad = _reencode(good_sig, ed25519=_flip(doc["ed25519"], bit))
    with pytest.raises(SignatureError, match="Ed25519"):
        verify(keystore.public("alice"), DATA, bad)


@settings(max_examples=40)
@given(bit=st.integers(min_value=0, max_value=3309 * 8 - 1))
def test_one_flipped_bit_in_the_mldsa_part_is_refused(keystore, good_sig, bit):
    doc = json.loads(good_sig)
    bad = _reencode(good_sig, **{"ml-dsa-65": _flip(doc["ml-dsa-65"], bit)})
    with pytest.raises(SignatureError, match="ML-DSA-65"):
        verify(keystore.public("alice"), DATA, bad)


def test_swapped_public_key_is_refused(keystore, good_sig):
    bob = keystore.public("bob")
    with pytest.raises(SignatureError, match="not bob"):
        verify(bob, DATA, good_sig)
    # Claiming bob's fingerprint does not help: the fingerprint is inside the signed message.
    relabelled = _reencode(good_sig, key=bob.fingerprint)
    with pytest.raises(SignatureError, match="does not verify"):
        verify(bob, DATA, relabelled)


def test_halves_from_two_keys_are_refused(keystore, alice, good_sig):
    """One valid half is not enough: an Ed25519 half from alice with bob's ML-DSA half fails."""
    bob_sig = json.loads(sign(keystore.load_private("bob"), DATA))
    mixed = _reencode(good_sig, **{"ml-dsa-65": bob_sig["ml-dsa-65"]})
    with pytest.raises(SignatureError, match="ML-DSA-65"):
        verify(keystore.public("alice"), DATA, mixed)


def test_every_truncation_of_a_signature_is_refused_as_malformed(keystore, good_sig):
    public = keystore.public("alice")
    for cut in range(len(good_sig)):
        with pytest.raises(SignatureMalformed):
            verify(public, DATA, good_sig[:cut])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(v=2),
        lambda d: d.update(v=True),
        lambda d: d.update(alg="ed25519"),
        lambda d: d.pop("ml-dsa-65"),
        lambda d: d.update(extra=1),
        lambda d: d.update(ed25519=d["ed25519"][:-8]),
        lambda d: d.update(ed25519="!!not base64!!"),
        lambda d: d.update(key="sha256:xyz"),
    ],
    ids=[
        "version",
        "bool-version",
        "alg",
        "missing-part",
        "extra-field",
        "short-part",
        "bad-base64",
        "bad-key",
    ],
)
def test_garbled_encodings_are_refused_as_malformed(keystore, good_sig, mutate):
    doc = json.loads(good_sig)
    mutate(doc)
    with pytest.raises(SignatureMalformed):
        verify(keystore.public("alice"), DATA, json.dumps(doc).encode())


def test_non_canonical_encodings_are_refused(keystore, good_sig):
    """One signature has one encoding: whitespace, duplicate fields or base64 padding bits are refused."""
    public = keystore.public("alice")
    doc = json.loads(good_sig)
    spaced = json.dumps(doc, sort_keys=True).encode()
    duplicated = good_sig[:-1] + b',"v":1}'
    ed = doc["ed25519"]  # 64 bytes -> "...x==": the last char carries 4 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    other = alphabet[alphabet.index(ed[-3]) ^ 1]
    assert base64.b64decode(ed[:-3] + other + "==") == base64.b64decode(ed)
    padded_bits = _reencode(good_sig, ed25519=ed[:-3] + other + "==")
    for bad in (spaced, duplicated, padded_bits, good_sig + b"\n"):
        with pytest.raises(SignatureMalformed, match="canonical"):
            verify(public, DATA, bad)


def test_non_json_and_non_utf8_are_malformed(keystore):
    for junk in (b"", b"\xff\xfe", b"[]", b"null", b"sig"):
        with pytest.raises(SignatureMalformed):
            decode_signature(junk)


def test_signature_errors_map_to_exit_codes():
    assert SignatureError("x").exit_code == ExitCode.REFUSED
    assert SignatureMalformed("x").exit_code == ExitCode.BAD_INPUT


def test_files_and_modes(tmp_path):
    ks = KeyStore(tmp_path / "keys")
    ks.new("k")
    assert stat.S_IMODE(os.stat(ks.dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(ks.dir / "k.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ks.dir / "k.pub").st_mode) == 0o644
    assert sorted(p.name for p in ks.dir.iterdir()) == ["k.key", "k.pub"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602])
def test_group_or_world_accessible_private_key_is_refused(tmp_path, mode):
    ks = KeyStore(tmp_path / "keys")
    ks.new("k")
    os.chmod(ks.dir / "k.key", mode)
    with pytest.raises(InsecureKeyFile, match=f"{mode:04o}") as exc:
        ks.load_private("k")
    assert exc.value.exit_code == ExitCode.REFUSED
    os.chmod(ks.dir / "k.key", 0o600)
    ks.load_private("k")


def test_symlinked_private_key_is_refused(tmp_path):
    ks = KeyStore(tmp_path / "keys")
    ks.new("k")
    (ks.dir / "k.key").rename(tmp_path / "elsewhere.key")
    (ks.dir / "k.key").symlink_to(tmp_path / "elsewhere.key")
    with pytest.raises(InsecureKeyFile):
        ks.load_private("k")


def test_passphrase_round_trip(tmp_path):
    ks = KeyStore(tmp_path / "keys")
    public = ks.new("sealed", passphrase=b"correct horse battery staple")
    text = (ks.dir / "sealed.key").read_text()
    assert text.count("BEGIN ENCRYPTED PRIVATE KEY") == 2
    assert "BEGIN PRIVATE KEY" not in text
    key = ks.load_private("sealed", b"correct horse battery staple")
    assert key.public.fingerprint == public.fingerprint
    verify(public, DATA, sign(key, DATA))
    with pytest.raises(KeyLocked, match="passphrase-protected"):
        ks.load_private("sealed")
    with pytest.raises(KeyLocked, match="wrong passphrase"):
        ks.load_private("sealed", b"wrong")
    assert [i.encrypted for i in ks.list()] == [True]


def test_empty_passphrase_is_refused(tmp_path):
    with pytest.raises(BadInput, match="empty"):
        KeyStore(tmp_path / "keys").new("k", passphrase=b"")


def test_existing_key_is_never_overwritten(tmp_path):
    ks = KeyStore(tmp_path / "keys")
    first = ks.new("k")
    with pytest.raises(BadInput, match="already exists"):
        ks.new("k")
    assert ks.public("k").fingerprint == first.fingerprint


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "-dash", "x" * 65, "a..b", "sp ace", "é"])
def test_bad_key_names_are_refused(tmp_path, name):
    with pytest.raises(BadInput):
        KeyStore(tmp_path / "keys").new(name)


def test_missing_key_is_named(tmp_path):
    with pytest.raises(KeyNotFound, match="nope"):
        KeyStore(tmp_path / "keys").load_private("nope")
    with pytest.raises(KeyNotFound):
        KeyStore(tmp_path / "keys").public("nope")


def test_mismatched_halves_in_a_key_file_are_refused(tmp_path):
    ks = KeyStore(tmp_path / "keys")
    ks.new("a")
    ks.new("b")
    doc_a = json.loads((ks.dir / "a.key").read_text())
    doc_b = json.loads((ks.dir / "b.key").read_text())
    doc_a["ml-dsa-65"] = doc_b["ml-dsa-65"]
    (ks.dir / "a.key").write_text(json.dumps(doc_a))
    with pytest.raises(BadInput, match="fingerprint"):
        ks.load_private("a")


def test_export_import_round_trip(tmp_path, keystore, alice):
    other = KeyStore(tmp_path / "other")
    imported = other.import_public(keystore.export_public("alice"))
    assert imported.fingerprint == keystore.public("alice").fingerprint
    verify(other.public("alice"), DATA, sign(alice, DATA))
    assert [(i.name, i.has_private) for i in other.list()] == [("alice", False)]
    assert other.by_fingerprint(imported.fingerprint) == imported
    # the same key again is fine; a different key under the same name is not
    other.import_public(keystore.export_public("alice"))
    doc = json.loads(keystore.export_public("bob"))
    doc["name"] = "alice"
    with pytest.raises(BadInput, match="different key"):
        other.import_public(json.dumps(doc))


def test_tampered_public_export_is_refused(keystore):
    doc = json.loads(keystore.export_public("alice"))
    doc["ed25519"] = json.loads(keystore.export_public("bob"))["ed25519"]
    with pytest.raises(BadInput, match="fingerprint"):
        PublicKey.from_export(json.dumps(doc))


def test_ensure_lab_keys_is_idempotent(tmp_path):
    ks = KeyStore(tmp_path / "keys")
    first = ensure_lab_keys(ks)
    assert [k.name for k in first] == list(LAB_KEYS)
    second = ensure_lab_keys(ks)
    assert [k.fingerprint for k in second] == [k.fingerprint for k in first]
    for name in LAB_KEYS:
        ks.load_private(name)


def test_list_reports_insecure_private_key(tmp_path):
    ks = KeyStore(tmp_path / "keys")
    ks.new("k")
    os.chmod(ks.dir / "k.key", 0o644)
    (info,) = ks.list()
    assert info.problem is not None
    assert "0644" in info.problem
