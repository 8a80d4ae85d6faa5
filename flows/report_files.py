"""The files of a daily PnL report, in one directory per day: `report.html` (a one-screen summary on
top: the fleet's figures, a row per bot, the PnL decomposition; then equity and drawdown, inventory in
USD, fills and volume by hour, realized PnL and positions), its PNG plots (`flows.report_plots`),
`summary.png` and `summary.pdf` to forward, `pnl.csv` and `inventory.csv`.

The page is laid out for a browser window of 1,280 px: one column of at most 1,160 px, no table or
plot wider than it.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path

from bots.display import bps, size, usd
from flows.pnl import FLEET, BotDay
from flows.report_plots import (
    SUMMARY_HEADERS,
    data_span,
    plot_activity,
    plot_breakdown,
    plot_curves,
    plot_inventory,
    plot_summary,
    summary_cells,
)

__all__ = ["write_report"]


def _write_csv(rows: Sequence[dict[str, str]], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _inventory_rows(days: Sequence[BotDay]) -> list[dict[str, str]]:
    return [
        {
            "bot": d.bot,
            "ts_utc": dt.datetime.fromtimestamp(ts / 1e9, dt.UTC).isoformat(timespec="microseconds"),
            "ts_ns": str(ts),
            "position": size(position, d.lot_size),
        }
        for d in days
        for ts, position in d.inventory
    ]


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fff}
main{max-width:1160px;margin:0 auto;padding:16px 20px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#666;margin:0 0 14px}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:10px;margin-bottom:14px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:20px;font-variant-numeric:tabular-nums}
.card span{color:#666;font-size:12px}
.neg{color:#b00020}.pos{color:#05691f}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
td,th{border-bottom:1px solid #e4e4e4;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f6f6f6;font-weight:600}td:first-child,th:first-child{text-align:left}
tr.fleet td{font-weight:700;border-top:2px solid #999}
img{display:block;max-width:100%;height:auto;margin:6px 0}
.note{color:#555;font-size:12px}
"""


def _cell(text: str, *, money: bool = True) -> str:
    sign = " class=neg" if money and text.startswith("-") else ""
    return f"<td{sign}>{html.escape(text)}</td>"


def _table(headers: Sequence[str], rows: Sequence[tuple[bool, Sequence[str]]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "\n".join(
        f"<tr{' class=fleet' if fleet else ''}>" + "".join(_cell(c) for c in cells) + "</tr>"
        for fleet, cells in rows
    )
    return f"<table><tr>{head}</tr>\n{body}\n</table>"


def _cards(fleet: BotDay) -> str:
    figures = [
        ("PnL, marked to market", usd(fleet.total_pnl_usd, grouped=True) + " $"),
        ("spread capture", usd(fleet.spread_capture_usd, grouped=True) + " $"),
        ("inventory PnL", usd(fleet.inventory_pnl_usd, grouped=True) + " $"),
        ("rebates - fees", usd(fleet.rebates_usd - fleet.fees_usd, grouped=True) + " $"),
        ("funding", usd(fleet.funding_usd, grouped=True) + " $"),
        ("volume", usd(fleet.volume_usd, grouped=True) + " $"),
        ("fills", f"{fleet.fills:,}"),
        ("max drawdown", usd(fleet.max_drawdown_usd, grouped=True) + " $"),
        ("max drawdown", bps(fleet.max_drawdown_ratio) + " bps"),
    ]
    cells = "".join(
        f"<div class=card><b{' class=neg' if value.startswith('-') else ''}>{html.escape(value)}</b>"
        f"<span>{html.escape(label)}</span></div>"
        for label, value in figures
    )
    return f"<div class=cards>{cells}</div>"


def _details(days: Sequence[BotDay]) -> str:
    headers = ["bot", "realized $", "unrealized $", "grid profit $", "net realized $", "position open",
               "position close", "mark close", "position close $"]  # fmt: skip
    rows = []
    for d in days:
        close_usd = d.position_close * d.mark_close if d.position_close is not None and d.mark_close else None
        rows.append((d.bot == FLEET, [
            d.bot, usd(d.realized_pnl_usd, grouped=True), usd(d.unrealized_pnl_usd, grouped=True),
            usd(d.grid_profit_usd, grouped=True), usd(d.net_pnl_usd, grouped=True),
            size(d.position_open, d.lot_size), size(d.position_close, d.lot_size),
            "" if d.mark_close is None else format(d.mark_close, ","), usd(close_usd, grouped=True),
        ]))  # fmt: skip
    return _table(headers, rows)


def _markouts(days: Sequence[BotDay]) -> str:
    """Per bot and the fleet: each horizon's fills covered, mean markout (bps) and total (USD)."""
    horizons = [m.horizon_s for m in days[0].markouts] if days else []
    headers = ["bot", *(f"{h:g} s {unit}" for h in horizons for unit in ("fills", "bps", "$"))]
    rows = [
        (d.bot == FLEET, [d.bot, *(c for m in d.markouts for c in (f"{m.fills:,}", bps(m.ratio),
                                                                       usd(m.usd, grouped=True)))])
        for d in days
    ]  # fmt: skip
    return _table(headers, rows)


def _html(day: dt.date, days: Sequence[BotDay], span: tuple[int, int]) -> str:
    fleet = next(d for d in days if d.bot == FLEET)
    hours = f"{_clock(span[0])} to {_clock(span[1])} UTC"
    summary = _table(SUMMARY_HEADERS, [(d.bot == FLEET, summary_cells(d)) for d in days])
    return f"""<!doctype html>
<html lang=en><head><meta charset="utf-8"><meta name=viewport content="width=device-width">
<title>mmfleet PnL {day.isoformat()}</title><style>{_STYLE}</style></head>
<body><main>
<h1>mmfleet daily PnL: {day.isoformat()} (UTC)</h1>
<p class=sub>{len(days) - 1} bots; data from {hours}. Money in USD to the cent, drawdown in basis points.
To forward: <a href="summary.pdf">summary.pdf</a> or <a href="summary.png">summary.png</a>.</p>
{_cards(fleet)}
{summary}
<img src="pnl.png" alt="PnL decomposition per bot and fleet" width=1150 height=320>
<h2>Equity and drawdown</h2>
<img src="equity.png" alt="equity change and drawdown per bot and fleet" width=1150 height=640>
<h2>Inventory in USD</h2>
<img src="inventory.png" alt="position in USD per bot" width=1150 height=340>
<h2>Fills and volume by hour</h2>
<img src="activity.png" alt="fills and volume per hour" width=1150 height=340>
<h2>Markouts</h2>
<p class=note>The mid 1 s, 10 s and 60 s after each fill against the fill's price, signed for us: negative
when the mid went against us (adverse selection). bps weighted by notional; a horizon counts the fills
whose markout was recorded.</p>
{_markouts(days)}
<h2>Realized PnL and positions</h2>
{_details(days)}
<h2>How the figures are made</h2>
<p class=note>PnL marked to market = spread capture + inventory PnL + rebates - fees + funding. Spread
capture: what each fill earned against the mid recorded at or before it. Inventory PnL: what the positions
held earned as the mid moved from the day's first recorded mid to its last. Funding: the day's funding
payments on the position, received minus paid (longs pay shorts when the rate is positive). Realized PnL
is average-cost before fees; net realized = realized + rebates - fees + funding; unrealized at the last
recorded mid of the day; grid profit FIFO. Drawdown within the day from the running peak of recorded
equity. Exact figures: the ledger; every row here:
<a href="pnl.csv">pnl.csv</a>, <a href="inventory.csv">inventory.csv</a>.</p>
</main></body></html>
"""


def _clock(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, dt.UTC).strftime("%H:%M")


def write_report(
    day: dt.date, days: Sequence[BotDay], rows: Sequence[dict[str, str]], start_ns: int, out_dir: Path
) -> dict[str, Path]:
    """Write every file of the day's report into `out_dir` (replacing a previous run's); their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bots = [d for d in days if d.bot != FLEET]
    fleet = next(d for d in days if d.bot == FLEET)
    paths = {
        "csv": out_dir / "pnl.csv",
        "inventory_csv": out_dir / "inventory.csv",
        "pnl_png": out_dir / "pnl.png",
        "equity_png": out_dir / "equity.png",
        "inventory_png": out_dir / "inventory.png",
        "activity_png": out_dir / "activity.png",
        "summary_png": out_dir / "summary.png",
        "summary_pdf": out_dir / "summary.pdf",
        "html": out_dir / "report.html",
    }
    _write_csv(rows, paths["csv"])
    inventory_rows = _inventory_rows(bots)
    if inventory_rows:
        _write_csv(inventory_rows, paths["inventory_csv"])
    else:
        paths["inventory_csv"].write_text("bot,ts_utc,ts_ns,position\n")
    span = data_span(days, start_ns)
    plot_breakdown(days, paths["pnl_png"])
    plot_curves(bots, fleet, span, paths["equity_png"])
    plot_inventory(bots, span, paths["inventory_png"])
    plot_activity(bots, span, start_ns, paths["activity_png"])
    title = f"mmfleet daily PnL {day.isoformat()} (UTC), data {_clock(span[0])}-{_clock(span[1])}"
    plot_summary(title, days, fleet, span, [paths["summary_png"], paths["summary_pdf"]])
    paths["html"].write_text(_html(day, days, span))
    return paths
