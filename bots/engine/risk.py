"""Risk rules: trading state, inventory skew and the position limit; pure, every decision says why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bots.engine import pickling
from bots.engine.types import DesiredOrder, Side, TradingState
from settings.models import RiskSettings

__all__ = [
    "CLEAR",
    "RiskState",
    "RiskVerdict",
    "assess",
    "clamp_to_limit",
    "drawdown_ratio",
    "inventory_skew",
    "keep_reducing",
]


@dataclass(frozen=True, slots=True)
class RiskState:
    """Latched trips carried from one decision to the next; cleared only by an explicit reset."""

    breaker_tripped: bool = False
    drawdown_tripped: bool = False


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    state: TradingState
    close_position: bool
    reasons: tuple[str, ...]
    risk_state: RiskState


CLEAR = _CLEAR = RiskState()  # no trip latched: the risk state `assess` returns in the common case
_ACTIVE: Final = RiskVerdict(TradingState.ACTIVE, False, (), _CLEAR)


def drawdown_ratio(equity_usd: float, peak_equity_usd: float) -> float:
    """Fraction lost from the peak; 0 at or above the peak."""
    if peak_equity_usd <= 0:
        return 0.0
    return max(0.0, (peak_equity_usd - equity_usd) / peak_equity_usd)


def assess(
    risk: RiskSettings,
    prev: RiskState,
    position_usd: float,
    unrealized_pnl_usd: float,
    equity_usd: float,
    peak_equity_usd: float,
) -> RiskVerdict:
    """The trading state for this cycle.

    Max loss trips the circuit breaker (HALTED, orders cancelled, position kept for a person to judge);
    a drawdown beyond the limit closes everything and halts; at the position limit only reducing orders
    are allowed. Trips latch until `RiskState()` is passed again (an operator's start command).
    """
    breaker = prev.breaker_tripped or unrealized_pnl_usd <= -risk.max_loss_usd
    drawdown = prev.drawdown_tripped or (drawdown_ratio(equity_usd, peak_equity_usd) >= risk.max_drawdown_pct)
    state_after = (
        prev
        if (breaker, drawdown) == (prev.breaker_tripped, prev.drawdown_tripped)
        else RiskState(breaker_tripped=breaker, drawdown_tripped=drawdown)
    )
    if drawdown:
        reason = f"drawdown >= {risk.max_drawdown_pct:.2%} of peak equity {peak_equity_usd:.2f}: close all"
        return RiskVerdict(TradingState.HALTED, position_usd != 0.0, (reason,), state_after)
    if breaker:
        reason = f"circuit breaker: unrealized loss beyond max_loss_usd {risk.max_loss_usd:.2f}"
        return RiskVerdict(TradingState.HALTED, False, (reason,), state_after)
    if abs(position_usd) >= risk.max_position_usd:
        reason = f"|position| {abs(position_usd):.2f} USD at max_position_usd: reduce only"
        return RiskVerdict(TradingState.REDUCING, False, (reason,), state_after)
    if not (breaker or drawdown) and prev == _CLEAR:
        return _ACTIVE  # the common case allocates nothing
    return RiskVerdict(TradingState.ACTIVE, False, (), state_after)


def inventory_skew(position_usd: float, max_position_usd: float, factor: float) -> float:
    """Shift of the quote centre in half-spreads: factor * position/limit, clipped to +-factor.

    Positive when long, so the centre moves down and asks get nearer the mid.
    """
    ratio = position_usd / max_position_usd
    return factor * max(-1.0, min(1.0, ratio))


def keep_reducing(orders: list[DesiredOrder], position_lots: int) -> list[DesiredOrder]:
    """Only orders that shrink |position|: sells when long, buys when short, nothing when flat."""
    if position_lots > 0:
        return [o for o in orders if o.side is Side.SELL]
    if position_lots < 0:
        return [o for o in orders if o.side is Side.BUY]
    return []


def clamp_to_limit(
    orders: list[DesiredOrder], position_lots: int, max_lots: int, reducing: bool
) -> list[DesiredOrder]:
    """Trim orders (best price first) so that even if every one fills, |position| stays within max_lots.

    In REDUCING state the room on the reducing side is the position itself, so an exit never flips it.
    Orders arrive sorted best first per side; the order that crosses the limit is shrunk to fit.
    """
    room = {
        Side.BUY: (-position_lots if reducing else max_lots - position_lots),
        Side.SELL: (position_lots if reducing else max_lots + position_lots),
    }
    wanted = {Side.BUY: 0, Side.SELL: 0}
    for order in orders:
        wanted[order.side] += order.size_lots
    if wanted[Side.BUY] <= room[Side.BUY] and wanted[Side.SELL] <= room[Side.SELL]:
        return orders  # everything fits: the common case
    kept: list[DesiredOrder] = []
    for order in orders:
        left = room[order.side]
        if left <= 0:
            continue
        fitted = (
            order
            if order.size_lots <= left
            else DesiredOrder(order.side, order.price_ticks, left, order.layer, order.kind)
        )
        room[order.side] = left - fitted.size_lots
        kept.append(fitted)
    return kept


pickling.register(RiskState, RiskVerdict)
