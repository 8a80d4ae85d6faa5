"""How a backtest is shown: an HTML report with PNG plots, CSV tables, a JSON summary; a sweep's
table; and the Monte Carlo's profit histograms. The results themselves are `ml.results`.

Plots use matplotlib's object API on the Agg canvas (`Figure.savefig`): no pyplot, no GUI backend,
no global state, so this runs in any process (a sweep worker, a Prefect task, a headless server).
matplotlib is imported only by the functions that draw.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bots.display import usd
from bots.engine.markouts import summarize
from bots.engine.types import Side
from ml.results import BacktestResult, FloatArray, IntArray, SweepRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ml.as_paper import PaperResult

__all__ = ["plot_profit_histograms", "summary", "write_report", "write_sweep_csv"]

_MAX_POINTS = 5_000  # curve samples drawn per plot; more only blur the line and slow the file
_NS_PER_S = 1_000_000_000


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure  # noqa: PLC0415 - only when drawing

    return Figure(figsize=(width, height))


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _hours(ts_ns: IntArray, origin: int) -> FloatArray:
    return (ts_ns - origin) / _NS_PER_S / 3600.0


def plot_equity(result: BacktestResult, path: Path) -> Path:
    curve = result.curve
    stride = max(1, len(curve.ts_ns) // _MAX_POINTS)
    origin = int(curve.ts_ns[0]) if len(curve.ts_ns) else 0
    figure = _figure(9, 3.6)
    axes = figure.add_subplot()
    pnl = curve.equity[::stride] - float(result.starting_balance)
    axes.plot(_hours(curve.ts_ns[::stride], origin), pnl, color="tab:blue", linewidth=1)
    axes.axhline(0.0, color="grey", linewidth=0.6)
    axes.set(title="Equity change (USD, marked at mid)", xlabel="hours", ylabel="USD")
    return _save(figure, path)


def plot_inventory(result: BacktestResult, path: Path) -> Path:
    curve = result.curve
    stride = max(1, len(curve.ts_ns) // _MAX_POINTS)
    origin = int(curve.ts_ns[0]) if len(curve.ts_ns) else 0
    figure = _figure(9, 3.0)
    axes = figure.add_subplot()
    usd = curve.position[::stride] * curve.mid[::stride]
    axes.plot(_hours(curve.ts_ns[::stride], origin), usd, color="tab:purple", linewidth=1)
    limit = result.settings.risk.max_position_usd
    for level in (-limit, limit):
        axes.axhline(level, color="tab:red", linewidth=0.6, linestyle="--")
    axes.set(title="Inventory (USD at mid)", xlabel="hours", ylabel="USD")
    return _save(figure, path)


def plot_fills(result: BacktestResult, path: Path) -> Path:
    curve = result.curve
    stride = max(1, len(curve.ts_ns) // _MAX_POINTS)
    origin = int(curve.ts_ns[0]) if len(curve.ts_ns) else 0
    figure = _figure(9, 4.0)
    axes = figure.add_subplot()
    axes.plot(_hours(curve.ts_ns[::stride], origin), curve.mid[::stride], color="grey", linewidth=0.8)
    for side, marker, color in ((Side.BUY, "^", "tab:green"), (Side.SELL, "v", "tab:red")):
        chosen = [f for f in result.fills if f.side is side]
        ts = np.asarray([f.ts_ns for f in chosen], dtype=np.int64)
        price = np.asarray([float(f.price) for f in chosen], dtype=np.float64)
        axes.scatter(_hours(ts, origin), price, marker=marker, s=12, color=color, label=f"{side} fills")
    axes.legend(loc="best", fontsize="small")
    axes.set(title="Fills on the mid price", xlabel="hours", ylabel="price")
    return _save(figure, path)


def _write_fills(result: BacktestResult, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        markouts = result.markouts
        horizons = [f"{h:g}s" for h in markouts.horizons_s]
        writer.writerow(
            [
                *("fill_id", "ts_ns", "side", "price", "size", "fee", "is_taker", "mid"),
                *(f"markout_{h}_bps" for h in horizons),
                *(f"markout_{h}_usd" for h in horizons),
            ]
        )
        for n, (fill, mid) in enumerate(zip(result.fills, result.fill_mids, strict=True)):
            writer.writerow(
                [
                    fill.fill_id,
                    fill.ts_ns,
                    fill.side.value,
                    fill.price,
                    fill.size,
                    fill.fee,
                    fill.is_taker,
                    mid,
                    *(_csv_markout(value) for value in markouts.bps[:, n]),
                    *(_csv_markout(value) for value in markouts.usd[:, n]),
                ]
            )


def _csv_markout(value: float) -> str:
    """A markout for the CSV: empty where the run ended before its horizon."""
    return "" if math.isnan(value) else repr(float(value))


def _write_curve(result: BacktestResult, path: Path) -> None:
    curve = result.curve
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["ts_ns", "mid", "position", "equity"])
        writer.writerows(
            zip(
                curve.ts_ns.tolist(),
                curve.mid.tolist(),
                curve.position.tolist(),
                curve.equity.tolist(),
                strict=True,
            )
        )


def summary(result: BacktestResult) -> dict[str, object]:
    """The run's parameters, figures and exact PnL breakdown, JSON-ready."""
    strategy = result.settings.strategy
    breakdown = result.breakdown
    return {
        "symbol": result.settings.symbol,
        "params": {
            "gamma": strategy.gamma,
            "kappa": strategy.kappa,
            "spread_pct": strategy.spread_pct,
            "grid_layers": strategy.grid_layers,
            "latency_ms": result.config.latency_ms,
        },
        "stats": result.stats.as_dict(),
        "markouts": [
            {
                "horizon_s": m.horizon_s,
                "fills": m.fills,
                "mean_bps": _json_float(m.mean_bps),
                "usd": m.total_usd,
            }
            for m in summarize(result.markouts)
        ],
        "pnl": {
            "total": str(result.total_pnl),
            "spread_capture": str(breakdown.spread_capture),
            "inventory_pnl": str(breakdown.inventory_pnl),
            "rebates": str(breakdown.rebates),
            "taker_fees": str(breakdown.taker_fees),
            "funding": str(breakdown.funding),
        },
    }


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
th{{text-align:left}}img{{max-width:100%}}</style></head>
<body><h1>{title}</h1>
<h2>Parameters</h2>{params}
<h2>PnL (USD, to the cent; exact in summary.json)</h2>{pnl}
<h2>Markouts</h2>
<p>The mid h seconds after each fill against its price, signed for us (negative: the mid went against
us); bps notional-weighted over the fills whose horizon passed in the run. Per fill: fills.csv.</p>
{markouts}
<h2>Figures</h2>{stats}
<h2>Plots</h2>
<img src="equity.png" alt="equity"><img src="inventory.png" alt="inventory"><img src="fills.png" alt="fills">
<p>Data: <a href="fills.csv">fills.csv</a>, <a href="equity.csv">equity.csv</a>,
<a href="summary.json">summary.json</a></p>
</body></html>
"""


def _table(rows: dict[str, object]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(_cell(str(key), value))}</td></tr>"
        for key, value in rows.items()
    )
    return f"<table>{cells}</table>"


def _cell(name: str, value: object) -> str:
    """As a desk reads it: USD to the cent, fractions as percentages, basis points to two places, counts
    whole."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, str | Decimal) and name in _PNL_NAMES:
        return usd(Decimal(value), grouped=True)
    if isinstance(value, float) and name.endswith("_usd"):
        return usd(Decimal(repr(value)), grouped=True)
    if isinstance(value, float) and (name.endswith("_pct") or name.endswith("_rate")):
        return f"{value:.3%}"
    if isinstance(value, float) and name.endswith("_bps"):
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _markout_table(result: BacktestResult) -> str:
    rows = "".join(
        f"<tr><th>{m.horizon_s:g} s</th><td>{m.fills:,}</td><td>{_cell('mean_bps', m.mean_bps)}</td>"
        f"<td>{html.escape(_cell('total_usd', m.total_usd))}</td></tr>"
        for m in summarize(result.markouts)
    )
    return f"<table><tr><th>horizon</th><th>fills</th><th>mean bps</th><th>USD</th></tr>{rows}</table>"


_PNL_NAMES = ("total", "spread_capture", "inventory_pnl", "rebates", "taker_fees")


def write_report(result: BacktestResult, out_dir: str | Path) -> Path:
    """Write report.html with equity.png, inventory.png, fills.png, fills.csv, equity.csv and
    summary.json into `out_dir` (created); returns the HTML file's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = summary(result)
    (out / "summary.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    _write_fills(result, out / "fills.csv")
    _write_curve(result, out / "equity.csv")
    plot_equity(result, out / "equity.png")
    plot_inventory(result, out / "inventory.png")
    plot_fills(result, out / "fills.png")
    page = _PAGE.format(
        title=html.escape(f"Backtest of {result.settings.name}"),
        params=_table(data["params"]),  # type: ignore[arg-type]
        pnl=_table(data["pnl"]),  # type: ignore[arg-type]
        stats=_table(data["stats"]),  # type: ignore[arg-type]
        markouts=_markout_table(result),
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def write_sweep_csv(rows: Sequence[SweepRow], path: str | Path) -> Path:
    """One line per grid point: its parameters, then every figure of its run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(rows[0].params) if rows else []
    figures = list(rows[0].stats.as_dict()) if rows else []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*names, *figures])
        for row in rows:
            stats = row.stats.as_dict()
            writer.writerow(
                [*(row.params[n] for n in names), *("" if stats[f] is None else stats[f] for f in figures)]
            )
    return path


def plot_profit_histograms(result: PaperResult, path: str | Path) -> Path:
    """The paper's figure: histograms of the final profit of both strategies over the simulated paths."""
    figure = _figure(8, 4.5)
    axes = figure.add_subplot()
    inventory, symmetric = result.inventory.profits, result.symmetric.profits
    low = float(min(inventory.min(), symmetric.min()))
    high = float(max(inventory.max(), symmetric.max()))
    bins = np.linspace(low, high, 60).tolist()
    axes.hist(symmetric, bins=bins, alpha=0.55, color="tab:red", label="symmetric strategy")
    axes.hist(inventory, bins=bins, alpha=0.55, color="tab:blue", label="inventory strategy")
    params = result.params
    axes.set(
        title=f"Profit over {params.paths} paths (gamma={params.gamma}, k={params.k}, A={params.A})",
        xlabel="profit",
        ylabel="paths",
    )
    axes.legend(loc="best")
    return _save(figure, Path(path))
