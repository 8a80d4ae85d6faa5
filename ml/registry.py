"""Versioned regime-model artifacts in a directory; loading uses json, hashlib and numpy only.

    model_dir/
      v000001/
        params.json     the artifact (`RegimeParamsArtifact.to_json`), data not code (no pickle)
        metadata.json   version, trained_at (unix s), data window (ns), feature list, metrics,
                        sklearn version, content_sha256 = sha256 of the bytes of params.json

`publish` writes a version into a hidden temporary directory and renames it into place, so readers
never see half a version and two publishers never get the same number. Loading a version checks,
in order: metadata readable, content hash of params.json (before parsing it), the artifact itself,
the feature list (metadata and artifact) against the caller's. Both files are read as untrusted
text (`bots.safe_json`: bounded size and depth, no NaN or infinity) and every metadata field is
type-checked, so a bad version is refused with its reason, never raised as a crash; a model trained
in the future (beyond `CLOCK_SKEW_S`) is refused too, as it would never expire. `load_latest` takes
the newest version that validates and returns None if it is older than `max_age_s`;
`RegistryWatcher` is the cheap poll a running bot uses to hot-reload newer versions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bots.errors import FleetError
from bots.safe_json import decode_json_object
from ml.features import FEATURE_NAMES
from ml.inference import RegimeModel, RegimeParamsArtifact

__all__ = [
    "METADATA_FILE",
    "PARAMS_FILE",
    "ModelMetadata",
    "ModelRejected",
    "RegistryWatcher",
    "TrainingInfo",
    "list_versions",
    "load_latest",
    "load_version",
    "publish",
    "read_metadata",
]

log = logging.getLogger(__name__)

PARAMS_FILE: Final = "params.json"
METADATA_FILE: Final = "metadata.json"
METADATA_FORMAT: Final = "mmfleet.model-metadata/1"
_VERSION_DIR = re.compile(r"^v(\d{6,})$")
_PUBLISH_ATTEMPTS: Final = 100
MAX_METADATA_BYTES: Final = 1024 * 1024
MAX_PARAMS_BYTES: Final = 64 * 1024 * 1024  # a mixture of a few components over a dozen features is KBs
CLOCK_SKEW_S: Final = 300.0  # how far in the future a trained_at may be (another host's clock)


class ModelRejected(FleetError):  # noqa: N818 - the name is the outcome
    """A model version failed validation: keep the current model (or the config gamma/kappa)."""

    def __init__(self, version: int, reason: str) -> None:
        super().__init__(f"model v{version}: {reason}")
        self.version = version
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TrainingInfo:
    """What the trainer knows about a model; `publish` adds the version, features and hash."""

    trained_at: float  # unix seconds
    data_since_ts_ns: int
    data_until_ts_ns: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    sklearn_version: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)  # e.g. symbols, flow run id


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """The contents of metadata.json."""

    version: int
    trained_at: float
    data_since_ts_ns: int
    data_until_ts_ns: int
    feature_names: tuple[str, ...]
    metrics: Mapping[str, float]
    sklearn_version: str
    content_sha256: str
    extra: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": METADATA_FORMAT,
            "version": self.version,
            "trained_at": self.trained_at,
            "data_since_ts_ns": self.data_since_ts_ns,
            "data_until_ts_ns": self.data_until_ts_ns,
            "feature_names": list(self.feature_names),
            "metrics": dict(self.metrics),
            "sklearn_version": self.sklearn_version,
            "content_sha256": self.content_sha256,
            "params_file": PARAMS_FILE,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_json(cls, data: Any) -> ModelMetadata:
        """The metadata in `data`, every field type-checked and finite; ValueError naming the bad fields."""
        try:
            document = _MetadataDocument.model_validate(data)
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'metadata'}: {error['msg']}"
                for error in exc.errors(include_url=False)[:5]
            )
            raise ValueError(f"metadata malformed: {fields}") from None
        if document.data_since_ts_ns > document.data_until_ts_ns:
            raise ValueError("metadata malformed: data_since_ts_ns is after data_until_ts_ns")
        return cls(
            version=document.version,
            trained_at=document.trained_at,
            data_since_ts_ns=document.data_since_ts_ns,
            data_until_ts_ns=document.data_until_ts_ns,
            feature_names=tuple(document.feature_names),
            metrics=document.metrics,
            sklearn_version=document.sklearn_version,
            content_sha256=document.content_sha256,
            extra=document.extra,
        )


_Nanoseconds = Annotated[int, Field(ge=0, lt=2**63)]


class _MetadataDocument(BaseModel):
    """metadata.json as it must be: JSON types exactly (no "5" for 5), finite numbers, a sha256."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)

    format: Literal["mmfleet.model-metadata/1"]
    version: int = Field(ge=1, lt=10**9)
    trained_at: float = Field(gt=0)
    data_since_ts_ns: _Nanoseconds
    data_until_ts_ns: _Nanoseconds
    feature_names: list[Annotated[str, Field(max_length=200)]] = Field(max_length=1000)
    metrics: dict[str, float] = Field(max_length=1000)
    sklearn_version: str = Field(max_length=100)
    content_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    extra: dict[str, str] = Field(default_factory=dict, max_length=1000)


def _dumps(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, indent=1, allow_nan=False).encode()


def _write(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _version_dir(model_dir: Path, version: int) -> Path:
    return model_dir / f"v{version:06d}"


def list_versions(model_dir: str | os.PathLike[str]) -> list[int]:
    """Published version numbers, ascending (a missing directory has none)."""
    try:
        entries = list(os.scandir(model_dir))
    except FileNotFoundError:
        return []
    found = (_VERSION_DIR.match(e.name) for e in entries if e.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def publish(model_dir: str | os.PathLike[str], artifact: RegimeParamsArtifact, info: TrainingInfo) -> int:
    """Write `artifact` as the next version and return its number."""
    artifact.validate()
    root = Path(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    params = _dumps(artifact.to_json())
    digest = hashlib.sha256(params).hexdigest()
    staging = Path(tempfile.mkdtemp(prefix=".publish-", dir=root))
    try:
        _write(staging / PARAMS_FILE, params)
        for _ in range(_PUBLISH_ATTEMPTS):
            version = max(list_versions(root), default=0) + 1
            metadata = ModelMetadata(
                version=version,
                trained_at=info.trained_at,
                data_since_ts_ns=info.data_since_ts_ns,
                data_until_ts_ns=info.data_until_ts_ns,
                feature_names=artifact.feature_names,
                metrics=dict(info.metrics),
                sklearn_version=info.sklearn_version,
                content_sha256=digest,
                extra=dict(info.extra),
            )
            _write(staging / METADATA_FILE, _dumps(metadata.to_json()))
            try:
                os.rename(staging, _version_dir(root, version))  # fails if another publisher took it
            except OSError:
                continue
            log.info("model published", extra={"fields": {"version": version, "model_dir": str(root)}})
            return version
        raise FleetError(f"could not publish into {root}: versions keep being taken")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_metadata(model_dir: str | os.PathLike[str], version: int) -> ModelMetadata:
    """The metadata of one version (ModelRejected if unreadable)."""
    path = _version_dir(Path(model_dir), version) / METADATA_FILE
    try:
        data = decode_json_object(_read_bounded(path, MAX_METADATA_BYTES), max_bytes=MAX_METADATA_BYTES)
        metadata = ModelMetadata.from_json(data)
    except (OSError, ValueError) as exc:
        raise ModelRejected(version, f"metadata unreadable: {exc}") from exc
    if metadata.version != version:
        raise ModelRejected(version, f"metadata says version {metadata.version}")
    return metadata


def load_version(
    model_dir: str | os.PathLike[str], version: int, *, feature_names: Sequence[str] = FEATURE_NAMES
) -> RegimeModel:
    """One version, validated (hash first, then artifact, then features); raises ModelRejected."""
    metadata = read_metadata(model_dir, version)
    try:
        params = _read_bounded(_version_dir(Path(model_dir), version) / PARAMS_FILE, MAX_PARAMS_BYTES)
    except (OSError, ValueError) as exc:
        raise ModelRejected(version, f"params unreadable: {exc}") from exc
    digest = hashlib.sha256(params).hexdigest()
    if digest != metadata.content_sha256:
        raise ModelRejected(version, f"content hash {digest} does not match {metadata.content_sha256}")
    try:
        document = decode_json_object(params, max_bytes=MAX_PARAMS_BYTES)
        artifact = RegimeParamsArtifact.from_json(document)
    except ValueError as exc:
        raise ModelRejected(version, f"artifact invalid: {exc}") from exc
    wanted = tuple(feature_names)
    if artifact.feature_names != wanted or metadata.feature_names != wanted:
        raise ModelRejected(
            version, f"features {list(artifact.feature_names)} do not match the bot's {list(wanted)}"
        )
    return RegimeModel.from_artifact(artifact, version=version, trained_at=metadata.trained_at)


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, or ValueError when it is larger than `max_bytes` (never read whole)."""
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes")
    return data


def _too_old(model: RegimeModel, max_age_s: float, now: float) -> bool:
    return model.trained_at is None or not now - model.trained_at <= max_age_s


def _from_the_future(model: RegimeModel, now: float) -> ModelRejected | None:
    """A model trained after `now` (beyond the clock skew) would never expire: refuse it."""
    if model.trained_at is not None and model.trained_at > now + CLOCK_SKEW_S:
        return ModelRejected(model.version or 0, f"trained at {model.trained_at}, in the future")
    return None


def load_latest(
    model_dir: str | os.PathLike[str],
    *,
    feature_names: Sequence[str] = FEATURE_NAMES,
    max_age_s: float,
    now: float,
) -> RegimeModel | None:
    """The newest version that validates, or None (none valid, or it is older than `max_age_s`)."""
    for version in reversed(list_versions(model_dir)):
        try:
            model = load_version(model_dir, version, feature_names=feature_names)
            if (future := _from_the_future(model, now)) is not None:
                raise future
        except ModelRejected as exc:
            log.warning("model skipped", extra={"fields": {"version": version, "reason": exc.reason}})
            continue
        if _too_old(model, max_age_s, now):
            log.warning(
                "newest valid model too old; using config gamma/kappa",
                extra={
                    "fields": {"version": version, "trained_at": model.trained_at, "max_age_s": max_age_s}
                },
            )
            return None
        return model
    return None


class RegistryWatcher:
    """Hot reload for a running bot: call `poll(now)` often (it scans at most every `poll_interval_s`)
    and use `active(now)`; numpy-only, nothing is retried or logged twice for the same version.

    A newer version replaces the current model only if it validates and is not older than
    `max_age_s`; a refused version is logged once with its reason and the current model is kept.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        max_age_s: float,
        feature_names: Sequence[str] = FEATURE_NAMES,
        poll_interval_s: float = 10.0,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.max_age_s = max_age_s
        self.feature_names = tuple(feature_names)
        self.poll_interval_s = poll_interval_s
        self.model: RegimeModel | None = None
        self._refused: set[int] = set()
        self._next_poll = float("-inf")
        self._expired_logged: int | None = None

    @property
    def version(self) -> int | None:
        """Version of the current model (also when it has expired)."""
        return None if self.model is None else self.model.version

    def poll(self, now: float) -> RegimeModel | None:
        """The newly adopted model when a newer valid version appeared since the last scan, else None."""
        if self._next_poll - self.poll_interval_s <= now < self._next_poll:
            return None  # scanned recently (a clock that stepped back scans again)
        self._next_poll = now + self.poll_interval_s
        current = self.version or 0
        for version in reversed(list_versions(self.model_dir)):
            if version <= current:
                break
            if version in self._refused:
                continue
            try:
                model = load_version(self.model_dir, version, feature_names=self.feature_names)
                if (future := _from_the_future(model, now)) is not None:
                    raise future
                if _too_old(model, self.max_age_s, now):
                    raise ModelRejected(
                        version, f"trained at {model.trained_at}, older than {self.max_age_s} s"
                    )
            except ModelRejected as exc:
                self._refused.add(version)
                log.warning(
                    "model refused; keeping the current one",
                    extra={
                        "fields": {"version": version, "reason": exc.reason, "kept_version": self.version}
                    },
                )
                continue
            self.model = model
            log.info("model loaded", extra={"fields": {"version": version, "trained_at": model.trained_at}})
            return model
        return None

    def active(self, now: float) -> RegimeModel | None:
        """The model to use now: None when there is none or it is older than `max_age_s`."""
        model = self.model
        if model is None:
            return None
        if _too_old(model, self.max_age_s, now):
            if self._expired_logged != model.version:
                self._expired_logged = model.version
                log.warning(
                    "model expired; using config gamma/kappa",
                    extra={"fields": {"version": model.version, "max_age_s": self.max_age_s}},
                )
            return None
        return model
