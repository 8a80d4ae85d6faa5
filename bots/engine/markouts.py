"""Markouts: how the mid moved against (or for) each of our fills a fixed time after it.

The markout of a fill at horizon h is the PnL of that fill marked at the mid in force h seconds later:

    markout_usd = side * (mid(t + h) - price) * size        side = +1 for a buy, -1 for a sell
    markout_bps = side * (mid(t + h) - price) / price * 1e4

Positive: the mid moved our way (we bought below where it went). Negative: adverse selection, the
force a market maker lives against: a fill at the touch whose markout is worse than its rebate loses
money. It is measured from the fill price, so it includes the half spread captured; fees and rebates
are not in it. "The mid in force at t + h" is the last mid observed at or before that time, the same
for the batch form (`markouts_at`, backtests) and the streaming form (`MarkoutTracker`, a live bot or
a ledger writer, which learns a markout when the first mid at or after its due time arrives; with no
mid at all before the due time, the batch form says nan and the tracker takes that first mid).

Pure and clock-free: times are the events' own nanoseconds. Floats, as everywhere in the model;
a ledger that stores exact figures converts at its boundary.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "MARKOUT_HORIZONS_S",
    "Markout",
    "MarkoutSummary",
    "MarkoutTable",
    "MarkoutTracker",
    "markout",
    "markouts_at",
    "summarize",
]

MARKOUT_HORIZONS_S: Final[tuple[float, ...]] = (1.0, 10.0, 60.0)
_NS_PER_S: Final = 1_000_000_000
_BPS: Final = 10_000.0

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Markout:
    """One fill's markout at one horizon; positive = the mid moved our way."""

    horizon_s: float
    bps: float
    usd: float


def markout(side: int, price: float, size: float, later_mid: float, horizon_s: float) -> Markout:
    """The markout of a fill (`side` +1 buy, -1 sell) marked at `later_mid`."""
    edge = side * (later_mid - price)
    return Markout(horizon_s, edge / price * _BPS, edge * size)


def _horizon_ns(horizon_s: float) -> int:
    if not (math.isfinite(horizon_s) and horizon_s > 0):
        raise ValueError(f"a markout horizon is a positive number of seconds, got {horizon_s}")
    return round(horizon_s * _NS_PER_S)


@dataclass(frozen=True, slots=True)
class MarkoutTable:
    """Markouts of n fills at each horizon: `bps[i, j]` and `usd[i, j]` for horizon i and fill j; nan
    where the mids end before the fill's horizon (or before the fill). `notional` is |price * size|."""

    horizons_s: tuple[float, ...]
    bps: FloatArray
    usd: FloatArray
    notional: FloatArray


def markouts_at(
    fill_ts_ns: Sequence[int] | npt.NDArray[np.int64],
    sides: Sequence[int] | npt.NDArray[np.int64],
    prices: Sequence[float] | FloatArray,
    sizes: Sequence[float] | FloatArray,
    mid_ts_ns: Sequence[int] | npt.NDArray[np.int64],
    mids: Sequence[float] | FloatArray,
    horizons_s: Sequence[float] = MARKOUT_HORIZONS_S,
) -> MarkoutTable:
    """The markouts of fills against a mid series (`mid_ts_ns` ascending), vectorised: the mid of each
    fill at each horizon is the last one at or before `ts + h`; nan past the series' last time."""
    ts = np.asarray(fill_ts_ns, dtype=np.int64)
    side = np.asarray(sides, dtype=np.float64)
    price = np.asarray(prices, dtype=np.float64)
    size = np.asarray(sizes, dtype=np.float64)
    mid_ts = np.asarray(mid_ts_ns, dtype=np.int64)
    mid = np.asarray(mids, dtype=np.float64)
    if not (len(ts) == len(side) == len(price) == len(size)) or len(mid_ts) != len(mid):
        raise ValueError("fills' times, sides, prices and sizes (and mids' times and mids) differ in length")
    horizons = tuple(float(h) for h in horizons_s)
    bps = np.full((len(horizons), len(ts)), np.nan)
    usd = np.full((len(horizons), len(ts)), np.nan)
    if len(mid_ts) and len(ts):
        for i, horizon in enumerate(horizons):
            due = ts + _horizon_ns(horizon)
            at = np.searchsorted(mid_ts, due, side="right") - 1
            known = (at >= 0) & (due <= mid_ts[-1])
            later = mid[np.clip(at, 0, None)]
            edge = side * (later - price)
            usd[i] = np.where(known, edge * size, np.nan)
            bps[i] = np.where(known, edge / price * _BPS, np.nan)
    return MarkoutTable(horizons, bps, usd, np.abs(price * size))


@dataclass(frozen=True, slots=True)
class MarkoutSummary:
    """The markouts of a set of fills at one horizon: `mean_bps` is notional-weighted (total USD over
    total notional of the fills that have a markout), nan when none has."""

    horizon_s: float
    fills: int
    mean_bps: float
    total_usd: float


def summarize(table: MarkoutTable) -> tuple[MarkoutSummary, ...]:
    """One summary per horizon of `table`."""
    summaries: list[MarkoutSummary] = []
    for i, horizon in enumerate(table.horizons_s):
        known = ~np.isnan(table.usd[i])
        total = float(table.usd[i][known].sum())
        notional = float(table.notional[known].sum())
        mean = total / notional * _BPS if notional > 0 else math.nan
        summaries.append(MarkoutSummary(horizon, int(known.sum()), mean, total))
    return tuple(summaries)


@dataclass(order=True, slots=True)
class _Due:
    due_ns: int
    seq: int
    fill_id: str = field(compare=False)
    side: int = field(compare=False)
    price: float = field(compare=False)
    size: float = field(compare=False)
    horizon_s: float = field(compare=False)


@dataclass(slots=True)
class MarkoutTracker:
    """Markouts as time passes (a live bot, a ledger writer): `add` a fill, feed every mid to `on_mid`,
    which returns the markouts whose horizon has passed, each once, as (fill_id, Markout).

    Agrees with `markouts_at` on the same series: a horizon's mid is the last one at or before its due
    time, known as soon as a mid at or after the due time arrives. Memory: one entry per fill and
    horizon still pending.
    """

    horizons_s: tuple[float, ...] = MARKOUT_HORIZONS_S
    _pending: list[_Due] = field(default_factory=list)
    _seq: int = 0
    _last_ts_ns: int | None = None
    _last_mid: float = math.nan

    def __post_init__(self) -> None:
        for horizon in self.horizons_s:
            _horizon_ns(horizon)

    @property
    def pending(self) -> int:
        """Markouts still waiting for their horizon."""
        return len(self._pending)

    def add(self, fill_id: str, ts_ns: int, side: int, price: float, size: float) -> None:
        """Start the markouts of one fill (`side` +1 buy, -1 sell) at its time."""
        for horizon in self.horizons_s:
            self._seq += 1
            due = ts_ns + _horizon_ns(horizon)
            heapq.heappush(self._pending, _Due(due, self._seq, fill_id, side, price, size, horizon))

    def on_mid(self, ts_ns: int, mid: float) -> list[tuple[str, Markout]]:
        """Feed the next mid (times ascending); the markouts that came due at or before `ts_ns`."""
        done: list[tuple[str, Markout]] = []
        pending = self._pending
        while pending and pending[0].due_ns <= ts_ns:
            due = heapq.heappop(pending)
            in_force = mid if due.due_ns == ts_ns or self._last_ts_ns is None else self._last_mid
            done.append((due.fill_id, markout(due.side, due.price, due.size, in_force, due.horizon_s)))
        self._last_ts_ns, self._last_mid = ts_ns, mid
        return done
