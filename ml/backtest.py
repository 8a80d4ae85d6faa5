"""Backtests: a recorded or synthetic market through the bot's own engine and paper fill model.

The per-event loop (latency, fill model, engine, order diff) is `ml.backtest_loop.BacktestLoop`; this
module feeds it a market and turns its fills and equity curve into a result.

PnL is decomposed exactly (Decimal) over the fills, each with the mid of the book in force when it
filled: spread capture `sum(sign*(mid_f - price)*size)`, inventory PnL `q_T*mark - sum(sign*size*mid_f)`
(what the held inventory earned or lost as the mid moved), maker rebates, taker fees and funding (the
payments settled on the position at each funding time, `settings.sim.funding`); the five sum to the
portfolio's equity change at the final mid. Markouts of the fills at 1 s, 10 s and 60 s
(`bots.engine.markouts`, against the curve's mids) are in the stats. The result types: `ml.results`;
sweeps over parameters: `ml.sweep`; files and plots: `ml.report`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bots.engine.markouts import MARKOUT_HORIZONS_S, markouts_at, summarize
from bots.exchange.sim import BUILTIN_START_PRICES, SimMarket, Step, read_recording
from ml.backtest_loop import BacktestConfig, BacktestLoop
from ml.live_regime import LiveRegime
from ml.progress import progress_bar
from ml.results import (
    BacktestResult,
    BacktestStats,
    EquityCurve,
    PnLBreakdown,
    inventory_risk,
    max_drawdown,
    sharpe_ratio,
)
from settings.models import BotSettings

if TYPE_CHECKING:
    from bots.engine.markouts import MarkoutTable

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "BacktestStats",
    "EquityCurve",
    "MarketSource",
    "PnLBreakdown",
    "RecordedMarket",
    "SyntheticMarket",
    "run_backtest",
]

_NS_PER_S = 1_000_000_000
_SYNTHETIC_START_NS = 1_704_067_200 * _NS_PER_S  # 2024-01-01T00:00:00Z: a backtest is reproducible
_PROGRESS_EVERY = 2_048  # events between progress-bar updates
_ZERO = Decimal(0)
_PNL_HORIZON_S = 60.0  # the markout-adjusted PnL's


# -- market sources ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SyntheticMarket:
    """`seconds` of the sim market of the bot's settings (`settings.sim`), seeded with `seed`."""

    seconds: float
    seed: int = 0

    def count(self, settings: BotSettings) -> int:
        return max(0, round(self.seconds / settings.sim.book_interval_s))

    def steps(self, settings: BotSettings) -> Iterator[Step]:
        sim = settings.sim
        start = sim.start_price or BUILTIN_START_PRICES.get(settings.symbol, 100.0)
        market = SimMarket.of(
            settings.symbol, settings.spec, sim, seed=self.seed, s0=start, start_ns=_SYNTHETIC_START_NS
        )
        return market.steps(self.count(settings))


@dataclass(frozen=True, slots=True)
class RecordedMarket:
    """A recording (`mmfleet record`, `write_recording`): the steps of the bot's symbol, in file order."""

    path: Path

    def count(self, settings: BotSettings) -> int | None:
        return None  # unknown without reading the file twice

    def steps(self, settings: BotSettings) -> Iterator[Step]:
        return read_recording(self.path, symbol=settings.symbol)


MarketSource = SyntheticMarket | RecordedMarket


def run_backtest(
    settings: BotSettings,
    market: MarketSource,
    config: BacktestConfig | None = None,
    *,
    progress: bool = False,
) -> BacktestResult:
    """Replay `market` through the bot of `settings`; a rich progress bar when `progress`."""
    config = config or BacktestConfig()
    loop = BacktestLoop(settings, config, *_regime(settings))
    core = loop.core
    ts: list[int] = []
    mids: list[float] = []
    positions: list[float] = []
    equities: list[float] = []
    events = 0
    bar = progress_bar("backtest", market.count(settings)) if progress else None
    try:
        for book, trades in market.steps(settings):
            mid = loop.step(book, trades)
            events += 1
            if not math.isnan(mid):
                ts.append(book.ts_ns)
                mids.append(mid)
                positions.append(core.position)
                equities.append(core.cash + (core.position * (mid - core.entry) if core.position else 0.0))
            if bar is not None and events % _PROGRESS_EVERY == 0:
                bar(events)
    finally:
        if bar is not None:
            bar(-events)
    curve = EquityCurve(
        np.asarray(ts, dtype=np.int64),
        np.asarray(mids, dtype=np.float64),
        np.asarray(positions, dtype=np.float64),
        np.asarray(equities, dtype=np.float64),
    )
    return _result(loop, curve, events)


def _regime(settings: BotSettings) -> tuple[LiveRegime | None, float]:
    """With `ml.regime_enabled`, the registry's newest valid model, judged at today's time (a backtest
    replays the past with today's model), as the worker would load it."""
    if not settings.ml.regime_enabled:
        return None, 0.0
    now = time.time()
    regime = LiveRegime(settings.ml.model_dir, settings.ml.max_model_age_s)
    regime.poll(now)
    return regime, now


def _result(loop: BacktestLoop, curve: EquityCurve, events: int) -> BacktestResult:
    fills, mids = loop.fills, loop.fill_mids
    spread = inventory = rebates = taker = volume = _ZERO
    for fill, mid in zip(fills, mids, strict=True):
        sign = fill.side.sign
        spread += sign * (mid - fill.price) * fill.size
        inventory -= sign * fill.size * mid
        volume += fill.price * fill.size
        if fill.is_taker:
            taker += fill.fee
        else:
            rebates -= fill.fee
    portfolio = loop.portfolio
    mark = loop.mid()
    inventory += portfolio.position * mark
    breakdown = PnLBreakdown(spread, inventory, rebates, taker, portfolio.funding)
    total = portfolio.equity(mark) - portfolio.starting_balance
    seconds = (curve.ts_ns[-1] - curve.ts_ns[0]) / _NS_PER_S if len(curve.ts_ns) > 1 else 0.0
    drawdown_usd, drawdown_pct = max_drawdown(curve.equity)
    markouts = _markouts(loop, curve)
    markout_1s, markout_10s, markout_60s = summarize(markouts)
    stats = BacktestStats(
        events=events,
        seconds=float(seconds),
        fills=len(fills),
        orders_placed=loop.accepted,
        orders_filled=len(loop.filled_orders),
        orders_cancelled=loop.cancelled,
        orders_rejected=loop.rejected,
        fill_rate=len(loop.filled_orders) / loop.accepted if loop.accepted else 0.0,
        volume_usd=float(volume),
        total_pnl_usd=float(total),
        spread_capture_usd=float(spread),
        inventory_pnl_usd=float(inventory),
        rebates_usd=float(rebates),
        taker_fees_usd=float(taker),
        sharpe=sharpe_ratio(
            curve.ts_ns, curve.equity, loop.config.sharpe_interval_s, float(portfolio.starting_balance)
        ),
        max_drawdown_usd=drawdown_usd,
        max_drawdown_pct=drawdown_pct,
        final_position=float(portfolio.position),
        mean_abs_position_usd=float(np.mean(np.abs(curve.position * curve.mid))) if len(curve.mid) else 0.0,
        funding_usd=float(portfolio.funding),
        funding_payments=len(loop.funding),
        markout_1s_bps=markout_1s.mean_bps,
        markout_10s_bps=markout_10s.mean_bps,
        markout_60s_bps=markout_60s.mean_bps,
        markout_1s_usd=markout_1s.total_usd,
        markout_10s_usd=markout_10s.total_usd,
        markout_60s_usd=markout_60s.total_usd,
        markout_pnl_usd=_markout_pnl(loop, curve) + float(rebates - taker),
        inventory_risk_usd=inventory_risk(curve.position, curve.mid),
    )
    return BacktestResult(
        loop.settings,
        loop.config,
        stats,
        breakdown,
        fills,
        mids,
        curve,
        portfolio.starting_balance,
        mark,
        portfolio.position,
        total,
        markouts,
        loop.funding,
    )


def _markouts(
    loop: BacktestLoop, curve: EquityCurve, horizons_s: tuple[float, ...] = MARKOUT_HORIZONS_S
) -> MarkoutTable:
    """Every fill's markouts against the run's mid curve (the mid of each quotable book); nan where
    the run ends before the horizon."""
    fills = loop.fills
    return markouts_at(
        [f.ts_ns for f in fills],
        [f.side.sign for f in fills],
        [float(f.price) for f in fills],
        [float(f.size) for f in fills],
        curve.ts_ns,
        curve.mid,
        horizons_s,
    )


def _markout_pnl(loop: BacktestLoop, curve: EquityCurve) -> float:
    """What every fill earned marked at the mid `_PNL_HORIZON_S` after it, or at the run's final mid
    when the run ends first (as the total PnL marks every fill): the total PnL less the drift of the
    inventory held beyond the horizon, before fees. With rebates and taker fees, the markout-adjusted
    PnL: the fills' edge, which the tuner scores (`ml.tuner.score_stats`)."""
    if not len(curve.ts_ns):
        return 0.0
    horizon_ns = round(_PNL_HORIZON_S * _NS_PER_S)
    held = EquityCurve(  # the final mid holds past the end
        np.append(curve.ts_ns, curve.ts_ns[-1] + horizon_ns),
        np.append(curve.mid, curve.mid[-1]),
        curve.position,
        curve.equity,
    )
    return float(np.nansum(_markouts(loop, held, (_PNL_HORIZON_S,)).usd))
