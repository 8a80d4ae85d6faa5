"""daily-pnl-report: per bot and for the fleet, the PnL decomposition (spread capture, inventory PnL,
rebates, fees), realized and unrealized PnL, grid profit, volume and fills by hour, max drawdown, the
fills' markouts at 1 s, 10 s and 60 s and the inventory through the day (see `flows.pnl` for the definitions).

Writes `<reports_dir>/YYYY-MM-DD/` (default `reports_dir`: `<data_dir>/reports`): `report.html` (a
one-screen summary, then the tables and plots; see `flows.report_files`), `summary.png`/`summary.pdf`
to forward, `pnl.csv` (one row per bot and the fleet) and `inventory.csv`; and a Prefect table artifact
plus a markdown one. Money is shown to the cent, drawdown in basis points, positions to the lot; the
flow also returns the exact figures (`exact`), which the ledger holds.
`date` defaults to yesterday (UTC): scheduled at 00:05 UTC it reports the day that just ended; a past
date regenerates that day with the same numbers (only ledger rows of that day, and fills before it for
the opening position, are read).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from bots.core.markouts import FillMarkout
from bots.exchange.base import Fill, FundingPayment
from bots.store import EquityPoint, Ledger
from flows.common import is_transient, load_fleet_config, select_bots
from flows.pnl import BotDay, day_bounds, fleet_day, report_rows, summarise_bot
from flows.report_files import write_report
from settings import BotSettings, FleetSettings

__all__ = ["BotLedgerDay", "daily_pnl_report"]


@dataclass(frozen=True, slots=True)
class BotLedgerDay:
    """What the ledger holds for one bot and day: its fills up to the day's end (ledger order), the
    day's equity points, the mids it recorded that day (time order) and the day's funding payments."""

    fills: list[Fill]
    equity: list[EquityPoint]
    mids: list[tuple[int, float]]
    funding: list[FundingPayment]
    markouts: list[FillMarkout] = field(default_factory=list)


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=is_transient, cache_policy=NO_CACHE)
def read_bot_day(fleet: FleetSettings, bot: str, symbol: str, start_ns: int, end_ns: int) -> BotLedgerDay:
    """Read one bot's rows for the day from the ledger."""
    with Ledger(fleet.ledger_url()) as ledger:
        fills = [f for f in ledger.fills(bot, symbol=symbol) if f.ts_ns < end_ns]
        equity = [p for p in ledger.equity_history(bot, since_ts_ns=start_ns) if p.ts_ns < end_ns]
        rows = ledger.features(symbol, since_ts_ns=start_ns, until_ts_ns=end_ns, bot=bot)
        mids = [(r.ts_ns, mid) for r in rows if (mid := r.values.get("mid")) is not None]
        markouts = ledger.markouts(bot, since_ts_ns=start_ns, until_ts_ns=end_ns, symbol=symbol)
        funding = ledger.funding_payments(bot, symbol=symbol, since_ts_ns=start_ns, until_ts_ns=end_ns)
    return BotLedgerDay(fills, equity, mids, funding, markouts)


@task(cache_policy=NO_CACHE)
def summarise(bot: BotSettings, data: BotLedgerDay, start_ns: int, end_ns: int) -> BotDay:
    """One bot's figures of the day."""
    lot = bot.instrument.lot_size if bot.instrument is not None else None
    return summarise_bot(
        bot.name,
        bot.symbol,
        data.fills,
        data.equity,
        data.mids,
        start_ns,
        end_ns,
        lot,
        markouts=data.markouts,
        funding=data.funding,
    )


@task(cache_policy=NO_CACHE)
def summarise_fleet(days: list[BotDay]) -> BotDay:
    """The fleet's figures of the day."""
    return fleet_day(days)


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=is_transient, cache_policy=NO_CACHE)
def write_files(
    day: dt.date, days: list[BotDay], rows: list[dict[str, str]], start_ns: int, out_dir: Path
) -> dict[str, str]:
    """Write the HTML report, its PNG plots and the CSVs."""
    return {name: str(path) for name, path in write_report(day, days, rows, start_ns, out_dir).items()}


def _markdown(day: dt.date, rows: list[dict[str, str]], out_dir: Path) -> str:
    columns = ["bot", "fills", "volume_usd", "spread_capture_usd", "inventory_pnl_usd", "rebates_usd",
               "fees_usd", "total_pnl_usd", "max_drawdown_usd", "max_drawdown_bps", "markout_1s_bps",
               "markout_60s_bps"]  # fmt: skip
    lines = [
        f"# mmfleet PnL {day.isoformat()} (UTC)",
        "",
        f"Report: `{out_dir / 'report.html'}`",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def yesterday_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


@flow(name="daily-pnl-report")
def daily_pnl_report(
    date: dt.date | None = None,
    bots: list[str] | None = None,
    reports_dir: str | None = None,
    config: str | None = None,
) -> dict[str, Any]:
    """Report one UTC day (yesterday by default); returns the date, the directory and the rows."""
    logger = get_run_logger()
    day = date or yesterday_utc()
    start_ns, end_ns = day_bounds(day)
    fleet = load_fleet_config(config)
    days = []
    for bot in select_bots(fleet, bots):
        data = read_bot_day(fleet, bot.name, bot.symbol, start_ns, end_ns)
        days.append(summarise(bot, data, start_ns, end_ns))
    everything = [*days, summarise_fleet(days)]
    rows = report_rows(day, everything)
    out_dir = (Path(reports_dir) if reports_dir else fleet.data_dir / "reports") / day.isoformat()
    files = write_files(day, everything, rows, start_ns, out_dir)
    create_table_artifact(rows, key="daily-pnl-report", description=f"mmfleet PnL {day.isoformat()} (UTC)")
    create_markdown_artifact(_markdown(day, rows, out_dir), key="daily-pnl-report-summary")
    logger.info("report of %s in %s", day.isoformat(), out_dir)
    exact = report_rows(day, everything, exact=True)
    return {"date": day.isoformat(), "dir": str(out_dir), "files": files, "rows": rows, "exact": exact}
