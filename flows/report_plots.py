"""The plots of a daily PnL report, as PNG (and the forwardable one-page summary, also as PDF).

Every time axis spans the data (the first to the last point of any bot that day), not the whole day.
Each bot keeps one colour in every plot; the fleet is the thick black line. matplotlib's object API on
the Agg canvas (no pyplot, no GUI, no global state), imported only here, when drawing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bots.display import bps, usd
from flows.pnl import BotDay

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["data_span", "plot_activity", "plot_breakdown", "plot_curves", "plot_inventory", "plot_summary"]

_NS_PER_HOUR = 3_600_000_000_000
_NS_PER_DAY = 24 * _NS_PER_HOUR
_MIN_SPAN_NS = 10 * 60 * 1_000_000_000  # a lone point is shown in a 10-minute window
_WIDTH_IN, _DPI = 11.5, 100  # 1,150 px: the report's column at 1,280 px
_FLEET = {"color": "black", "linewidth": 2.2}


def data_span(days: Sequence[BotDay], start_ns: int) -> tuple[int, int]:
    """[first, last] timestamp of any equity point, fill or inventory value of the day; the whole day
    when there is none."""
    stamps = [ts for d in days for ts, _ in (*d.equity, *d.inventory_usd)]
    stamps += [ts for d in days for ts, _ in d.inventory[1:]]
    if not stamps:
        return start_ns, start_ns + 24 * _NS_PER_HOUR
    low, high = min(stamps), max(stamps)
    pad = max(0, _MIN_SPAN_NS - (high - low)) // 2
    return low - pad, high + pad


def _when(ts_ns: int) -> float:
    """matplotlib's date number (days since its default epoch, 1970-01-01 UTC)."""
    return ts_ns / _NS_PER_DAY


def _figure(height_in: float) -> Figure:
    from matplotlib.figure import Figure  # noqa: PLC0415 - only when drawing

    return Figure(figsize=(_WIDTH_IN, height_in), dpi=_DPI)


def _colour(index: int) -> str:
    return f"C{index % 10}"


def _time_axis(axes: Axes, span: tuple[int, int]) -> None:
    from matplotlib.dates import AutoDateLocator, DateFormatter  # noqa: PLC0415

    axes.set_xlim(_when(span[0]), _when(span[1]))
    axes.xaxis.set_major_locator(AutoDateLocator(tz=dt.UTC, maxticks=12))  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=dt.UTC))  # type: ignore[no-untyped-call]
    axes.set_xlabel("time (UTC)")
    axes.grid(alpha=0.3)


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path)
    return path


def _legend(axes: Axes) -> None:
    """Below the plot, in one row: never over the data."""
    if axes.get_legend_handles_labels()[0]:
        below = -0.24 if axes.get_xlabel() else -0.1  # clear of the axis label
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, below), fontsize="small", ncols=6, frameon=False)


def _change(curve: Sequence[tuple[int, Decimal]]) -> tuple[list[float], list[float]]:
    """Equity minus the day's first point: bots of any size and the fleet on one axis."""
    first = curve[0][1] if curve else Decimal(0)
    return [_when(t) for t, _ in curve], [float(v - first) for _, v in curve]


def _underwater(curve: Sequence[tuple[int, Decimal]]) -> tuple[list[float], list[float]]:
    """How far below its running peak the equity is at each point (0 at a new high)."""
    peak: Decimal | None = None
    out = []
    for _, value in curve:
        peak = value if peak is None else max(peak, value)
        out.append(float(value - peak))
    return [_when(t) for t, _ in curve], out


def plot_curves(bots: Sequence[BotDay], fleet: BotDay, span: tuple[int, int], path: Path) -> Path:
    """Equity change since the day's first point (top) and drawdown from the running peak (bottom)."""
    figure = _figure(6.4)
    top, bottom = figure.subplots(2, 1, sharex=True)
    for i, d in enumerate(bots):
        if d.equity:
            top.step(*_change(d.equity), where="post", color=_colour(i), label=d.bot)
            bottom.step(*_underwater(d.equity), where="post", color=_colour(i), label=d.bot)
    if fleet.equity:
        top.step(*_change(fleet.equity), where="post", label="fleet", **_FLEET)
        bottom.step(*_underwater(fleet.equity), where="post", label="fleet", **_FLEET)
    top.set(title="Equity change since the day's first point (USD)", ylabel="USD")
    bottom.set(title="Drawdown from the running peak (USD)", ylabel="USD")
    for axes in (top, bottom):
        _time_axis(axes, span)
        axes.axhline(0.0, color="grey", linewidth=0.6)
    top.set_xlabel("")
    _legend(top)
    return _save(figure, path)


def plot_inventory(bots: Sequence[BotDay], span: tuple[int, int], path: Path) -> Path:
    """Each bot's position in USD (at the mid, or the fill price before the first mid)."""
    figure = _figure(3.4)
    axes = figure.add_subplot()
    for i, d in enumerate(bots):
        if d.inventory_usd:
            times = [_when(t) for t, _ in d.inventory_usd]
            axes.step(times, [v for _, v in d.inventory_usd], where="post", color=_colour(i), label=d.bot)
    axes.axhline(0.0, color="grey", linewidth=0.6)
    axes.set(title="Inventory (USD at mid)", ylabel="USD")
    _time_axis(axes, span)
    _legend(axes)
    return _save(figure, path)


def plot_activity(bots: Sequence[BotDay], span: tuple[int, int], start_ns: int, path: Path) -> Path:
    """Fills and traded volume per UTC hour, stacked by bot, over the hours the data spans."""
    first = max(0, (span[0] - start_ns) // _NS_PER_HOUR)
    last = min(23, (span[1] - start_ns) // _NS_PER_HOUR)
    hours = list(range(first, last + 1))
    figure = _figure(3.4)
    count_axes, volume_axes = figure.subplots(1, 2)
    base_count = [0.0] * len(hours)
    base_volume = [0.0] * len(hours)
    for i, d in enumerate(bots):
        if not d.hourly:
            continue
        counts = [float(d.hourly[h][0]) for h in hours]
        volumes = [float(d.hourly[h][1]) for h in hours]
        count_axes.bar(hours, counts, bottom=base_count, color=_colour(i), label=d.bot)
        volume_axes.bar(hours, volumes, bottom=base_volume, color=_colour(i), label=d.bot)
        base_count = [a + b for a, b in zip(base_count, counts, strict=True)]
        base_volume = [a + b for a, b in zip(base_volume, volumes, strict=True)]
    count_axes.set(title="Fills per hour", xlabel="hour (UTC)", ylabel="fills")
    volume_axes.set(title="Volume per hour (USD)", xlabel="hour (UTC)", ylabel="USD")
    for axes in (count_axes, volume_axes):
        axes.set_xticks(hours)
        axes.grid(alpha=0.3, axis="y")
    _legend(count_axes)
    return _save(figure, path)


_PARTS = (
    ("spread capture", "spread_capture_usd", 1),
    ("inventory PnL", "inventory_pnl_usd", 1),
    ("rebates", "rebates_usd", 1),
    ("fees", "fees_usd", -1),
    ("funding", "funding_usd", 1),
)


def plot_breakdown(days: Sequence[BotDay], path: Path) -> Path:
    """Per bot and the fleet: the parts of the day's PnL side by side, the total as a black bar."""
    figure = _figure(3.2)
    axes = figure.add_subplot()
    width = 0.8 / (len(_PARTS) + 1)
    for j, (label, name, sign) in enumerate(_PARTS):
        values = [sign * float(getattr(d, name)) for d in days]
        axes.bar([i + j * width for i in range(len(days))], values, width, label=label, color=_colour(j + 5))
    totals = [float(d.total_pnl_usd) for d in days]
    axes.bar([i + len(_PARTS) * width for i in range(len(days))], totals, width, label="total", color="black")
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(days))], [d.bot for d in days])
    axes.axhline(0.0, color="grey", linewidth=0.6)
    axes.set(title="PnL decomposition (USD; fees negative, funding paid negative)", ylabel="USD")
    axes.grid(alpha=0.3, axis="y")
    _legend(axes)
    return _save(figure, path)


def summary_cells(d: BotDay) -> list[str]:
    """The figures of one row of the summary table, as shown everywhere a person reads them."""
    return [
        d.bot, str(d.fills), usd(d.volume_usd, grouped=True), usd(d.spread_capture_usd, grouped=True),
        usd(d.inventory_pnl_usd, grouped=True), usd(d.rebates_usd, grouped=True),
        usd(d.fees_usd, grouped=True), usd(d.funding_usd, grouped=True), usd(d.total_pnl_usd, grouped=True),
        usd(d.max_drawdown_usd, grouped=True), bps(d.max_drawdown_ratio),
    ]  # fmt: skip


SUMMARY_HEADERS = [
    "bot", "fills", "volume $", "spread capture $", "inventory PnL $", "rebates $", "fees $", "funding $",
    "total PnL $",
    "max DD $", "max DD bps",
]  # fmt: skip


def plot_summary(
    title: str, days: Sequence[BotDay], fleet: BotDay, span: tuple[int, int], paths: Sequence[Path]
) -> None:
    """One page to forward: the summary table, then the fleet's equity change and drawdown."""
    table_height = 0.3 * (len(days) + 1) + 0.2
    figure = _figure(table_height + 4.6)
    table_axes, curve_axes = figure.subplots(2, 1, height_ratios=[table_height, 4.0])
    figure.suptitle(title, fontsize="x-large", fontweight="bold")
    table_axes.axis("off")
    table: Any = table_axes.table(
        cellText=[summary_cells(d) for d in days],
        colLabels=SUMMARY_HEADERS,
        loc="center",
        cellLoc="right",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.auto_set_column_width(list(range(len(SUMMARY_HEADERS))))
    table.scale(1.0, 1.4)
    for (row, column), cell in table.get_celld().items():
        if column == 0:
            cell.get_text().set_horizontalalignment("left")
        if row == 0 or row == len(days):  # the header and the fleet's row
            cell.set_text_props(fontweight="bold")
    if fleet.equity:
        curve_axes.step(*_change(fleet.equity), where="post", label="equity change", **_FLEET)
        curve_axes.fill_between(*_underwater(fleet.equity), step="post", color="tab:red", alpha=0.3,
                                label="drawdown")  # fmt: skip
    curve_axes.axhline(0.0, color="grey", linewidth=0.6)
    curve_axes.set(title="Fleet equity change and drawdown (USD)", ylabel="USD")
    _time_axis(curve_axes, span)
    _legend(curve_axes)
    figure.tight_layout()
    for path in paths:
        figure.savefig(path, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
