"""Optimal market-making quotes: Avellaneda-Stoikov (2008) and Gueant-Lehalle-Fernandez-Tapia (2013).

Every function is unit-agnostic and accepts numpy arrays as well as floats (vectorised over paths):
the Monte Carlo calls them in price units (s=100, sigma=2 per unit time); the bot calls them in
relative units - mid s = 1, sigma the volatility of log returns per sqrt(second), tau in seconds,
spreads as fractions of mid, inventory q in units of order size - so the default kappa=1000 at
gamma=1 gives a base spread of (2/1)*ln(1.001) ~= 0.2% of mid.
"""

from __future__ import annotations

import math
from typing import TypeVar, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "glft_half_spread",
    "glft_skew",
    "optimal_spread",
    "quotes",
    "reservation_price",
]

FloatArray = npt.NDArray[np.float64]
Num = TypeVar("Num", float, FloatArray)
Vec = float | FloatArray  # any mix of scalars and arrays broadcasts to an array


@overload
def reservation_price(s: float, q: float, gamma: float, sigma: float, tau: float) -> float: ...  # type: ignore[overload-overlap]
@overload
def reservation_price(s: Vec, q: Vec, gamma: float, sigma: Vec, tau: Vec) -> FloatArray: ...
def reservation_price(s: Vec, q: Vec, gamma: float, sigma: Vec, tau: Vec) -> Vec:
    """A-S eq. (29): r = s - q*gamma*sigma^2*(T-t); long inventory (q > 0) lowers it."""
    return s - q * gamma * sigma * sigma * tau


@overload
def optimal_spread(gamma: float, sigma: float, tau: float, kappa: float) -> float: ...  # type: ignore[overload-overlap]
@overload
def optimal_spread(gamma: float, sigma: Vec, tau: Vec, kappa: float) -> FloatArray: ...
def optimal_spread(gamma: float, sigma: Vec, tau: Vec, kappa: float) -> Vec:
    """A-S eq. (30): total spread delta = gamma*sigma^2*(T-t) + (2/gamma)*ln(1 + gamma/kappa)."""
    return gamma * sigma * sigma * tau + (2.0 / gamma) * math.log1p(gamma / kappa)


@overload
def quotes(  # type: ignore[overload-overlap]
    s: float, q: float, gamma: float, sigma: float, tau: float, kappa: float
) -> tuple[float, float]: ...
@overload
def quotes(
    s: Vec, q: Vec, gamma: float, sigma: Vec, tau: Vec, kappa: float
) -> tuple[FloatArray, FloatArray]: ...
def quotes(s: Vec, q: Vec, gamma: float, sigma: Vec, tau: Vec, kappa: float) -> tuple[Vec, Vec]:
    """A-S bid and ask: r -/+ delta/2."""
    r = reservation_price(s, q, gamma, sigma, tau)
    half = 0.5 * optimal_spread(gamma, sigma, tau, kappa)
    return r - half, r + half


def _glft_omega(gamma: float, sigma: Num, kappa: float, intensity_a: float) -> Num:
    """GLFT inventory coefficient sqrt(sigma^2*gamma/(2*kappa*A) * (1+gamma/kappa)^(1+kappa/gamma))."""
    growth = math.exp((1.0 + kappa / gamma) * math.log1p(gamma / kappa))
    return sigma * math.sqrt(gamma / (2.0 * kappa * intensity_a) * growth)


def glft_half_spread(gamma: float, sigma: Num, kappa: float, intensity_a: float) -> Num:
    """GLFT infinite-horizon half spread: (1/gamma)*ln(1+gamma/kappa) + omega/2 (Gueant 2017, eq. 4.6)."""
    return math.log1p(gamma / kappa) / gamma + 0.5 * _glft_omega(gamma, sigma, kappa, intensity_a)


def glft_skew(gamma: float, sigma: Num, kappa: float, intensity_a: float) -> Num:
    """GLFT shift of the quote centre per unit of inventory: omega; the centre is s - omega*q."""
    return _glft_omega(gamma, sigma, kappa, intensity_a)
