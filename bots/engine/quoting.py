"""From the model's reservation price and spread to the grid of post-only orders, on the tick and the lot.

The spread gets its floor and the centre its inventory skew; prices are integer ticks from there on:
bids round down and asks up (away from mid), each side is clamped so it can never cross the book and
the entry anchor moves exits and adds away from a loss; then grid layers and the signal boost.
Compiled by mypyc: small typed functions, so the engine's calls are native C calls, and a returned
`tuple[int, int]` or pair of lists is a C struct, not an allocated tuple.
"""

from __future__ import annotations

import math
from typing import Final

from bots.engine.types import DesiredOrder, OrderKind, Side, Signal

__all__ = [
    "ask_ticks",
    "bid_ticks",
    "boost",
    "entry_anchor",
    "floored_spread",
    "grid",
    "grid_steps",
    "lots_for_notional",
    "nearest_int",
    "post_only_limits",
    "quote_center",
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


def post_only_limits(bid_price: float, ask_price: float, tick: float) -> tuple[int, int]:
    """(highest bid, lowest ask) in ticks that rest without taking: inside the book's best prices."""
    return nearest_int(ask_price / tick) - 1, nearest_int(bid_price / tick) + 1


def entry_anchor(
    max_bid: int, min_ask: int, position_lots: int, entry_price: float, tolerance_pct: float, tick: float
) -> tuple[int, int]:
    """The price limits (max_bid, min_ask) tightened by the entry anchor; unchanged when flat.

    Long: exits (asks) never below entry*(1 - tolerance) - profit-only when the tolerance is 0 - and no
    buys above the entry (DCA below it is fine). Short: mirrored.
    """
    if position_lots == 0 or not entry_price > 0:
        return max_bid, min_ask
    if position_lots > 0:
        anchor_bid = bid_ticks(entry_price, tick)
        anchor_ask = ask_ticks(entry_price * (1 - tolerance_pct), tick)
    else:
        anchor_bid = bid_ticks(entry_price * (1 + tolerance_pct), tick)
        anchor_ask = ask_ticks(entry_price, tick)
    return (
        max_bid if max_bid <= anchor_bid else anchor_bid,  # min(), max() without the generic calls
        min_ask if min_ask >= anchor_ask else anchor_ask,
    )


def floored_spread(model_spread: float, floor_pct: float) -> float:
    """The model's total spread, never below the configured floor (a floor, never a cap)."""
    return floor_pct if floor_pct > model_spread else model_spread


def quote_center(mid: float, reservation: float, skew: float, half_spread: float) -> float:
    """Where the grid centres: the reservation price (a fraction of mid) moved by `skew` half spreads."""
    return mid * (reservation - skew * half_spread)


def grid_steps(layers: int, spacing_pct: float) -> tuple[float, ...]:
    """Each grid layer's distance beyond the half spread, as a fraction of mid: `layer * spacing_pct`."""
    return tuple(layer * spacing_pct for layer in range(layers))


def grid(
    mid: float,
    center: float,
    half_spread: float,
    tick: float,
    size_lots: int,
    max_bid: int,
    min_ask: int,
    steps: tuple[float, ...],
) -> tuple[list[DesiredOrder], list[DesiredOrder]]:
    """Grid layers around `center` (`half_spread` and `steps` from `grid_steps` are fractions of mid),
    each side clamped to its price limit: bids best (highest) first, asks best (lowest) first, at most
    one order per price. Layers move away from mid monotonically, so after the clamps equal prices can
    only be neighbours and one comparison de-duplicates."""
    bids: list[DesiredOrder] = []
    asks: list[DesiredOrder] = []
    last_bid = last_ask = -1
    for layer, step in enumerate(steps):
        distance = mid * (half_spread + step)
        bid = bid_ticks(center - distance, tick)
        ask = ask_ticks(center + distance, tick)
        bid = bid if bid <= max_bid else max_bid
        ask = ask if ask >= min_ask else min_ask
        if bid != last_bid and bid > 0:
            bids.append(DesiredOrder(_BUY, bid, size_lots, layer, _GRID))
            last_bid = bid
        if ask != last_ask:
            asks.append(DesiredOrder(_SELL, ask, size_lots, layer, _GRID))
            last_ask = ask
    return bids, asks


def boost(
    bids: list[DesiredOrder],
    asks: list[DesiredOrder],
    mid: float,
    tick: float,
    size_lots: int,
    max_bid: int,
    min_ask: int,
    signal: Signal,
    offsets: tuple[float, ...],
) -> tuple[list[DesiredOrder], list[DesiredOrder]]:
    """The grid's sides with signal-boost orders at `offsets` from mid on the signal's side (none when
    NEUTRAL), each side still best first with one order per price (a boost wins a tie).

    Boosts sit near the mid, so a skewed grid may have our own opposite orders there: stay behind them.
    When the boosts come strictly in price order and all better than the grid's best, `_merge` would
    just put them in front; otherwise it sorts and de-duplicates.
    """
    if signal is _NEUTRAL:
        return bids, asks
    boosts: list[DesiredOrder] = []
    in_order = True
    if signal is _SIGNAL_BUY:
        cap = min(max_bid, asks[0].price_ticks - 1)
        for layer, offset in enumerate(offsets):
            price = bid_ticks(mid * (1.0 - offset), tick)
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
    for layer, offset in enumerate(offsets):
        price = ask_ticks(mid * (1.0 + offset), tick)
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
