"""daily-pnl-report: per bot and for the fleet, realized and unrealized PnL, grid profit, rebates, fees,
volume, fills, max drawdown and the inventory through the day (see `flows.pnl` for the definitions).

Writes `<reports_dir>/YYYY-MM-DD/` (default `reports_dir`: `<data_dir>/reports`): `report.html` with
`equity.png` and `inventory.png`, `pnl.csv` (one row per bot and the fleet) and `inventory.csv`; and a
Prefect table artifact plus a markdown one. `date` defaults to yesterday (UTC): scheduled at 00:05 UTC
it reports the day that just ended; a past date regenerates that day with the same numbers (only
ledger rows of that day, and fills before it for the opening position, are read).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from bots.exchange.base import Fill
from bots.store import EquityPoint, Ledger
from flows.common import is_transient, load_fleet_config, select_bots
from flows.pnl import BotDay, day_bounds, fleet_day, report_rows, summarise_bot
from flows.report_files import write_report
from settings import FleetSettings

__all__ = ["BotLedgerDay", "daily_pnl_report"]

_MID_LOOKBACK_NS = 3_600 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class BotLedgerDay:
    """What the ledger holds for one bot and day: its fills up to the day's end (ledger order), the
    day's equity points and the last mid it recorded that day."""

    fills: list[Fill]
    equity: list[EquityPoint]
    last_mid: float | None


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=is_transient, cache_policy=NO_CACHE)
def read_bot_day(fleet: FleetSettings, bot: str, symbol: str, start_ns: int, end_ns: int) -> BotLedgerDay:
    """Read one bot's rows for the day from the ledger."""
    with Ledger(fleet.ledger_url()) as ledger:
        fills = [f for f in ledger.fills(bot, symbol=symbol) if f.ts_ns < end_ns]
        equity = [p for p in ledger.equity_history(bot, since_ts_ns=start_ns) if p.ts_ns < end_ns]
        last_mid = None
        # The last hour first (one row a second), the whole day only when the bot was quiet then.
        for since in (max(start_ns, end_ns - _MID_LOOKBACK_NS), start_ns):
            rows = ledger.features(symbol, since_ts_ns=since, until_ts_ns=end_ns, bot=bot)
            mids = [r.values["mid"] for r in rows if r.values.get("mid") is not None]
            if mids:
                last_mid = mids[-1]
                break
    return BotLedgerDay(fills, equity, last_mid)


@task(cache_policy=NO_CACHE)
def summarise(bot: str, symbol: str, data: BotLedgerDay, start_ns: int, end_ns: int) -> BotDay:
    """One bot's figures of the day."""
    return summarise_bot(bot, symbol, data.fills, data.equity, data.last_mid, start_ns, end_ns)


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
    columns = ["bot", "fills", "volume_usd", "realized_pnl_usd", "unrealized_pnl_usd", "grid_profit_usd",
               "rebates_usd", "fees_usd", "net_pnl_usd", "max_drawdown_ratio"]  # fmt: skip
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
        days.append(summarise(bot.name, bot.symbol, data, start_ns, end_ns))
    everything = [*days, summarise_fleet(days)]
    rows = report_rows(day, everything)
    out_dir = (Path(reports_dir) if reports_dir else fleet.data_dir / "reports") / day.isoformat()
    files = write_files(day, everything, rows, start_ns, out_dir)
    create_table_artifact(rows, key="daily-pnl-report", description=f"mmfleet PnL {day.isoformat()} (UTC)")
    create_markdown_artifact(_markdown(day, rows, out_dir), key="daily-pnl-report-summary")
    logger.info("report of %s in %s", day.isoformat(), out_dir)
    return {"date": day.isoformat(), "dir": str(out_dir), "files": files, "rows": rows}
