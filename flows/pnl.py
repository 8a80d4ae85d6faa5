"""The numbers of a daily PnL report, from ledger rows alone (pure: no I/O, no clock).

A day is [00:00, 24:00) UTC. For one bot:
- the bot's fills are replayed in ledger order through `Portfolio`: those before the day give the
  opening state, those of the day move it; realized PnL (average cost, before fees) and grid profit
  (FIFO) of the day are the differences;
- rebates are the negative fees of the day's fills (a maker rebate is booked as a negative fee),
  fees the positive ones; net = realized + rebates - fees;
- unrealized PnL at the close: the closing position valued at the last mid the bot recorded that day
  (its market features), else at its last fill price;
- max drawdown: the largest fall of the day's recorded equity from its running peak within the day,
  in USD and as a fraction of that peak;
- inventory: the position at 00:00, then after each fill of the day.
The fleet row sums the bots; its drawdown is that of the summed equity (each bot's last point carried
forward, its first point of the day carried back). Every figure is an exact Decimal, so regenerating
a past day gives the very same numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

from bots.engine.portfolio import Portfolio
from bots.exchange.base import Fill
from bots.store import EquityPoint

__all__ = ["FLEET", "BotDay", "day_bounds", "fleet_day", "max_drawdown", "report_rows", "summarise_bot"]

FLEET = "fleet"
_NS_PER_S = 1_000_000_000
_ZERO = Decimal(0)
_RATIO_PLACES = Decimal("1e-10")
_CONTEXT = Context(prec=38, rounding=ROUND_HALF_EVEN)  # as `Portfolio`: sums keep every digit


@dataclass(frozen=True, slots=True)
class BotDay:
    """One bot's (or the fleet's) day."""

    bot: str
    symbol: str
    fills: int
    volume_usd: Decimal
    realized_pnl_usd: Decimal
    grid_profit_usd: Decimal
    rebates_usd: Decimal
    fees_usd: Decimal
    unrealized_pnl_usd: Decimal
    position_open: Decimal | None
    position_close: Decimal | None
    mark_close: Decimal | None
    max_drawdown_usd: Decimal
    max_drawdown_ratio: Decimal
    inventory: tuple[tuple[int, Decimal], ...]
    equity: tuple[tuple[int, Decimal], ...]

    @property
    def net_pnl_usd(self) -> Decimal:
        """Realized PnL after fees, rebates counted as income."""
        return self.realized_pnl_usd + self.rebates_usd - self.fees_usd


def day_bounds(day: dt.date) -> tuple[int, int]:
    """[start, end) of the UTC day in epoch nanoseconds."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    start_ns = int(start.timestamp()) * _NS_PER_S
    return start_ns, start_ns + 86_400 * _NS_PER_S


def max_drawdown(equity: Sequence[tuple[int, Decimal]]) -> tuple[Decimal, Decimal]:
    """Largest fall from the running peak: (USD, fraction of that peak)."""
    with localcontext(_CONTEXT):
        return _max_drawdown(equity)


def _max_drawdown(equity: Sequence[tuple[int, Decimal]]) -> tuple[Decimal, Decimal]:
    peak: Decimal | None = None
    worst, worst_ratio = _ZERO, _ZERO
    for _, value in equity:
        peak = value if peak is None else max(peak, value)
        fall = peak - value
        worst = max(worst, fall)
        if peak > 0 and fall / peak > worst_ratio:
            worst_ratio = fall / peak
    return worst, worst_ratio.quantize(_RATIO_PLACES)


def summarise_bot(
    bot: str,
    symbol: str,
    fills: Sequence[Fill],
    equity: Sequence[EquityPoint],
    last_mid: float | None,
    start_ns: int,
    end_ns: int,
) -> BotDay:
    """The day of one bot from its fills (ledger order, any time), the day's equity points and the
    last mid it recorded that day."""
    with localcontext(_CONTEXT):
        return _summarise_bot(bot, symbol, fills, equity, last_mid, start_ns, end_ns)


def _summarise_bot(
    bot: str,
    symbol: str,
    fills: Sequence[Fill],
    equity: Sequence[EquityPoint],
    last_mid: float | None,
    start_ns: int,
    end_ns: int,
) -> BotDay:
    before = Portfolio.replay((f for f in fills if f.ts_ns < start_ns), symbol=symbol)
    opening = (before.realized_pnl, before.grid_profit)
    position_open = before.position
    portfolio = before
    inventory = [(start_ns, position_open)]
    rebates = fees = volume = _ZERO
    count = 0
    last_price: Decimal | None = None
    for fill in fills:
        if not start_ns <= fill.ts_ns < end_ns:
            continue
        portfolio.apply(fill)
        count += 1
        volume += fill.price * fill.size
        if fill.fee < 0:
            rebates -= fill.fee
        else:
            fees += fill.fee
        inventory.append((fill.ts_ns, portfolio.position))
        last_price = fill.price
    mark = Decimal(repr(last_mid)) if last_mid is not None else last_price
    curve = tuple((p.ts_ns, p.equity) for p in equity if start_ns <= p.ts_ns < end_ns)
    drawdown_usd, drawdown_ratio = max_drawdown(curve)
    return BotDay(
        bot=bot,
        symbol=symbol,
        fills=count,
        volume_usd=volume,
        realized_pnl_usd=portfolio.realized_pnl - opening[0],
        grid_profit_usd=portfolio.grid_profit - opening[1],
        rebates_usd=rebates,
        fees_usd=fees,
        unrealized_pnl_usd=portfolio.unrealized_pnl(mark) if mark is not None else _ZERO,
        position_open=position_open,
        position_close=portfolio.position,
        mark_close=mark,
        max_drawdown_usd=drawdown_usd,
        max_drawdown_ratio=drawdown_ratio,
        inventory=tuple(inventory),
        equity=curve,
    )


def _fleet_equity(days: Sequence[BotDay]) -> tuple[tuple[int, Decimal], ...]:
    with localcontext(_CONTEXT):
        return _summed_curves(days)


def _summed_curves(days: Sequence[BotDay]) -> tuple[tuple[int, Decimal], ...]:
    curves = [day.equity for day in days if day.equity]
    stamps = sorted({ts for curve in curves for ts, _ in curve})
    latest = [curve[0][1] for curve in curves]
    cursor = [0] * len(curves)
    out: list[tuple[int, Decimal]] = []
    for ts in stamps:
        for i, curve in enumerate(curves):
            while cursor[i] < len(curve) and curve[cursor[i]][0] <= ts:
                latest[i] = curve[cursor[i]][1]
                cursor[i] += 1
        out.append((ts, sum(latest, _ZERO)))
    return tuple(out)


def fleet_day(days: Sequence[BotDay]) -> BotDay:
    """The fleet's row: sums of the bots' figures, drawdown of the summed equity."""
    equity = _fleet_equity(days)
    drawdown_usd, drawdown_ratio = max_drawdown(equity)

    def total(name: str) -> Decimal:
        with localcontext(_CONTEXT):
            return sum((getattr(day, name) for day in days), _ZERO)

    return BotDay(
        bot=FLEET,
        symbol="*",
        fills=sum(day.fills for day in days),
        volume_usd=total("volume_usd"),
        realized_pnl_usd=total("realized_pnl_usd"),
        grid_profit_usd=total("grid_profit_usd"),
        rebates_usd=total("rebates_usd"),
        fees_usd=total("fees_usd"),
        unrealized_pnl_usd=total("unrealized_pnl_usd"),
        position_open=None,
        position_close=None,
        mark_close=None,
        max_drawdown_usd=drawdown_usd,
        max_drawdown_ratio=drawdown_ratio,
        inventory=(),
        equity=equity,
    )


def _text(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def report_rows(day: dt.date, days: Sequence[BotDay]) -> list[dict[str, str]]:
    """One row per bot and the fleet, every number as exact text (CSV, table artifact, HTML)."""
    return [
        {
            "date": day.isoformat(),
            "bot": d.bot,
            "symbol": d.symbol,
            "fills": str(d.fills),
            "volume_usd": _text(d.volume_usd),
            "realized_pnl_usd": _text(d.realized_pnl_usd),
            "unrealized_pnl_usd": _text(d.unrealized_pnl_usd),
            "grid_profit_usd": _text(d.grid_profit_usd),
            "rebates_usd": _text(d.rebates_usd),
            "fees_usd": _text(d.fees_usd),
            "net_pnl_usd": _text(d.net_pnl_usd),
            "max_drawdown_usd": _text(d.max_drawdown_usd),
            "max_drawdown_ratio": _text(d.max_drawdown_ratio),
            "position_open": _text(d.position_open),
            "position_close": _text(d.position_close),
            "mark_close": _text(d.mark_close),
        }
        for d in days
    ]
