"""The files of a daily PnL report: `pnl.csv`, `inventory.csv`, `equity.png`, `inventory.png` and
`report.html` showing them, in one directory per day.

Plots use matplotlib's object API on the Agg canvas (no pyplot, no GUI, no global state), imported only
here, when drawing.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flows.pnl import FLEET, BotDay

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["write_report"]

_NS_PER_HOUR = 3_600_000_000_000


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
            "position": format(position, "f"),
        }
        for d in days
        for ts, position in d.inventory
    ]


def _figure() -> Figure:
    from matplotlib.figure import Figure  # noqa: PLC0415 - only when drawing

    return Figure(figsize=(9, 3.5))


def _hours(ts_ns: int, start_ns: int) -> float:
    return (ts_ns - start_ns) / _NS_PER_HOUR


def _plot(
    days: Sequence[BotDay], start_ns: int, path: Path, *, title: str, ylabel: str, inventory: bool
) -> None:
    figure = _figure()
    axes = figure.add_subplot()
    for d in days:
        if inventory:
            # A step line held to the end of the day: the position between fills.
            points = [*d.inventory, (start_ns + 24 * _NS_PER_HOUR, d.inventory[-1][1])] if d.inventory else []
            axes.step(
                [_hours(t, start_ns) for t, _ in points],
                [float(p) for _, p in points],
                where="post",
                label=d.bot,
            )
        elif d.equity:
            axes.plot(
                [_hours(t, start_ns) for t, _ in d.equity], [float(e) for _, e in d.equity], label=d.bot
            )
    axes.set_xlim(0, 24)
    axes.set_xlabel("hour (UTC)")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _html(day: dt.date, rows: Sequence[dict[str, str]]) -> str:
    header = "".join(f"<th>{html.escape(name)}</th>" for name in rows[0])
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(value)}</td>" for value in row.values()) + "</tr>" for row in rows
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>mmfleet PnL {day.isoformat()}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}</style></head>
<body><h1>mmfleet daily PnL: {day.isoformat()} (UTC)</h1>
<p>Realized PnL is average-cost before fees; net = realized + rebates - fees; unrealized at the
last recorded mid of the day; drawdown within the day from its running peak.
Data: <a href="pnl.csv">pnl.csv</a>, <a href="inventory.csv">inventory.csv</a>.</p>
<table><tr>{header}</tr>
{body}
</table>
<h2>Equity</h2><img src="equity.png" alt="equity per bot">
<h2>Inventory</h2><img src="inventory.png" alt="position per bot">
</body></html>
"""


def write_report(
    day: dt.date, days: Sequence[BotDay], rows: Sequence[dict[str, str]], start_ns: int, out_dir: Path
) -> dict[str, Path]:
    """Write every file of the day's report into `out_dir` (replacing a previous run's); their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bots = [d for d in days if d.bot != FLEET]
    paths = {
        "csv": out_dir / "pnl.csv",
        "inventory_csv": out_dir / "inventory.csv",
        "equity_png": out_dir / "equity.png",
        "inventory_png": out_dir / "inventory.png",
        "html": out_dir / "report.html",
    }
    _write_csv(rows, paths["csv"])
    inventory_rows = _inventory_rows(bots)
    if inventory_rows:
        _write_csv(inventory_rows, paths["inventory_csv"])
    else:
        paths["inventory_csv"].write_text("bot,ts_utc,ts_ns,position\n")
    _plot(bots, start_ns, paths["equity_png"], title=f"Equity {day}", ylabel="USD", inventory=False)
    _plot(bots, start_ns, paths["inventory_png"], title=f"Inventory {day}", ylabel="base", inventory=True)
    paths["html"].write_text(_html(day, rows))
    return paths
