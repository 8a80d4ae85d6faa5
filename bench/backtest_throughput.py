"""Backtest throughput: market events per second through `ml.backtest.run_backtest`.

The backtest is the full product path (the synthetic market, the order-entry latency queue, the paper
fill model, the portfolio, the engine, the order diff, the equity curve and the exact PnL breakdown at
the end). Baseline measured in the same run: the same synthetic market alone (`SimMarket.step()`), so
the ratio says how much a backtest costs over just generating its data. One process, pinned to one
core where the OS allows. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from ml.backtest import BacktestConfig, SyntheticMarket, run_backtest
from settings.models import BotSettings

SYMBOL = "BTC_USDT_Perp"


def market_rate(settings: BotSettings, source: SyntheticMarket) -> float:
    """Events per second of the synthetic market alone."""
    start = time.perf_counter()
    count = sum(1 for _ in source.steps(settings))
    return count / (time.perf_counter() - start)


def backtest_rate(settings: BotSettings, source: SyntheticMarket, latency_ms: float) -> tuple[float, int]:
    """Events per second of a whole backtest, and its fill count."""
    start = time.perf_counter()
    result = run_backtest(settings, source, BacktestConfig(latency_ms=latency_ms))
    return result.stats.events / (time.perf_counter() - start), result.stats.fills


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=250.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    settings = BotSettings(symbol=SYMBOL)
    source = SyntheticMarket(seconds=args.events * settings.sim.book_interval_s, seed=args.seed)
    base = market_rate(settings, source)
    rate, fills = backtest_rate(settings, source, 0.0)
    rate_latency, _ = backtest_rate(settings, source, args.latency_ms)

    print(f"{'':<40}{'events/s':>12}{'us/event':>10}")
    for label, value in (
        ("sim market alone (baseline)", base),
        ("backtest, latency 0", rate),
        (f"backtest, latency {args.latency_ms:g} ms", rate_latency),
    ):
        print(f"{label:<40}{value:>12,.0f}{1e6 / value:>10.2f}")
    print(f"backtest: {rate / base:.3f}x the market alone; {fills} fills over {args.events:,} events")
    figures = {
        "events": args.events,
        "events_per_s": round(rate),
        "events_per_s_with_latency": round(rate_latency),
        "baseline_market_events_per_s": round(base),
        "ratio_vs_market": round(rate / base, 3),
        "fills": fills,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
