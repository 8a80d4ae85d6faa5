"""The sim market can lose: with its default informed flow, after fees and rebates, over several seeds
(issue 15, item 1).

- a symmetric quoter one tick behind the touch loses money on average, though it earns its rebates;
- the markouts of its fills are negative at short horizons; a quote 2 bp from the mid has better ones
  at 10 s and 60 s (it fills when a sweep runs through it, and half of a sweep fades; at 1 s the
  sweep has only just jumped past it, so its 1 s markout is worse);
- the A-S quoter with the example config's parameters beats it on PnL per unit of PnL standard
  deviation across seeds;
- a result too good to be true (the tight quoter on the plain market of before, without informed flow)
  fails the plausibility bounds that every run of the default market passes;
- the busy, volatile bot of the drawdown alert test, on either fill model sim mode offers
  (`paper.queue_model`, on by default), loses at short horizons and does not multiply its money:
  prints of a few lots 25 bp deep once filled its whole grid in full, and it went from 1,000 to 8,800
  USD in a minute.

Each quoter runs once per seed (module fixtures); the backtests are the bot's own core through the
paper fill model, as `mmfleet backtest` runs them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bots.exchange.sim import BUILTIN_START_PRICES, UNINFORMED
from ml.backtest import BacktestConfig, SyntheticMarket, run_backtest
from ml.results import BacktestStats
from settings.fleet import deep_merge, load_fleet
from settings.models import BotSettings
from tests.integration.test_alerts_e2e import VOLATILE
from tests.integration.test_fleet import BUSY_BOT

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "fleet.example.yaml"
SEEDS = range(5)
SECONDS = 600.0
# Past either, a 10-minute run is too good to be true: the backtest reported an annualised
# Sharpe ratio of 2354; 1% of the balance an hour is 87 times it a year, with 200 USD orders.
SHARPE_BOUND = 2000.0  # annualised, from 60 s windows
RETURN_PER_HOUR_BOUND = 0.01


def example_bot() -> BotSettings:
    """The example config's first bot (BTC_USDT_Perp), as `mmfleet` would load it."""
    return load_fleet(EXAMPLE).bots[0]


def symmetric(bot: BotSettings, half_spread_ticks: float) -> BotSettings:
    """One order per side `half_spread_ticks` from the mid, requoted on every book, no skew, no anchor:
    with 1.5 ticks on a book 1-3 ticks wide, one tick behind the touch (the model's own spread is nil:
    gamma tiny, kappa huge, so the floor decides)."""
    mid = example_mid(bot)
    spread = 2 * half_spread_ticks * float(bot.spec.tick_size) / mid
    strategy = bot.strategy.model_copy(
        update={
            "gamma": 1e-3,
            "kappa": 1e9,
            "spread_pct": spread,
            "grid_layers": 1,
            "price_tolerance_pct": 0.0,
            "entry_anchor_mode": False,
            "signal_boost": False,
        }
    )
    risk = bot.risk.model_copy(update={"inventory_skew_factor": 0.0})
    return bot.model_copy(update={"strategy": strategy, "risk": risk})


def example_mid(bot: BotSettings) -> float:
    return bot.sim.start_price or BUILTIN_START_PRICES[bot.symbol]


def runs(bot: BotSettings) -> list[BacktestStats]:
    return [run_backtest(bot, SyntheticMarket(SECONDS, seed)).stats for seed in SEEDS]


def pnl_per_risk(stats: list[BacktestStats]) -> float:
    """Mean PnL over its standard deviation across seeds."""
    pnl = np.array([s.total_pnl_usd for s in stats])
    return float(pnl.mean() / pnl.std(ddof=1))


def too_good(stats: BacktestStats, balance: float) -> bool:
    per_hour = stats.total_pnl_usd / balance * 3600.0 / stats.seconds
    return stats.sharpe > SHARPE_BOUND or per_hour > RETURN_PER_HOUR_BOUND


@pytest.fixture(scope="module")
def tight() -> list[BacktestStats]:
    return runs(symmetric(example_bot(), 1.5))


@pytest.fixture(scope="module")
def wide() -> list[BacktestStats]:
    return runs(symmetric(example_bot(), WIDE_TICKS))


WIDE_TICKS = 130.0  # 2 bp of a 65,000 USD mid


@pytest.fixture(scope="module")
def example() -> list[BacktestStats]:
    return runs(example_bot())


def test_a_symmetric_quoter_one_tick_behind_the_touch_loses_on_average_after_rebates(
    tight: list[BacktestStats],
) -> None:
    assert all(s.fills > 100 and s.rebates_usd > 0 for s in tight), "it trades and earns rebates"
    assert np.mean([s.total_pnl_usd for s in tight]) < 0, [round(s.total_pnl_usd, 2) for s in tight]


def test_markouts_are_negative_at_short_horizons_for_tight_quotes_and_shrink_with_wider_ones(
    tight: list[BacktestStats], wide: list[BacktestStats]
) -> None:
    def mean(stats: list[BacktestStats], horizon: str) -> float:
        return float(np.nanmean([getattr(s, f"markout_{horizon}_bps") for s in stats]))

    assert mean(tight, "1s") < 0 and mean(tight, "10s") < 0, (mean(tight, "1s"), mean(tight, "10s"))
    assert sum(s.fills for s in wide) > 50
    assert mean(wide, "10s") > mean(tight, "10s"), (mean(wide, "10s"), mean(tight, "10s"))
    assert mean(wide, "60s") > mean(tight, "60s"), (mean(wide, "60s"), mean(tight, "60s"))


def test_the_example_quoter_beats_the_symmetric_one_on_pnl_per_unit_of_risk(
    tight: list[BacktestStats], example: list[BacktestStats]
) -> None:
    assert pnl_per_risk(example) > pnl_per_risk(tight), (pnl_per_risk(example), pnl_per_risk(tight))


def test_no_run_of_the_default_market_is_too_good_to_be_true_and_the_old_market_was(
    tight: list[BacktestStats], wide: list[BacktestStats], example: list[BacktestStats]
) -> None:
    """The bounds bite: the plain market (the model before informed flow: nobody knows where the mid
    goes) hands the tight quoter, which loses on the default market, an implausible result; the
    default market never does."""
    bot = example_bot()
    balance = float(bot.paper.starting_balance_usd)
    assert not [(s.sharpe, s.total_pnl_usd) for s in (*tight, *wide, *example) if too_good(s, balance)]
    plain = bot.sim.model_copy(update={"trade_decay_k": 1000.0, **UNINFORMED})
    old = symmetric(bot, 1.5).model_copy(update={"sim": plain})
    stats = run_backtest(old, SyntheticMarket(SECONDS, 0)).stats
    assert math.isfinite(stats.sharpe) and too_good(stats, balance), (stats.sharpe, stats.total_pnl_usd)


@pytest.mark.parametrize("queue_model", [True, False], ids=["queue-model", "first-at-its-level"])
def test_the_alert_tests_busy_volatile_bot_loses_at_short_horizons_and_does_not_multiply_its_money(
    queue_model: bool,
) -> None:
    """Sim mode's fill models (`paper.queue_model`): a print fills our orders only with the volume left
    after the book's better prices, as on a venue. Before, without the queue model, it filled every
    order it printed through in full, and this bot's 3-layer grid 10-20 bp from the mid filled 30
    times a simulated second at +15 bp markouts."""
    bot = BotSettings.model_validate(
        {
            "symbol": "BTC_USDT_Perp",
            **deep_merge(deep_merge(BUSY_BOT, VOLATILE), {"paper": {"queue_model": queue_model}}),
        }
    )
    balance = float(bot.paper.starting_balance_usd)
    for seed in SEEDS:
        config = BacktestConfig(seed=seed, queue_model=False)  # the bot's own `paper.queue_model`
        stats = run_backtest(bot, SyntheticMarket(SECONDS, seed), config).stats
        figures = (seed, stats.fills, stats.total_pnl_usd, stats.markout_1s_bps)
        assert not stats.markout_1s_bps > 0 and stats.total_pnl_usd < 0.5 * balance, figures
