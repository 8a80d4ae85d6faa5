"""What a backtest produced: the result types and the risk figures (drawdown, Sharpe) of a curve.

Their own module so that the backtest, the sweep and the report each import it and not one another:
results sit below all three.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from bots.engine.markouts import MarkoutTable
    from bots.exchange.events import Fill, FundingPayment
    from ml.backtest_loop import BacktestConfig
    from settings.models import BotSettings

__all__ = [
    "BacktestResult",
    "BacktestStats",
    "EquityCurve",
    "PnLBreakdown",
    "SweepRow",
    "inventory_risk",
    "max_drawdown",
    "sharpe_ratio",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_NS_PER_S = 1_000_000_000
_SECONDS_PER_YEAR = 365 * 86_400  # crypto trades every day


@dataclass(frozen=True, slots=True)
class PnLBreakdown:
    """Exact PnL decomposition in USD; `total` is the equity change at the final mid. `funding` is the
    funding received minus paid (negative when the position paid more than it received)."""

    spread_capture: Decimal
    inventory_pnl: Decimal
    rebates: Decimal
    taker_fees: Decimal
    funding: Decimal

    @property
    def total(self) -> Decimal:
        return self.spread_capture + self.inventory_pnl + self.rebates - self.taker_fees + self.funding


@dataclass(frozen=True, slots=True)
class EquityCurve:
    """One sample per quotable book: time, mid, position (base units) and equity (USD, with the balance)."""

    ts_ns: IntArray
    mid: FloatArray
    position: FloatArray
    equity: FloatArray


@dataclass(frozen=True, slots=True)
class BacktestStats:
    """The figures of one run, small and picklable (what a sweep returns per grid point)."""

    events: int
    seconds: float
    fills: int
    orders_placed: int
    orders_filled: int
    orders_cancelled: int
    orders_rejected: int
    fill_rate: float  # orders with at least one fill / orders accepted
    volume_usd: float
    total_pnl_usd: float
    spread_capture_usd: float
    inventory_pnl_usd: float
    rebates_usd: float
    taker_fees_usd: float
    sharpe: float  # annualised, from equity changes every `sharpe_interval_s`; nan when undefined
    max_drawdown_usd: float
    max_drawdown_pct: float
    final_position: float
    mean_abs_position_usd: float
    funding_usd: float  # funding received minus paid
    funding_payments: int
    # Notional-weighted mean markouts of the fills (`bots.engine.markouts`): the mid 1 s, 10 s, 60 s
    # after each fill against its price, in bps, positive = the mid moved our way; nan without fills.
    markout_1s_bps: float
    markout_10s_bps: float
    markout_60s_bps: float
    # The same summed in USD over the fills whose horizon passed in the run
    markout_1s_usd: float = 0.0
    markout_10s_usd: float = 0.0
    markout_60s_usd: float = 0.0
    # every fill marked at the mid 60 s later (the final one if the run ends first) + rebates - taker fees:
    # the total PnL without the drift of the inventory held past 60 s
    markout_pnl_usd: float = 0.0
    inventory_risk_usd: float = 0.0  # sqrt(sum((q * dmid)^2)): the USD standard deviation of holding it

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: nan becomes None."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Everything one run produced: the fills with the mid at each, the curve, the decomposition."""

    settings: BotSettings
    config: BacktestConfig
    stats: BacktestStats
    breakdown: PnLBreakdown
    fills: list[Fill]
    fill_mids: list[Decimal]
    curve: EquityCurve
    starting_balance: Decimal
    final_mark: Decimal
    final_position: Decimal
    total_pnl: Decimal  # equity at the final mid minus the starting balance, from the portfolio
    markouts: MarkoutTable  # every fill's, at each horizon (nan past the run's end)
    funding: list[FundingPayment]  # the funding payments, in time order


@dataclass(frozen=True, slots=True)
class SweepRow:
    """One grid point of a sweep and its run's figures."""

    params: dict[str, float]
    stats: BacktestStats


def inventory_risk(position: FloatArray, mid: FloatArray) -> float:
    """The inventory's risk in USD over a curve: sqrt(sum((q_{k-1} * (mid_k - mid_{k-1}))^2)), the
    realised quadratic variation of what holding the inventory earned; for a mid without drift its
    expectation is the variance of that PnL. Model-free, and defined for a run of any length."""
    if len(mid) < 2:
        return 0.0
    held = position[:-1] * np.diff(mid)
    return float(np.sqrt(np.sum(held * held)))


def max_drawdown(equity: FloatArray) -> tuple[float, float]:
    """Largest fall from a running peak: in USD and as a fraction of that peak."""
    if len(equity) == 0:
        return 0.0, 0.0
    peak = np.maximum.accumulate(equity)
    fall = peak - equity
    ratio = np.divide(fall, peak, out=np.zeros_like(fall), where=peak > 0)
    return float(fall.max()), float(ratio.max())


def sharpe_ratio(ts_ns: IntArray, equity: FloatArray, interval_s: float, balance: float) -> float:
    """Annualised Sharpe ratio of returns on `balance` over consecutive `interval_s` windows (rate 0);
    nan with fewer than two windows or no variation."""
    if len(ts_ns) < 2 or balance <= 0:
        return math.nan
    edges = np.arange(ts_ns[0], ts_ns[-1], round(interval_s * _NS_PER_S), dtype=np.int64)
    at = np.searchsorted(ts_ns, edges, side="right") - 1  # the last sample at or before each edge
    returns = np.diff(np.append(equity[at], equity[-1])) / balance
    std = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    if not std > 0:
        return math.nan
    return float(np.mean(returns)) / std * math.sqrt(_SECONDS_PER_YEAR / interval_s)
