"""Tick-to-quote latency of the engine against the original bot's pandas recompute, in the same run.

Engine: one book event in, desired orders out, with every regime indicator updated (the selected
filter inside the engine, the other four beside it). Baseline: on every event, rebuild a pandas Series
of the last `--history` mids and recompute volatility and all five indicators with rolling windows,
as the original bot did. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import deque

import numpy as np
import pandas as pd

from bots.engine.quoter import Inventory, QuoteEngine
from bots.engine.regime import FILTERS
from bots.engine.types import Book
from settings.models import BotSettings

NS_PER_S = 1_000_000_000


def synthetic_books(events: int, seed: int) -> list[Book]:
    """A random walk with volatility bursts around 50,000, one book per 100 ms, on the 0.1 tick."""
    rng = np.random.default_rng(seed)
    vol = np.where(rng.random(events) < 0.1, 4e-4, 1e-4)
    mids = 50_000.0 * np.exp(np.cumsum(rng.normal(0.0, vol)))
    spreads = rng.integers(1, 6, events)
    books = []
    for i in range(events):
        bid = math.floor(mids[i] * 10) / 10
        books.append(Book(i * NS_PER_S // 10, bid, 1.0, bid + 0.1 * int(spreads[i]), 1.0))
    return books


def run_engine(books: list[Book]) -> np.ndarray:
    """Latency in microseconds of each event through the engine plus the four other filters."""
    config = BotSettings(symbol="BTC_USDT_Perp")
    engine = QuoteEngine(config.engine_config())
    others = [cls(engine.config.regime.filters) for name, cls in FILTERS.items() if name != "bollinger"]
    inventory = Inventory(
        position_base=0.02, entry_price=50_000.0, equity_usd=10_000.0, peak_equity_usd=10_000.0
    )
    out = np.empty(len(books))
    clock = time.perf_counter_ns
    for i, book in enumerate(books):
        start = clock()
        engine.on_book(book, inventory, book.ts_ns)
        mid = book.mid
        for other in others:
            other.update(mid, mid, mid)
        out[i] = clock() - start
    return out / 1_000.0


def pandas_indicators(mids: pd.Series, n: int) -> float:
    """The original bot's way: recompute everything from the recent window on every tick."""
    sigma = np.log(mids).diff().rolling(20).std().iloc[-1]
    mean = mids.rolling(n).mean()
    std = mids.rolling(n).std(ddof=0)
    upper, lower = (mean + 2 * std).iloc[-1], (mean - 2 * std).iloc[-1]
    delta = mids.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
    rsi = 100 - 100 / (1 + gain / loss)
    tr = delta.abs()
    atr = tr.ewm(alpha=1 / 14, adjust=False).mean()
    plus_dm = delta.clip(lower=0)
    minus_dm = (-delta).clip(lower=0)
    plus_di = 100 * plus_dm.ewm(alpha=1 / 14, adjust=False).mean() / atr
    minus_di = 100 * minus_dm.ewm(alpha=1 / 14, adjust=False).mean() / atr
    dx = 100 * (plus_di - minus_di).abs() / (plus_di + minus_di)
    adx = dx.ewm(alpha=1 / 14, adjust=False).mean()
    chop = (
        100
        * np.log10(tr.rolling(14).sum() / (mids.rolling(14).max() - mids.rolling(14).min()))
        / np.log10(14)
    )
    return float(sigma + upper + lower + rsi.iloc[-1] + adx.iloc[-1] + chop.iloc[-1])


def run_baseline(books: list[Book], history: int) -> np.ndarray:
    window: deque[float] = deque(maxlen=history)
    out = np.empty(len(books))
    clock = time.perf_counter_ns
    for i, book in enumerate(books):
        start = clock()
        window.append(book.mid)
        pandas_indicators(pd.Series(window), 20)
        out[i] = clock() - start
    return out / 1_000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--baseline-events", type=int, default=2_000)
    parser.add_argument("--history", type=int, default=100, help="ticks the baseline recomputes over")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    books = synthetic_books(args.events, args.seed)
    engine_us = run_engine(books)
    baseline_us = run_baseline(books[: args.baseline_events], args.history)
    p50, p99 = np.percentile(engine_us, [50, 99])
    b50, b99 = np.percentile(baseline_us, [50, 99])
    print(f"{'':<28}{'p50 us':>12}{'p99 us':>12}{'events':>10}")
    print(f"{'engine (incremental)':<28}{p50:>12.1f}{p99:>12.1f}{args.events:>10}")
    print(f"{'baseline (pandas recompute)':<28}{b50:>12.1f}{b99:>12.1f}{args.baseline_events:>10}")
    print(f"speedup at p50: {b50 / p50:.0f}x  (targets: p99 <= 50 us, speedup >= 50x)")
    figures = {
        "events": args.events,
        "p50_us": round(float(p50), 2),
        "p99_us": round(float(p99), 2),
        "baseline_p50_us": round(float(b50), 1),
        "speedup": round(float(b50 / p50), 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
