"""From a quote centre and half spread to the grid of post-only orders, on the tick and the lot.

Prices are integer ticks from here on: bids round down and asks up (away from mid), then each side is
clamped so it can never cross the book, then the entry anchor moves exits and adds away from a loss.
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

from bots.engine.types import DesiredOrder, OrderKind, Side, Signal
from settings.models import StrategySettings

__all__ = [
    "Anchor",
    "ask_ticks",
    "bid_ticks",
    "build_quotes",
    "entry_anchor",
    "grid_steps",
    "lots_for_notional",
    "nearest_int",
    "quote_sides",
]

# Guards the float division against values like 50000.1/0.1 = 500000.99999999994.
_EPS: Final = 1e-9
# The hot path's globals: Final, so compiled code (mypyc) keeps them in C statics, not the module dict.
_BUY: Final[Side] = Side.BUY
_SELL: Final[Side] = Side.SELL
_GRID: Final[OrderKind] = OrderKind.GRID
_BOOST: Final[OrderKind] = OrderKind.BOOST
_NEUTRAL: Final[Signal] = Signal.NEUTRAL
_SIGNAL_BUY: Final[Signal] = Signal.BUY


def nearest_int(x: float) -> int:
    """`round(x)` (halves to even) for a finite float: compiled, native arithmetic where the builtin is
    a generic call. `x - floor(x)` is exact, so the tie test is too."""
    whole = math.floor(x)
    frac = x - whole
    if frac > 0.5 or (frac == 0.5 and whole % 2 == 1):
        return whole + 1
    return whole


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


def grid_steps(strategy: StrategySettings) -> tuple[float, ...]:
    """Each grid layer's distance beyond the half spread, as a fraction of mid: `layer * grid_spacing_pct`."""
    spacing = strategy.grid_spacing_pct
    return tuple(layer * spacing for layer in range(strategy.grid_layers))


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
    boosts = strategy.boost_offsets_pct if strategy.signal_boost else None
    bids, asks = quote_sides(
        mid, center, half_spread, tick, size_lots, max_bid, min_ask, signal, grid_steps(strategy), boosts
    )
    bids.extend(asks)
    return bids


def quote_sides(
    mid: float,
    center: float,
    half_spread: float,
    tick: float,
    size_lots: int,
    max_bid: int,
    min_ask: int,
    signal: Signal,
    steps: tuple[float, ...],
    boost_offsets: tuple[float, ...] | None,
) -> tuple[list[DesiredOrder], list[DesiredOrder]]:
    """`build_quotes` once the price limits are known, positional and with the per-settings constants
    precomputed (`steps` from `grid_steps`, `boost_offsets` None when boosting is off); bids and asks
    separately, each best first. The engine calls this on every book event.
    """
    # Hot path: rounding and min/max inlined. Layers move away from mid monotonically, so after the
    # clamps equal prices can only be neighbours and one comparison de-duplicates.
    bids: list[DesiredOrder] = []
    asks: list[DesiredOrder] = []
    last_bid = last_ask = -1
    for layer, step in enumerate(steps):
        distance = mid * (half_spread + step)
        bid = math.floor((center - distance) / tick + _EPS)
        ask = math.ceil((center + distance) / tick - _EPS)
        bid = bid if bid <= max_bid else max_bid  # min(), max() without the calls
        ask = ask if ask >= min_ask else min_ask
        if bid != last_bid and bid > 0:
            bids.append(DesiredOrder(_BUY, bid, size_lots, layer, _GRID))
            last_bid = bid
        if ask != last_ask:
            asks.append(DesiredOrder(_SELL, ask, size_lots, layer, _GRID))
            last_ask = ask
    if boost_offsets is None or signal is _NEUTRAL:
        return bids, asks
    # Boosts sit near the mid, so a skewed grid may have our own opposite orders there: stay behind them.
    # When the boosts come strictly in price order and all better than the grid's best, `_merge` would
    # just put them in front; otherwise it sorts and de-duplicates.
    boosts: list[DesiredOrder] = []
    in_order = True
    if signal is _SIGNAL_BUY:
        cap = min(max_bid, asks[0].price_ticks - 1)
        for layer, offset in enumerate(boost_offsets):
            price = math.floor(mid * (1.0 - offset) / tick + _EPS)
            price = price if price <= cap else cap
            if price > 0:
                if boosts and price >= boosts[-1].price_ticks:
                    in_order = False
                boosts.append(DesiredOrder(_BUY, price, size_lots, layer, _BOOST))
        if in_order and (not boosts or not bids or boosts[-1].price_ticks > bids[0].price_ticks):
            boosts.extend(bids)
            return boosts, asks
        return _merge(boosts, bids, descending=True), asks
    lowest = max(min_ask, bids[0].price_ticks + 1 if bids else 0)
    for layer, offset in enumerate(boost_offsets):
        price = math.ceil(mid * (1.0 + offset) / tick - _EPS)
        price = price if price >= lowest else lowest
        if boosts and price <= boosts[-1].price_ticks:
            in_order = False
        boosts.append(DesiredOrder(_SELL, price, size_lots, layer, _BOOST))
    if in_order and (not boosts or not asks or boosts[-1].price_ticks < asks[0].price_ticks):
        boosts.extend(asks)
        return bids, boosts
    return bids, _merge(boosts, asks, descending=False)


def _merge(boosts: list[DesiredOrder], grid: list[DesiredOrder], *, descending: bool) -> list[DesiredOrder]:
    """Boosts and grid of one side, best price first, one order per price (a boost wins a tie)."""
    merged: dict[int, DesiredOrder] = {}
    for order in (*boosts, *grid):
        merged.setdefault(order.price_ticks, order)
    return [merged[p] for p in sorted(merged, reverse=descending)]
