"""The A-S arrival intensity lambda(delta) = A exp(-kappa delta), fitted online from public trades.

Avellaneda and Stoikov (2008, section 2.3) price a quote at depth delta from the mid by the rate of
market orders that reach it: lambda(delta) = A exp(-kappa delta). A trade's depth is its distance from
the mid before it (a fraction of mid: the bot's unit of kappa). Under that law the depth of a trade that
reached d0 is d0 plus an exponential of rate kappa (memoryless), so on buckets of width w the number of
whole buckets a trade lies beyond d0 is geometric with p = exp(-kappa w), and its maximum-likelihood
estimate is p = steps / (steps + stops): bucket-steps survived over all trades beyond d0, and the trades
that stopped inside the histogram (the overflow bucket is right-censored: it survives, never stops).
Then kappa = -ln(p)/w, and the trades reaching d0 per second give A = rate(d0) exp(kappa d0) / 2 (both
sides are pooled; A is per side, as in the paper and GLFT).

d0 is the bucket after the fullest one: trades print at the touch or deeper, never inside the spread,
so the touch collects every arrival shallower than it (the law holds beyond it). Recent trades weigh
more: every count decays with time constant `time_constant_s` of exchange time, kept O(1) per trade by
weighting a trade exp((t - t_ref)/tau) and dividing by exp((now - t_ref)/tau) at the fit; the exposure
behind the counts decays the same way: tau (1 - exp(-(now - first)/tau)) seconds. A fit is O(buckets).

The batch fit with confidence intervals for recorded data (research, the tuner) is `ml.intensity`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from bots.engine import pickling

__all__ = ["IntensityConfig", "IntensityEstimate", "IntensityEstimator"]

_NS_PER_S: Final = 1e9
_RESCALE: Final = 50.0  # renormalise the growing weights before exp() nears float's range


@dataclass(frozen=True, slots=True, kw_only=True)
class IntensityConfig:
    """The online fit's knobs (`settings.models.IntensitySettings` documents them)."""

    time_constant_s: float = 300.0
    min_trades: float = 100.0  # decayed trades beyond d0 before a fit is trusted
    bucket_pct: float = 0.00005
    buckets: int = 200
    kappa_min: float = 10.0
    kappa_max: float = 1e6

    def __post_init__(self) -> None:
        if not (self.time_constant_s > 0 and self.min_trades > 0 and self.bucket_pct > 0):
            raise ValueError("time_constant_s, min_trades and bucket_pct must be positive")
        if not (self.buckets >= 2 and 0 < self.kappa_min < self.kappa_max):
            raise ValueError("need buckets >= 2 and 0 < kappa_min < kappa_max")


@dataclass(frozen=True, slots=True)
class IntensityEstimate:
    """A fit: kappa per unit of mid fraction, A per second per side, and the decayed trades behind it."""

    kappa: float
    intensity_a: float
    trades: float
    depth_from: float  # d0, fraction of mid


class IntensityEstimator:
    """Exponentially decayed depth histogram of public trades; `fit` answers (kappa, A) or None."""

    __slots__ = ("_counts", "_first_ns", "_ref_ns", "_tau_ns", "config")

    def __init__(self, config: IntensityConfig) -> None:
        self.config = config
        self._tau_ns = config.time_constant_s * _NS_PER_S
        self._counts = [0.0] * (config.buckets + 1)  # the last bucket: depth beyond the histogram
        self._ref_ns = -1  # time of weight 1; -1 before the first trade
        self._first_ns = 0

    def add(self, ts_ns: int, depth: float) -> None:
        """One trade `depth` (|price - mid| / mid, mid before the trade) at exchange time `ts_ns`."""
        if not (depth >= 0.0 and depth < math.inf):  # NaN fails both
            return
        if self._ref_ns < 0:
            self._ref_ns = self._first_ns = ts_ns
        exponent = (ts_ns - self._ref_ns) / self._tau_ns
        if exponent > _RESCALE:
            self._rescale(ts_ns)
            exponent = 0.0
        index = int(depth / self.config.bucket_pct)
        buckets = self.config.buckets
        self._counts[index if index < buckets else buckets] += math.exp(exponent)

    def _rescale(self, ts_ns: int) -> None:
        factor = math.exp(-(ts_ns - self._ref_ns) / self._tau_ns)
        self._counts = [c * factor for c in self._counts]
        self._ref_ns = ts_ns

    def fit(self, now_ns: int) -> IntensityEstimate | None:
        """The fit as of `now_ns` (exchange time, at or after the last trade); None before
        `min_trades` decayed trades lie beyond d0 or when they do not decay with depth."""
        if self._ref_ns < 0 or now_ns <= self._first_ns:
            return None
        config = self.config
        decay = math.exp(-(now_ns - self._ref_ns) / self._tau_ns)
        counts = self._counts
        buckets = config.buckets
        fullest = 0
        for j in range(1, buckets):
            if counts[j] > counts[fullest]:
                fullest = j
        start = fullest + 1
        stops = steps = 0.0
        for j in range(start, buckets):
            stops += counts[j]
            steps += counts[j] * (j - start)
        overflow = counts[buckets]
        steps += overflow * (buckets - start)
        trades = (stops + overflow) * decay
        if trades < config.min_trades or stops <= 0.0 or steps <= 0.0:
            return None
        w = config.bucket_pct
        kappa = -math.log(steps / (steps + stops)) / w
        kappa = min(config.kappa_max, max(config.kappa_min, kappa))
        exposure_s = config.time_constant_s * -math.expm1(-(now_ns - self._first_ns) / self._tau_ns)
        depth_from = start * w
        intensity_a = 0.5 * trades / exposure_s * math.exp(kappa * depth_from)
        return IntensityEstimate(kappa, intensity_a, trades, depth_from)


pickling.register(IntensityConfig)
