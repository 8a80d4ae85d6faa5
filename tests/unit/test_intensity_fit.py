"""The online A exp(-kappa delta) fit recovers A and kappa of synthetic trades, forgets an old market, and
drives the bot's kappa when it is `auto` (with the fallback before enough trades)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bots.core.core import BotCore
from bots.core.orders import OrderIds
from bots.engine.intensity import IntensityConfig, IntensityEstimator
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import QuoteEngine
from bots.engine.types import Side
from bots.exchange.events import BookLevel, BookUpdate, Trade
from bots.exchange.sim import UNINFORMED
from ml.backtest import SyntheticMarket, run_backtest
from ml.backtest_loop import BacktestConfig, BacktestLoop
from ml.intensity import estimate_intensity
from settings.models import BotSettings

NS = 1_000_000_000


def trades(
    a: float, kappa: float, start_s: float, duration_s: float, seed: int, touch: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(times in ns, depths) of both sides' market orders: Poisson arrivals at 2A per second, each
    reaching an exponential depth of rate kappa, printed no shallower than the touch."""
    rng = np.random.default_rng(seed)
    n = rng.poisson(2.0 * a * duration_s)
    ts = np.sort(rng.uniform(start_s, start_s + duration_s, n)) * NS
    return ts.astype(np.int64), np.maximum(rng.exponential(1.0 / kappa, n), touch)


def fed(config: IntensityConfig, ts: np.ndarray, depths: np.ndarray) -> IntensityEstimator:
    estimator = IntensityEstimator(config)
    for t, d in zip(ts.tolist(), depths.tolist(), strict=True):
        estimator.add(t, d)
    return estimator


STILL = IntensityConfig(time_constant_s=1e9)  # no decay worth the name: every trade counts alike


@settings(max_examples=40, deadline=None)
@given(
    a=st.floats(0.2, 20.0),
    kappa=st.floats(200.0, 20_000.0),
    touch_share=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_recovers_a_and_kappa_of_synthetic_trades(
    a: float, kappa: float, touch_share: float, seed: int
) -> None:
    """About 8,000 trades; the touch (up to half a mean depth) piles the shallower ones on it, as a
    real book does, and must not bias the fit."""
    duration_s = 8_000.0 / (2.0 * a)
    ts, depths = trades(a, kappa, 0.0, duration_s, seed, touch=touch_share / kappa)
    fit = fed(STILL, ts, depths).fit(round(duration_s * NS))
    assert fit is not None
    assert fit.kappa == pytest.approx(kappa, rel=0.1)
    assert fit.intensity_a == pytest.approx(a, rel=0.1)
    assert fit.depth_from >= touch_share / kappa - STILL.bucket_pct  # the fit starts beyond the touch pile


def test_agrees_with_the_batch_fit_of_ml_intensity() -> None:
    ts, depths = trades(2.0, 1_000.0, 0.0, 3_600.0, seed=11)
    online = fed(STILL, ts, depths).fit(3_600 * NS)
    batch = estimate_intensity(depths, 3_600.0)
    assert online is not None
    assert online.kappa == pytest.approx(batch.k, rel=0.05)
    assert batch.A_ci[0] < 2.0 * online.intensity_a < batch.A_ci[1]  # the batch fit pools both sides


def test_no_fit_before_enough_trades_and_none_from_junk() -> None:
    config = IntensityConfig(min_trades=500.0, time_constant_s=1e9)
    ts, depths = trades(1.0, 1_000.0, 0.0, 200.0, seed=3)  # ~400 trades
    estimator = fed(config, ts, depths)
    assert estimator.fit(200 * NS) is None
    junk = IntensityEstimator(IntensityConfig(min_trades=1.0))
    for t, d in enumerate([float("nan"), -1.0, float("inf")]):
        junk.add(t * NS, d)
    assert junk.fit(10 * NS) is None
    same = IntensityEstimator(IntensityConfig(min_trades=1.0))
    for t in range(100):
        same.add(t * NS, 0.0001)  # no decay with depth: nothing to fit
    assert same.fit(100 * NS) is None


def test_an_old_market_is_forgotten_within_a_few_time_constants() -> None:
    config = IntensityConfig(time_constant_s=120.0)
    ts1, d1 = trades(3.0, 800.0, 0.0, 1_800.0, seed=1)
    ts2, d2 = trades(3.0, 4_000.0, 1_800.0, 1_200.0, seed=2)  # ten time constants later
    estimator = fed(config, np.concatenate([ts1, ts2]), np.concatenate([d1, d2]))
    before = fed(config, ts1, d1).fit(1_800 * NS)
    after = estimator.fit(3_000 * NS)
    assert before is not None and after is not None
    assert before.kappa == pytest.approx(800.0, rel=0.15)
    assert after.kappa == pytest.approx(4_000.0, rel=0.15)
    assert after.intensity_a == pytest.approx(3.0, rel=0.15)


def test_weights_renormalise_over_a_long_run() -> None:
    """Days of trades with a short time constant: the growing weights are rescaled, never overflow."""
    config = IntensityConfig(time_constant_s=60.0)  # weights would reach exp(1440) by the end
    ts, depths = trades(5.0, 2_000.0, 0.0, 86_400.0, seed=4)
    fit = fed(config, ts, depths).fit(86_400 * NS)
    assert fit is not None
    assert fit.kappa == pytest.approx(2_000.0, rel=0.2) and fit.intensity_a == pytest.approx(5.0, rel=0.2)
    assert fit.trades == pytest.approx(600.0 * np.exp(-2_000.0 * fit.depth_from), rel=0.2)


def fitting(kappa: object = "auto", **strategy: object) -> BotSettings:
    return BotSettings.model_validate(
        {
            "symbol": "BTC_USDT_Perp",
            "strategy": {"kappa": kappa, "intensity": {"time_constant_s": 120.0}, **strategy},
            # trades arrive at A*exp(-k*delta) alone: no informed flow, clustering or sweeps to fit around
            "sim": {"trade_intensity_a": 3.0, "trade_decay_k": 2_500.0, **UNINFORMED},
        }
    )


def test_a_bot_with_kappa_auto_quotes_with_the_fallback_then_the_fitted_kappa() -> None:
    settings = fitting()
    loop = BacktestLoop(settings, BacktestConfig())
    steps = SyntheticMarket(seconds=600, seed=5).steps(settings)
    kappas = []
    for book, step_trades in steps:
        loop.step(book, step_trades)
        decision = loop.core.last_decision
        assert decision is not None
        kappas.append(decision.kappa)
    assert kappas[0] == settings.strategy.intensity.fallback_kappa == 1_000.0
    assert loop.core.fitted is not None
    assert loop.core.engine.kappa == loop.core.fitted.kappa == pytest.approx(2_500.0, rel=0.1)
    assert kappas[-1] == loop.core.engine.kappa
    assert len(set(kappas)) > 10  # refitted as trades come, once a timer


def test_glft_intensity_a_auto_takes_the_fitted_a() -> None:
    settings = fitting(kappa=1_500.0, model="glft", glft_intensity_a="auto")
    loop = BacktestLoop(settings, BacktestConfig())
    for book, step_trades in SyntheticMarket(seconds=600, seed=6).steps(settings):
        loop.step(book, step_trades)
    assert loop.core.fitted is not None
    assert loop.core.engine.kappa == 1_500.0  # not auto: as configured
    assert loop.core.engine.intensity_a == loop.core.fitted.intensity_a == pytest.approx(3.0, rel=0.15)


def test_trade_depths_are_measured_from_the_last_quotable_mid() -> None:
    settings = fitting(intensity={"min_trades": 1.0, "time_constant_s": 86_400.0})
    core = BotCore(
        settings.core_config(),
        QuoteEngine(settings.engine_config()),
        Portfolio(symbol=settings.symbol, starting_balance=Decimal(10_000)),
        OrderIds(0, 0, 0),
    )

    def trade(ts_s: int, price: str) -> Trade:
        return Trade(settings.symbol, ts_s * NS, Decimal(price), Decimal("0.001"), Side.BUY, str(ts_s))

    core.on_trade(trade(1, "50010"))  # no book yet: not measured
    bid, ask = BookLevel(Decimal("49999.9"), Decimal(1)), BookLevel(Decimal("50000.1"), Decimal(1))
    core.on_book(BookUpdate(settings.symbol, NS, (bid,), ()), NS)  # one-sided: no mid to measure from
    core.on_trade(trade(1, "50010"))
    book = BookUpdate(settings.symbol, 2 * NS, (bid,), (ask,))
    core.on_book(book, 2 * NS)
    for second, price in enumerate(["50000.1", "50005", "50010", "50020", "50040"], start=3):
        core.on_trade(trade(second, price))
    estimator = core.intensity
    assert estimator is not None
    # |price - 50000| / 50000 in buckets of 0.5 bp: 0.1 -> 0, 5 -> 2, 10 -> 4, 20 -> 8, 40 -> 16
    filled = {j: round(c, 3) for j, c in enumerate(estimator._counts) if c}
    assert filled == {0: 1.0, 2: 1.0, 4: 1.0, 8: 1.0, 16: 1.0}
    assert core.trade_ns == 7 * NS


def test_without_auto_the_core_fits_nothing() -> None:
    settings = fitting(kappa=800.0)
    result = run_backtest(settings, SyntheticMarket(seconds=30, seed=1))
    assert result.stats.events == 300
    loop = BacktestLoop(settings, BacktestConfig())
    assert loop.core.intensity is None and loop.core.engine.kappa == 800.0
