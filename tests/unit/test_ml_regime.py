"""The GMM regime model: separates known regimes, labels by statistics (not index), BIC selection."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from ml.features import FEATURE_NAMES, WARMUP_ROWS, compute_features
from ml.inference import REGIME_LABELS, RegimeModel
from ml.regime import build_pipeline, export_params, fit_regime_model, fit_steps, label_components

# regime: (noise sigma, drift, AR(1) coefficient of returns, relative spread, trades per second)
REGIMES = {
    "ranging": (1.0e-4, 0.0, -0.4, 1.0e-4, 2.0),
    "trending": (1.0e-4, 4.0e-5, 0.2, 1.5e-4, 4.0),
    "volatile": (5.0e-4, 0.0, 0.0, 4.0e-4, 8.0),
}
SEGMENT = 2_500


@pytest.fixture(autouse=True)
def _one_blas_thread() -> Iterator[None]:
    """Fits here are (n x 9) products; spare BLAS threads only spin on a busy machine."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def regime_market(order: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of a path through `order` (SEGMENT rows each), and the true regime of each feature row
    whose windows lie inside one segment ("" for rows straddling a switch)."""
    rng = np.random.default_rng(seed)
    returns, spread, intensity, truth = [], [], [], []
    for name in order:
        sigma, drift, phi, rel_spread, lam = REGIMES[name]
        eps = rng.normal(0.0, sigma, SEGMENT)
        out = np.empty(SEGMENT)
        prev = 0.0
        for i in range(SEGMENT):
            prev = phi * prev + eps[i]
            out[i] = prev
        returns.append(out + drift * rng.choice([-1.0, 1.0]))
        spread.append(rel_spread * rng.lognormal(0.0, 0.2, SEGMENT))
        intensity.append(rng.poisson(lam, SEGMENT).astype(float))
        truth += [""] * WARMUP_ROWS + [name] * (SEGMENT - WARMUP_ROWS)
    mid = 50_000.0 * np.exp(np.cumsum(np.concatenate(returns)))
    imbalance = np.clip(rng.normal(0.0, 0.3, len(mid)), -1, 1)
    features = compute_features(mid, np.concatenate(spread), imbalance, np.concatenate(intensity))
    return features, np.array(truth)


def accuracy(model: RegimeModel, features: np.ndarray, truth: np.ndarray) -> float:
    """Share of rows of known regime whose most probable label (components of a label summed) is right."""
    known = truth != ""
    predicted = np.array(REGIME_LABELS)[model.regime_matrix(features[known]).argmax(axis=1)]
    return float(np.mean(predicted == truth[known]))


@pytest.mark.parametrize(
    ("order", "seed"),
    [
        (["ranging", "trending", "volatile"] * 2, 1),
        (["volatile", "ranging", "trending"] * 2, 2),
        (["trending", "volatile", "ranging"] * 2, 3),
    ],
)
def test_gmm_separates_known_regimes_whatever_the_generation_order(order: list[str], seed: int) -> None:
    features, truth = regime_market(order, seed)
    fit = fit_regime_model(features, n_components=3)  # the NaN warm-up rows are dropped
    assert fit.n_rows == len(features) - WARMUP_ROWS
    assert sorted(fit.labels) == ["ranging", "trending", "volatile"]
    assert accuracy(RegimeModel.from_artifact(fit.artifact()), features, truth) > 0.9


def test_component_order_differs_between_runs_yet_labels_follow_statistics() -> None:
    # Fitted component order depends on the data order and seed; labels must not.
    orders = [list(p) * 2 for p in itertools.permutations(REGIMES)][:3]
    seen = set()
    for seed, order in enumerate(orders):
        features, truth = regime_market(order, seed + 10)
        fit = fit_regime_model(features, n_components=3, random_state=seed)
        seen.add(fit.labels)
        assert accuracy(RegimeModel.from_artifact(fit.artifact()), features, truth) > 0.9
    assert len(seen) > 1, "every run produced the same component order; the test proves nothing"


def test_label_components_is_permutation_equivariant() -> None:
    # Scaled means: volatile has the highest vol, trending the highest efficiency/autocorr, low chop.
    d = len(FEATURE_NAMES)
    means = np.zeros((3, d))
    idx = {name: FEATURE_NAMES.index(name) for name in FEATURE_NAMES}
    for name in ("vol_30", "vol_120", "vol_600"):
        means[:, idx[name]] = [-0.5, -0.4, 2.0]  # ranging, trending, volatile
    means[:, idx["efficiency_120"]] = [-1.0, 1.5, 0.1]
    means[:, idx["autocorr_120"]] = [-1.0, 1.0, 0.0]
    means[:, idx["choppiness_120"]] = [1.0, -1.5, 0.3]
    truth = ("ranging", "trending", "volatile")
    for perm in itertools.permutations(range(3)):
        labels = label_components(means[list(perm)])
        assert labels == tuple(truth[p] for p in perm)


def test_more_than_three_components_share_labels_and_add_probabilities() -> None:
    features, truth = regime_market(["ranging", "trending", "volatile"] * 2, 4)
    fit = fit_regime_model(features, n_components=5)
    assert len(fit.labels) == 5 and set(fit.labels) == {"ranging", "trending", "volatile"}
    model = RegimeModel.from_artifact(fit.artifact())
    probs = model.regime_probabilities(features[-1])
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-12)
    assert accuracy(model, features, truth) > 0.9


def test_two_components_are_volatile_and_ranging() -> None:
    means = np.zeros((2, len(FEATURE_NAMES)))
    means[:, 0] = [0.0, 3.0]
    assert label_components(means) == ("ranging", "volatile")


def test_bic_selects_the_number_of_gaussian_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 6.0, size=(4, len(FEATURE_NAMES)))
    x = np.concatenate([c + rng.normal(size=(1_000, len(FEATURE_NAMES))) for c in centres])
    steps: list[int] = []
    fit = fit_regime_model(x, n_components=None, progress=steps.append)
    assert steps == [1, 2, 3, 4, 5, 6, -6] and fit_steps(None) == 6  # the progress bar's counts
    assert sorted(fit.bic) == [2, 3, 4, 5, 6]
    assert fit.n_components == 4 == min(fit.bic, key=fit.bic.__getitem__)
    assert fit.metrics()["bic_4"] == fit.bic[4]


def test_a_dataframe_is_reordered_by_feature_names() -> None:
    features, _ = regime_market(["ranging", "volatile"], 5)
    frame = pd.DataFrame(features, columns=list(FEATURE_NAMES)).iloc[:, ::-1]
    a = fit_regime_model(frame, n_components=2).artifact()
    b = fit_regime_model(features, n_components=2).artifact()
    np.testing.assert_array_equal(a.means, b.means)
    with pytest.raises(ValueError, match="lack columns"):
        fit_regime_model(frame.drop(columns=["spread"]), n_components=2)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_export_params_holds_the_fitted_arrays(covariance_type: str) -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(0.0, 5.0, size=(3, len(FEATURE_NAMES)))
    x = np.concatenate([c + rng.normal(size=(200, len(FEATURE_NAMES))) for c in centres])
    pipeline = build_pipeline(3, covariance_type=covariance_type).fit(x)
    artifact = export_params(pipeline)
    np.testing.assert_array_equal(artifact.scaler_mean, pipeline[0].mean_)
    np.testing.assert_array_equal(artifact.scaler_scale, pipeline[0].scale_)
    np.testing.assert_array_equal(artifact.precisions_cholesky, pipeline[-1].precisions_cholesky_)
    assert artifact.covariance_type == covariance_type and artifact.feature_names == FEATURE_NAMES
    with pytest.raises(TypeError):
        export_params(build_pipeline(2)[:1])  # not a (scaler, mixture) pipeline
