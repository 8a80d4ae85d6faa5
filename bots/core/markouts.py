"""The core's markouts: each of our fills marked at the mid 1 s, 10 s and 60 s after it, on book events.

The definition and the streaming tracker are `bots.engine.markouts` (shared with backtests, which use
its batch form on their mid curve): `side * (mid(t + h) - price)`, negative when the mid went against
us. Here they meet the core's events: a fill starts its horizons, every two-sided book while some are
pending is a mid at its exchange time (never a clock), and what came due becomes `FillMarkout`s, the
records a driver writes to the ledger and the metrics. A fill learnt of after a horizon passed (a
restart's reconciliation) is marked at the next book; a bot stopped before a horizon passes records
none for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from bots.engine.markouts import MARKOUT_HORIZONS_S, MarkoutTracker
from bots.engine.types import Side
from bots.exchange.events import Fill

__all__ = ["FillMarkout", "FillMarkouts"]


@dataclass(frozen=True, slots=True)
class FillMarkout:
    """One fill's markout at one horizon, with what identifies the fill (its price and size exact)."""

    bot: str
    symbol: str
    fill_id: str
    side: Side
    price: Decimal
    size: Decimal
    fill_ts_ns: int
    horizon_s: float
    bps: float
    usd: float


class FillMarkouts:
    """The fills of one bot waiting for their markout horizons."""

    def __init__(self, bot: str, horizons_s: tuple[float, ...] = MARKOUT_HORIZONS_S) -> None:
        self.bot = bot
        self.horizons = len(horizons_s)
        self.tracker = MarkoutTracker(horizons_s)
        self.fills: dict[str, tuple[Fill, int]] = {}  # fill id -> (fill, horizons still pending)

    @property
    def pending(self) -> bool:
        return bool(self.fills)

    def add(self, fill: Fill, ts_ns: int, mid: float) -> None:
        """Start `fill`'s horizons; (`ts_ns`, `mid`): the newest book's, the mid in force when it came
        (NaN before a two-sided book: the next one is). A fill already waiting is marked once."""
        if fill.fill_id in self.fills:
            return
        if not self.fills and not math.isnan(mid):
            self.tracker.on_mid(ts_ns, mid)  # nothing pending: the mid in force was not being followed
        self.tracker.add(fill.fill_id, fill.ts_ns, fill.side.sign, float(fill.price), float(fill.size))
        self.fills[fill.fill_id] = (fill, self.horizons)

    def on_mid(self, ts_ns: int, mid: float) -> list[FillMarkout]:
        """A book's mid at its exchange time; the markouts that came due by then."""
        done: list[FillMarkout] = []
        for fill_id, markout in self.tracker.on_mid(ts_ns, mid):
            fill, left = self.fills[fill_id]
            if left > 1:
                self.fills[fill_id] = (fill, left - 1)
            else:
                del self.fills[fill_id]
            done.append(
                FillMarkout(
                    self.bot,
                    fill.symbol,
                    fill_id,
                    fill.side,
                    fill.price,
                    fill.size,
                    fill.ts_ns,
                    markout.horizon_s,
                    markout.bps,
                    markout.usd,
                )
            )
        return done
