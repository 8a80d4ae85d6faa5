"""Risk rules: trading state, inventory skew and the position limit; pure, every decision says why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bots.engine import pickling
from bots.engine.config import RiskLimits
from bots.engine.types import DesiredOrder, TradingState

__all__ = [
    "CLEAR",
    "RiskState",
    "RiskVerdict",
    "assess",
    "drawdown_ratio",
    "inventory_skew",
    "order_room",
    "within_limit",
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
    ratio = (peak_equity_usd - equity_usd) / peak_equity_usd
    return ratio if ratio > 0.0 else 0.0  # max(0.0, ratio) without the generic call


def assess(
    limits: RiskLimits,
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
    breaker = prev.breaker_tripped or unrealized_pnl_usd <= -limits.max_loss_usd
    drawdown = prev.drawdown_tripped or drawdown_ratio(equity_usd, peak_equity_usd) >= limits.max_drawdown_pct
    exposure_usd = abs(position_usd)
    if not (breaker or drawdown or exposure_usd >= limits.max_position_usd):
        return _ACTIVE  # nothing latched (so `prev` equals CLEAR) and within the limit: allocates nothing
    state_after = (
        prev
        if breaker == prev.breaker_tripped and drawdown == prev.drawdown_tripped
        else RiskState(breaker_tripped=breaker, drawdown_tripped=drawdown)
    )
    if drawdown:
        reason = f"drawdown >= {limits.max_drawdown_pct:.2%} of peak equity {peak_equity_usd:.2f}: close all"
        return RiskVerdict(TradingState.HALTED, position_usd != 0.0, (reason,), state_after)
    if breaker:
        reason = f"circuit breaker: unrealized loss beyond max_loss_usd {limits.max_loss_usd:.2f}"
        return RiskVerdict(TradingState.HALTED, False, (reason,), state_after)
    reason = f"|position| {exposure_usd:.2f} USD at max_position_usd: reduce only"
    return RiskVerdict(TradingState.REDUCING, False, (reason,), state_after)


def inventory_skew(position_usd: float, max_position_usd: float, factor: float) -> float:
    """Shift of the quote centre in half-spreads: factor * position/limit, clipped to +-factor.

    Positive when long, so the centre moves down and asks get nearer the mid.
    """
    ratio = position_usd / max_position_usd
    ratio = ratio if ratio < 1.0 else 1.0  # min(1.0, ratio), NaN included, without the generic call
    return factor * (ratio if ratio > -1.0 else -1.0)


def order_room(position_lots: int, max_lots: int, reducing: bool) -> tuple[int, int]:
    """Lots that all bids, and all asks, may add up to if every one fills.

    Up to the limit either way; in REDUCING state only back to flat, so an exit never flips the
    position and the side that would grow it gets no room at all (nothing when flat).
    """
    if reducing:
        return -position_lots, position_lots
    return max_lots - position_lots, max_lots + position_lots


def within_limit(orders: list[DesiredOrder], size_lots: int, room: int) -> list[DesiredOrder]:
    """One side's orders, each of `size_lots`, best price first, trimmed to `room` lots in total: the
    order that crosses the limit is shrunk to fit, the ones behind it dropped."""
    if len(orders) * size_lots <= room:
        return orders  # everything fits: the common case
    if room <= 0:
        return []
    full = room // size_lots  # fewer than len(orders), and size_lots > 0, since they do not all fit
    kept = orders[:full]
    rest = room - full * size_lots
    if rest:
        order = orders[full]
        kept.append(DesiredOrder(order.side, order.price_ticks, rest, order.layer, order.kind))
    return kept


pickling.register(RiskState, RiskVerdict)
