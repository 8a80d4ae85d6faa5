"""The backtester: PnL equals the sum of its fills' PnL, latency, recorded = synthetic, report, sweep, CLI."""

from __future__ import annotations

import bisect
import csv
import json
import math
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from bots.cli import app
from bots.display import usd
from bots.engine.portfolio import Portfolio
from bots.exchange.sim import write_recording
from ml.backtest import (
    BacktestConfig,
    BacktestResult,
    RecordedMarket,
    SyntheticMarket,
    run_backtest,
)
from ml.report import write_report, write_sweep_csv
from ml.results import BacktestStats, inventory_risk
from ml.sweep import parse_grid, sweep, with_params
from settings.models import BotSettings

SYMBOL = "BTC_USDT_Perp"
CENT = Decimal("0.01")
runner = CliRunner()


def bot(**sections: dict[str, Any]) -> BotSettings:
    return BotSettings.model_validate({"symbol": SYMBOL, **sections})


def bot_of(symbol: str) -> BotSettings:
    return BotSettings(symbol=symbol)


def fills_pnl(result: BacktestResult) -> Decimal:
    """Independent of the backtester: cash flows of the fills, fees, and the inventory at the last mid."""
    cash = sum((-f.side.sign * f.price * f.size - f.fee for f in result.fills), Decimal(0))
    position = sum((f.side.sign * f.size for f in result.fills), Decimal(0))
    return cash + position * result.final_mark


# Quotes that trade in the sim market (a 1 bp floor, the model's spread about 1 bp, a few layers):
# the default 0.5% floor rests too far from the mid to fill in a few minutes.
TRADING = {"spread_pct": 0.0001, "kappa": 20_000.0, "grid_layers": 3, "grid_spacing_pct": 0.0002}
CASES = {
    "touch fills, no latency": (bot(strategy=TRADING), BacktestConfig(queue_model=False)),
    "touch fills, 350 ms latency": (
        bot(strategy=TRADING),
        BacktestConfig(latency_ms=350, seed=3, queue_model=False),
    ),
    "queue model, 1 s latency": (bot(strategy=TRADING), BacktestConfig(latency_ms=1000)),
    # a tight drawdown limit trips: the close is a reduce-only taker order paying taker fees
    "drawdown close, taker fees": (
        bot(
            strategy=TRADING,
            risk={"max_drawdown_pct": 0.0003},
            paper={"starting_balance_usd": "1000"},
            sim={"sigma": 5e-4},
        ),
        BacktestConfig(latency_ms=300),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_total_pnl_equals_the_sum_of_its_fills_pnl(case: str) -> None:
    settings, config = CASES[case]
    result = run_backtest(settings, SyntheticMarket(seconds=300, seed=4), config)
    assert result.stats.fills > 10
    total = result.total_pnl
    assert total.quantize(CENT) == fills_pnl(result).quantize(CENT)
    replayed = Portfolio.replay(result.fills, symbol=SYMBOL)
    by_portfolio = replayed.realized_pnl - replayed.fees + replayed.unrealized_pnl(result.final_mark)
    assert total.quantize(CENT) == by_portfolio.quantize(CENT)
    assert result.breakdown.total.quantize(CENT) == total.quantize(CENT)
    assert result.final_position == replayed.position
    assert result.curve.equity[-1] - float(result.starting_balance) == pytest.approx(float(total), abs=0.01)
    if case.startswith("drawdown"):
        assert result.breakdown.taker_fees > 0 and any(f.is_taker for f in result.fills)
    else:
        assert result.breakdown.rebates > 0 and not any(f.is_taker for f in result.fills)


def test_orders_act_only_after_the_entry_latency() -> None:
    latency_ms = 20_000.0
    market = SyntheticMarket(seconds=200, seed=2)
    late = run_backtest(bot(strategy=TRADING), market, BacktestConfig(latency_ms=latency_ms))
    prompt = run_backtest(bot(strategy=TRADING), market, BacktestConfig())
    first_book_ns = int(late.curve.ts_ns[0])
    assert late.fills and prompt.fills
    assert min(f.ts_ns for f in late.fills) >= first_book_ns + latency_ms * 1_000_000
    assert min(f.ts_ns for f in prompt.fills) < first_book_ns + latency_ms * 1_000_000


def test_a_recording_replays_like_the_market_it_recorded(tmp_path: Path) -> None:
    settings = bot(strategy=TRADING)
    market = SyntheticMarket(seconds=120, seed=5)
    path = tmp_path / "btc.csv"
    write_recording(path, market.steps(settings))
    recorded = run_backtest(settings, RecordedMarket(path), BacktestConfig(latency_ms=150))
    synthetic = run_backtest(settings, market, BacktestConfig(latency_ms=150))
    assert recorded.stats == synthetic.stats
    assert recorded.fills == synthetic.fills


def test_figures_are_consistent() -> None:
    result = run_backtest(bot(strategy=TRADING), SyntheticMarket(seconds=300, seed=1), progress=True)
    stats = result.stats
    assert stats.events == 3000 and len(result.curve.ts_ns) == 3000
    assert 0 < stats.fill_rate <= 1 and stats.orders_filled <= stats.orders_placed
    assert stats.max_drawdown_usd >= 0 and 0 <= stats.max_drawdown_pct < 1
    assert stats.volume_usd == pytest.approx(float(sum(f.price * f.size for f in result.fills)))
    assert stats.rebates_usd == pytest.approx(stats.volume_usd * 1e-4)  # 1 bp maker rebate
    assert stats.sharpe == stats.sharpe  # defined: 5 one-minute windows


def test_report_writes_html_with_png_plots(tmp_path: Path) -> None:
    result = run_backtest(bot(strategy=TRADING), SyntheticMarket(seconds=60, seed=1))
    page = write_report(result, tmp_path / "report")
    text = page.read_text(encoding="utf-8")
    for name in ("equity.png", "inventory.png", "fills.png"):
        assert f'src="{name}"' in text
        assert (page.parent / name).read_bytes().startswith(b"\x89PNG")
    summary = json.loads((page.parent / "summary.json").read_text(encoding="utf-8"))
    assert Decimal(summary["pnl"]["total"]) == result.total_pnl  # exact for machines
    assert f"<td>{usd(result.total_pnl, grouped=True)}</td>" in text  # to the cent for people
    figures = text.split("<h2>PnL")[1].split("<h2>Plots")[0]  # money and figures, not the parameters
    assert not re.search(r"\d\.\d{4,}", figures), re.findall(r"[-\d,]+\.\d{4,}", figures)
    assert len((page.parent / "fills.csv").read_text().splitlines()) == len(result.fills) + 1


def test_markouts_are_each_fill_against_the_mid_in_force_at_its_horizon(tmp_path: Path) -> None:
    """Recomputed from the run's curve by hand: the last mid at or before fill time + h, against the
    fill's price, signed for us; the summary figures, the report and fills.csv carry them."""
    market = SyntheticMarket(seconds=300, seed=1)
    result = run_backtest(bot(strategy=TRADING), market, BacktestConfig(latency_ms=100))
    curve, stats, markouts = result.curve, result.stats, result.markouts
    assert markouts.horizons_s == (1.0, 10.0, 60.0) and result.fills
    totals = []
    for i, horizon in enumerate(markouts.horizons_s):
        total = notional = 0.0
        for n, fill in enumerate(result.fills):
            due = fill.ts_ns + round(horizon * 1e9)
            if due > curve.ts_ns[-1]:
                assert math.isnan(markouts.usd[i, n])  # the run ended first
                continue
            later = curve.mid[bisect.bisect_right(curve.ts_ns.tolist(), due) - 1]
            edge = fill.side.sign * (later - float(fill.price))
            assert markouts.usd[i, n] == pytest.approx(edge * float(fill.size))
            assert markouts.bps[i, n] == pytest.approx(edge / float(fill.price) * 1e4)
            total += edge * float(fill.size)
            notional += float(fill.price * fill.size)
        totals.append((total, total / notional * 1e4))
    assert (stats.markout_1s_usd, stats.markout_1s_bps) == pytest.approx(totals[0])
    assert (stats.markout_10s_usd, stats.markout_10s_bps) == pytest.approx(totals[1])
    assert (stats.markout_60s_usd, stats.markout_60s_bps) == pytest.approx(totals[2])
    # the markout-adjusted PnL: every fill marked 60 s on, or at the final mid when the run ends first
    stamps = curve.ts_ns.tolist()
    marked = sum(
        f.side.sign
        * (curve.mid[bisect.bisect_right(stamps, f.ts_ns + 60 * 10**9) - 1] - float(f.price))
        * float(f.size)
        for f in result.fills
    )
    fees = stats.rebates_usd - stats.taker_fees_usd
    assert stats.markout_pnl_usd == pytest.approx(marked + fees)
    assert marked != pytest.approx(stats.markout_60s_usd)  # the last minute's fills are in it too
    page = write_report(result, tmp_path / "report")
    summary = json.loads((page.parent / "summary.json").read_text(encoding="utf-8"))
    assert [m["horizon_s"] for m in summary["markouts"]] == [1.0, 10.0, 60.0]
    assert summary["markouts"][0]["usd"] == pytest.approx(stats.markout_1s_usd)
    assert "<h2>Markouts</h2>" in page.read_text(encoding="utf-8")
    with (page.parent / "fills.csv").open(encoding="utf-8") as handle:
        first = next(csv.DictReader(handle))
    assert float(first["markout_1s_usd"]) == pytest.approx(markouts.usd[0, 0])


def test_inventory_risk_is_the_quadratic_variation_of_what_the_held_inventory_earned() -> None:
    position = np.array([1.0, -2.0, 0.0, 5.0])
    mid = np.array([100.0, 101.0, 99.0, 250.0])  # the last move finds the position flat: no risk
    assert inventory_risk(position, mid) == pytest.approx(math.sqrt((1 * 1) ** 2 + (-2 * -2) ** 2))
    assert inventory_risk(position[:1], mid[:1]) == 0.0


def test_sweep_runs_the_grid_in_parallel_processes(tmp_path: Path) -> None:
    settings = bot(strategy=TRADING)
    market = SyntheticMarket(seconds=60, seed=3)
    grid = parse_grid(["gamma=0.5,2", "spread=0.004,0.006"])
    rows = sweep(settings, market, grid, workers=2)
    assert [row.params for row in rows] == [
        {"gamma": 0.5, "spread_pct": 0.004},
        {"gamma": 0.5, "spread_pct": 0.006},
        {"gamma": 2.0, "spread_pct": 0.004},
        {"gamma": 2.0, "spread_pct": 0.006},
    ]
    direct = run_backtest(with_params(settings, rows[1].params), market)
    assert rows[1].stats.as_dict() == direct.stats.as_dict()  # as_dict: nan (one window) becomes None
    path = write_sweep_csv(rows, tmp_path / "sweep.csv")
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("gamma,spread_pct,events,")
    assert "markout_1s_bps" in lines[0] and "markout_pnl_usd" in lines[0]


def test_grid_and_params_are_checked() -> None:
    assert parse_grid(["kappa=500,1000", "layers=3"]) == {"kappa": [500.0, 1000.0], "grid_layers": [3.0]}
    for bad in ("gamma", "gamma=", "gamma=a,b"):
        with pytest.raises(ValueError):
            parse_grid([bad])
    assert with_params(bot(), {"grid_layers": 3.0}).strategy.grid_layers == 3
    with pytest.raises(ValueError, match="not a strategy parameter"):
        with_params(bot(), {"nope": 1.0})
    with pytest.raises(ValueError):
        with_params(bot(), {"gamma": -1.0})
    with pytest.raises(ValueError):
        sweep(bot(), SyntheticMarket(seconds=1), {"grid_layers": [2.5]}, workers=1)


def test_cli_runs_a_backtest_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["backtest", "run", "--synthetic", "--seconds", "30", "--seed", "2", "--latency-ms", "100"]
    result = runner.invoke(app, [*args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["params"]["latency_ms"] == 100.0 and data["stats"]["events"] == 300
    assert (out / "report.html").is_file()


def test_cli_replays_a_recording_of_its_symbol(tmp_path: Path) -> None:
    path = tmp_path / "eth.csv.gz"
    eth = bot_of("ETH_USDT_Perp")
    write_recording(path, SyntheticMarket(seconds=20, seed=1).steps(eth))
    result = runner.invoke(app, ["backtest", "run", "--file", str(path), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["symbol"] == "ETH_USDT_Perp" and data["stats"]["events"] == 200
    result = runner.invoke(app, ["backtest", "run", "--file", str(path), "--symbol", SYMBOL])
    assert result.exit_code == 2 and f"no market data for {SYMBOL}" in result.output


def test_cli_refuses_bad_arguments(tmp_path: Path) -> None:
    result = runner.invoke(app, ["backtest", "run", "--seconds", "1", "--sweep", "gamma"])
    assert result.exit_code == 2 and "name=v1,v2" in result.output
    result = runner.invoke(app, ["backtest", "run", "--file", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = runner.invoke(app, ["backtest", "run", "kappa=1"])
    assert result.exit_code == 2 and "follow --sweep" in result.output


def test_the_cli_module_imports_no_backtest_library() -> None:
    """The worker imports bots.cli: the backtest, report and plotting code must load only on demand."""
    heavy = (
        "ml.backtest",
        "ml.report",
        "ml.sweep",
        "ml.as_paper",
        "ml.tuner",
        "matplotlib",
        "pandas",
        "sklearn",
    )
    code = f"import sys, bots.cli\nprint(sorted(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


def test_a_tolerance_per_layer_spares_the_outer_layers_and_keeps_the_fills() -> None:
    """The example fleet's grid (7 layers 12 bp apart, following every tick): 1 bp of tolerance per layer
    out leaves the outer layers resting through small moves, so the bot sends a fraction of the orders
    (a venue's rate limit would refuse the rest) and fills as often: its fills are the inner layers'."""

    def stats(per_layer: float) -> BacktestStats:
        strategy = {
            "grid_layers": 7,
            "grid_spacing_pct": 0.0012,
            "spread_pct": 0.00005,
            "kappa": "auto",  # fitted to the market's trades: quotes near the touch, as the example's
            "price_tolerance_pct": 0.0,
            "price_tolerance_per_layer_pct": per_layer,
        }
        settings = BotSettings.model_validate({"symbol": SYMBOL, "strategy": strategy})
        return run_backtest(settings, SyntheticMarket(seconds=300, seed=3), BacktestConfig(seed=3)).stats

    following, spared = stats(0.0), stats(0.0001)
    assert following.fills >= 20
    assert spared.orders_placed < following.orders_placed / 3
    assert abs(spared.fills - following.fills) <= following.fills / 10
