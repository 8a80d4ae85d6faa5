"""The markouts of a day's fills, per horizon, for the daily PnL report (pure: ledger rows in, figures out).

A markout (`bots.core.markouts`, recorded by each worker when the horizon passes) is the mid h seconds
after a fill against the fill's price, signed for us: negative when the mid went against us. A day's
figure at a horizon sums the USD markouts of the fills made that day whose horizon was recorded, and
gives their mean in basis points weighted by notional (total USD over total notional), so a bot's and
the fleet's figures are averaged the same way. A fill made in the last minute before a worker stopped
may lack its longer horizons: each horizon says how many fills it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from bots.core.markouts import FillMarkout
from bots.display import bps, usd
from bots.engine.markouts import MARKOUT_HORIZONS_S

__all__ = ["MarkoutDay", "day_markouts", "fleet_markouts", "markout_columns"]

_ZERO = Decimal(0)
_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class MarkoutDay:
    """The markouts of one bot's (or the fleet's) fills of a day at one horizon."""

    horizon_s: float
    fills: int
    notional_usd: Decimal
    usd: Decimal

    @property
    def ratio(self) -> Decimal | None:
        """Notional-weighted mean as a fraction of the notional (x 10,000: bps); None without a fill."""
        return self.usd / self.notional_usd if self.notional_usd else None


def day_markouts(markouts: Sequence[FillMarkout], start_ns: int, end_ns: int) -> tuple[MarkoutDay, ...]:
    """One `MarkoutDay` per horizon, of the fills made within [start, end)."""
    days = []
    for horizon in MARKOUT_HORIZONS_S:
        chosen = [m for m in markouts if m.horizon_s == horizon and start_ns <= m.fill_ts_ns < end_ns]
        notional = sum((m.price * m.size for m in chosen), _ZERO)
        usd = sum((Decimal(repr(m.usd)) for m in chosen), _ZERO)
        days.append(MarkoutDay(horizon, len(chosen), notional, usd))
    return tuple(days)


def fleet_markouts(days: Sequence[Sequence[MarkoutDay]]) -> tuple[MarkoutDay, ...]:
    """The fleet's markouts: the bots' summed per horizon."""
    return tuple(
        MarkoutDay(
            horizon,
            sum(d[i].fills for d in days if d),
            sum((d[i].notional_usd for d in days if d), _ZERO),
            sum((d[i].usd for d in days if d), _ZERO),
        )
        for i, horizon in enumerate(MARKOUT_HORIZONS_S)
    )


def markout_columns(markouts: Sequence[MarkoutDay], *, exact: bool) -> dict[str, str]:
    """A report row's markout columns: `markout_<h>s_bps` (to a tenth) then `markout_<h>s_usd` (to the
    cent); every digit with `exact`; empty for a horizon without fills."""
    columns: dict[str, str] = {}
    for day in markouts:
        ratio = day.ratio
        exact_bps = "" if ratio is None else format(ratio * _BPS, "f")
        columns[f"markout_{day.horizon_s:g}s_bps"] = exact_bps if exact else bps(ratio)
    for day in markouts:
        value = day.usd if day.fills else None
        columns[f"markout_{day.horizon_s:g}s_usd"] = (
            ("" if value is None else format(value, "f")) if exact else usd(value)
        )
    return columns
