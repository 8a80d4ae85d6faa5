"""Regime blending: the gamma and kappa the bot quotes with, given the regime model's probabilities."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

__all__ = ["GammaKappa", "blend"]


class GammaKappa(Protocol):
    """Per-regime parameters (`settings.models.RegimeParams` satisfies this)."""

    @property
    def gamma(self) -> float: ...
    @property
    def kappa(self) -> float: ...


def blend(
    probabilities: Mapping[str, float],
    regime_params: Mapping[str, GammaKappa],
    *,
    default_gamma: float,
    default_kappa: float,
) -> tuple[float, float]:
    """Probability-weighted means of gamma and kappa across regimes.

    A regime without params contributes the defaults (the bot's configured gamma/kappa); unusable
    probabilities (negative, non-finite, summing to 0) give the defaults outright.
    """
    total = gamma = kappa = 0.0
    for regime, p in probabilities.items():
        if not math.isfinite(p) or p < 0.0:
            return default_gamma, default_kappa
        params = regime_params.get(regime)
        total += p
        gamma += p * (params.gamma if params is not None else default_gamma)
        kappa += p * (params.kappa if params is not None else default_kappa)
    if total <= 0.0:
        return default_gamma, default_kappa
    return gamma / total, kappa / total
