"""Regime filters on constructed price paths, the filter registry, the latch and the tracker."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pydantic
import pytest

from bots.engine.config import FilterConfig, RegimeConfig
from bots.engine.regime import FILTERS, RegimeTracker, RegimeView, next_latch
from bots.engine.types import Signal
from settings.models import BotSettings, FilterSettings, StrategySettings

N, B, S = Signal.NEUTRAL, Signal.BUY, Signal.SELL
NAN = math.nan


def run_filter(name: str, closes: Sequence[float], wick: float = 0.0, **params: float) -> list[Signal]:
    """Signals of filter `name` on bars with high/low `wick` above/below each close."""
    flt = FILTERS[name](FilterConfig(**FilterSettings.model_validate(params).model_dump()))
    return [flt.update(c + wick, c - wick, c) for c in closes]


def test_registry_has_exactly_the_documented_filters() -> None:
    assert set(FILTERS) == {"bollinger", "rsi", "adx", "atr", "chop"}
    assert all(cls.name == name for name, cls in FILTERS.items())


def test_unknown_filter_name_is_a_settings_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="unknown filter"):
        StrategySettings(trend_strategy="macd")


# --------------------------------------------------------------------------- filters

CALM = [100.0, 101.0] * 13  # alternating: no trend, small bands, RSI ~50


def test_bollinger_mean_reverts_outside_the_bands() -> None:
    signals = run_filter("bollinger", [*CALM, 95.0], bollinger_window=20, bollinger_num_std=2.0)
    assert signals[:19] == [N] * 19  # warming up (window 20)
    assert signals[19:-1] == [N] * (len(CALM) - 19)  # inside the bands
    assert signals[-1] == B  # sharp drop below the lower band
    assert run_filter("bollinger", [*CALM, 106.0], bollinger_window=20)[-1] == S


def _band_crossing(band: int) -> float:
    """The close at which a close after CALM sits exactly on its own lower (-1) or upper (+1)
    band (window 20, 2 std), found by bisection: the band moves with the close itself."""

    def gap(close: float) -> float:
        window = np.array([*CALM[-19:], close])
        return close - float(window.mean() + band * 2.0 * window.std())

    lo, hi = (80.0, 100.0) if band < 0 else (101.0, 120.0)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
    return lo


def test_bollinger_signals_right_at_the_bands() -> None:
    lower, upper = _band_crossing(-1), _band_crossing(+1)
    for close, expected in ((lower - 1e-3, B), (lower + 1e-3, N), (upper + 1e-3, S), (upper - 1e-3, N)):
        assert run_filter("bollinger", [*CALM, close], bollinger_window=20)[-1] == expected, close


def test_bollinger_flat_market_is_neutral() -> None:
    # zero-width bands: the close is on both bands, which must not read as a signal
    assert run_filter("bollinger", [100.0] * 30, bollinger_window=5) == [N] * 30


def test_rsi_oversold_buys_and_overbought_sells() -> None:
    falling = [100.0 - i for i in range(10)]
    signals = run_filter("rsi", falling, rsi_period=5)
    assert signals == [N] * 5 + [B] * 5  # RSI needs period + 1 closes, then 0 < 30
    assert run_filter("rsi", [100.0 + i for i in range(10)], rsi_period=5) == [N] * 5 + [S] * 5
    assert run_filter("rsi", CALM, rsi_period=5) == [N] * len(CALM)


def test_rsi_thresholds_come_from_settings() -> None:
    # up 2, down 1, repeated: RSI settles near 100 * 2 / 3 = 66.7
    closes = np.cumsum([100.0] + [2.0, -1.0] * 15).tolist()
    assert run_filter("rsi", closes, rsi_period=4)[-1] == N
    assert run_filter("rsi", closes, rsi_period=4, rsi_overbought=60.0)[-1] == S


def test_adx_follows_a_strong_trend() -> None:
    up = [100.0 + i for i in range(20)]
    signals = run_filter("adx", up, wick=0.5, adx_period=5, adx_threshold=25.0)
    assert signals == [N] * 9 + [B] * 11  # ADX ready at bar 2 * period - 1, then +DI > -DI
    down = [100.0 - i for i in range(20)]
    assert run_filter("adx", down, wick=0.5, adx_period=5)[9:] == [S] * 11
    # tick bars (high = low = close) trend just the same
    assert run_filter("adx", up, adx_period=5)[9:] == [B] * 11


def test_adx_without_trend_is_neutral() -> None:
    assert run_filter("adx", CALM, wick=0.5, adx_period=5, adx_threshold=25.0) == [N] * len(CALM)


def test_atr_breakout_against_the_previous_bar_atr() -> None:
    # TRs of 1 bring ATR(5) near 1; a move of 2.5 is beyond 2 x the previous ATR (~0.99) but not
    # beyond 2 x the ATR including the breakout bar (~1.29): the previous bar's ATR must be used.
    signals = run_filter("atr", [*CALM, 103.5], atr_period=5, atr_breakout_mult=2.0)
    assert signals[:-1] == [N] * len(CALM)
    assert signals[-1] == B
    assert run_filter("atr", [*CALM, 98.0], atr_period=5, atr_breakout_mult=2.0)[-1] == S
    assert run_filter("atr", [*CALM, 102.5], atr_period=5, atr_breakout_mult=2.0)[-1] == N


def test_atr_is_neutral_until_warm() -> None:
    # a huge first move is ignored while the ATR has fewer than `period` bars
    assert run_filter("atr", [100.0, 200.0, 100.0, 300.0], atr_period=5) == [N] * 4


def test_chop_signals_the_trend_direction_when_trending() -> None:
    up = [100.0 + i for i in range(12)]  # CHOP(5) = 100 log10(5 / 4) / log10(5) = 13.9
    assert run_filter("chop", up, chop_period=5, chop_trend_threshold=38.2) == [N] * 5 + [B] * 7
    down = [100.0 - i for i in range(12)]
    assert run_filter("chop", down, chop_period=5) == [N] * 5 + [S] * 7
    assert run_filter("chop", CALM, chop_period=5) == [N] * len(CALM)  # CHOP = 100: choppy
    assert run_filter("chop", up, chop_period=5, chop_trend_threshold=10.0) == [N] * 12


def test_chop_compares_with_the_close_period_bars_ago() -> None:
    # CHOP(5) = 100 log10(9 / 4) / log10(5) = 50.4: "trending" under a threshold of 60. The last
    # close is above the close 5 bars ago (BUY) though below the one 4 bars ago.
    closes = [100.0, 105.0, 104.0, 103.0, 102.0, 101.0]
    assert run_filter("chop", closes, chop_period=5, chop_trend_threshold=60.0)[-1] == B
    assert run_filter("chop", closes, chop_period=5, chop_trend_threshold=50.0)[-1] == N


def test_chop_flat_market_is_neutral() -> None:
    assert run_filter("chop", [100.0] * 12, chop_period=5) == [N] * 12


# --------------------------------------------------------------------------- latch

RELEASE_BUY, RELEASE_SELL = 40.0, 60.0


@pytest.mark.parametrize(
    ("latched", "raw", "rsi", "flat", "expected"),
    [
        pytest.param(N, N, 50.0, False, N, id="nothing"),
        pytest.param(N, B, 50.0, False, B, id="set-buy"),
        pytest.param(N, S, 50.0, False, S, id="set-sell"),
        pytest.param(N, B, NAN, True, B, id="set-while-flat-and-cold"),
        pytest.param(B, S, 20.0, False, S, id="switch-buy-to-sell"),
        pytest.param(S, B, 80.0, False, B, id="switch-sell-to-buy"),
        pytest.param(B, B, 90.0, False, B, id="raw-renews-over-release"),
        pytest.param(B, N, 35.0, False, B, id="buy-persists"),
        pytest.param(B, N, 40.0, False, B, id="buy-persists-at-release-level"),
        pytest.param(B, N, 40.5, False, N, id="buy-released-by-rsi"),
        pytest.param(S, N, 65.0, False, S, id="sell-persists"),
        pytest.param(S, N, 60.0, False, S, id="sell-persists-at-release-level"),
        pytest.param(S, N, 59.5, False, N, id="sell-released-by-rsi"),
        pytest.param(S, N, 35.0, False, N, id="sell-released-by-low-rsi"),
        pytest.param(B, N, 35.0, True, N, id="buy-released-when-flat"),
        pytest.param(S, N, 65.0, True, N, id="sell-released-when-flat"),
        pytest.param(B, N, NAN, False, B, id="nan-rsi-keeps-buy"),
        pytest.param(S, N, NAN, False, S, id="nan-rsi-keeps-sell"),
        pytest.param(B, N, NAN, True, N, id="flat-releases-even-with-nan-rsi"),
    ],
)
def test_next_latch(latched: Signal, raw: Signal, rsi: float, flat: bool, expected: Signal) -> None:
    assert next_latch(latched, raw, rsi, flat, RELEASE_BUY, RELEASE_SELL) is expected


# --------------------------------------------------------------------------- tracker

# RSI(3) of these closes: nan x3, 0, 0, 20, 24.5, 30.4, 48.6, 68.8, 80.4
PATH = [100.0, 99.0, 98.0, 97.0, 96.0, 96.5, 96.6, 96.7, 97.0, 97.5, 98.0]


def regime(strategy: StrategySettings) -> RegimeConfig:
    """The engine's regime config, as the settings layer builds it."""
    return BotSettings(symbol="BTC_USDT_Perp", strategy=strategy).engine_config().regime


def rsi_strategy() -> RegimeConfig:
    return regime(
        StrategySettings(
            trend_strategy="rsi",
            filters=FilterSettings(rsi_period=3),
            latch_release_rsi_buy=RELEASE_BUY,
            latch_release_rsi_sell=RELEASE_SELL,
        )
    )


def test_tracker_latches_until_rsi_releases() -> None:
    tracker = RegimeTracker(rsi_strategy())
    views = [tracker.update(p, position_is_flat=False) for p in PATH]
    assert [v.raw for v in views] == [N, N, N, B, B, B, B, N, N, N, S]
    # oversold at 30.4 no longer signals, but the latch holds until RSI > 40 (48.6)
    assert [v.latched for v in views] == [N, N, N, B, B, B, B, B, N, N, S]
    assert tracker.latched is S
    assert all(math.isnan(v.rsi) for v in views[:3])
    assert views[7].rsi == pytest.approx(30.434782608695, rel=1e-9)


def test_tracker_flat_position_releases_the_latch() -> None:
    tracker = RegimeTracker(rsi_strategy())
    views = [tracker.update(p, position_is_flat=i >= 7) for i, p in enumerate(PATH)]
    assert views[6].latched is B
    assert views[7].latched is N  # raw NEUTRAL, latched BUY, but nothing left to exit


def test_tracker_uses_the_configured_filter() -> None:
    # A sharp drop is a Bollinger BUY, while ADX(14) is still warming up after 21 prices: only
    # the selected filter may speak.
    closes = [*CALM[:20], 90.0]
    for name, expected in (("bollinger", B), ("adx", N)):
        tracker = RegimeTracker(regime(StrategySettings(trend_strategy=name)))
        assert [tracker.update(p, False).raw for p in closes][-1] is expected


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_tracker_runs_every_filter_on_ticks(name: str) -> None:
    prices = np.round(50_000.0 * np.exp(np.cumsum(np.random.default_rng(7).normal(0, 2e-4, 3_000))), 1)
    tracker = RegimeTracker(regime(StrategySettings(trend_strategy=name)))
    views = [tracker.update(p, position_is_flat=False) for p in prices.tolist()]
    raws = {v.raw for v in views}
    assert raws <= {N, B, S} and len(raws) > 1  # the filter does say something on a random walk
    assert all(0.0 <= v.rsi <= 100.0 for v in views[15:])


def test_regime_view_is_immutable() -> None:
    view = RegimeTracker(rsi_strategy()).update(100.0, position_is_flat=True)
    assert isinstance(view, RegimeView)
    assert (view.raw, view.latched, math.isnan(view.rsi)) == (N, N, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.latched = B  # type: ignore[misc]
    assert not hasattr(view, "__dict__")
