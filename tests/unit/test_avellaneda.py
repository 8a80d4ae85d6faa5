"""The A-S and GLFT formulas against hand-computed values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.engine.avellaneda import AvellanedaStoikov, Glft


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
    model = AvellanedaStoikov(gamma, 1.5)
    assert model.reservation_price(s, q, sigma, tau) == pytest.approx(expected, rel=1e-12)


def test_optimal_spread_matches_the_paper_formula() -> None:
    gamma, sigma, tau, kappa = 0.1, 2.0, 1.0, 1.5
    expected = gamma * sigma**2 * tau + (2 / gamma) * math.log(1 + gamma / kappa)
    assert AvellanedaStoikov(gamma, kappa).spread(sigma, tau) == pytest.approx(expected, rel=1e-12)


def test_default_parameters_give_a_base_spread_near_two_tenths_of_a_percent() -> None:
    spread = AvellanedaStoikov(1.0, 1000.0).spread(0.0, 3600.0)
    assert spread == pytest.approx(0.002, rel=1e-3)


@given(
    s=st.floats(1.0, 1e5),
    q=st.floats(-50.0, 50.0),
    gamma=st.floats(0.01, 10.0),
    kappa=st.floats(0.5, 1e4),
    sigma=st.floats(0.0, 5.0),
    tau=st.floats(0.0, 10.0),
    glft=st.booleans(),
)
def test_quotes_are_symmetric_around_the_reservation_price(
    s: float, q: float, gamma: float, kappa: float, sigma: float, tau: float, glft: bool
) -> None:
    model = Glft(gamma, kappa, 140.0) if glft else AvellanedaStoikov(gamma, kappa)
    bid, ask = model.quotes(s, q, sigma, tau)
    r = model.reservation_price(s, q, sigma, tau)
    assert (bid + ask) / 2 == pytest.approx(r, rel=1e-12, abs=1e-9)
    assert ask - bid == pytest.approx(model.spread(sigma, tau), rel=1e-9, abs=1e-9)
    assert ask > bid


def test_glft_matches_gueant_closed_form() -> None:
    gamma, sigma, kappa, a = 0.1, 2.0, 1.5, 140.0
    omega = math.sqrt(sigma**2 * gamma / (2 * kappa * a) * (1 + gamma / kappa) ** (1 + kappa / gamma))
    half = math.log(1 + gamma / kappa) / gamma + omega / 2
    model = Glft(gamma, kappa, a)
    assert model.skew(sigma) == pytest.approx(omega, rel=1e-12)
    assert model.spread(sigma, 123.0) == pytest.approx(2 * half, rel=1e-12)  # infinite horizon
    assert model.reservation_price(100.0, 3.0, sigma, 0.0) == pytest.approx(100.0 - 3.0 * omega, rel=1e-12)
    assert model.reservation_price(100.0, 0.0, sigma, 0.0) == 100.0
