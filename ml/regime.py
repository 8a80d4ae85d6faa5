"""Training of the regime model: StandardScaler + GaussianMixture, labelled by component statistics.

Training code (scikit-learn); the worker never imports it. It serves a fitted model through
`export_params`, whose artifact `ml.inference.RegimeModel` evaluates with numpy alone.

Labelling rule (on the component means in scaled units, so every feature weighs alike):
- volatility score v_c = mean of the `vol_*` features; trend score t_c = mean of the `efficiency_*`
  and `autocorr_*` features and of minus the `choppiness_*` features;
- the component with the highest v_c is `volatile`;
- among the others, the highest t_c is `trending` and the lowest `ranging` (one left: `ranging`);
- any further component (k > 3) takes the label of the nearest of those anchors in (v, t), so
  several components may share a label and `regime_probabilities` adds their probabilities.
Index order never matters: permuting the components permutes the labels with them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from ml.features import FEATURE_NAMES
from ml.inference import COVARIANCE_TYPES, RegimeParamsArtifact

__all__ = [
    "BIC_CANDIDATES",
    "RegimeFit",
    "build_pipeline",
    "export_params",
    "fit_regime_model",
    "fit_steps",
    "label_components",
]

FloatArray = npt.NDArray[np.float64]

BIC_CANDIDATES = range(2, 7)
SKLEARN_VERSION: str = sklearn.__version__


def _mixture(n_components: int, covariance_type: str, random_state: int, **options: Any) -> GaussianMixture:
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}")
    settings: dict[str, Any] = {"max_iter": 200, "tol": 1e-3, "reg_covar": 1e-6}
    settings.update(options)
    return GaussianMixture(
        n_components=n_components, covariance_type=covariance_type, random_state=random_state, **settings
    )


def build_pipeline(
    n_components: int, *, covariance_type: str = "full", random_state: int = 0, **mixture_options: Any
) -> Pipeline:
    """The regime model: standardise the features, then a Gaussian mixture of `n_components`.

    `mixture_options` go to `GaussianMixture` (defaults max_iter=200, tol=1e-3, reg_covar=1e-6).
    """
    mixture = _mixture(n_components, covariance_type, random_state, **mixture_options)
    return Pipeline([("scaler", StandardScaler()), ("gmm", mixture)])


@dataclass(frozen=True, slots=True, eq=False)
class RegimeFit:
    """A fitted pipeline, its component labels and how it was chosen."""

    pipeline: Pipeline
    labels: tuple[str, ...]
    feature_names: tuple[str, ...]
    n_rows: int
    bic: dict[int, float] = field(default_factory=dict)  # per candidate k, on the selection sample
    converged: bool = True
    mean_log_likelihood: float = float("nan")

    @property
    def n_components(self) -> int:
        return len(self.labels)

    def metrics(self) -> dict[str, float]:
        """Numbers for the registry metadata."""
        out = {
            "n_rows": float(self.n_rows),
            "n_components": float(self.n_components),
            "mean_log_likelihood": self.mean_log_likelihood,
            "converged": float(self.converged),
        }
        out.update({f"bic_{k}": v for k, v in self.bic.items()})
        return out

    def artifact(self) -> RegimeParamsArtifact:
        return export_params(self.pipeline, feature_names=self.feature_names, labels=self.labels)


def _columns(names: Sequence[str], prefix: str) -> list[int]:
    return [i for i, name in enumerate(names) if name.startswith(prefix)]


def label_components(means: FloatArray, feature_names: Sequence[str] = FEATURE_NAMES) -> tuple[str, ...]:
    """Regime label of each component from its mean (scaled units), by the module's rule."""
    means = np.asarray(means, dtype=np.float64)
    vol = _columns(feature_names, "vol_")
    up = _columns(feature_names, "efficiency_") + _columns(feature_names, "autocorr_")
    down = _columns(feature_names, "choppiness_")
    if not vol or not (up or down):
        raise ValueError("labelling needs vol_* and efficiency_*/autocorr_*/choppiness_* features")
    v = means[:, vol].mean(axis=1)
    t = np.concatenate([means[:, up], -means[:, down]], axis=1).mean(axis=1)
    k = len(means)
    labels = [""] * k
    anchors: dict[str, int] = {"volatile": int(np.argmax(v))}
    rest = [c for c in range(k) if c != anchors["volatile"]]
    if len(rest) == 1:
        anchors["ranging"] = rest[0]
    elif rest:
        anchors["trending"] = max(rest, key=lambda c: (t[c], -c))
        anchors["ranging"] = min(rest, key=lambda c: (t[c], c))
    for name, c in anchors.items():
        labels[c] = name
    for c in range(k):
        if not labels[c]:
            nearest = min(anchors, key=lambda a: (v[c] - v[anchors[a]]) ** 2 + (t[c] - t[anchors[a]]) ** 2)
            labels[c] = nearest
    return tuple(labels)


def _matrix(features: Any, feature_names: Sequence[str]) -> FloatArray:
    """Rows with every feature finite, as float64; a DataFrame is reordered by `feature_names`."""
    if hasattr(features, "columns"):
        missing = set(feature_names) - set(features.columns)
        if missing:
            raise ValueError(f"features lack columns {sorted(missing)}")
        features = features[list(feature_names)].to_numpy()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(feature_names):
        raise ValueError(f"features must be (n, {len(feature_names)}), got {x.shape}")
    return np.ascontiguousarray(x[np.isfinite(x).all(axis=1)])


def fit_regime_model(
    features: Any,
    n_components: int | None = None,
    *,
    feature_names: Sequence[str] = FEATURE_NAMES,
    covariance_type: str = "full",
    candidates: Sequence[int] = BIC_CANDIDATES,
    selection_rows: int = 200_000,
    random_state: int = 0,
    blas_threads: int | None = 1,
    progress: Callable[[int], None] | None = None,
) -> RegimeFit:
    """Fit the regime pipeline on a feature matrix (rows with NaN, e.g. warm-up, are dropped).

    `n_components=None` picks k in `candidates` by the lowest BIC, each candidate fitted on a
    random sample of at most `selection_rows` rows; the chosen k is then fitted on every row.
    BLAS runs on `blas_threads` threads (None: the library default): the products here are
    (n x d) by (d x d) with d ~ 10, which extra threads do not speed up, and on a busy machine
    spinning OpenBLAS threads made a fit ten times slower.
    `progress` (e.g. `ml.progress.progress_bar`) is told the number of fits done, one per BIC candidate
    then the final one (`fit_steps` in all), and minus that number at the end.
    """
    step = progress or (lambda done: None)
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        try:
            fit = _fit(
                features, n_components, feature_names, covariance_type, candidates, selection_rows,
                random_state, step,
            )  # fmt: skip
        finally:
            step(-fit_steps(n_components, candidates))
    return fit


def fit_steps(n_components: int | None, candidates: Sequence[int] = BIC_CANDIDATES) -> int:
    """How many mixtures `fit_regime_model` fits: every BIC candidate, then the chosen k on every row."""
    return 1 if n_components is not None else len(candidates) + 1


def _fit(
    features: Any,
    n_components: int | None,
    feature_names: Sequence[str],
    covariance_type: str,
    candidates: Sequence[int],
    selection_rows: int,
    random_state: int,
    step: Callable[[int], None],
) -> RegimeFit:
    names = tuple(feature_names)
    x = _matrix(features, names)
    smallest = max(candidates) if n_components is None else n_components
    if len(x) < 10 * smallest:
        raise ValueError(f"{len(x)} complete rows are too few for {smallest} components")
    bic: dict[int, float] = {}
    warm_start: dict[str, Any] = {}
    if n_components is None:
        # Candidates see the sample scaled as the final pipeline will scale every row, so the best
        # candidate's parameters start the final fit (a few EM steps instead of a cold start).
        rng = np.random.default_rng(random_state)
        sample = x if len(x) <= selection_rows else x[rng.choice(len(x), selection_rows, replace=False)]
        z = StandardScaler().fit(x).transform(sample)
        fitted: dict[int, GaussianMixture] = {}
        for done, k in enumerate(candidates, start=1):
            fitted[k] = _mixture(k, covariance_type, random_state).fit(z)
            bic[k] = float(fitted[k].bic(z))
            step(done)
        n_components = min(bic, key=lambda k: (bic[k], k))
        best = fitted[n_components]
        warm_start = {
            "weights_init": best.weights_,
            "means_init": best.means_,
            "precisions_init": best.precisions_,
        }
    pipeline = build_pipeline(
        n_components, covariance_type=covariance_type, random_state=random_state, **warm_start
    )
    pipeline.fit(x)
    step(len(bic) + 1)
    gmm: GaussianMixture = pipeline[-1]
    return RegimeFit(
        pipeline=pipeline,
        labels=label_components(gmm.means_, names),
        feature_names=names,
        n_rows=len(x),
        bic=bic,
        converged=bool(gmm.converged_),
        mean_log_likelihood=float(gmm.lower_bound_),
    )


def export_params(
    pipeline: Pipeline,
    *,
    feature_names: Sequence[str] = FEATURE_NAMES,
    labels: Sequence[str] | None = None,
) -> RegimeParamsArtifact:
    """The fitted scaler and mixture as arrays (no pickle); labels by `label_components` if not given."""
    scaler, gmm = pipeline[0], pipeline[-1]
    if not isinstance(scaler, StandardScaler) or not isinstance(gmm, GaussianMixture):
        raise TypeError("expected Pipeline(StandardScaler, GaussianMixture)")
    d = len(feature_names)
    # What StandardScaler.transform does: subtract mean_ only with_mean, divide by scale_ only with_std.
    mean = np.asarray(scaler.mean_, dtype=np.float64) if scaler.with_mean else np.zeros(d)
    scale = np.asarray(scaler.scale_, dtype=np.float64) if scaler.with_std else np.ones(d)
    means = np.asarray(gmm.means_, dtype=np.float64)
    artifact = RegimeParamsArtifact(
        feature_names=tuple(feature_names),
        scaler_mean=mean.copy(),
        scaler_scale=scale.copy(),
        weights=np.asarray(gmm.weights_, dtype=np.float64).copy(),
        means=means.copy(),
        precisions_cholesky=np.asarray(gmm.precisions_cholesky_, dtype=np.float64).copy(),
        covariance_type=str(gmm.covariance_type),
        labels=tuple(labels) if labels is not None else label_components(means, feature_names),
    )
    artifact.validate()
    return artifact
