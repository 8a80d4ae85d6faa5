"""Fill intensity lambda(delta) = A exp(-k delta) measured from recorded trades; numpy only.

In Avellaneda-Stoikov, market orders that reach at least depth delta from the mid arrive at rate
A exp(-k delta) per side. A trade's depth is its distance from the mid just before it, so over a
window of T seconds the trades whose depth falls in the bucket [delta_i, delta_i + h) arrive at

    rate_i = A (exp(-k delta_i) - exp(-k (delta_i + h))) = A (1 - exp(-k h)) exp(-k delta_i),

and log(count_i / T) is linear in delta_i: slope -k, intercept c = log(A (1 - exp(-k h))). The fit
is least squares weighted by the counts (Poisson counts give log(count) a variance of ~1/count),
with standard errors from the weighted residuals, a Student-t interval for k, and for A the
delta-method interval of log A = c - log(1 - exp(-k h)).

Pass one side's trades to measure that side (buyer-initiated trades lift asks: lambda^a); both
sides together measure the sum, about 2A. Depths are fractions of mid by default (`relative=True`),
the unit of the bot's kappa; `relative=False` keeps price units (the A-S paper's).

This is the batch fit, with confidence intervals, for recorded data (research, the tuner's
`measured_kappa`). A running bot with `kappa: auto` fits online, O(1) per trade, inside its core
(`bots.engine.intensity`: the core sees every public trade and the mid before it, so the worker and
every backtest get the same kappa from the same events); the two agree on the same trades
(tests/unit/test_intensity_fit.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["IntensityFit", "estimate_intensity", "trade_depths"]

FloatArray = npt.NDArray[np.float64]
_NS_PER_S: Final = 1_000_000_000
# Two-sided 95% Student-t quantiles for 1..30 degrees of freedom; the normal 1.96 beyond.
_T975: Final = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class IntensityFit:
    """Fitted A and k with standard errors and 95% confidence intervals."""

    A: float  # arrivals per second reaching depth 0
    k: float  # per unit of depth
    A_se: float  # delta method: A * se(log A)
    k_se: float
    A_ci: tuple[float, float]
    k_ci: tuple[float, float]
    n_trades: int  # trades used (depth below the last bucket's upper edge)
    n_buckets: int  # non-empty buckets in the fit
    bucket_width: float
    duration_s: float
    r_squared: float  # weighted


def trade_depths(
    trade_ts_ns: Sequence[int] | npt.NDArray[np.int64],
    trade_price: Sequence[float] | FloatArray,
    mid_ts_ns: Sequence[int] | npt.NDArray[np.int64],
    mid: Sequence[float] | FloatArray,
    *,
    relative: bool = True,
) -> FloatArray:
    """|price - mid| for each trade, with the last mid strictly before it (NaN when there is none)."""
    t_ts = np.asarray(trade_ts_ns, dtype=np.int64)
    price = np.asarray(trade_price, dtype=np.float64)
    m_ts = np.asarray(mid_ts_ns, dtype=np.int64)
    mids = np.asarray(mid, dtype=np.float64)
    if t_ts.shape != price.shape or m_ts.shape != mids.shape:
        raise ValueError("timestamps and values must have the same length")
    if len(m_ts) > 1 and (np.diff(m_ts) < 0).any():
        raise ValueError("mid timestamps must be in time order")
    idx = np.searchsorted(m_ts, t_ts, side="left") - 1
    has_mid = idx >= 0
    before = mids[np.maximum(idx, 0)] if len(mids) else np.full(len(t_ts), np.nan)
    depth = np.abs(price - before)
    if relative:
        depth = depth / before
    return np.where(has_mid, depth, np.nan)


def _t_quantile(dof: int) -> float:
    return _T975[dof - 1] if 1 <= dof <= len(_T975) else 1.96


def estimate_intensity(
    depths: Sequence[float] | FloatArray,
    duration_s: float,
    *,
    bucket_width: float | None = None,
    n_buckets: int = 20,
    max_depth_quantile: float = 0.95,
    min_count: int = 5,
) -> IntensityFit:
    """Fit A and k from trade depths observed over `duration_s` seconds.

    Buckets start at depth 0; by default `n_buckets` of equal width cover depths up to the
    `max_depth_quantile` quantile. Buckets with fewer than `min_count` trades are left out (the log
    of a small count is biased). NaN depths (no mid before the trade) are ignored.
    """
    if duration_s <= 0:
        raise ValueError("duration_s must be positive")
    d = np.asarray(depths, dtype=np.float64)
    d = d[np.isfinite(d) & (d >= 0.0)]
    if len(d) == 0:
        raise ValueError("no trades with a depth")
    if bucket_width is None:
        top = float(np.quantile(d, max_depth_quantile))
        if top <= 0.0:
            raise ValueError("depths are all zero at the chosen quantile; pass bucket_width")
        bucket_width = top / n_buckets
    if bucket_width <= 0:
        raise ValueError("bucket_width must be positive")
    h = bucket_width
    edges = np.arange(n_buckets + 1) * h
    counts, _ = np.histogram(d, bins=edges)
    used = counts >= min_count
    if used.sum() < 3:
        raise ValueError(f"only {int(used.sum())} buckets with {min_count}+ trades; need 3")
    x = edges[:-1][used]
    n = counts[used].astype(np.float64)
    y = np.log(n / duration_s)

    # Weighted least squares y = c + b x, weights n.
    design = np.column_stack([np.ones_like(x), x])
    xtw = design.T * n
    normal = xtw @ design
    coef = np.linalg.solve(normal, xtw @ y)
    resid = y - design @ coef
    dof = len(x) - 2
    sigma2 = float(n @ (resid * resid)) / dof if dof > 0 else 1.0
    cov = sigma2 * np.linalg.inv(normal)
    c, b = float(coef[0]), float(coef[1])
    k = -b
    k_se = math.sqrt(float(cov[1, 1]))
    y_mean = float(n @ y) / float(n.sum())
    total = float(n @ ((y - y_mean) ** 2))
    r_squared = 1.0 - float(n @ (resid * resid)) / total if total > 0 else 1.0

    # log A = c - log(1 - exp(b h)); gradient with respect to (c, b).
    tail = -math.expm1(b * h)  # 1 - exp(-k h)
    if tail <= 0.0:
        raise ValueError(f"fitted k={k:.6g} is not positive: depths do not decay")
    log_a = c - math.log(tail)
    grad = np.array([1.0, h * math.exp(b * h) / tail])
    log_a_se = math.sqrt(float(grad @ cov @ grad))
    q = _t_quantile(dof)
    a = math.exp(log_a)
    return IntensityFit(
        A=a,
        k=k,
        A_se=a * log_a_se,
        k_se=k_se,
        A_ci=(math.exp(log_a - q * log_a_se), math.exp(log_a + q * log_a_se)),
        k_ci=(k - q * k_se, k + q * k_se),
        n_trades=int(counts.sum()),
        n_buckets=int(used.sum()),
        bucket_width=h,
        duration_s=float(duration_s),
        r_squared=r_squared,
    )
