"""Risk rules: trading state, skew, reduce-only and the position limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.engine.risk import RiskState, assess, drawdown_ratio, inventory_skew, order_room, within_limit
from bots.engine.types import DesiredOrder, OrderKind, Side, TradingState
from settings.models import BotSettings, RiskSettings

RISK = (
    BotSettings(
        symbol="BTC_USDT_Perp",
        risk=RiskSettings(max_position_usd=5000, max_loss_usd=50, max_drawdown_pct=0.05),
    )
    .engine_config()
    .risk
)


@pytest.mark.parametrize(
    ("position_usd", "unrealized", "equity", "peak", "state", "close"),
    [
        (0.0, 0.0, 10_000.0, 10_000.0, TradingState.ACTIVE, False),
        (4_999.0, -49.0, 10_000.0, 10_100.0, TradingState.ACTIVE, False),
        (5_000.0, 0.0, 10_000.0, 10_000.0, TradingState.REDUCING, False),
        (-6_000.0, 0.0, 10_000.0, 10_000.0, TradingState.REDUCING, False),
        (1_000.0, -50.0, 10_000.0, 10_000.0, TradingState.HALTED, False),  # breaker: keep position
        (1_000.0, -10.0, 9_500.0, 10_000.0, TradingState.HALTED, True),  # 5% drawdown: close all
        (0.0, 0.0, 9_400.0, 10_000.0, TradingState.HALTED, False),  # drawdown while flat: nothing to close
    ],
)
def test_assess_table(
    position_usd: float, unrealized: float, equity: float, peak: float, state: TradingState, close: bool
) -> None:
    verdict = assess(RISK, RiskState(), position_usd, unrealized, equity, peak)
    assert verdict.state is state
    assert verdict.close_position is close
    assert bool(verdict.reasons) is (state is not TradingState.ACTIVE)


def test_trips_latch_until_reset() -> None:
    tripped = assess(RISK, RiskState(), 0.0, -60.0, 10_000.0, 10_000.0)
    assert tripped.risk_state.breaker_tripped
    later = assess(RISK, tripped.risk_state, 0.0, 0.0, 10_000.0, 10_000.0)
    assert later.state is TradingState.HALTED
    assert assess(RISK, RiskState(), 0.0, 0.0, 10_000.0, 10_000.0).state is TradingState.ACTIVE


def test_drawdown_ratio() -> None:
    assert drawdown_ratio(9_000.0, 10_000.0) == pytest.approx(0.1)
    assert drawdown_ratio(11_000.0, 10_000.0) == 0.0
    assert drawdown_ratio(5.0, 0.0) == 0.0


@pytest.mark.parametrize(
    ("position", "expected"), [(0.0, 0.0), (2_500.0, 0.25), (-5_000.0, -0.5), (50_000.0, 0.5), (-1e9, -0.5)]
)
def test_inventory_skew_is_proportional_and_clipped(position: float, expected: float) -> None:
    assert inventory_skew(position, 5_000.0, 0.5) == pytest.approx(expected)


def _orders() -> list[DesiredOrder]:
    return [DesiredOrder(Side.BUY, 100 - i, 3, i) for i in range(3)] + [
        DesiredOrder(Side.SELL, 101 + i, 3, i) for i in range(3)
    ]


@pytest.mark.parametrize(
    ("position", "max_lots", "reducing", "bid_sizes", "ask_sizes"),
    [
        (0, 100, False, [3, 3, 3], [3, 3, 3]),
        (0, 7, False, [3, 3, 1], [3, 3, 1]),  # the order that crosses the limit is shrunk
        (6, 7, False, [1], [3, 3, 3]),
        (-7, 7, False, [3, 3, 3], []),
        (9, 7, False, [], [3, 3, 3]),  # beyond the limit (rounding): no room to add
        (4, 7, True, [], [3, 1]),  # reducing never flips the position, and never adds
        (-5, 7, True, [3, 2], []),
        (0, 7, True, [], []),  # reducing while flat: nothing to do
    ],
)
def test_orders_within_the_room_of_the_limit(
    position: int, max_lots: int, reducing: bool, bid_sizes: list[int], ask_sizes: list[int]
) -> None:
    orders = _orders()
    bid_room, ask_room = order_room(position, max_lots, reducing)
    bids = within_limit([o for o in orders if o.side is Side.BUY], 3, bid_room)
    asks = within_limit([o for o in orders if o.side is Side.SELL], 3, ask_room)
    assert [o.size_lots for o in bids] == bid_sizes
    assert [o.size_lots for o in asks] == ask_sizes
    assert [o.price_ticks for o in bids] == [100, 99, 98][: len(bids)]  # best first, the rest dropped


def _within_limit_reference(orders: list[DesiredOrder], room: int) -> list[DesiredOrder]:
    """The definition: walk best first, shrink the order that crosses, drop the ones after it."""
    kept: list[DesiredOrder] = []
    for order in orders:
        if room <= 0:
            break
        size = min(order.size_lots, room)
        kept.append(
            order
            if size == order.size_lots
            else DesiredOrder(order.side, order.price_ticks, size, order.layer, order.kind)
        )
        room -= size
    return kept


@given(count=st.integers(0, 12), size=st.integers(1, 50), room=st.integers(-100, 700))
def test_within_limit_is_the_walk_best_first(count: int, size: int, room: int) -> None:
    orders = [DesiredOrder(Side.SELL, 500 + i, size, i, OrderKind.GRID) for i in range(count)]
    kept = within_limit(orders, size, room)
    assert kept == _within_limit_reference(orders, room)
    assert sum(o.size_lots for o in kept) <= max(room, 0)
    if count * size <= room:
        assert kept is orders  # the common case allocates nothing
