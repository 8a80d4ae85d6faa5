"""The model registry: versions, validation order (hash first), features, age, and hot reload."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from ml.features import FEATURE_NAMES
from ml.inference import RegimeModel, RegimeParamsArtifact
from ml.registry import (
    METADATA_FILE,
    PARAMS_FILE,
    ModelRejected,
    RegistryWatcher,
    TrainingInfo,
    list_versions,
    load_latest,
    load_version,
    publish,
    read_metadata,
)

NOW = 1_700_000_000.0
DAY = 86_400.0


def artifact(seed: int = 0, names: tuple[str, ...] = FEATURE_NAMES) -> RegimeParamsArtifact:
    """A small valid mixture built by hand (no scikit-learn needed)."""
    rng = np.random.default_rng(seed)
    d = len(names)
    chol = np.stack([np.triu(rng.normal(0.0, 0.1, (d, d)), 1) + np.eye(d) * s for s in (1.0, 0.5, 2.0)])
    return RegimeParamsArtifact(
        feature_names=names,
        scaler_mean=rng.normal(size=d),
        scaler_scale=rng.uniform(0.5, 2.0, d),
        weights=np.array([0.5, 0.3, 0.2]),
        means=rng.normal(size=(3, d)),
        precisions_cholesky=chol,
        covariance_type="full",
        labels=("trending", "ranging", "volatile"),
    )


def info(trained_at: float = NOW) -> TrainingInfo:
    return TrainingInfo(
        trained_at=trained_at,
        data_since_ts_ns=int((trained_at - DAY) * 1e9),
        data_until_ts_ns=int(trained_at * 1e9),
        metrics={"n_rows": 86_400.0, "bic_3": -1234.5},
        sklearn_version="1.9.1",
        extra={"symbol": "BTC_USDT_Perp"},
    )


def tamper(model_dir: Path, version: int) -> None:
    path = model_dir / f"v{version:06d}" / PARAMS_FILE
    data = json.loads(path.read_bytes())
    data["weights"] = [0.2, 0.3, 0.5]  # still a valid artifact: only the hash can tell
    path.write_text(json.dumps(data))


def test_publish_numbers_versions_and_load_latest_takes_the_newest(tmp_path: Path) -> None:
    assert list_versions(tmp_path / "missing") == []
    assert load_latest(tmp_path / "missing", max_age_s=DAY, now=NOW) is None
    assert publish(tmp_path, artifact(1), info()) == 1
    assert publish(tmp_path, artifact(2), info(NOW + 10)) == 2
    assert list_versions(tmp_path) == [1, 2]
    model = load_latest(tmp_path, max_age_s=DAY, now=NOW + 20)
    assert model is not None and model.version == 2 and model.trained_at == NOW + 10
    x = np.linspace(-1, 1, len(FEATURE_NAMES))
    expected = RegimeModel.from_artifact(artifact(2)).predict_proba(x)
    np.testing.assert_array_equal(model.predict_proba(x), expected)


def test_metadata_records_the_training_and_the_content_hash(tmp_path: Path) -> None:
    publish(tmp_path, artifact(), info())
    folder = tmp_path / "v000001"
    assert sorted(p.name for p in folder.iterdir()) == [METADATA_FILE, PARAMS_FILE]
    meta = json.loads((folder / METADATA_FILE).read_text())
    for key in ("version", "trained_at", "data_since_ts_ns", "data_until_ts_ns", "feature_names", "metrics"):
        assert key in meta
    assert meta["sklearn_version"] == "1.9.1" and meta["feature_names"] == list(FEATURE_NAMES)
    assert meta["content_sha256"] == hashlib.sha256((folder / PARAMS_FILE).read_bytes()).hexdigest()
    assert read_metadata(tmp_path, 1).metrics["bic_3"] == -1234.5
    json.loads((folder / PARAMS_FILE).read_text())  # plain JSON data, never a pickle


def test_a_tampered_artifact_is_refused_and_the_previous_version_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publish(tmp_path, artifact(1), info())
    publish(tmp_path, artifact(2), info())
    tamper(tmp_path, 2)
    with pytest.raises(ModelRejected, match="content hash"):
        load_version(tmp_path, 2)
    with caplog.at_level(logging.WARNING, logger="ml.registry"):
        model = load_latest(tmp_path, max_age_s=DAY, now=NOW)
    assert model is not None and model.version == 1
    assert any("content hash" in r.fields["reason"] for r in caplog.records)  # type: ignore[attr-defined]


def test_the_hash_is_checked_before_the_params_are_parsed(tmp_path: Path) -> None:
    publish(tmp_path, artifact(), info())
    (tmp_path / "v000001" / PARAMS_FILE).write_bytes(b"\x80\x04not json, maybe a pickle")
    with pytest.raises(ModelRejected, match="content hash"):
        load_version(tmp_path, 1)


def test_a_feature_mismatch_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    publish(tmp_path, artifact(1), info())
    other = (*FEATURE_NAMES[:-1], "funding_rate")
    publish(tmp_path, artifact(2, names=other), info())
    with pytest.raises(ModelRejected, match="do not match"):
        load_version(tmp_path, 2)
    with caplog.at_level(logging.WARNING, logger="ml.registry"):
        model = load_latest(tmp_path, max_age_s=DAY, now=NOW)
    assert model is not None and model.version == 1
    assert any("do not match" in r.fields["reason"] for r in caplog.records)  # type: ignore[attr-defined]
    reordered = load_latest(tmp_path, feature_names=other, max_age_s=DAY, now=NOW)
    assert reordered is not None and reordered.version == 2


def test_an_over_age_model_gives_none_not_an_older_one(tmp_path: Path) -> None:
    publish(tmp_path, artifact(1), info(NOW - 10 * DAY))
    publish(tmp_path, artifact(2), info(NOW - 4 * DAY))
    assert load_latest(tmp_path, max_age_s=3 * DAY, now=NOW) is None
    model = load_latest(tmp_path, max_age_s=5 * DAY, now=NOW)
    assert model is not None and model.version == 2


def test_staging_directories_and_strays_are_not_versions(tmp_path: Path) -> None:
    (tmp_path / ".publish-abc").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "v000009").write_text("a file, not a version")
    assert list_versions(tmp_path) == []
    (tmp_path / "v000003").mkdir()  # empty: refused, not fatal
    assert load_latest(tmp_path, max_age_s=DAY, now=NOW) is None
    assert publish(tmp_path, artifact(), info()) == 4


def test_concurrent_publishers_get_distinct_versions(tmp_path: Path) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        version = publish(tmp_path, artifact(seed), info())
        with lock:
            results.append(version)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, 9)) == list_versions(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    for version in results:
        load_version(tmp_path, version)  # each folder is complete and consistent


def test_watcher_hot_reloads_and_keeps_the_old_model_when_a_new_one_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = RegistryWatcher(tmp_path, max_age_s=DAY, poll_interval_s=10.0)
    assert watcher.poll(NOW) is None and watcher.active(NOW) is None
    publish(tmp_path, artifact(1), info())
    assert watcher.poll(NOW + 5) is None  # scans at most every poll_interval_s
    first = watcher.poll(NOW + 10)
    assert first is not None and first.version == 1 and watcher.active(NOW + 10) is first
    assert watcher.poll(NOW + 20) is None  # nothing newer

    publish(tmp_path, artifact(2), info(NOW + 25))
    second = watcher.poll(NOW + 30)
    assert second is not None and second.version == 2 and watcher.version == 2

    publish(tmp_path, artifact(3), info(NOW + 35))
    tamper(tmp_path, 3)
    publish(tmp_path, artifact(4, names=(*FEATURE_NAMES[:-1], "other")), info(NOW + 35))
    with caplog.at_level(logging.WARNING, logger="ml.registry"):
        assert watcher.poll(NOW + 40) is None
        assert watcher.poll(NOW + 50) is None
    refused = [r for r in caplog.records if r.getMessage().startswith("model refused")]
    assert sorted(r.fields["version"] for r in refused) == [3, 4]  # type: ignore[attr-defined]  # once each
    assert all(r.fields["kept_version"] == 2 for r in refused)  # type: ignore[attr-defined]
    assert watcher.active(NOW + 50) is second

    publish(tmp_path, artifact(5), info(NOW + 55))
    latest = watcher.poll(NOW + 60)
    assert latest is not None and latest.version == 5


def test_watcher_stops_using_an_expired_model_and_refuses_a_stale_new_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publish(tmp_path, artifact(1), info(NOW))
    watcher = RegistryWatcher(tmp_path, max_age_s=DAY, poll_interval_s=0.0)
    model = watcher.poll(NOW + 1)
    assert model is not None
    assert watcher.active(NOW + DAY) is model
    with caplog.at_level(logging.WARNING, logger="ml.registry"):
        assert watcher.active(NOW + DAY + 1) is None  # falls back to config gamma/kappa
        assert watcher.active(NOW + DAY + 2) is None
    assert [r.getMessage() for r in caplog.records].count("model expired; using config gamma/kappa") == 1

    publish(tmp_path, artifact(2), info(NOW - DAY))  # newer version number, stale training
    assert watcher.poll(NOW + DAY + 3) is None
    assert watcher.version == 1
