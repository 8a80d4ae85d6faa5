"""Regime blending: the gamma and kappa the bot quotes with, given the regime model's probabilities."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

__all__ = ["GammaKappa", "blend"]


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
