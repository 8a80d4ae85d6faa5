"""The numpy posterior equals sklearn's predict_proba; per-label sums; the artifact; blend maths."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from ml.features import FEATURE_NAMES
from ml.inference import REGIME_LABELS, RegimeModel, RegimeParamsArtifact, blend
from ml.regime import build_pipeline, export_params
from settings.models import MLSettings, RegimeParams

D = len(FEATURE_NAMES)


@pytest.fixture(autouse=True)
def _one_blas_thread() -> Iterator[None]:
    """Fits here are (n x 9) products; spare BLAS threads only spin on a busy machine."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def clustered(seed: int, n_per: int = 400, k: int = 4) -> np.ndarray:
    """Correlated Gaussian clusters on very different scales (the scaler matters)."""
    rng = np.random.default_rng(seed)
    scales = np.logspace(-5, 1, D)
    blocks = []
    for _ in range(k):
        mix = rng.normal(size=(D, D)) * 0.5 + np.eye(D)
        blocks.append(rng.normal(0.0, 3.0, D) + rng.normal(size=(n_per, D)) @ mix)
    return np.concatenate(blocks) * scales + scales * 10


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("n_components", [2, 4])
def test_numpy_posterior_equals_sklearn_predict_proba(covariance_type: str, n_components: int) -> None:
    x = clustered(seed=n_components)
    pipeline = build_pipeline(n_components, covariance_type=covariance_type).fit(x)
    model = RegimeModel.from_artifact(export_params(pipeline))
    # Training rows, far outliers (posterior ~ 0/1) and points between clusters.
    rng = np.random.default_rng(9)
    probe = np.concatenate([x, x[:50] * 30.0, (x[:100] + x[-100:]) / 2, x[:20] + rng.normal(size=(20, D))])
    expected = pipeline.predict_proba(probe)
    got = model.predict_proba(probe)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-9)  # log-probs of outliers ~ -1e4
    np.testing.assert_allclose(model.predict_proba(probe[7]), expected[7:8], rtol=0, atol=1e-9)


def artifact_with(labels: tuple[str, ...]) -> RegimeParamsArtifact:
    pipeline = build_pipeline(len(labels)).fit(clustered(seed=1, k=len(labels)))
    return export_params(pipeline, labels=labels)


def test_regime_probabilities_sum_components_sharing_a_label() -> None:
    model = RegimeModel.from_artifact(artifact_with(("volatile", "ranging", "volatile", "trending")))
    x = clustered(seed=1)[123]
    proba = model.predict_proba(x)[0]
    probs = model.regime_probabilities(x)
    assert list(probs) == list(REGIME_LABELS)
    assert probs["volatile"] == pytest.approx(proba[0] + proba[2], abs=1e-15)
    assert probs["ranging"] == pytest.approx(proba[1], abs=1e-15)
    assert probs["trending"] == pytest.approx(proba[3], abs=1e-15)


def test_a_label_without_components_has_probability_zero() -> None:
    model = RegimeModel.from_artifact(artifact_with(("volatile", "ranging")))
    probs = model.regime_probabilities(clustered(seed=1, k=2)[5])
    assert probs["trending"] == 0.0
    assert probs["volatile"] + probs["ranging"] == pytest.approx(1.0)


def test_non_finite_or_misshapen_features_are_refused() -> None:
    model = RegimeModel.from_artifact(artifact_with(("volatile", "ranging")))
    with pytest.raises(ValueError, match="finite"):
        model.regime_probabilities(np.full(D, np.nan))
    with pytest.raises(ValueError, match="features"):
        model.predict_proba(np.zeros((3, D + 1)))


def test_artifact_json_round_trip_is_exact() -> None:
    artifact = artifact_with(("trending", "ranging", "volatile"))
    text = json.dumps(artifact.to_json(), allow_nan=False)
    back = RegimeParamsArtifact.from_json(json.loads(text))
    for name in ("scaler_mean", "scaler_scale", "weights", "means", "precisions_cholesky"):
        np.testing.assert_array_equal(getattr(back, name), getattr(artifact, name))
    assert back.labels == artifact.labels and back.feature_names == artifact.feature_names


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": ["trending", "ranging", "calm"]}, "labels"),
        ({"weights": [0.5, 0.5, 0.5]}, "sum"),
        ({"covariance_type": "banded"}, "covariance type"),
        ({"means": [[0.0] * D] * 2}, "shape"),
        ({"format": "pickle"}, "format"),
        ({"scaler_scale": [0.0] * D}, "positive"),
    ],
)
def test_malformed_artifacts_are_refused(change: dict[str, object], message: str) -> None:
    data = artifact_with(("trending", "ranging", "volatile")).to_json()
    data.update(change)
    with pytest.raises(ValueError, match=message):
        RegimeParamsArtifact.from_json(data)


PARAMS = {
    "trending": RegimeParams(gamma=2.0, kappa=500.0),
    "ranging": RegimeParams(gamma=0.5, kappa=1500.0),
    "volatile": RegimeParams(gamma=3.0, kappa=300.0),
}


@pytest.mark.parametrize(
    ("probs", "gamma", "kappa"),
    [
        ({"trending": 1.0, "ranging": 0.0, "volatile": 0.0}, 2.0, 500.0),
        ({"trending": 0.5, "ranging": 0.5, "volatile": 0.0}, 1.25, 1000.0),
        ({"trending": 0.2, "ranging": 0.3, "volatile": 0.5}, 0.4 + 0.15 + 1.5, 100.0 + 450.0 + 150.0),
        ({"trending": 0.0, "ranging": 0.0, "volatile": 0.0}, 1.0, 1000.0),  # nothing usable: defaults
        ({"trending": math.nan, "ranging": 1.0}, 1.0, 1000.0),
    ],
)
def test_blend_is_the_probability_weighted_mean(probs: dict[str, float], gamma: float, kappa: float) -> None:
    got = blend(probs, PARAMS, default_gamma=1.0, default_kappa=1000.0)
    assert got == pytest.approx((gamma, kappa), rel=1e-12)


def test_blend_uses_the_defaults_for_a_regime_without_params() -> None:
    params = {"ranging": PARAMS["ranging"]}
    got = blend({"trending": 0.5, "ranging": 0.5}, params, default_gamma=1.0, default_kappa=1000.0)
    assert got == pytest.approx((0.75, 1250.0))


def test_blend_accepts_the_settings_regime_params() -> None:
    ml = MLSettings()
    gamma, kappa = blend(
        {"trending": 1 / 3, "ranging": 1 / 3, "volatile": 1 / 3},
        ml.regime_params,
        default_gamma=1.0,
        default_kappa=1000.0,
    )
    assert gamma == pytest.approx((2.0 + 0.5 + 3.0) / 3)
    assert kappa == pytest.approx((500.0 + 1500.0 + 300.0) / 3)
