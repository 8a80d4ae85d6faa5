"""From a quote centre and half spread to the grid of post-only orders, on the tick and the lot.

Prices are integer ticks from here on: bids round down and asks up (away from mid), then each side is
clamped so it can never cross the book, then the entry anchor moves exits and adds away from a loss.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from bots.engine.types import DesiredOrder, OrderKind, Side, Signal
from settings.models import StrategySettings

__all__ = ["Anchor", "ask_ticks", "bid_ticks", "build_quotes", "entry_anchor", "lots_for_notional"]

# Guards the float division against values like 50000.1/0.1 = 500000.99999999994.
_EPS = 1e-9


def bid_ticks(price: float, tick: float) -> int:
    """Bid price in ticks, rounded down (away from mid)."""
    return math.floor(price / tick + _EPS)


def ask_ticks(price: float, tick: float) -> int:
    """Ask price in ticks, rounded up (away from mid)."""
    return math.ceil(price / tick - _EPS)


def lots_for_notional(notional_usd: float, price: float, lot: float) -> int:
    """Whole lots worth at most `notional_usd` at `price` (rounded down to the lot)."""
    return math.floor(notional_usd / price / lot + _EPS)


class Anchor(NamedTuple):
    """Entry-anchor limits in ticks: bids at most `max_bid`, asks at least `min_ask`."""

    max_bid: int
    min_ask: int


def entry_anchor(position_lots: int, entry_price: float, tolerance_pct: float, tick: float) -> Anchor | None:
    """Entry-anchor rules for the current position (None when flat).

    Long: exits (asks) never below entry*(1 - tolerance) - profit-only when the tolerance is 0 - and no
    buys above the entry (DCA below it is fine). Short: mirrored.
    """
    if position_lots == 0 or not entry_price > 0:
        return None
    if position_lots > 0:
        return Anchor(
            max_bid=bid_ticks(entry_price, tick), min_ask=ask_ticks(entry_price * (1 - tolerance_pct), tick)
        )
    return Anchor(
        max_bid=bid_ticks(entry_price * (1 + tolerance_pct), tick), min_ask=ask_ticks(entry_price, tick)
    )


def build_quotes(
    *,
    strategy: StrategySettings,
    mid: float,
    center: float,
    half_spread: float,
    tick: float,
    size_lots: int,
    best_bid_ticks: int,
    best_ask_ticks: int,
    signal: Signal,
    anchor: Anchor | None,
) -> list[DesiredOrder]:
    """Grid layers around `center` (`half_spread` and spacing are fractions of mid) plus signal boost.

    Returns bids best (highest) first, then asks best (lowest) first, at most one order per price.
    """
    max_bid = best_ask_ticks - 1  # post-only: a bid at the best ask would take
    min_ask = best_bid_ticks + 1
    if anchor is not None:
        max_bid = min(max_bid, anchor.max_bid)
        min_ask = max(min_ask, anchor.min_ask)
    spacing = strategy.grid_spacing_pct
    # Hot path (every book event): rounding inlined; layers move away from mid monotonically, so after
    # the clamps equal prices can only be neighbours and one comparison de-duplicates.
    floor, ceil, buy, sell = math.floor, math.ceil, Side.BUY, Side.SELL
    bids: list[DesiredOrder] = []
    asks: list[DesiredOrder] = []
    last_bid = last_ask = -1
    for layer in range(strategy.grid_layers):
        distance = mid * (half_spread + layer * spacing)
        bid = floor((center - distance) / tick + _EPS)
        ask = ceil((center + distance) / tick - _EPS)
        bid = min(bid, max_bid)
        ask = max(ask, min_ask)
        if bid != last_bid and bid > 0:
            bids.append(DesiredOrder(buy, bid, size_lots, layer))
            last_bid = bid
        if ask != last_ask:
            asks.append(DesiredOrder(sell, ask, size_lots, layer))
            last_ask = ask
    if strategy.signal_boost and signal is not Signal.NEUTRAL:
        # Boosts sit near the mid, so a skewed grid may have our own opposite orders there: stay behind them.
        if signal is Signal.BUY:
            cap = min(max_bid, asks[0].price_ticks - 1)
            boosts = [
                DesiredOrder(buy, price, size_lots, layer, OrderKind.BOOST)
                for layer, offset in enumerate(strategy.boost_offsets_pct)
                if (price := min(bid_ticks(mid * (1.0 - offset), tick), cap)) > 0
            ]
            bids = _merge(boosts, bids, descending=True)
        else:
            lowest = max(min_ask, bids[0].price_ticks + 1 if bids else 0)
            boosts = [
                DesiredOrder(
                    sell,
                    max(ask_ticks(mid * (1.0 + offset), tick), lowest),
                    size_lots,
                    layer,
                    OrderKind.BOOST,
                )
                for layer, offset in enumerate(strategy.boost_offsets_pct)
            ]
            asks = _merge(boosts, asks, descending=False)
    bids.extend(asks)
    return bids


def _merge(boosts: list[DesiredOrder], grid: list[DesiredOrder], *, descending: bool) -> list[DesiredOrder]:
    """Boosts and grid of one side, best price first, one order per price (a boost wins a tie)."""
    merged: dict[int, DesiredOrder] = {}
    for order in (*boosts, *grid):
        merged.setdefault(order.price_ticks, order)
    return [merged[p] for p in sorted(merged, reverse=descending)]
