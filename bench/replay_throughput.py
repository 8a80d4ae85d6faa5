"""Replay throughput: book events per second through the sim market, the engine and the fill model.

Per event, as every backtest runs it (`ml.backtest_loop.BacktestLoop`, latency 0): `SimMarket.step()`
-> the fill model sees the book and the trades -> fills go to a `Portfolio` -> `QuoteEngine.on_book`
-> `diff_orders` against our open orders -> cancels and post-only placements in the fill model. One
process, pinned to one core where the OS allows. The per-event modules run compiled when `make native`
has built them (the JSON says which); the same source runs as plain Python otherwise.

Baselines measured in the same run: the market alone (`step()`, and the cheap `step_raw()`), so the
ratio shows what the bot adds to generating its data. Each is run `--repeats` times, interleaved, and
the best run reported (the median of the loop too): on a shared machine the slower runs measure the
neighbours. Below the target, a cProfile run names the three
largest costs (compiled functions show as one call each: profile the plain-Python build for detail).
Last line: JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import time

from bots import native
from bots.exchange.sim import SimMarket
from ml.backtest_loop import BacktestConfig, BacktestLoop
from settings.models import BotSettings

SYMBOL = "BTC_USDT_Perp"
S0 = 50_000.0
TARGET_EVENTS_PER_S = 100_000


def new_market(seed: int) -> SimMarket:
    settings = BotSettings(symbol=SYMBOL)
    return SimMarket(SYMBOL, settings.spec, seed=seed, s0=S0)


def run_market(events: int, seed: int, raw: bool) -> float:
    """Events per second of the market alone."""
    market = new_market(seed)
    step = market.step_raw if raw else market.step
    start = time.perf_counter()
    for _ in range(events):
        step()
    return events / (time.perf_counter() - start)


def run_loop(events: int, seed: int) -> tuple[float, BacktestLoop]:
    """Events per second of market + backtest loop over `events` steps, and the loop for its counters."""
    market = new_market(seed)
    loop = BacktestLoop(BotSettings(symbol=SYMBOL), BacktestConfig(seed=seed))
    market_step, loop_step = market.step, loop.step
    start = time.perf_counter()
    for _ in range(events):
        loop_step(*market_step())
    return events / (time.perf_counter() - start), loop


def top_costs(events: int, seed: int, count: int = 3) -> list[tuple[str, float]]:
    """The `count` functions with the most own time in a profiled backtest, with their share."""
    profiler = cProfile.Profile()
    profiler.runcall(run_loop, events, seed)
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    return [
        (f"{path.rsplit('/', 1)[-1]}:{line}({name})", tottime / total)
        for (path, line, name), (_, _, tottime, *_) in rows[:count]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--profile-events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs of each; the best and the median are reported"
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    # The same work `repeats` times, interleaved so baseline and loop meet the same machine; the best
    # run is the machine's figure, the slower ones measured its neighbours (the median is printed too).
    raw_rates: list[float] = []
    market_rates: list[float] = []
    loop_rates: list[float] = []
    for _ in range(args.repeats):
        raw_rates.append(run_market(args.events, args.seed, raw=True))
        market_rates.append(run_market(args.events, args.seed, raw=False))
        rate, loop = run_loop(args.events, args.seed)
        loop_rates.append(rate)
    raw_rate, market_rate, loop_rate = max(raw_rates), max(market_rates), max(loop_rates)
    loop_median = statistics.median(loop_rates)

    print(f"{'':<44}{'events/s':>12}{'us/event':>10}")
    for label, rate in (
        ("market, step_raw() (no boundary objects)", raw_rate),
        ("market, step() (baseline)", market_rate),
        ("full loop: + fill model + engine + diff", loop_rate),
    ):
        print(f"{label:<44}{rate:>12,.0f}{1e6 / rate:>10.2f}")
    print(f"full loop: {loop_rate / market_rate:.3f}x the market alone (baseline); best of {args.repeats}")
    print(f"full loop, median of {args.repeats}: {loop_median:,.0f} events/s")
    print(
        f"full loop: {len(loop.fills)} fills, {loop.placed} placed, {loop.cancelled} cancelled, "
        f"{loop.rejected} rejected; compiled modules: {', '.join(native.compiled()) or 'none'}"
    )
    figures: dict[str, object] = {
        "events": args.events,
        "events_per_s": round(loop_rate),
        "events_per_s_median": round(loop_median),
        "repeats": args.repeats,
        "market_events_per_s": round(market_rate),
        "market_raw_events_per_s": round(raw_rate),
        "ratio_vs_market": round(loop_rate / market_rate, 3),
        "fills": len(loop.fills),
        "orders_placed": loop.placed,
        "compiled": bool(native.compiled()),
    }
    if loop_rate < TARGET_EVENTS_PER_S:
        print(
            f"below the {TARGET_EVENTS_PER_S:,} events/s target; top costs over {args.profile_events} events:"
        )
        costs = top_costs(args.profile_events, args.seed)
        for name, share in costs:
            print(f"  {share:6.1%}  {name}")
        figures["top_costs"] = [name for name, _ in costs]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
