"""The terminal view of a fleet: each worker's process state beside its live figures from `/metrics`."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from bots.ops.supervisor import ChildStatus

if TYPE_CHECKING:  # aiohttp (~8 MB) loads only to scrape: `bots.cli`, which starts every bot, imports this
    import aiohttp

__all__ = ["Sample", "fleet_table", "scrape", "scrape_fleet"]

Sample = dict[str, float]
_SCRAPE_TIMEOUT_S = 0.8


def parse_exposition(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by name from a Prometheus text exposition."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


async def scrape(session: aiohttp.ClientSession, port: int) -> Sample | None:
    """The figures the table shows, or None when the worker does not answer."""
    import aiohttp  # noqa: PLC0415 - see TYPE_CHECKING above

    try:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    samples = parse_exposition(text)
    row: Sample = {}
    for name in (
        "position_base", "position_usd", "equity_usd", "realized_pnl_usd", "unrealized_pnl_usd",
        "drawdown_ratio", "mid_price", "trading_enabled", "fills_total", "orders_open",
    ):  # fmt: skip
        values = samples.get(f"mmfleet_{name}", [])
        row[name] = sum(v for _, v in values) if values else math.nan
    for labels, value in samples.get("mmfleet_trading_state", []):
        if value == 1.0:
            row["state:" + labels.get("state", "?")] = 1.0
    for labels, _ in samples.get("mmfleet_config_info", []):
        row["config:" + labels.get("version", "?")] = 1.0
    return row


async def scrape_fleet(children: Sequence[ChildStatus]) -> dict[str, Sample | None]:
    import aiohttp  # noqa: PLC0415 - see TYPE_CHECKING above

    timeout = aiohttp.ClientTimeout(total=_SCRAPE_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        rows = await asyncio.gather(*(scrape(session, c.port) for c in children))
    return {c.name: row for c, row in zip(children, rows, strict=True)}


def _tagged(row: Sample, prefix: str) -> str:
    return next((key.removeprefix(prefix) for key in row if key.startswith(prefix)), "-")


def _money(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.2f}"


def fleet_table(children: Sequence[ChildStatus], rows: dict[str, Sample | None]) -> Table:
    """One row per bot; the last-error column appears only when some worker has one."""
    errors = any(child.last_error for child in children)
    table = Table(title="mmfleet", expand=False)
    headers = [
        "bot",
        "process",
        "state",
        "mid",
        "position",
        "equity $",
        "PnL $",
        "drawdown",
        "fills",
        "orders",
    ]
    for column in [*headers, "config", *(["last error"] if errors else [])]:
        table.add_column(column, justify="left" if column in ("bot", "last error") else "right", no_wrap=True)
    for child in children:
        row = rows.get(child.name)
        if row is None:
            cells = ["-"] * 8
        else:
            pnl = row["realized_pnl_usd"] + row["unrealized_pnl_usd"]
            cells = [
                _tagged(row, "state:"),
                _money(row["mid_price"]),
                f"{row['position_base']:.4g}",
                _money(row["equity_usd"]),
                _money(pnl),
                "-" if math.isnan(row["drawdown_ratio"]) else f"{row['drawdown_ratio']:.2%}",
                f"{row['fills_total']:.0f}",
                f"{row['orders_open']:.0f}",
            ]
        extra = [child.last_error[-50:]] if errors else []
        table.add_row(child.name, child.state, *cells, _tagged(row or {}, "config:"), *extra)
    return table
