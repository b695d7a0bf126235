"""Hybrid signing keys (Ed25519 + ML-DSA-65) and the signatures they make.

A key is a pair: an Ed25519 key and an ML-DSA-65 key (FIPS 204), generated together and named together.
A signature holds one signature of each kind over the same message; it is valid only if both verify, so
it stays sound as long as either algorithm holds.

Signed message: ``b"patchbrain-signature-v1\\0" + fingerprint_bytes + data``; the ML-DSA part also uses
the FIPS 204 context string ``b"patchbrain-v1"``. Binding the key's fingerprint into the message means a
signature cannot be passed off as one from another key.

Signature encoding (version 1), UTF-8 JSON with sorted keys and no spaces::

    {"alg":"ed25519+ml-dsa-65","ed25519":"<base64, 64 bytes>","key":"sha256:<64 hex>",
     "ml-dsa-65":"<base64, 3309 bytes>","v":1}

Files in `config.keys_dir()` (mode 0700): ``NAME.key`` (private, 0600, JSON holding two PKCS#8 PEM
blocks, encrypted with the passphrase when one is given) and ``NAME.pub`` (public, JSON, the same text
`export_public` returns).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from patchbrain import config
from patchbrain.errors import BadInput, ExitCode, PatchbrainError, RefusedByPolicy

ALGORITHM = "ed25519+ml-dsa-65"
SIGNATURE_VERSION = 1
KEY_FILE_VERSION = 1
LAB_KEYS = ("lab-approver-1", "lab-approver-2", "lab-signing")

_SIG_DOMAIN = b"patchbrain-signature-v1\x00"
_MLDSA_CONTEXT = b"patchbrain-v1"
_FP_DOMAIN = b"patchbrain-hybrid-key-v1\x00"
_ED25519_PUB_LEN = 32
_ED25519_SIG_LEN = 64
_MLDSA65_PUB_LEN = 1952
_MLDSA65_SIG_LEN = 3309
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PRIVATE_FORMAT = "patchbrain-private-key"
_PUBLIC_FORMAT = "patchbrain-public-key"


class SignatureError(PatchbrainError):
    """A signature did not verify (exit 5: whatever it guarded is refused)."""

    exit_code = ExitCode.REFUSED


class SignatureMalformed(SignatureError):
    """A signature encoding is truncated, garbled or of an unknown version (exit 2)."""

    exit_code = ExitCode.BAD_INPUT


class KeyNotFound(BadInput):
    """No key of that name in the key store."""


class InsecureKeyFile(RefusedByPolicy):
    """A private key file others can read or write; patchbrain refuses to use it."""


class KeyLocked(BadInput):
    """A passphrase-protected key was loaded without the right passphrase."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, *, what: str, length: int, error: type[PatchbrainError]) -> bytes:
    if not isinstance(text, str):
        raise error(f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise error(f"{what} is not valid base64 ({exc})") from exc
    if len(raw) != length:
        raise error(f"{what} is {len(raw)} bytes, expected {length} (truncated or garbled)")
    return raw


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def check_name(name: str) -> str:
    """`name` if it is a valid key name (letters, digits, `.`, `_`, `-`; at most 64), else BadInput."""
    if not _NAME_RE.match(name) or ".." in name:
        raise BadInput(
            "a key name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            source=repr(name),
            field="name",
        )
    return name


@dataclasses.dataclass(frozen=True)
class PublicKey:
    """The public half of a hybrid key."""

    name: str
    ed25519_raw: bytes
    mldsa65_raw: bytes

    def __post_init__(self) -> None:
        if len(self.ed25519_raw) != _ED25519_PUB_LEN or len(self.mldsa65_raw) != _MLDSA65_PUB_LEN:
            raise BadInput("public key parts have the wrong length", source=self.name)

    @property
    def fingerprint(self) -> str:
        """``sha256:<hex>`` over both public parts; names this key in signatures and records."""
        return "sha256:" + self.fingerprint_bytes.hex()

    @property
    def fingerprint_bytes(self) -> bytes:
        """The raw 32-byte fingerprint."""
        h = hashlib.sha256(_FP_DOMAIN)
        h.update(len(self.ed25519_raw).to_bytes(2, "big") + self.ed25519_raw)
        h.update(len(self.mldsa65_raw).to_bytes(2, "big") + self.mldsa65_raw)
        return h.digest()

    def export(self) -> str:
        """The self-describing public key text (what `keys export-public` prints)."""
        doc = {
            "format": _PUBLIC_FORMAT,
            "version": KEY_FILE_VERSION,
            "alg": ALGORITHM,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "ed25519": _b64(self.ed25519_raw),
            "ml-dsa-65": _b64(self.mldsa65_raw),
        }
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_export(cls, text: str, *, source: str = "public key") -> PublicKey:
        """Parse `export()` output; refuses anything malformed or whose fingerprint does not match."""
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadInput(f"not a patchbrain public key ({exc})", source=source) from exc
        if not isinstance(doc, dict) or doc.get("format") != _PUBLIC_FORMAT:
            raise BadInput("not a patchbrain public key", source=source, field="format")
        if doc.get("version") != KEY_FILE_VERSION or doc.get("alg") != ALGORITHM:
            raise BadInput(
                f"unsupported key version/algorithm {doc.get('version')!r}/{doc.get('alg')!r}",
                source=source,
                field="version",
            )
        name = doc.get("name")
        if not isinstance(name, str):
            raise BadInput("missing name", source=source, field="name")
        check_name(name)
        ed = _unb64(doc.get("ed25519"), what="ed25519 part", length=_ED25519_PUB_LEN, error=BadInput)
        ml = _unb64(doc.get("ml-dsa-65"), what="ml-dsa-65 part", length=_MLDSA65_PUB_LEN, error=BadInput)
        key = cls(name=name, ed25519_raw=ed, mldsa65_raw=ml)
        if doc.get("fingerprint") != key.fingerprint:
            raise BadInput("fingerprint does not match the key material", source=source, field="fingerprint")
        return key


@dataclasses.dataclass(frozen=True)
class PrivateKey:
    """A loaded hybrid private key. Never printed, never serialized except by `KeyStore`."""

    name: str
    ed25519: ed25519.Ed25519PrivateKey = dataclasses.field(repr=False)
    mldsa65: mldsa.MLDSA65PrivateKey = dataclasses.field(repr=False)

    @property
    def public(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(
            name=self.name,
            ed25519_raw=self.ed25519.public_key().public_bytes_raw(),
            mldsa65_raw=self.mldsa65.public_key().public_bytes_raw(),
        )

    @classmethod
    def generate(cls, name: str) -> PrivateKey:
        """A fresh hybrid key."""
        return cls(
            name=check_name(name),
            ed25519=ed25519.Ed25519PrivateKey.generate(),
            mldsa65=mldsa.MLDSA65PrivateKey.generate(),
        )


def _message(fingerprint: bytes, data: bytes) -> bytes:
    return _SIG_DOMAIN + fingerprint + data


def sign(private: PrivateKey, data: bytes) -> bytes:
    """Sign `data` with both halves of `private`; returns the version-1 signature encoding."""
    fp = private.public.fingerprint_bytes
    msg = _message(fp, data)
    doc = {
        "v": SIGNATURE_VERSION,
        "alg": ALGORITHM,
        "key": "sha256:" + fp.hex(),
        "ed25519": _b64(private.ed25519.sign(msg)),
        "ml-dsa-65": _b64(private.mldsa65.sign(msg, _MLDSA_CONTEXT)),
    }
    return _canonical(doc)


@dataclasses.dataclass(frozen=True)
class DecodedSignature:
    """A parsed signature encoding (not yet verified)."""

    key_fingerprint: str
    ed25519: bytes
    mldsa65: bytes


def decode_signature(signature: bytes) -> DecodedSignature:
    """Parse a signature encoding strictly; SignatureMalformed if truncated, garbled, unknown or not
    byte-for-byte canonical (so one signature has exactly one encoding)."""
    try:
        doc = json.loads(signature.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignatureMalformed(f"signature is truncated or garbled: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise SignatureMalformed("signature is garbled: not a JSON object")
    expected = {"v", "alg", "key", "ed25519", "ml-dsa-65"}
    if set(doc) != expected:
        raise SignatureMalformed(
            f"signature is garbled: fields {sorted(doc)} differ from the expected {sorted(expected)}"
        )
    if doc["v"] != SIGNATURE_VERSION or isinstance(doc["v"], bool):
        raise SignatureMalformed(f"unsupported signature version {doc['v']!r} (this patchbrain knows 1)")
    if doc["alg"] != ALGORITHM:
        raise SignatureMalformed(f"unsupported signature algorithm {doc['alg']!r}")
    key = doc["key"]
    if not isinstance(key, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", key):
        raise SignatureMalformed("signature is garbled: bad key fingerprint")
    ed = _unb64(doc["ed25519"], what="ed25519 signature", length=_ED25519_SIG_LEN, error=SignatureMalformed)
    ml = _unb64(
        doc["ml-dsa-65"], what="ml-dsa-65 signature", length=_MLDSA65_SIG_LEN, error=SignatureMalformed
    )
    canonical = _canonical(
        {"v": SIGNATURE_VERSION, "alg": ALGORITHM, "key": key, "ed25519": _b64(ed), "ml-dsa-65": _b64(ml)}
    )
    if canonical != signature:
        raise SignatureMalformed(
            "signature is not in canonical form (extra whitespace, duplicate fields, escapes or "
            "non-canonical base64): refusing a re-encoded signature"
        )
    return DecodedSignature(key_fingerprint=key, ed25519=ed, mldsa65=ml)


def verify(public: PublicKey, data: bytes, signature: bytes) -> None:
    """Return if `signature` over `data` is valid for `public` (both parts); raise SignatureError if not."""
    decoded = decode_signature(signature)
    if decoded.key_fingerprint != public.fingerprint:
        raise SignatureError(
            f"signature was made by key {decoded.key_fingerprint}, not {public.name} ({public.fingerprint})"
        )
    msg = _message(public.fingerprint_bytes, data)
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public.ed25519_raw).verify(decoded.ed25519, msg)
    except InvalidSignature as exc:
        raise SignatureError(f"the Ed25519 part of the signature does not verify for {public.name}") from exc
    try:
        mldsa.MLDSA65PublicKey.from_public_bytes(public.mldsa65_raw).verify(
            decoded.mldsa65, msg, _MLDSA_CONTEXT
        )
    except InvalidSignature as exc:
        raise SignatureError(
            f"the ML-DSA-65 part of the signature does not verify for {public.name}"
        ) from exc


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """One entry of `KeyStore.list()` (the `keys list --json` shape)."""

    name: str
    fingerprint: str
    has_private: bool
    encrypted: bool | None
    created: str | None
    public_path: str
    private_path: str | None
    problem: str | None = None


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `data` and `mode`, durably; FileExistsError if it exists (never overwrites)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink()
    _fsync_dir(path.parent)


def _replace_file(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_private_file(path: Path) -> bytes:
    """Read a private key file, refusing symlinks and files that group or others can access."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise InsecureKeyFile(f"cannot open private key {path} safely ({exc})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InsecureKeyFile(f"private key {path} is not a regular file")
        if st.st_mode & 0o077:
            raise InsecureKeyFile(
                f"private key {path} has mode {stat.S_IMODE(st.st_mode):04o}: group or others can access it; "
                f"refusing to use it (fix with `chmod 600 {path}` if you trust its content)"
            )
        if st.st_uid not in (os.geteuid(), 0):
            raise InsecureKeyFile(f"private key {path} is owned by uid {st.st_uid}, not by this user")
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class KeyStore:
    """The named hybrid keys in one directory (default `config.keys_dir()`)."""

    def __init__(self, dir: Path | str | None = None) -> None:
        self.dir = Path(dir) if dir is not None else config.keys_dir()

    def _private_path(self, name: str) -> Path:
        return self.dir / f"{check_name(name)}.key"

    def _public_path(self, name: str) -> Path:
        return self.dir / f"{check_name(name)}.pub"

    def _ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(PermissionError):
            os.chmod(self.dir, 0o700)

    def exists(self, name: str) -> bool:
        """Whether a private key `name` is here."""
        return self._private_path(name).exists()

    def new(self, name: str, passphrase: bytes | None = None) -> PublicKey:
        """Generate and store key `name` (BadInput if it exists); returns its public key."""
        check_name(name)
        if passphrase is not None and not passphrase:
            raise BadInput("the passphrase is empty", field="passphrase")
        self._ensure_dir()
        if self._private_path(name).exists() or self._public_path(name).exists():
            raise BadInput("a key of that name already exists", source=str(self._private_path(name)))
        key = PrivateKey.generate(name)
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase is not None
            else serialization.NoEncryption()
        )
        pem_args = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
        doc = {
            "format": _PRIVATE_FORMAT,
            "version": KEY_FILE_VERSION,
            "alg": ALGORITHM,
            "name": name,
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "encrypted": passphrase is not None,
            "fingerprint": key.public.fingerprint,
            "ed25519": key.ed25519.private_bytes(*pem_args).decode("ascii"),
            "ml-dsa-65": key.mldsa65.private_bytes(*pem_args).decode("ascii"),
        }
        try:
            _write_new_file(self._private_path(name), json.dumps(doc, indent=2).encode() + b"\n", 0o600)
        except FileExistsError as exc:
            raise BadInput("a key of that name already exists", source=str(self._private_path(name))) from exc
        _replace_file(self._public_path(name), key.public.export().encode(), 0o644)
        return key.public

    def _private_doc(self, name: str) -> dict[str, Any]:
        path = self._private_path(name)
        try:
            raw = _read_private_file(path)
        except FileNotFoundError as exc:
            raise KeyNotFound("no such private key", source=str(path)) from exc
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadInput(f"not a patchbrain private key ({exc})", source=str(path)) from exc
        if not isinstance(doc, dict) or doc.get("format") != _PRIVATE_FORMAT:
            raise BadInput("not a patchbrain private key", source=str(path), field="format")
        if doc.get("version") != KEY_FILE_VERSION or doc.get("alg") != ALGORITHM:
            raise BadInput("unsupported private key version or algorithm", source=str(path), field="version")
        return doc

    def load_private(self, name: str, passphrase: bytes | None = None) -> PrivateKey:
        """Load private key `name`; refuses insecure files, wrong passphrases and mismatched halves."""
        doc = self._private_doc(name)
        path = str(self._private_path(name))
        if doc.get("encrypted") and passphrase is None:
            raise KeyLocked("the key is passphrase-protected; give its passphrase", source=path)
        pw = passphrase if doc.get("encrypted") else None
        parts: list[object] = []
        for field in ("ed25519", "ml-dsa-65"):
            pem = doc.get(field)
            if not isinstance(pem, str):
                raise BadInput("missing key part", source=path, field=field)
            try:
                parts.append(serialization.load_pem_private_key(pem.encode("ascii"), password=pw))
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                if doc.get("encrypted"):
                    raise KeyLocked(
                        f"cannot decrypt the key: wrong passphrase? ({exc})", source=path
                    ) from exc
                raise BadInput(f"cannot load the key part ({exc})", source=path, field=field) from exc
        ed, ml = parts
        if not isinstance(ed, ed25519.Ed25519PrivateKey) or not isinstance(ml, mldsa.MLDSA65PrivateKey):
            raise BadInput("key parts are not Ed25519 and ML-DSA-65", source=path)
        key = PrivateKey(name=name, ed25519=ed, mldsa65=ml)
        if doc.get("fingerprint") != key.public.fingerprint:
            raise BadInput(
                "the key's fingerprint does not match its content", source=path, field="fingerprint"
            )
        return key

    def public(self, name: str) -> PublicKey:
        """The public key `name` (from NAME.pub)."""
        path = self._public_path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise KeyNotFound("no such public key", source=str(path)) from exc
        key = PublicKey.from_export(text, source=str(path))
        if key.name != name:
            raise BadInput(f"the file holds key {key.name!r}, not {name!r}", source=str(path), field="name")
        return key

    def export_public(self, name: str) -> str:
        """The public key text of `name`, to hand to whoever verifies its signatures."""
        return self.public(name).export()

    def import_public(self, text: str, *, source: str = "public key") -> PublicKey:
        """Store a public key exported elsewhere (verify-only: no private half). Refuses a name clash."""
        key = PublicKey.from_export(text, source=source)
        path = self._public_path(key.name)
        if path.exists():
            existing = self.public(key.name)
            if existing.fingerprint == key.fingerprint:
                return existing
            raise BadInput("a different key of that name already exists", source=str(path))
        self._ensure_dir()
        _write_new_file(path, key.export().encode(), 0o644)
        return key

    def list(self) -> list[KeyInfo]:
        """Every key here (public file present), sorted by name."""
        if not self.dir.is_dir():
            return []
        out = []
        for pub in sorted(self.dir.glob("*.pub")):
            name = pub.name[: -len(".pub")]
            try:
                key = self.public(name)
            except BadInput:
                continue
            priv = self._private_path(name)
            encrypted: bool | None = None
            created: str | None = None
            problem: str | None = None
            if priv.exists():
                try:
                    doc = self._private_doc(name)
                    encrypted = bool(doc.get("encrypted"))
                    created = str(doc.get("created")) if doc.get("created") else None
                except PatchbrainError as exc:
                    problem = str(exc)
            out.append(
                KeyInfo(
                    name=name,
                    fingerprint=key.fingerprint,
                    has_private=priv.exists(),
                    encrypted=encrypted,
                    created=created,
                    public_path=str(pub),
                    private_path=str(priv) if priv.exists() else None,
                    problem=problem,
                )
            )
        return out

    def by_fingerprint(self, fingerprint: str) -> PublicKey | None:
        """The public key here whose fingerprint is `fingerprint`, if any (reads public files only)."""
        if not self.dir.is_dir():
            return None
        for pub in sorted(self.dir.glob("*.pub")):
            try:
                key = self.public(pub.name[: -len(".pub")])
            except BadInput:
                continue
            if key.fingerprint == fingerprint:
                return key
        return None


def ensure_lab_keys(keystore: KeyStore) -> list[PublicKey]:
    """Create the lab's keys (two approvers and the lab signing key, no passphrase) if missing.

    Only the lab calls this: production keys are never created implicitly.
    """
    keys = []
    for name in LAB_KEYS:
        if not keystore.exists(name):
            try:
                keystore.new(name)
            except BadInput:
                if not keystore.exists(name):  # not a lost race with another `lab up`
                    raise
        keys.append(keystore.public(name))
    return keys
