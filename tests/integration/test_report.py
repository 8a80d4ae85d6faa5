"""The daily report as a desk reads it: figures that add up, money to the cent, and a page that a real
browser (Debian's headless Chromium) shows at 1,280 px without scrolling sideways or a broken image."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import random
import re
import shutil
import subprocess
from decimal import Context, Decimal, localcontext
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bots.core.markouts import FillMarkout
from bots.display import bps, usd
from bots.engine.markouts import markouts_at
from bots.engine.portfolio import Portfolio
from bots.engine.types import Side
from bots.exchange.base import Fill
from bots.store import EquityPoint
from flows.pnl import BotDay, day_bounds, fleet_day, report_rows, summarise_bot
from flows.report_files import write_report
from flows.report_plots import data_span
from settings.models import BUILTIN_INSTRUMENTS

DAY = dt.date(2024, 3, 10)
START, END = day_bounds(DAY)
NS = 1_000_000_000
OPEN = START + 13 * 3600 * NS  # the data: 13:00 to 13:15 UTC
SYMBOLS = {"BTC_USDT_Perp": 60_000.0, "ETH_USDT_Perp": 3_000.0, "SOL_USDT_Perp": 150.0}
VIEWPORT = 1_280


Market = tuple[list[Fill], list[EquityPoint], list[tuple[int, float]]]


def market(symbol: str, mid0: float, seed: int, seconds: int = 900) -> Market:
    """A quarter of an hour of one bot: a mid every second, a fill every few seconds a little off the
    mid (maker, 1 bp rebate; now and then a taker fee), equity every ten seconds."""
    rng = random.Random(seed)
    lot = BUILTIN_INSTRUMENTS[symbol].lot_size
    tick = BUILTIN_INSTRUMENTS[symbol].tick_size
    mids, fills, equity = [], [], []
    mid = mid0
    portfolio = Portfolio(symbol=symbol, starting_balance=Decimal(10_000))
    for second in range(seconds):
        ts = OPEN + second * NS
        mid *= 1 + rng.gauss(0, 2e-4)
        mids.append((ts, round(mid, 2)))
        if rng.random() < 0.2:
            side = rng.choice([Side.BUY, Side.SELL])
            offset = Decimal(repr(mid * rng.uniform(-2e-4, 6e-4)))
            price = (Decimal(repr(mid)) - side.sign * offset).quantize(tick)
            qty = lot * rng.randint(1, 20)
            taker = rng.random() < 0.1
            fee = (price * qty * Decimal("0.0003" if taker else "-0.0001")).quantize(Decimal("1e-8"))
            fill = Fill(f"{symbol}-{second}", symbol, f"o{second}", side, price, qty, fee, ts, taker)
            portfolio.apply(fill)
            fills.append(fill)
        if second % 10 == 0:
            value = portfolio.equity(Decimal(repr(round(mid, 2))))
            equity.append(EquityPoint(ts, value, value))
    return fills, equity, mids


def worker_markouts(bot: str, fills: list[Fill], mids: list[tuple[int, float]]) -> list[FillMarkout]:
    """The markouts a worker would have recorded: each fill against the mid in force 1, 10 and 60 s on,
    for the horizons that passed before the data ends."""
    table = markouts_at(
        [f.ts_ns for f in fills],
        [f.side.sign for f in fills],
        [float(f.price) for f in fills],
        [float(f.size) for f in fills],
        [ts for ts, _ in mids],
        [mid for _, mid in mids],
    )
    return [
        FillMarkout(
            bot,
            f.symbol,
            f.fill_id,
            f.side,
            f.price,
            f.size,
            f.ts_ns,
            horizon,
            float(table.bps[i, j]),
            float(table.usd[i, j]),
        )
        for i, horizon in enumerate(table.horizons_s)
        for j, f in enumerate(fills)
        if not math.isnan(table.usd[i, j])
    ]


def report_days() -> list[BotDay]:
    days = []
    for seed, (symbol, mid0) in enumerate(SYMBOLS.items()):
        fills, equity, mids = market(symbol, mid0, seed)
        lot = BUILTIN_INSTRUMENTS[symbol].lot_size
        markouts = worker_markouts(symbol, fills, mids)
        days.append(summarise_bot(symbol, symbol, fills, equity, mids, START, END, lot, markouts))
    return [*days, fleet_day(days)]


# --- the figures ----------------------------------------------------------------------------------------


def _fill_strategy() -> st.SearchStrategy[tuple[bool, int, int, int, int]]:
    return st.tuples(st.booleans(), st.integers(1, 50), st.integers(-300, 300), st.integers(0, 86_399),
                     st.integers(-5, 5))  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    before=st.lists(_fill_strategy(), max_size=5),
    during=st.lists(_fill_strategy(), max_size=25),
    mid_moves=st.lists(st.integers(-400, 400), min_size=0, max_size=30),
)
def test_spread_capture_and_inventory_pnl_add_up_to_the_days_marked_pnl(
    before: list[tuple[bool, int, int, int, int]],
    during: list[tuple[bool, int, int, int, int]],
    mid_moves: list[int],
) -> None:
    """Whatever the fills and mids: spread + inventory = realized + unrealized at the close minus the
    opening position's unrealized PnL at the day's first mid. Average-cost accounting divides (its
    entry price of 0.010 @ 6000 and 0.010 @ 6000.1 has no end), so both sides agree to the 38th
    significant digit the ledger's arithmetic keeps: within 1e-20 USD."""

    def fills(rows: list[tuple[bool, int, int, int, int]], base: int) -> list[Fill]:
        out = []
        for i, (buy, lots, off, second, fee) in enumerate(sorted(rows, key=lambda r: r[3])):
            out.append(Fill(f"{base}-{i}", "BTC", "o", Side.BUY if buy else Side.SELL,
                            Decimal(60_000 + off) / 10, Decimal(lots) / 1000, Decimal(fee) / 100,
                            base + second * NS, fee > 0))  # fmt: skip
        return out

    history = fills(before, START - 86_400 * NS) + fills(during, START)
    mids = [(START + i * 2_000 * NS, 6_000.0 + m / 10) for i, m in enumerate(mid_moves)]
    day = summarise_bot("b", "BTC", history, [], mids, START, END)
    opening = Portfolio.replay((f for f in history if f.ts_ns < START), symbol="BTC")
    todays = [f for f in history if f.ts_ns >= START]
    # The day opens at its first mid; without one, at its first fill's price; without either, flat.
    mark_open = Decimal(repr(mids[0][1])) if mids else (todays[0].price if todays else day.mark_close)
    held_open = opening.unrealized_pnl(mark_open) if mark_open is not None else Decimal(0)
    with localcontext(Context(prec=38)):
        marked = day.realized_pnl_usd + day.unrealized_pnl_usd - held_open
        assert abs(day.spread_capture_usd + day.inventory_pnl_usd - marked) < Decimal("1e-20")
    assert (
        day.total_pnl_usd == day.spread_capture_usd + day.inventory_pnl_usd + day.rebates_usd - day.fees_usd
    )
    assert sum(count for count, _ in day.hourly) == day.fills
    assert sum((volume for _, volume in day.hourly), Decimal(0)) == day.volume_usd


def test_money_is_shown_to_the_cent_and_the_exact_figures_stay_exact(tmp_path: Path) -> None:
    days = report_days()
    shown, exact = report_rows(DAY, days), report_rows(DAY, days, exact=True)
    paths = write_report(DAY, days, shown, START, tmp_path)
    with paths["csv"].open() as handle:
        written = list(csv.DictReader(handle))
    assert written == shown
    money = [name for name in shown[0] if name.endswith("_usd")]
    assert {"spread_capture_usd", "inventory_pnl_usd", "rebates_usd", "fees_usd", "total_pnl_usd"} <= set(
        money
    )
    for row, full in zip(shown, exact, strict=True):
        for name in money:
            assert re.fullmatch(r"-?\d+\.\d\d", row[name]), (name, row[name])
            assert Decimal(row[name]) == Decimal(full[name]).quantize(Decimal("0.01"))
        assert re.fullmatch(r"-?\d+\.\d", row["max_drawdown_bps"])
    btc = next(row for row in shown if row["bot"] == "BTC_USDT_Perp")
    assert re.fullmatch(r"-?\d+\.\d{3}", btc["position_close"])  # BTC's lot: 0.001
    assert any(len(full["rebates_usd"].split(".")[-1]) > 2 for full in exact)  # there was something to round
    html = paths["html"].read_text()
    assert not re.search(r"\d\.\d{3,}\b", html.split("<h2>Realized")[0])  # the summary: cents, no more


def test_the_markouts_of_the_days_fills_per_horizon_and_for_the_fleet(tmp_path: Path) -> None:
    days = report_days()
    fleet = days[-1]
    for i, horizon in enumerate((1.0, 10.0, 60.0)):
        for day in days[:-1]:
            fills, _, mids = market(day.symbol, SYMBOLS[day.symbol], list(SYMBOLS).index(day.symbol))
            recorded = [m for m in worker_markouts(day.bot, fills, mids) if m.horizon_s == horizon]
            got = day.markouts[i]
            assert (got.horizon_s, got.fills) == (horizon, len(recorded))
            assert float(got.usd) == pytest.approx(sum(m.usd for m in recorded))
            assert float(got.notional_usd) == pytest.approx(sum(float(m.price * m.size) for m in recorded))
            assert 0 < got.fills <= day.fills  # the last minute's fills have no 60 s markout
        assert fleet.markouts[i].usd == sum((d.markouts[i].usd for d in days[:-1]), Decimal(0))
        assert fleet.markouts[i].fills == sum(d.markouts[i].fills for d in days[:-1])
    assert days[0].markouts[2].fills < days[0].markouts[0].fills
    shown, exact = report_rows(DAY, days), report_rows(DAY, days, exact=True)
    for row, full, day in zip(shown, exact, days, strict=True):
        ratio = day.markouts[1].ratio
        assert ratio is not None and Decimal(full["markout_10s_bps"]) == ratio * 10_000
        assert row["markout_10s_bps"] == bps(ratio) and row["markout_60s_usd"] == usd(day.markouts[2].usd)
    html = write_report(DAY, days, shown, START, tmp_path)["html"].read_text()
    section = html.split("<h2>Markouts</h2>")[1].split("<h2>")[0]
    assert f"<td>{bps(fleet.markouts[0].ratio)}</td>" in section and "60 s bps" in section


def test_the_time_axis_spans_the_data_not_the_day() -> None:
    low, high = data_span(report_days(), START)
    assert (low, high) == (OPEN, OPEN + 899 * NS)
    assert data_span([], START) == (START, END)


# --- in a browser -------------------------------------------------------------------------------------------

PROBE = """<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    viewport: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    images: [...document.images].map(i => ({
      src: i.getAttribute("src"),
      loaded: i.complete && i.naturalWidth > 0,
      right: i.getBoundingClientRect().right,
    })),
    tables: [...document.querySelectorAll("table")].map(t => t.getBoundingClientRect().right),
  });
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        message = "chromium is not installed (`make infra-deps` installs Debian's package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def run_chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / "chromium-profile"  # a fresh profile every run
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--hide-scrollbars", "--virtual-time-budget=10000", *args,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_report_fits_1280_px_in_chromium_and_every_image_loads(tmp_path: Path) -> None:
    days = report_days()
    out = tmp_path / "report"
    paths = write_report(DAY, days, report_rows(DAY, days), START, out)
    page = paths["html"].read_text()
    probe = out / "probe.html"  # the report itself plus a script that measures it once loaded
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = run_chromium(tmp_path, f"--window-size={VIEWPORT},900", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    measured = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert measured["viewport"] == VIEWPORT
    assert measured["scrollWidth"] <= VIEWPORT, measured  # nothing scrolls sideways
    images = measured["images"]
    assert {i["src"] for i in images} == {"pnl.png", "equity.png", "inventory.png", "activity.png"}
    assert all(i["loaded"] for i in images), images
    assert all(right <= VIEWPORT for right in [*(i["right"] for i in images), *measured["tables"]])
    # A screenshot of the first screen, for a person to look at (kept in the test's tmp directory).
    shot = tmp_path / "report.png"
    run_chromium(tmp_path, f"--window-size={VIEWPORT},2600", f"--screenshot={shot}", paths["html"].as_uri())
    assert shot.read_bytes().startswith(b"\x89PNG")
    for name in ("summary.png", "summary.pdf"):
        assert paths[name.replace(".", "_")].stat().st_size > 10_000
    assert paths["summary_pdf"].read_bytes().startswith(b"%PDF")
