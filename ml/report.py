"""What a backtest produced and how it is shown: the result types, the risk figures (drawdown,
Sharpe), the progress bar, an HTML report with PNG plots, CSV tables, a JSON summary; and the Monte
Carlo's profit histograms.

Plots use matplotlib's object API on the Agg canvas (`Figure.savefig`): no pyplot, no GUI backend,
no global state, so this runs in any process (a sweep worker, a Prefect task, a headless server).
matplotlib and rich are imported only by the functions that draw, so `ml.backtest` can use the
figures here without loading either.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from bots.display import usd
from bots.engine.types import Side

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bots.exchange.base import Fill
    from ml.as_paper import PaperResult
    from ml.backtest import BacktestConfig
    from ml.sweep import SweepRow
    from settings.models import BotSettings

__all__ = [
    "BacktestResult",
    "BacktestStats",
    "EquityCurve",
    "PnLBreakdown",
    "max_drawdown",
    "plot_profit_histograms",
    "progress_bar",
    "sharpe_ratio",
    "summary",
    "write_report",
    "write_sweep_csv",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_MAX_POINTS = 5_000  # curve samples drawn per plot; more only blur the line and slow the file
_NS_PER_S = 1_000_000_000
_SECONDS_PER_YEAR = 365 * 86_400  # crypto trades every day


# -- what a run produced ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PnLBreakdown:
    """Exact PnL decomposition in USD; `total` is the equity change at the final mid."""

    spread_capture: Decimal
    inventory_pnl: Decimal
    rebates: Decimal
    taker_fees: Decimal

    @property
    def total(self) -> Decimal:
        return self.spread_capture + self.inventory_pnl + self.rebates - self.taker_fees


@dataclass(frozen=True, slots=True)
class EquityCurve:
    """One sample per quotable book: time, mid, position (base units) and equity (USD, with the balance)."""

    ts_ns: IntArray
    mid: FloatArray
    position: FloatArray
    equity: FloatArray


@dataclass(frozen=True, slots=True)
class BacktestStats:
    """The figures of one run, small and picklable (what a sweep returns per grid point)."""

    events: int
    seconds: float
    fills: int
    orders_placed: int
    orders_filled: int
    orders_cancelled: int
    orders_rejected: int
    fill_rate: float  # orders with at least one fill / orders accepted
    volume_usd: float
    total_pnl_usd: float
    spread_capture_usd: float
    inventory_pnl_usd: float
    rebates_usd: float
    taker_fees_usd: float
    sharpe: float  # annualised, from equity changes every `sharpe_interval_s`; nan when undefined
    max_drawdown_usd: float
    max_drawdown_pct: float
    final_position: float
    mean_abs_position_usd: float

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: nan becomes None."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Everything one run produced: the fills with the mid at each, the curve, the decomposition."""

    settings: BotSettings
    config: BacktestConfig
    stats: BacktestStats
    breakdown: PnLBreakdown
    fills: list[Fill]
    fill_mids: list[Decimal]
    curve: EquityCurve
    starting_balance: Decimal
    final_mark: Decimal
    final_position: Decimal
    total_pnl: Decimal  # equity at the final mid minus the starting balance, from the portfolio


# -- figures -------------------------------------------------------------------------------------------
def max_drawdown(equity: FloatArray) -> tuple[float, float]:
    """Largest fall from a running peak: in USD and as a fraction of that peak."""
    if len(equity) == 0:
        return 0.0, 0.0
    peak = np.maximum.accumulate(equity)
    fall = peak - equity
    ratio = np.divide(fall, peak, out=np.zeros_like(fall), where=peak > 0)
    return float(fall.max()), float(ratio.max())


def sharpe_ratio(ts_ns: IntArray, equity: FloatArray, interval_s: float, balance: float) -> float:
    """Annualised Sharpe ratio of returns on `balance` over consecutive `interval_s` windows (rate 0);
    nan with fewer than two windows or no variation."""
    if len(ts_ns) < 2 or balance <= 0:
        return math.nan
    edges = np.arange(ts_ns[0], ts_ns[-1], round(interval_s * _NS_PER_S), dtype=np.int64)
    at = np.searchsorted(ts_ns, edges, side="right") - 1  # the last sample at or before each edge
    returns = np.diff(np.append(equity[at], equity[-1])) / balance
    std = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    if not std > 0:
        return math.nan
    return float(np.mean(returns)) / std * math.sqrt(_SECONDS_PER_YEAR / interval_s)


def progress_bar(label: str, total: int | None) -> Callable[[int], None]:
    """A rich progress bar driven by a callback: a count updates it, a negative count ends it."""
    from rich.progress import (  # noqa: PLC0415 - only when a bar is wanted
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    bar = Progress(TextColumn(label), *columns)
    task = bar.add_task(label, total=total)
    bar.start()

    def update(done: int) -> None:
        bar.update(task, completed=abs(done))
        if done < 0:
            if total is None:
                bar.update(task, total=abs(done))
            bar.stop()

    return update


# -- plots and files -----------------------------------------------------------------------------------
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
        writer.writerow(["fill_id", "ts_ns", "side", "price", "size", "fee", "is_taker", "mid"])
        for fill, mid in zip(result.fills, result.fill_mids, strict=True):
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
                ]
            )


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
        "pnl": {
            "total": str(result.total_pnl),
            "spread_capture": str(breakdown.spread_capture),
            "inventory_pnl": str(breakdown.inventory_pnl),
            "rebates": str(breakdown.rebates),
            "taker_fees": str(breakdown.taker_fees),
        },
    }


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
th{{text-align:left}}img{{max-width:100%}}</style></head>
<body><h1>{title}</h1>
<h2>Parameters</h2>{params}
<h2>PnL (USD, to the cent; exact in summary.json)</h2>{pnl}
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
    """As a desk reads it: USD to the cent, fractions as percentages, counts whole."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, str | Decimal) and name in _PNL_NAMES:
        return usd(Decimal(value), grouped=True)
    if isinstance(value, float) and name.endswith("_usd"):
        return usd(Decimal(repr(value)), grouped=True)
    if isinstance(value, float) and (name.endswith("_pct") or name.endswith("_rate")):
        return f"{value:.3%}"
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


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
