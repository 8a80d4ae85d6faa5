"""Regime probabilities from a frozen GMM artifact, with numpy alone (the worker imports this module).

The artifact is data: the fitted scaler (mean, scale) and the mixture (weights, means, Cholesky
factors of the precisions, covariance type) plus one regime label per component. The posterior is
the one scikit-learn's `GaussianMixture.predict_proba` computes:

    log p(x | c) = -1/2 (d log 2pi + ||(x - mu_c) U_c||^2) + log det U_c     (precision = U_c U_c^T)
    p(c | x)     = exp(log w_c + log p(x | c) - logsumexp_j(log w_j + log p(x | j)))

with x the scaled features. `blend` turns regime probabilities into gamma and kappa.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bots.core.blend import GammaKappa, blend

__all__ = [
    "COVARIANCE_TYPES",
    "REGIME_LABELS",
    "GammaKappa",
    "RegimeModel",
    "RegimeParamsArtifact",
    "blend",
]

FloatArray = npt.NDArray[np.float64]

REGIME_LABELS: Final = ("trending", "ranging", "volatile")
COVARIANCE_TYPES: Final = ("full", "tied", "diag", "spherical")
ARTIFACT_FORMAT: Final = "mmfleet.regime-gmm/1"
_LOG_2PI: Final = math.log(2.0 * math.pi)


def _array(value: Any, name: str) -> FloatArray:
    out = np.array(value, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"artifact {name} has non-finite values")
    return out


@dataclass(frozen=True, slots=True, eq=False)
class RegimeParamsArtifact:
    """A fitted scaler + Gaussian mixture as plain arrays, with a regime label per component."""

    feature_names: tuple[str, ...]
    scaler_mean: FloatArray  # (d,)
    scaler_scale: FloatArray  # (d,)
    weights: FloatArray  # (k,)
    means: FloatArray  # (k, d), in scaled units
    precisions_cholesky: FloatArray  # full (k, d, d), tied (d, d), diag (k, d), spherical (k,)
    covariance_type: str
    labels: tuple[str, ...]  # (k,)

    @property
    def n_components(self) -> int:
        return len(self.weights)

    def validate(self) -> None:
        """Raise ValueError unless shapes, values and labels are consistent."""
        d, k = len(self.feature_names), len(self.weights)
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"unknown covariance type {self.covariance_type!r}")
        expected_chol = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}
        shapes = {
            "scaler_mean": (self.scaler_mean.shape, (d,)),
            "scaler_scale": (self.scaler_scale.shape, (d,)),
            "means": (self.means.shape, (k, d)),
            "precisions_cholesky": (self.precisions_cholesky.shape, expected_chol[self.covariance_type]),
        }
        for name, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"artifact {name} has shape {got}, expected {want}")
        if k < 1 or d < 1 or len(set(self.feature_names)) != d:
            raise ValueError("artifact needs components and distinct feature names")
        for name in ("scaler_mean", "scaler_scale", "weights", "means", "precisions_cholesky"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"artifact {name} has non-finite values")
        if (self.scaler_scale <= 0).any() or (self.weights <= 0).any():
            raise ValueError("artifact scales and weights must be positive")
        if not math.isclose(float(self.weights.sum()), 1.0, abs_tol=1e-6):
            raise ValueError(f"artifact weights sum to {self.weights.sum()}, not 1")
        if len(self.labels) != k or not set(self.labels) <= set(REGIME_LABELS):
            raise ValueError(f"artifact labels {self.labels} must be {k} of {REGIME_LABELS}")
        chol = self.precisions_cholesky
        diag = np.diagonal(chol, axis1=-2, axis2=-1) if self.covariance_type in ("full", "tied") else chol
        if (diag <= 0).any():
            raise ValueError("artifact precision Cholesky factors must have a positive diagonal")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types; floats round-trip exactly through `json`."""
        return {
            "format": ARTIFACT_FORMAT,
            "feature_names": list(self.feature_names),
            "covariance_type": self.covariance_type,
            "labels": list(self.labels),
            "scaler_mean": self.scaler_mean.tolist(),
            "scaler_scale": self.scaler_scale.tolist(),
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "precisions_cholesky": self.precisions_cholesky.tolist(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegimeParamsArtifact:
        """Inverse of `to_json`; raises ValueError on anything malformed."""
        if data.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"artifact format {data.get('format')!r}, expected {ARTIFACT_FORMAT!r}")
        try:
            artifact = cls(
                feature_names=tuple(str(n) for n in data["feature_names"]),
                scaler_mean=_array(data["scaler_mean"], "scaler_mean"),
                scaler_scale=_array(data["scaler_scale"], "scaler_scale"),
                weights=_array(data["weights"], "weights"),
                means=_array(data["means"], "means"),
                precisions_cholesky=_array(data["precisions_cholesky"], "precisions_cholesky"),
                covariance_type=str(data["covariance_type"]),
                labels=tuple(str(label) for label in data["labels"]),
            )
        except (KeyError, TypeError, OverflowError) as exc:  # OverflowError: an integer beyond a float
            raise ValueError(f"artifact malformed: {exc!r}") from exc
        artifact.validate()
        return artifact


class RegimeModel:
    """The GMM posterior over regimes, numpy only. `version`/`trained_at` come from the registry."""

    __slots__ = (
        "_chol",
        "_cov_type",
        "_log_det",
        "_log_weights",
        "_mean",
        "_means",
        "_scale",
        "_slots",
        "artifact",
        "trained_at",
        "version",
    )

    def __init__(
        self, artifact: RegimeParamsArtifact, *, version: int | None = None, trained_at: float | None = None
    ) -> None:
        artifact.validate()
        self.artifact = artifact
        self.version = version
        self.trained_at = trained_at
        self._mean = artifact.scaler_mean
        self._scale = artifact.scaler_scale
        self._means = artifact.means
        self._chol = artifact.precisions_cholesky
        self._cov_type = artifact.covariance_type
        self._log_weights = np.log(artifact.weights)
        d = len(artifact.feature_names)
        chol = self._chol
        if self._cov_type == "full":
            self._log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        elif self._cov_type == "tied":
            self._log_det = np.full(artifact.n_components, np.log(np.diagonal(chol)).sum())
        elif self._cov_type == "diag":
            self._log_det = np.log(chol).sum(axis=1)
        else:
            self._log_det = d * np.log(chol)
        self._slots = [[i for i, lab in enumerate(artifact.labels) if lab == name] for name in REGIME_LABELS]

    @classmethod
    def from_artifact(
        cls, artifact: RegimeParamsArtifact, *, version: int | None = None, trained_at: float | None = None
    ) -> RegimeModel:
        return cls(artifact, version=version, trained_at=trained_at)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.artifact.feature_names

    @property
    def labels(self) -> tuple[str, ...]:
        return self.artifact.labels

    def _log_gaussian(self, z: FloatArray) -> FloatArray:
        """log N(z | mu_c, Sigma_c) for every row of scaled features z and component c: (n, k)."""
        n, d = z.shape
        k = len(self._means)
        sq = np.empty((n, k))
        chol = self._chol
        for c in range(k):
            diff = z - self._means[c]
            if self._cov_type == "full":
                y = diff @ chol[c]
            elif self._cov_type == "tied":
                y = diff @ chol
            else:  # diag (d,) or spherical scalar factors
                y = diff * chol[c]
            sq[:, c] = np.einsum("ij,ij->i", y, y)
        out: FloatArray = -0.5 * (d * _LOG_2PI + sq) + self._log_det
        return out

    def predict_proba(self, X: Sequence[Sequence[float]] | FloatArray) -> FloatArray:
        """Posterior component probabilities, shape (n, k); a 1-D input is one row."""
        x = np.asarray(X, dtype=np.float64)
        if x.ndim == 1:
            x = x[np.newaxis, :]
        if x.ndim != 2 or x.shape[1] != len(self._mean):
            raise ValueError(f"expected rows of {len(self._mean)} features, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("features must be finite (is the warm-up complete?)")
        weighted = self._log_gaussian((x - self._mean) / self._scale) + self._log_weights
        top = weighted.max(axis=1, keepdims=True)
        log_norm = top + np.log(np.exp(weighted - top).sum(axis=1, keepdims=True))
        proba: FloatArray = np.exp(weighted - log_norm)
        return proba

    def regime_matrix(self, X: Sequence[Sequence[float]] | FloatArray) -> FloatArray:
        """Regime probabilities of many rows, shape (n, 3), columns in `REGIME_LABELS` order."""
        proba = self.predict_proba(X)
        out = np.zeros((len(proba), len(REGIME_LABELS)))
        for j, idx in enumerate(self._slots):
            if idx:
                out[:, j] = proba[:, idx].sum(axis=1)
        return out

    def regime_probabilities(self, x: Sequence[float] | FloatArray) -> dict[str, float]:
        """Probability of each regime label for one feature vector (components with a label add up)."""
        row = self.regime_matrix(np.asarray(x, dtype=np.float64).reshape(1, -1))[0]
        return {name: float(p) for name, p in zip(REGIME_LABELS, row, strict=True)}
