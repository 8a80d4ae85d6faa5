"""Grid, boost, rounding, post-only clamp and entry anchor."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.engine.quoting import (
    ask_ticks,
    bid_ticks,
    boost,
    entry_anchor,
    floored_spread,
    grid,
    grid_steps,
    lots_for_notional,
    nearest_int,
    post_only_limits,
    quote_center,
)
from bots.engine.types import DesiredOrder, OrderKind, Side, Signal
from settings.models import BotSettings, StrategySettings

TICK = 0.1
OPEN = (10**9, 0)  # price limits that limit nothing


def _quotes(
    strategy: StrategySettings | None = None,
    *,
    mid: float = 50_000.0,
    center: float | None = None,
    half_spread: float = 0.0025,
    best_bid: int = 499_999,
    best_ask: int = 500_001,
    signal: Signal = Signal.NEUTRAL,
    anchor: tuple[int, int] = OPEN,
) -> list[DesiredOrder]:
    """The engine's quoting steps: post-only limits (tightened by `anchor`), grid, boost."""
    config = BotSettings(symbol="BTC_USDT_Perp", strategy=strategy or StrategySettings()).engine_config().grid
    max_bid, min_ask = post_only_limits(best_bid * TICK, best_ask * TICK, TICK)
    max_bid, min_ask = min(max_bid, anchor[0]), max(min_ask, anchor[1])
    mid_center = mid if center is None else center
    steps = grid_steps(config.layers, config.spacing_pct)
    bids, asks = grid(mid, mid_center, half_spread, TICK, 4, max_bid, min_ask, steps)
    if config.signal_boost:
        bids, asks = boost(bids, asks, mid, TICK, 4, max_bid, min_ask, signal, config.boost_offsets_pct)
    return bids + asks


@pytest.mark.parametrize(
    ("price", "bid", "ask"),
    [(50_000.0, 500_000, 500_000), (50_000.05, 500_000, 500_001), (50_000.1, 500_001, 500_001)],
)
def test_rounding_is_away_from_mid(price: float, bid: int, ask: int) -> None:
    assert bid_ticks(price, TICK) == bid
    assert ask_ticks(price, TICK) == ask


@given(
    st.floats(min_value=-(2.0**52), max_value=2.0**52, allow_nan=False)
    | st.integers(-(10**6), 10**6).map(lambda n: n / 2)  # every half: the ties
)
def test_nearest_int_is_the_builtin_round(x: float) -> None:
    assert nearest_int(x) == round(x)


def test_lots_round_down() -> None:
    assert lots_for_notional(200.0, 50_000.0, 0.001) == 4
    assert lots_for_notional(199.0, 50_000.0, 0.001) == 3


def test_grid_layers_and_spacing() -> None:
    orders = _quotes()
    bids = [o for o in orders if o.side is Side.BUY]
    asks = [o for o in orders if o.side is Side.SELL]
    assert len(bids) == len(asks) == 7
    # layer i sits at mid*(1 -+ (0.25% + i*0.12%))
    assert [o.price_ticks for o in bids[:2]] == [
        bid_ticks(50_000 * 0.9975, TICK),
        bid_ticks(50_000 * 0.9963, TICK),
    ]
    assert [o.price_ticks for o in asks[:2]] == [
        ask_ticks(50_000 * 1.0025, TICK),
        ask_ticks(50_000 * 1.0037, TICK),
    ]
    assert all(o.size_lots == 4 and o.kind is OrderKind.GRID for o in orders)


@pytest.mark.parametrize(("signal", "side"), [(Signal.BUY, Side.BUY), (Signal.SELL, Side.SELL)])
def test_signal_boost_adds_two_orders_near_mid_on_the_signal_side(signal: Signal, side: Side) -> None:
    orders = _quotes(signal=signal)
    boosts = [o for o in orders if o.kind is OrderKind.BOOST]
    assert len(boosts) == 2
    assert {o.side for o in boosts} == {side}
    expected = (
        [50_000 * (1 - 0.0005), 50_000 * (1 - 0.001)]
        if side is Side.BUY
        else [50_000 * 1.0005, 50_000 * 1.001]
    )
    assert sorted(o.price_ticks * TICK for o in boosts) == pytest.approx(sorted(expected))


def test_no_boost_when_disabled() -> None:
    orders = _quotes(StrategySettings(signal_boost=False), signal=Signal.BUY)
    assert all(o.kind is OrderKind.GRID for o in orders)


def test_post_only_clamp_keeps_quotes_off_the_other_side() -> None:
    # Centre far above the book: every bid would cross the best ask.
    orders = _quotes(center=51_000.0, best_bid=499_999, best_ask=500_001)
    bids = [o.price_ticks for o in orders if o.side is Side.BUY]
    asks = [o.price_ticks for o in orders if o.side is Side.SELL]
    assert max(bids) == 500_000  # best ask - 1 tick, one order there (deduplicated)
    assert len(bids) == len(set(bids))
    assert min(asks) > max(bids)


def test_entry_anchor_long_profit_only_exits_and_no_buys_above_entry() -> None:
    anchor = entry_anchor(*OPEN, position_lots=5, entry_price=50_200.0, tolerance_pct=0.0, tick=TICK)
    assert anchor == (502_000, 502_000)
    orders = _quotes(anchor=anchor)
    assert all(o.price_ticks >= 502_000 for o in orders if o.side is Side.SELL)
    assert all(o.price_ticks <= 502_000 for o in orders if o.side is Side.BUY)


def test_entry_anchor_signal_tolerance_allows_a_bounded_loss() -> None:
    anchor = entry_anchor(*OPEN, position_lots=5, entry_price=50_200.0, tolerance_pct=0.005, tick=TICK)
    assert anchor == (502_000, ask_ticks(50_200 * 0.995, TICK))


def test_entry_anchor_short_is_mirrored_and_flat_has_none() -> None:
    anchor = entry_anchor(*OPEN, position_lots=-5, entry_price=49_800.0, tolerance_pct=0.0, tick=TICK)
    assert anchor == (498_000, 498_000)
    orders = _quotes(anchor=anchor)
    assert all(o.price_ticks <= 498_000 for o in orders if o.side is Side.BUY)
    assert entry_anchor(*OPEN, 0, 50_000.0, 0.0, TICK) == OPEN
    assert entry_anchor(*OPEN, 5, math.nan, 0.0, TICK) == OPEN  # no entry price known
    # the anchor only ever tightens the limits it is given
    assert entry_anchor(501_000, 503_000, 5, 50_200.0, 0.0, TICK) == (501_000, 503_000)


def test_boost_stays_behind_our_own_opposite_orders() -> None:
    # Long and heavily skewed: asks are pushed to the best bid + 1 on a wide book; a buy boost
    # must not sit at or above them.
    orders = _quotes(center=49_000.0, best_bid=499_000, best_ask=501_000, signal=Signal.BUY)
    bids = [o.price_ticks for o in orders if o.side is Side.BUY]
    asks = [o.price_ticks for o in orders if o.side is Side.SELL]
    assert max(bids) < min(asks)


def test_spread_floor_and_centre() -> None:
    assert floored_spread(0.001, 0.005) == 0.005  # a floor under the model's spread
    assert floored_spread(0.008, 0.005) == 0.008  # never a cap
    assert quote_center(50_000.0, 1.0, 0.0, 0.0025) == 50_000.0
    # long (skew 0.5 half spreads) moves the centre down by a quarter of the spread
    assert quote_center(50_000.0, 1.0, 0.5, 0.0025) == pytest.approx(50_000.0 * (1 - 0.00125))


def test_post_only_limits_stay_inside_the_book() -> None:
    assert post_only_limits(49_999.9, 50_000.1, TICK) == (500_000, 500_000)
    assert post_only_limits(2.40, 2.41, 0.01) == (240, 241)  # a one-tick book: join it, never cross


def test_grid_steps_are_layers_of_spacing() -> None:
    assert grid_steps(3, 0.001) == (0.0, 0.001, 0.002)
