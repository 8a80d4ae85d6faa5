"""Risk rules: trading state, skew, reduce-only and the position limit."""

from __future__ import annotations

import pytest

from bots.engine.risk import RiskState, assess, clamp_to_limit, drawdown_ratio, inventory_skew, keep_reducing
from bots.engine.types import DesiredOrder, Side, TradingState
from settings.models import RiskSettings

RISK = RiskSettings(max_position_usd=5000, max_loss_usd=50, max_drawdown_pct=0.05)


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


def test_keep_reducing_keeps_only_the_side_that_shrinks_the_position() -> None:
    assert {o.side for o in keep_reducing(_orders(), 5)} == {Side.SELL}
    assert {o.side for o in keep_reducing(_orders(), -5)} == {Side.BUY}
    assert keep_reducing(_orders(), 0) == []


@pytest.mark.parametrize(
    ("position", "max_lots", "reducing", "bid_sizes", "ask_sizes"),
    [
        (0, 100, False, [3, 3, 3], [3, 3, 3]),
        (0, 7, False, [3, 3, 1], [3, 3, 1]),  # the order that crosses the limit is shrunk
        (6, 7, False, [1], [3, 3, 3]),
        (-7, 7, False, [3, 3, 3], []),
        (4, 7, True, [], [3, 1]),  # reducing never flips the position
    ],
)
def test_clamp_to_limit(
    position: int, max_lots: int, reducing: bool, bid_sizes: list[int], ask_sizes: list[int]
) -> None:
    kept = clamp_to_limit(_orders(), position, max_lots, reducing)
    assert [o.size_lots for o in kept if o.side is Side.BUY] == bid_sizes
    assert [o.size_lots for o in kept if o.side is Side.SELL] == ask_sizes
