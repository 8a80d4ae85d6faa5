"""Intensity estimation recovers A and k of synthetic trades drawn from lambda(delta) = A exp(-k delta)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.intensity import estimate_intensity, trade_depths

NS = 1_000_000_000


def one_side_trades(a: float, k: float, duration_s: float, seed: int) -> np.ndarray:
    """Depths of the market orders of one side: Poisson(A T) arrivals reaching depth >= delta with
    probability exp(-k delta), i.e. exponential depths of rate k."""
    rng = np.random.default_rng(seed)
    return rng.exponential(1.0 / k, rng.poisson(a * duration_s))


@pytest.mark.parametrize(
    ("a", "k", "duration_s", "seed"),
    [
        (140.0, 1.5, 600.0, 0),  # the A-S paper's values, price units
        (140.0, 1.5, 120.0, 1),
        (2.0, 1000.0, 7_200.0, 2),  # the bot's relative units: kappa per unit of mid fraction
        (0.5, 3000.0, 86_400.0, 3),
    ],
)
def test_recovers_a_and_k_within_ten_percent(a: float, k: float, duration_s: float, seed: int) -> None:
    fit = estimate_intensity(one_side_trades(a, k, duration_s, seed), duration_s)
    assert pytest.approx(a, rel=0.10) == fit.A
    assert fit.k == pytest.approx(k, rel=0.10)
    assert fit.A_ci[0] < fit.A < fit.A_ci[1] and fit.k_ci[0] < fit.k < fit.k_ci[1]
    assert fit.k_se > 0 and fit.A_se > 0 and fit.r_squared > 0.9
    assert fit.n_buckets >= 10


def test_confidence_intervals_cover_the_truth_most_of_the_time() -> None:
    covered_k = covered_a = 0
    runs = 40
    for seed in range(runs):
        fit = estimate_intensity(one_side_trades(50.0, 2.0, 60.0, 100 + seed), 60.0)
        covered_k += fit.k_ci[0] <= 2.0 <= fit.k_ci[1]
        covered_a += fit.A_ci[0] <= 50.0 <= fit.A_ci[1]
    assert covered_k >= 0.8 * runs and covered_a >= 0.8 * runs  # nominal 95%


def test_both_sides_together_measure_twice_a() -> None:
    depths = np.concatenate([one_side_trades(140.0, 1.5, 300.0, 7), one_side_trades(140.0, 1.5, 300.0, 8)])
    fit = estimate_intensity(depths, 300.0)
    assert pytest.approx(280.0, rel=0.10) == fit.A and fit.k == pytest.approx(1.5, rel=0.10)


def test_trade_depths_use_the_mid_strictly_before_each_trade() -> None:
    mid_ts = np.array([10, 20, 30]) * NS
    mid = np.array([100.0, 101.0, 102.0])
    trade_ts = np.array([5, 10, 15, 20, 35]) * NS
    price = np.array([99.0, 100.5, 99.0, 101.0, 101.0])  # the trade at 20 s sees the 10 s mid
    rel = trade_depths(trade_ts, price, mid_ts, mid)
    absolute = trade_depths(trade_ts, price, mid_ts, mid, relative=False)
    assert np.isnan(rel[0]) and np.isnan(rel[1])  # no mid strictly before
    np.testing.assert_allclose(absolute[2:], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(rel[2:], [1.0 / 100.0, 1.0 / 100.0, 1.0 / 102.0])


def test_end_to_end_from_a_mid_path_and_trades() -> None:
    rng = np.random.default_rng(5)
    duration_s, a, k = 3_600.0, 1.0, 2_000.0  # relative units
    mid_ts = np.arange(int(duration_s * 10)) * (NS // 10)
    mid = 50_000.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-5, len(mid_ts))))
    n = rng.poisson(a * duration_s)
    trade_ts = np.sort(rng.integers(mid_ts[1], mid_ts[-1], n))
    before = mid[np.searchsorted(mid_ts, trade_ts, side="left") - 1]
    side = rng.choice([-1.0, 1.0], n)
    price = before * (1.0 + side * rng.exponential(1.0 / k, n))
    fit = estimate_intensity(trade_depths(trade_ts, price, mid_ts, mid), duration_s)
    assert pytest.approx(a, rel=0.10) == fit.A and fit.k == pytest.approx(k, rel=0.10)


def test_too_little_data_is_an_error() -> None:
    with pytest.raises(ValueError, match="buckets"):
        estimate_intensity([0.1, 0.2, 0.3], 10.0)
    with pytest.raises(ValueError, match="no trades"):
        estimate_intensity([np.nan], 10.0)
    with pytest.raises(ValueError, match="duration"):
        estimate_intensity([0.1], 0.0)
