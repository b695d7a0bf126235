"""A model bundle: `model.txt` (LightGBM's own text format, never a pickle) + `metadata.json`.

`metadata.json` records the bundle format, LightGBM version, the ordered feature list, the priors learnt
on the training window (`vocabularies`: they change scores as much as `model.txt` does, and signatures
cover them with the rest of `metadata.json`), the SHA-256 of every training input and of `model.txt`
itself, metrics, seed and training window. `load_bundle` refuses (exit 5) a bundle whose feature list
differs from this patchbrain's, whose `model.txt` does not hash to what the metadata says (a model file
swapped on disk), or whose booster disagrees with its metadata. `metadata.json` can be signed with trust
keys (`metadata.json.sig.*`); the governance gate checks those signatures on promotion.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchbrain.errors import BadInput, RefusedByPolicy
from patchbrain.prioritizer import features as F

if TYPE_CHECKING:
    import lightgbm as lgb

BUNDLE_FORMAT = "patchbrain-prioritizer-bundle"
BUNDLE_VERSION = 1
MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
_MAX_MODEL_BYTES = 64 * 1024 * 1024
_MAX_METADATA_BYTES = 8 * 1024 * 1024


class BundleRefused(RefusedByPolicy):
    """A bundle patchbrain will not load: wrong features, wrong hashes, or an inconsistent model."""


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A loaded, verified model bundle."""

    source: str
    booster: lgb.Booster
    metadata: dict[str, Any]
    vocab: F.Vocabularies
    model_sha256: str
    metadata_sha256: str

    @property
    def bundle_id(self) -> str:
        """A short, stable id: the first 16 hex digits of the model file's SHA-256."""
        return self.model_sha256[:16]

    @property
    def base_rate(self) -> float:
        """The share of positives in the training window (the prior for a CVE the feeds do not know)."""
        return float(self.metadata.get("training", {}).get("positive_rate", 0.0))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def metadata_bytes(metadata: dict[str, Any]) -> bytes:
    """The exact bytes written as metadata.json (sorted keys, so the file is diffable and stable)."""
    return (json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def save_bundle(directory: Path, booster: lgb.Booster, metadata: dict[str, Any]) -> Path:
    """Write `model.txt` and `metadata.json` (with the model's hash and the feature list) into `directory`."""
    import lightgbm as lgb

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if list(booster.feature_name()) != list(F.FEATURE_NAMES):
        raise ValueError("the booster's features are not this patchbrain's feature list")
    model_text = booster.model_to_string().encode("utf-8")
    meta = dict(metadata)
    meta.update(
        {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "lightgbm_version": lgb.__version__,
            "features": list(F.FEATURE_NAMES),
            "categorical_features": list(F.CATEGORICAL),
            "monotone_constraints": list(F.MONOTONE),
            "model_file": MODEL_FILE,
            "model_sha256": sha256_bytes(model_text),
        }
    )
    _atomic_write(directory / MODEL_FILE, model_text)
    _atomic_write(directory / METADATA_FILE, metadata_bytes(meta))
    return directory


def _read_limited(node: Path | Traversable, limit: int, what: str, source: str) -> bytes:
    try:
        with node.open("rb") as fh:
            data: bytes = fh.read(limit + 1)
    except OSError as exc:
        raise BadInput(f"cannot read {what}: {exc}", source=source) from exc
    if len(data) > limit:
        raise BundleRefused(f"{source}: {what} is larger than {limit} bytes")
    return data


def load_bundle(directory: Path | Traversable) -> Bundle:
    """Load and verify a bundle (a folder or a packaged resource folder); BundleRefused if a check fails."""
    import lightgbm as lgb

    source = str(directory)
    meta_node = directory / METADATA_FILE
    model_node = directory / MODEL_FILE
    if not meta_node.is_file() or not model_node.is_file():
        raise BadInput(f"not a model bundle (needs {MODEL_FILE} and {METADATA_FILE})", source=source)
    meta_raw = _read_limited(meta_node, _MAX_METADATA_BYTES, METADATA_FILE, source)
    try:
        meta = json.loads(meta_raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleRefused(f"{source}: {METADATA_FILE} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise BundleRefused(f"{source}: {METADATA_FILE} is not a patchbrain prioritizer bundle")
    if meta.get("format_version") != BUNDLE_VERSION:
        raise BundleRefused(
            f"{source}: bundle format version {meta.get('format_version')!r}, "
            f"this patchbrain reads {BUNDLE_VERSION}"
        )
    features = meta.get("features")
    if features != list(F.FEATURE_NAMES):
        raise BundleRefused(f"{source}: {_feature_diff(features)}")
    model_raw = _read_limited(model_node, _MAX_MODEL_BYTES, MODEL_FILE, source)
    actual = sha256_bytes(model_raw)
    if actual != meta.get("model_sha256"):
        raise BundleRefused(
            f"{source}: {MODEL_FILE} has SHA-256 {actual}, the metadata says {meta.get('model_sha256')!r} "
            "(the model file was changed or swapped)"
        )
    try:
        vocab = F.Vocabularies.from_json(meta.get("vocabularies") or {})
    except (TypeError, ValueError) as exc:
        raise BundleRefused(f"{source}: bad vocabularies: {exc}") from exc
    try:
        booster = lgb.Booster(model_str=model_raw.decode("utf-8"))
    except (UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
        raise BundleRefused(f"{source}: {MODEL_FILE} is not a LightGBM text model: {exc}") from exc
    if list(booster.feature_name()) != list(F.FEATURE_NAMES):
        raise BundleRefused(f"{source}: {MODEL_FILE}'s features differ from its metadata")
    if booster.num_model_per_iteration() != 1:
        raise BundleRefused(f"{source}: {MODEL_FILE} is not a binary classifier")
    return Bundle(
        source=source,
        booster=booster,
        metadata=meta,
        vocab=vocab,
        model_sha256=actual,
        metadata_sha256=sha256_bytes(meta_raw),
    )


def _feature_diff(features: object) -> str:
    if not isinstance(features, list):
        return "the metadata has no feature list"
    ours = list(F.FEATURE_NAMES)
    missing = [f for f in ours if f not in features]
    extra = [f for f in features if f not in ours]
    if missing or extra:
        return (
            f"the bundle's features differ from this patchbrain's: missing {missing[:5]}, unknown {extra[:5]}"
        )
    first = next(i for i, (a, b) in enumerate(zip(ours, features, strict=True)) if a != b)
    return f"the bundle's features are in another order (first difference at position {first})"


def default_bundle_dir() -> Traversable:
    """The default model shipped inside the package (trained on the real NVD + KEV data)."""
    return resources.files("patchbrain.prioritizer") / "default_model"


def load_default() -> Bundle:
    """The packaged default bundle, verified."""
    return load_bundle(default_bundle_dir())
