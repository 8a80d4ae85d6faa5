"""The A-S and GLFT formulas against hand-computed values, and their vectorised forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bots.engine import avellaneda
from bots.engine.avellaneda import FloatArray


@pytest.mark.parametrize(
    ("s", "q", "gamma", "sigma", "tau", "expected"),
    [
        (100.0, 0.0, 0.1, 2.0, 1.0, 100.0),  # flat: r = s
        (100.0, 1.0, 0.1, 2.0, 1.0, 100.0 - 0.4),  # long lowers r by q*gamma*sigma^2*tau
        (100.0, -2.0, 0.1, 2.0, 0.5, 100.0 + 0.4),  # short raises it
        (1.0, 5.0, 1.0, 1e-4, 3600.0, 1.0 - 5 * 1e-8 * 3600),
    ],
)
def test_reservation_price(
    s: float, q: float, gamma: float, sigma: float, tau: float, expected: float
) -> None:
    assert avellaneda.reservation_price(s, q, gamma, sigma, tau) == pytest.approx(expected, rel=1e-12)


def test_optimal_spread_matches_the_paper_formula() -> None:
    gamma, sigma, tau, kappa = 0.1, 2.0, 1.0, 1.5
    expected = gamma * sigma**2 * tau + (2 / gamma) * math.log(1 + gamma / kappa)
    assert avellaneda.optimal_spread(gamma, sigma, tau, kappa) == pytest.approx(expected, rel=1e-12)


def test_default_parameters_give_a_base_spread_near_two_tenths_of_a_percent() -> None:
    spread = avellaneda.optimal_spread(1.0, 0.0, 3600.0, 1000.0)
    assert spread == pytest.approx(0.002, rel=1e-3)


def test_quotes_are_symmetric_around_the_reservation_price() -> None:
    bid, ask = avellaneda.quotes(100.0, 3.0, 0.1, 2.0, 1.0, 1.5)
    r = avellaneda.reservation_price(100.0, 3.0, 0.1, 2.0, 1.0)
    assert (bid + ask) / 2 == pytest.approx(r)
    assert ask - bid == pytest.approx(avellaneda.optimal_spread(0.1, 2.0, 1.0, 1.5))


def test_vectorised_over_paths_equals_scalar_calls() -> None:
    s: FloatArray = np.linspace(90.0, 110.0, 7)
    q: FloatArray = np.arange(-3.0, 4.0)
    tau: FloatArray = np.linspace(1.0, 0.0, 7)
    bids, asks = avellaneda.quotes(s, q, 0.1, 2.0, tau, 1.5)
    for i in range(7):
        bid, ask = avellaneda.quotes(float(s[i]), float(q[i]), 0.1, 2.0, float(tau[i]), 1.5)
        assert bids[i] == pytest.approx(bid, rel=1e-12)
        assert asks[i] == pytest.approx(ask, rel=1e-12)


def test_glft_matches_gueant_closed_form() -> None:
    gamma, sigma, kappa, a = 0.1, 2.0, 1.5, 140.0
    omega = math.sqrt(sigma**2 * gamma / (2 * kappa * a) * (1 + gamma / kappa) ** (1 + kappa / gamma))
    half = math.log(1 + gamma / kappa) / gamma + omega / 2
    assert avellaneda.glft_half_spread(gamma, sigma, kappa, a) == pytest.approx(half, rel=1e-12)
    assert avellaneda.glft_skew(gamma, sigma, kappa, a) == pytest.approx(omega, rel=1e-12)
    sigmas = np.array([1.0, 2.0])
    np.testing.assert_allclose(
        avellaneda.glft_half_spread(gamma, sigmas, kappa, a),
        [avellaneda.glft_half_spread(gamma, 1.0, kappa, a), half],
        rtol=1e-12,
    )
