"""Markouts of our fills: how far the mid moved for or against us 1 s, 10 s and 60 s after each fill.

A market maker lives against adverse selection: a fill is often the first sign that the mid is about to
move through our price. The markout of a fill at horizon h is the mid move since the fill, signed for us,
`side.sign * (mid(t + h) - mid(t))`: negative when the mid went against us (we bought and it fell).
In USD it is that move times the fill's size; in basis points, the move over the mid at the fill.
Spread capture (`side.sign * (mid(t) - price) * size`) plus the markout is what the fill earned marked
at the mid h later: the markout-adjusted PnL of the fill, before fees.

Time is the events' (exchange) time, never a clock: a fill's horizon passes at the first book at or
after `t + h`, and the mid in force at `t + h` is that of the book before it (or of that book when it is
stamped exactly `t + h`). A fill learnt of only after a horizon passed is marked at the first book after,
so a fill seen late (a restart's reconciliation) gets a markout later than its horizon; a bot stopped
before a horizon passes records none for it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from bots.engine.types import Side
from bots.exchange.events import BookUpdate, Fill

__all__ = ["MARKOUT_HORIZONS_S", "Markout", "MarkoutTracker", "book_mid"]

MARKOUT_HORIZONS_S: Final = (1, 10, 60)
_NS_PER_S: Final = 1_000_000_000
_TWO: Final = Decimal(2)
_BPS: Final = Decimal(10_000)
NEVER: Final = 2**63 - 1  # the due time when nothing is pending


def book_mid(book: BookUpdate | None) -> Decimal | None:
    """The exact mid of a two-sided book; None for a missing or one-sided one."""
    if book is None or not book.bids or not book.asks:
        return None
    return (book.bids[0].price + book.asks[0].price) / _TWO


@dataclass(frozen=True, slots=True)
class Markout:
    """The mid move after one fill, `horizon_s` seconds on, signed for us (negative: against us)."""

    bot: str
    symbol: str
    fill_id: str
    side: Side
    size: Decimal
    fill_ts_ns: int
    horizon_s: int
    mid_at_fill: Decimal
    mid_after: Decimal

    @property
    def move(self) -> Decimal:
        """The mid move in price units, positive when it went our way."""
        return self.side.sign * (self.mid_after - self.mid_at_fill)

    @property
    def usd(self) -> Decimal:
        return self.move * self.size

    @property
    def bps(self) -> Decimal:
        return self.move / self.mid_at_fill * _BPS


@dataclass(frozen=True, slots=True)
class _Pending:
    fill: Fill
    mid_at_fill: Decimal
    horizon_s: int


class MarkoutTracker:
    """Fills waiting for their horizons, in due-time order; completed on book events."""

    def __init__(self, bot: str, horizons_s: tuple[int, ...] = MARKOUT_HORIZONS_S) -> None:
        if not horizons_s or min(horizons_s) <= 0:
            raise ValueError("markout horizons must be positive seconds")
        self.bot = bot
        self.horizons_s = horizons_s
        self.next_due_ns = NEVER
        self._heap: list[tuple[int, int, _Pending]] = []
        self._seq = 0  # ties in due time keep arrival order

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, fill: Fill, mid_at_fill: Decimal | None) -> None:
        """Track `fill`; without a mid at the fill (no two-sided book yet) it cannot be marked out."""
        if mid_at_fill is None or mid_at_fill <= 0:
            return
        for horizon in self.horizons_s:
            self._seq += 1
            pending = _Pending(fill, mid_at_fill, horizon)
            heapq.heappush(self._heap, (fill.ts_ns + horizon * _NS_PER_S, self._seq, pending))
        self.next_due_ns = self._heap[0][0]

    def on_book(self, before: BookUpdate | None, book: BookUpdate) -> list[Markout]:
        """The markouts whose horizon passed by `book` (`before`: the book in force until it). One
        not measurable yet (no two-sided book) waits for the next book."""
        heap = self._heap
        done: list[Markout] = []
        ts_ns = book.ts_ns
        mid_before, mid_now = book_mid(before), book_mid(book)
        while heap and heap[0][0] <= ts_ns:
            due = heap[0][0]
            mid = mid_now if due == ts_ns or mid_before is None else mid_before
            if mid is None:
                break
            pending = heapq.heappop(heap)[2]
            fill = pending.fill
            done.append(
                Markout(
                    self.bot,
                    fill.symbol,
                    fill.fill_id,
                    fill.side,
                    fill.size,
                    fill.ts_ns,
                    pending.horizon_s,
                    pending.mid_at_fill,
                    mid,
                )
            )
        self.next_due_ns = heap[0][0] if heap else NEVER
        return done
