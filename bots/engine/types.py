"""Small value types the engine consumes and produces; no I/O, no clock.

`Book` and `DesiredOrder` are built on every book event. mypyc compiles this module, but not the
`__init__` a dataclass generates (that stays interpreted, and a frozen one sets each field through
`object.__setattr__`), so the hot value types write their constructor out (`init=False`) and keep the
decorator for equality, hashing and repr. They are not frozen at run time: treat them as immutable.
`mypyc_attr(acyclic=True)` keeps such values out of the garbage collector (they never hold a cycle);
`free_list_len=1` lets a type made once per event reuse the memory of the one before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from mypy_extensions import mypyc_attr

from bots.engine import pickling

__all__ = ["Book", "DesiredOrder", "OrderKind", "Side", "Signal", "TradingState"]


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy (adds to position), -1 for a sell."""
        return 1 if self is Side.BUY else -1


class Signal(StrEnum):
    """What a regime filter says about the next move."""

    NEUTRAL = "neutral"
    BUY = "buy_signal"
    SELL = "sell_signal"


class TradingState(StrEnum):
    ACTIVE = "active"  # quote both sides
    REDUCING = "reducing"  # only orders that shrink |position|
    HALTED = "halted"  # no orders at all


class OrderKind(StrEnum):
    GRID = "grid"
    BOOST = "boost"


@mypyc_attr(acyclic=True, free_list_len=1)
@dataclass(slots=True, init=False, unsafe_hash=True)
class Book:
    """Top of the order book at `ts_ns` (exchange time, nanoseconds)."""

    ts_ns: int
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float

    def __init__(
        self, ts_ns: int, bid_price: float, bid_size: float, ask_price: float, ask_size: float
    ) -> None:
        self.ts_ns = ts_ns
        self.bid_price = bid_price
        self.bid_size = bid_size
        self.ask_price = ask_price
        self.ask_size = ask_size

    @property
    def mid(self) -> float:
        return 0.5 * (self.bid_price + self.ask_price)

    def is_quotable(self) -> bool:
        """A finite, positive, uncrossed book with size on both sides (NaN fails every comparison)."""
        inf = math.inf
        return (
            0.0 < self.bid_price < self.ask_price < inf
            and 0.0 < self.bid_size < inf
            and 0.0 < self.ask_size < inf
        )


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class DesiredOrder:
    """An order the engine wants resting: price in integer ticks, size in integer lots (a dozen per
    book event: see the module docstring on the written-out constructor)."""

    side: Side
    price_ticks: int
    size_lots: int
    layer: int
    kind: OrderKind

    def __init__(
        self, side: Side, price_ticks: int, size_lots: int, layer: int, kind: OrderKind = OrderKind.GRID
    ) -> None:
        self.side = side
        self.price_ticks = price_ticks
        self.size_lots = size_lots
        self.layer = layer
        self.kind = kind


pickling.register(Book, DesiredOrder)
