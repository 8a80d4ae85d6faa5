"""Optimal market-making quotes: Avellaneda-Stoikov (2008) and Gueant-Lehalle-Fernandez-Tapia (2013).

A model is built for one gamma (risk aversion) and kappa (order-book liquidity) and computes the terms
that depend on them alone once; its methods are the papers' formulas in the mid `s`, inventory `q`,
volatility `sigma` and time left `tau`. Unit-agnostic: the Monte Carlo (`ml.as_paper`) uses price units
(s=100, sigma=2 per unit time); the engine uses relative units on every book event - s = 1, sigma the
volatility of log returns per sqrt(second), tau in seconds, spreads as fractions of mid, q in units of
order size - so the default kappa=1000 at gamma=1 gives a base spread of (2/1)*ln(1.001) ~= 0.2% of
mid. Compiled by mypyc: the engine's calls are native method calls on float arguments.
"""

from __future__ import annotations

import math

__all__ = ["AvellanedaStoikov", "Glft", "QuotingModel"]


class QuotingModel:
    """Reservation price and total spread for given gamma and kappa."""

    def __init__(self, gamma: float, kappa: float) -> None:
        self.gamma = gamma
        self.kappa = kappa

    def reservation_price(self, s: float, q: float, sigma: float, tau: float) -> float:
        """Where the quotes centre for inventory `q`."""
        raise NotImplementedError

    def spread(self, sigma: float, tau: float) -> float:
        """Total spread, ask minus bid."""
        raise NotImplementedError

    def quotes(self, s: float, q: float, sigma: float, tau: float) -> tuple[float, float]:
        """Bid and ask: the reservation price -/+ half the spread."""
        r = self.reservation_price(s, q, sigma, tau)
        half = 0.5 * self.spread(sigma, tau)
        return r - half, r + half


class AvellanedaStoikov(QuotingModel):
    """Avellaneda and Stoikov (2008), finite horizon T: tau = T - t."""

    def __init__(self, gamma: float, kappa: float) -> None:
        super().__init__(gamma, kappa)
        self._arrival_spread = (2.0 / gamma) * math.log1p(gamma / kappa)

    def reservation_price(self, s: float, q: float, sigma: float, tau: float) -> float:
        """Eq. (29): r = s - q*gamma*sigma^2*(T-t); long inventory (q > 0) lowers it."""
        return s - q * self.gamma * sigma * sigma * tau

    def spread(self, sigma: float, tau: float) -> float:
        """Eq. (30): delta = gamma*sigma^2*(T-t) + (2/gamma)*ln(1 + gamma/kappa)."""
        return self.gamma * sigma * sigma * tau + self._arrival_spread


class Glft(QuotingModel):
    """Gueant, Lehalle and Fernandez-Tapia (2013), infinite horizon (tau is ignored), with fill
    intensity A*exp(-kappa*delta): the closed form of Gueant (2017), eq. 4.6."""

    def __init__(self, gamma: float, kappa: float, intensity_a: float) -> None:
        super().__init__(gamma, kappa)
        self.intensity_a = intensity_a
        growth = math.exp((1.0 + kappa / gamma) * math.log1p(gamma / kappa))
        self._skew_per_sigma = math.sqrt(gamma / (2.0 * kappa * intensity_a) * growth)
        self._base_half_spread = math.log1p(gamma / kappa) / gamma

    def skew(self, sigma: float) -> float:
        """Shift of the quote centre per unit of inventory:
        omega = sqrt(sigma^2*gamma/(2*kappa*A) * (1+gamma/kappa)^(1+kappa/gamma))."""
        return sigma * self._skew_per_sigma

    def reservation_price(self, s: float, q: float, sigma: float, tau: float) -> float:
        """The quote centre s - omega*q."""
        return s - self.skew(sigma) * q

    def spread(self, sigma: float, tau: float) -> float:
        """Twice the half spread (1/gamma)*ln(1+gamma/kappa) + omega/2."""
        return 2.0 * (self._base_half_spread + 0.5 * self.skew(sigma))
