"""Regime model, model registry, intensity estimation and research tools.

Importing the package loads numpy-only modules (the worker imports it). Training and research
modules - `ml.regime` (scikit-learn), `ml.backtest`, `ml.as_paper`, `ml.tuner` - are imported by
their own path and never from here.
"""

from ml.features import FEATURE_NAMES, LiveFeatures, compute_features, feature_matrix
from ml.inference import REGIME_LABELS, RegimeModel, RegimeParamsArtifact, blend
from ml.intensity import IntensityFit, estimate_intensity, trade_depths
from ml.registry import (
    ModelMetadata,
    ModelRejected,
    RegistryWatcher,
    TrainingInfo,
    load_latest,
    load_version,
    publish,
)

__all__ = [
    "FEATURE_NAMES",
    "REGIME_LABELS",
    "IntensityFit",
    "LiveFeatures",
    "ModelMetadata",
    "ModelRejected",
    "RegimeModel",
    "RegimeParamsArtifact",
    "RegistryWatcher",
    "TrainingInfo",
    "blend",
    "compute_features",
    "estimate_intensity",
    "feature_matrix",
    "load_latest",
    "load_version",
    "publish",
    "trade_depths",
]
