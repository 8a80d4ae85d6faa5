"""Adaptive gamma/kappa: propose a bounded step from recent trading, keep it only if a backtest agrees.

1. `trade_stats`: from the recent window's fills and their markouts (or `stats_from_backtest`): the
   fills' markout at `MARKOUT_HORIZON_S` (bps, notional-weighted: the mid then against the
   fill's price, negative when adverse selection beat the spread), PnL per unit of inventory risk (net
   PnL / mean |inventory| in USD), fill rate. Never a win rate: exits at the entry price make every
   round trip a "win" and say nothing about adverse selection.
2. `propose`: one step per parameter, in the direction the figures ask for:
   - kappa (A-S: the spread is about 2/kappa) up when too few orders fill (tighter quotes), down when
     many fill and the mid moves through them (negative markouts: adverse selection, wider quotes);
   - gamma (inventory aversion: the reservation price moves q*gamma*sigma^2*tau) up when inventory
     loses money, down when it pays and the fills' markouts are comfortably positive.
   A measured kappa (`ml.intensity`), when given, replaces the kappa rule: a step toward it.
   Each step is at most `gamma_step_pct`/`kappa_step_pct` of the current value and the result is
   clamped to [`gamma_min`, `gamma_max`] and [`kappa_min`, `kappa_max`] (`TunerSettings`).
3. `tune`: the proposal is accepted only if a backtest of the recent window (a recording or a
   synthetic replay, same seed for both) scores it strictly better than the current parameters. The
   score (`score_stats`) is the markout-adjusted PnL (60 s markouts + rebates - taker fees: what the
   fills earned, without the drift of the inventory held) less the inventory risk (the USD standard
   deviation the held inventory carried over the run).

Whether tuning is enabled (`ml.tuner.enabled`) is the caller's decision (the tune-parameters flow).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from bots.core.markouts import FillMarkout
from bots.engine.portfolio import Portfolio
from bots.exchange.base import Fill
from ml.backtest import (
    BacktestConfig,
    BacktestResult,
    BacktestStats,
    MarketSource,
    RecordedMarket,
    SyntheticMarket,
    run_backtest,
)
from ml.sweep import with_params
from settings.models import BotSettings, TunerSettings

__all__ = [
    "MARKOUT_HORIZON_S",
    "Evaluator",
    "GammaKappa",
    "TradeStats",
    "TuneDecision",
    "TunerTargets",
    "backtest_evaluator",
    "markout_bps",
    "propose",
    "score_stats",
    "stats_from_backtest",
    "step_toward",
    "trade_stats",
    "tune",
]


MARKOUT_HORIZON_S = 10.0  # the default horizon of the markouts the rules read (one the ledger records)


@dataclass(frozen=True, slots=True)
class GammaKappa:
    gamma: float
    kappa: float


@dataclass(frozen=True, slots=True)
class TradeStats:
    """What the recent window says; nan where there is nothing to measure (no markouts, no inventory)."""

    fills: int
    orders_placed: int
    markout_bps: float  # the fills' markout at the targets' horizon, notional-weighted; nan without any
    pnl_usd: float  # realized - fees + unrealized at the window's last mark
    mean_abs_position_usd: float
    pnl_per_risk: float  # pnl_usd / mean_abs_position_usd
    fill_rate: float  # orders with a fill / orders placed


@dataclass(frozen=True, slots=True, kw_only=True)
class TunerTargets:
    """Where the proposal rules switch direction."""

    fill_rate_low: float = 0.05  # below: quotes too wide, raise kappa
    fill_rate_high: float = (
        0.5  # above, with markouts below `markout_bps_low`: adverse selection, lower kappa
    )
    markout_horizon_s: float = MARKOUT_HORIZON_S  # the markout horizon the rules read
    markout_bps_low: float = 0.0  # below: the mid moves through our fills by more than the spread earns
    markout_bps_high: float = 1.0  # above, with inventory paying: lower gamma
    pnl_per_risk_low: float = 0.0  # below: inventory loses, raise gamma


@dataclass(frozen=True, slots=True)
class TuneDecision:
    """The outcome: `chosen` is what the bot should run with (the current values unless accepted)."""

    accepted: bool
    current: GammaKappa
    proposed: GammaKappa | None
    chosen: GammaKappa
    current_score: float | None
    proposed_score: float | None
    reason: str
    stats: TradeStats


Evaluator = Callable[[GammaKappa], float]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def markout_bps(markouts: Sequence[FillMarkout], horizon_s: float) -> float:
    """The markouts at `horizon_s`, notional-weighted (total USD over the fills' notional), in bps; nan
    when there are none."""
    at = [m for m in markouts if m.horizon_s == horizon_s]
    notional = sum(float(m.price * m.size) for m in at)
    return sum(m.usd for m in at) / notional * 1e4 if notional > 0 else math.nan


def trade_stats(
    fills: Sequence[Fill],
    *,
    orders_placed: int,
    markouts: Sequence[FillMarkout] = (),
    mark: Decimal | None = None,
    mean_abs_position_usd: float | None = None,
    markout_horizon_s: float = MARKOUT_HORIZON_S,
) -> TradeStats:
    """Figures of a window of fills (ledger order) opened flat, with the markouts recorded for them.
    `mark` values the open position (the last fill's price when None); the mean inventory is sampled
    at the fills when not given."""
    portfolio = Portfolio()
    exposures: list[float] = []
    for fill in fills:
        portfolio.apply(fill)
        exposures.append(abs(float(portfolio.position * fill.price)))
    if mark is None:
        mark = fills[-1].price if fills else Decimal(0)
    pnl = float(portfolio.net_pnl + portfolio.unrealized_pnl(mark))
    exposure = (
        mean_abs_position_usd
        if mean_abs_position_usd is not None
        else (sum(exposures) / len(exposures) if exposures else 0.0)
    )
    filled_orders = len({fill.client_order_id for fill in fills})
    return TradeStats(
        fills=len(fills),
        orders_placed=orders_placed,
        markout_bps=markout_bps(markouts, markout_horizon_s),
        pnl_usd=pnl,
        mean_abs_position_usd=exposure,
        pnl_per_risk=_ratio(pnl, exposure),
        fill_rate=_ratio(filled_orders, orders_placed),
    )


def stats_from_backtest(result: BacktestResult, horizon_s: float = MARKOUT_HORIZON_S) -> TradeStats:
    """`trade_stats` of a backtest, with its markouts, time-averaged inventory and exact final mark."""
    table = result.markouts
    row = table.horizons_s.index(horizon_s)
    markouts = [
        FillMarkout("", f.symbol, f.fill_id, f.side, f.price, f.size, f.ts_ns, horizon_s, bps, usd)
        for f, bps, usd in zip(result.fills, table.bps[row].tolist(), table.usd[row].tolist(), strict=True)
        if not math.isnan(usd)
    ]
    return trade_stats(
        result.fills,
        orders_placed=result.stats.orders_placed,
        markouts=markouts,
        mark=result.final_mark,
        mean_abs_position_usd=result.stats.mean_abs_position_usd,
        markout_horizon_s=horizon_s,
    )


def step_toward(
    value: float, direction: int, step_pct: float, low: float, high: float, target: float | None = None
) -> float:
    """`value` moved by `direction * step_pct` of itself (not past `target` when given), then clamped
    to [low, high]."""
    moved = value * (1.0 + direction * step_pct)
    if target is not None:
        moved = min(moved, max(target, value)) if direction > 0 else max(moved, min(target, value))
    return min(high, max(low, moved))


def _directions(
    current: GammaKappa, stats: TradeStats, targets: TunerTargets, measured_kappa: float | None
) -> tuple[int, int, list[str]]:
    """(gamma direction, kappa direction, why) from the window's figures; nan compares false."""
    why: list[str] = []
    kappa_dir = gamma_dir = 0
    if measured_kappa is not None:
        kappa_dir = (measured_kappa > current.kappa) - (measured_kappa < current.kappa)
        why.append(f"measured kappa {measured_kappa:.4g}: kappa toward it")
    elif stats.fill_rate < targets.fill_rate_low:
        kappa_dir = 1
        why.append(f"fill rate {stats.fill_rate:.3f} < {targets.fill_rate_low}: tighter (kappa up)")
    elif stats.fill_rate > targets.fill_rate_high and stats.markout_bps < targets.markout_bps_low:
        kappa_dir = -1
        why.append(
            f"fill rate {stats.fill_rate:.3f} with {targets.markout_horizon_s:g} s markout "
            f"{stats.markout_bps:.3g} bps: adverse selection, wider (kappa down)"
        )
    if stats.pnl_per_risk < targets.pnl_per_risk_low:
        gamma_dir = 1
        why.append(
            f"PnL per unit of inventory {stats.pnl_per_risk:.4g} < {targets.pnl_per_risk_low}: gamma up"
        )
    elif stats.pnl_per_risk >= targets.pnl_per_risk_low and stats.markout_bps > targets.markout_bps_high:
        gamma_dir = -1
        why.append(
            f"inventory pays and markouts {stats.markout_bps:.3g} bps > {targets.markout_bps_high}: "
            "gamma down"
        )
    return gamma_dir, kappa_dir, why


def propose(
    current: GammaKappa,
    stats: TradeStats,
    bounds: TunerSettings,
    targets: TunerTargets | None = None,
    *,
    measured_kappa: float | None = None,
) -> tuple[GammaKappa, str]:
    """The bounded proposal and why; the current values (clamped into range) when nothing asks for a
    change. `measured_kappa` (e.g. `ml.intensity.estimate_intensity(...).k` when its interval is
    tight) replaces the fill-rate rule: kappa steps toward it, never past it."""
    if measured_kappa is not None and not (math.isfinite(measured_kappa) and measured_kappa > 0):
        measured_kappa = None
    gamma_dir, kappa_dir, why = _directions(current, stats, targets or TunerTargets(), measured_kappa)
    gamma = step_toward(current.gamma, gamma_dir, bounds.gamma_step_pct, bounds.gamma_min, bounds.gamma_max)
    kappa = step_toward(
        current.kappa, kappa_dir, bounds.kappa_step_pct, bounds.kappa_min, bounds.kappa_max, measured_kappa
    )
    return GammaKappa(gamma, kappa), "; ".join(why) or "figures within targets"


def score_stats(stats: BacktestStats) -> float:
    """The default backtest score: the markout-adjusted PnL less the inventory risk, both in USD."""
    return stats.markout_pnl_usd - stats.inventory_risk_usd


def backtest_evaluator(
    settings: BotSettings,
    market: MarketSource,
    config: BacktestConfig | None = None,
    score: Callable[[BacktestStats], float] = score_stats,
) -> Evaluator:
    """Score gamma/kappa by a backtest of `market` with `settings` otherwise unchanged (same seed for
    every candidate, so two candidates see the very same market and touch draws); with `kappa: auto`
    only gamma is set (the run fits kappa)."""
    kappa_auto = settings.strategy.kappa == "auto"

    def evaluate(params: GammaKappa) -> float:
        tuned = {"gamma": params.gamma} if kappa_auto else {"gamma": params.gamma, "kappa": params.kappa}
        return score(run_backtest(with_params(settings, tuned), market, config).stats)

    return evaluate


def tune(
    settings: BotSettings,
    stats: TradeStats,
    window: MarketSource | Evaluator,
    *,
    config: BacktestConfig | None = None,
    targets: TunerTargets | None = None,
    measured_kappa: float | None = None,
) -> TuneDecision:
    """Propose from `stats` (and `measured_kappa`, see `propose`) within `settings.ml.tuner`; accept
    only if it scores strictly better than the current gamma/kappa on `window` (a market to
    backtest, or any evaluator)."""
    strategy = settings.strategy
    current = GammaKappa(strategy.gamma, strategy.kappa_value)
    proposed, why = propose(current, stats, settings.ml.tuner, targets, measured_kappa=measured_kappa)
    if strategy.kappa == "auto":  # the bot fits kappa itself: only gamma is tuned
        proposed = GammaKappa(proposed.gamma, current.kappa)
    if proposed == current:
        return TuneDecision(False, current, None, current, None, None, f"no change proposed: {why}", stats)
    evaluate = (
        backtest_evaluator(settings, window, config)
        if isinstance(window, SyntheticMarket | RecordedMarket)
        else window
    )
    current_score, proposed_score = evaluate(current), evaluate(proposed)
    scores = f"score {proposed_score:.4f} vs {current_score:.4f}"
    if proposed_score > current_score:
        reason = f"accepted: {why}; backtest {scores}"
        return TuneDecision(True, current, proposed, proposed, current_score, proposed_score, reason, stats)
    tie = "; a tie: the backtest cannot tell them apart" if proposed_score == current_score else ""
    reason = f"rejected: {why}; backtest does not improve ({scores}{tie})"
    return TuneDecision(False, current, proposed, current, current_score, proposed_score, reason, stats)
