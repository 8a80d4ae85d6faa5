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
- inventory: the position at 00:00, then after each fill of the day; in USD, the position at each
  minute's last recorded mid (and at each fill), for plots;
- the PnL decomposition, marked to market over the day: spread capture is what each fill earned
  against the mid recorded at or before it (sign * (mid - price) * size; the fill's own price when
  no mid was recorded yet), inventory PnL what the positions held earned as the mid moved, from the
  day's first recorded mid (`mark_open`) to its last (`mark_close`): position_open * (close - open)
  + sum(sign * size * (close - mid at the fill)). spread + inventory is the day's change of
  realized plus unrealized PnL; total = spread + inventory + rebates - fees + funding;
- funding: the sum of the day's funding payments (the ledger's `funding_payments`: positive received,
  negative paid; longs pay shorts under a positive rate), also in net realized PnL;
- markouts of the day's fills at 1 s, 10 s and 60 s, as the workers recorded them (`flows.pnl_markouts`);
- fills and volume per UTC hour.
The fleet row sums the bots; its drawdown is that of the summed equity (each bot's last point carried
forward, its first point of the day carried back). Every figure is an exact Decimal, so regenerating
a past day gives the very same numbers.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

from bots.core.markouts import FillMarkout
from bots.display import bps, size, usd
from bots.engine.portfolio import Portfolio
from bots.exchange.base import Fill, FundingPayment
from bots.store import EquityPoint
from flows.pnl_markouts import MarkoutDay, day_markouts, fleet_markouts, markout_columns

__all__ = ["FLEET", "BotDay", "day_bounds", "fleet_day", "max_drawdown", "report_rows", "summarise_bot"]

FLEET = "fleet"
_NS_PER_S = 1_000_000_000
_NS_PER_MINUTE = 60 * _NS_PER_S
_NS_PER_HOUR = 3_600 * _NS_PER_S
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
    spread_capture_usd: Decimal = _ZERO
    inventory_pnl_usd: Decimal = _ZERO
    inventory_usd: tuple[tuple[int, float], ...] = ()
    hourly: tuple[tuple[int, Decimal], ...] = ()  # (fills, volume USD) of each UTC hour, 24 of them
    lot_size: Decimal | None = None
    markouts: tuple[MarkoutDay, ...] = ()  # per horizon, of the day's fills
    funding_usd: Decimal = _ZERO  # funding received minus paid during the day
    funding_payments: int = 0

    @property
    def net_pnl_usd(self) -> Decimal:
        """Realized PnL after fees and funding, rebates counted as income."""
        return self.realized_pnl_usd + self.rebates_usd - self.fees_usd + self.funding_usd

    @property
    def total_pnl_usd(self) -> Decimal:
        """The day's PnL marked to market: spread capture + inventory PnL + rebates - fees + funding."""
        return (
            self.spread_capture_usd
            + self.inventory_pnl_usd
            + self.rebates_usd
            - self.fees_usd
            + self.funding_usd
        )


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
    mids: Sequence[tuple[int, float]],
    start_ns: int,
    end_ns: int,
    lot_size: Decimal | None = None,
    markouts: Sequence[FillMarkout] = (),
    funding: Sequence[FundingPayment] = (),
) -> BotDay:
    """The day of one bot from its fills (ledger order, any time), the day's equity points, the mids
    it recorded that day (time order), the markouts of its fills and its funding payments (any time)."""
    with localcontext(_CONTEXT):
        day = _summarise_bot(bot, symbol, fills, equity, mids, start_ns, end_ns, lot_size, funding)
        return replace(day, markouts=day_markouts(markouts, start_ns, end_ns))


def _summarise_bot(
    bot: str,
    symbol: str,
    fills: Sequence[Fill],
    equity: Sequence[EquityPoint],
    mids: Sequence[tuple[int, float]],
    start_ns: int,
    end_ns: int,
    lot_size: Decimal | None,
    funding: Sequence[FundingPayment],
) -> BotDay:
    before = Portfolio.replay((f for f in fills if f.ts_ns < start_ns), symbol=symbol)
    opening = (before.realized_pnl, before.grid_profit)
    position_open = before.position
    portfolio = before
    day = [f for f in fills if start_ns <= f.ts_ns < end_ns]
    mid_ts = [ts for ts, _ in mids]
    fill_mids = [_mid_at(mids, mid_ts, f.ts_ns) or f.price for f in day]
    inventory = [(start_ns, position_open)]
    rebates = fees = volume = spread = _ZERO
    hourly = [(0, _ZERO)] * 24
    for fill, mid in zip(day, fill_mids, strict=True):
        portfolio.apply(fill)
        volume += fill.price * fill.size
        if fill.fee < 0:
            rebates -= fill.fee
        else:
            fees += fill.fee
        spread += fill.side.sign * (mid - fill.price) * fill.size
        hour = (fill.ts_ns - start_ns) // _NS_PER_HOUR
        hourly[hour] = (hourly[hour][0] + 1, hourly[hour][1] + fill.price * fill.size)
        inventory.append((fill.ts_ns, portfolio.position))
    last_price = day[-1].price if day else None
    mark = Decimal(repr(mids[-1][1])) if mids else last_price
    mark_open = Decimal(repr(mids[0][1])) if mids else (day[0].price if day else mark)
    held = _ZERO
    if mark is not None and mark_open is not None:
        held = position_open * (mark - mark_open)
        held += sum((f.side.sign * f.size * (mark - m) for f, m in zip(day, fill_mids, strict=True)), _ZERO)
    curve = tuple((p.ts_ns, p.equity) for p in equity if start_ns <= p.ts_ns < end_ns)
    drawdown_usd, drawdown_ratio = max_drawdown(curve)
    paid = [p.amount for p in funding if start_ns <= p.ts_ns < end_ns and p.symbol == symbol]
    return BotDay(
        bot=bot,
        symbol=symbol,
        fills=len(day),
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
        spread_capture_usd=spread,
        inventory_pnl_usd=held,
        inventory_usd=_inventory_usd(inventory, day, mids),
        hourly=tuple(hourly),
        lot_size=lot_size,
        funding_usd=sum(paid, _ZERO),
        funding_payments=len(paid),
    )


def _mid_at(mids: Sequence[tuple[int, float]], stamps: Sequence[int], ts_ns: int) -> Decimal | None:
    """The last mid recorded at or before `ts_ns`."""
    at = bisect_right(stamps, ts_ns) - 1
    return Decimal(repr(mids[at][1])) if at >= 0 else None


def _inventory_usd(
    positions: Sequence[tuple[int, Decimal]], day: Sequence[Fill], mids: Sequence[tuple[int, float]]
) -> tuple[tuple[int, float], ...]:
    """The position in USD at each fill (at its price) and at each minute's last mid (for plots)."""
    minutes: dict[int, tuple[int, float]] = {}
    for ts, mid in mids:
        minutes[ts // _NS_PER_MINUTE] = (ts, mid)
    points = sorted([*minutes.values(), *((f.ts_ns, float(f.price)) for f in day)])
    stamps = [ts for ts, _ in positions]
    out = []
    for ts, price in points:
        position = positions[max(bisect_right(stamps, ts) - 1, 0)][1]
        out.append((ts, float(position) * price))
    return tuple(out)


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
        spread_capture_usd=total("spread_capture_usd"),
        inventory_pnl_usd=total("inventory_pnl_usd"),
        hourly=_fleet_hourly(days),
        markouts=fleet_markouts([day.markouts for day in days]),
        funding_usd=total("funding_usd"),
        funding_payments=sum(day.funding_payments for day in days),
    )


def _fleet_hourly(days: Sequence[BotDay]) -> tuple[tuple[int, Decimal], ...]:
    hours = [d.hourly for d in days if d.hourly]
    with localcontext(_CONTEXT):
        return tuple((sum(h[i][0] for h in hours), sum((h[i][1] for h in hours), _ZERO)) for i in range(24))


def _text(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


_MONEY = (
    "volume_usd", "spread_capture_usd", "inventory_pnl_usd", "rebates_usd", "fees_usd", "funding_usd",
    "total_pnl_usd",
    "realized_pnl_usd", "unrealized_pnl_usd", "grid_profit_usd", "net_pnl_usd", "max_drawdown_usd",
)  # fmt: skip


def report_rows(day: dt.date, days: Sequence[BotDay], *, exact: bool = False) -> list[dict[str, str]]:
    """One row per bot and the fleet (CSV, table artifact): money to the cent, drawdown in basis
    points to a tenth, positions to the lot; `exact`: every digit (what a recomputation compares)."""
    rows = []
    for d in days:
        money = {name: getattr(d, name) for name in _MONEY}
        ratio = d.max_drawdown_ratio * 10_000
        rows.append({
            "date": day.isoformat(),
            "bot": d.bot,
            "symbol": d.symbol,
            "fills": str(d.fills),
            **{name: _text(v) if exact else usd(v) for name, v in money.items()},
            "max_drawdown_bps": _text(ratio) if exact else bps(d.max_drawdown_ratio),
            **{
                name: _text(v) if exact else size(v, d.lot_size)
                for name, v in (("position_open", d.position_open), ("position_close", d.position_close))
            },
            "mark_close": _text(d.mark_close),
            **markout_columns(d.markouts, exact=exact),
        })  # fmt: skip
    return rows
