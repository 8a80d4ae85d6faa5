"""Regime blending: the gamma and kappa the bot quotes with, given the regime model's probabilities.

A GMM's posterior sits at 0 or 1 nearly always (its components are far apart in feature space), so a
probability-weighted mean of raw posteriors makes gamma jump between the regimes' values whenever the
features cross a boundary. The core therefore blends a posterior smoothed over time (`smooth`: an
exponential moving average in event time, time constant `ml.regime_smoothing_s`): a regime switch
moves gamma and kappa over several records, and a flicker across a boundary barely moves them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

__all__ = ["GammaKappa", "blend", "smooth"]


class GammaKappa(Protocol):
    """Per-regime parameters (`settings.models.RegimeParams` satisfies this); kappa None: the bot's."""

    @property
    def gamma(self) -> float: ...
    @property
    def kappa(self) -> float | None: ...


def blend(
    probabilities: Mapping[str, float],
    regime_params: Mapping[str, GammaKappa],
    *,
    default_gamma: float,
    default_kappa: float,
) -> tuple[float, float]:
    """Probability-weighted means of gamma and kappa across regimes.

    A regime without params contributes the defaults (the bot's gamma/kappa: configured, or kappa
    fitted when auto), one without a kappa the default kappa; unusable
    probabilities (negative, non-finite, summing to 0) give the defaults outright.
    """
    total = gamma = kappa = 0.0
    for regime, p in probabilities.items():
        if not math.isfinite(p) or p < 0.0:
            return default_gamma, default_kappa
        params = regime_params.get(regime)
        total += p
        if params is None:
            gamma += p * default_gamma
            kappa += p * default_kappa
        else:
            gamma += p * params.gamma
            regime_kappa = params.kappa
            kappa += p * (regime_kappa if regime_kappa is not None else default_kappa)
    if total <= 0.0:
        return default_gamma, default_kappa
    return gamma / total, kappa / total


def smooth(previous: Mapping[str, float] | None, raw: Mapping[str, float], weight: float) -> dict[str, float]:
    """`previous` moved `weight` (in [0, 1]: 1 - exp(-dt/tau)) of the way to `raw`, regime by regime.

    Starts afresh from `raw` when there is no previous posterior, the regimes differ (a model with
    other labels) or `raw` holds an unusable probability (which `blend` then refuses).
    """
    fresh = dict(raw)
    if previous is None or previous.keys() != fresh.keys():
        return fresh
    for p in fresh.values():
        if not math.isfinite(p) or p < 0.0:
            return fresh
    return {regime: p + weight * (fresh[regime] - p) for regime, p in previous.items()}
