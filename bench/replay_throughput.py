"""Backtest throughput: book events per second through the sim market, the engine and the fill model.

Per event, as a backtest runs it: `SimMarket.step()` -> the fill model sees the book and the trades ->
fills go to a `Portfolio` -> `QuoteEngine.on_book` -> `diff_orders` against our open orders -> cancels
and post-only placements in the fill model. One process, pinned to one core where the OS allows.

Baselines measured in the same run: the market alone (`step()`, and the cheap `step_raw()`), and the
market with the fill model and portfolio under a fixed grid (no engine), so the ratios show where a
backtest's time goes. Below the target, a cProfile run names the three largest costs. Last line: JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import time

from bots.engine.orders import OpenOrder, diff_orders
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import Inventory, QuoteEngine
from bots.engine.types import Side
from bots.exchange.base import BookUpdate, Fill, OrderRequest, OrderStatus
from bots.exchange.paper import PaperFillModel
from bots.exchange.sim import SimMarket
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


class Backtest:
    """The engine, the fill model and the portfolio wired as a backtest loop, with its counters."""

    def __init__(self, seed: int) -> None:
        self.settings = BotSettings(symbol=SYMBOL)
        spec = self.settings.spec
        self.market = new_market(seed)
        self.engine = QuoteEngine(self.settings)
        self.model = PaperFillModel(spec, self.settings.paper, random.Random(seed))
        self.portfolio = Portfolio(symbol=SYMBOL, starting_balance=self.settings.paper.starting_balance_usd)
        self.tick, self.lot = spec.tick_size, spec.lot_size
        self.opens: dict[str, OpenOrder] = {}
        self.inventory = Inventory(equity_usd=10_000.0, peak_equity_usd=10_000.0)
        self.cash = float(self.portfolio.cash)
        self.peak = self.cash
        self.placed = self.cancelled = self.rejected = self.fills = 0

    def place(self, side: Side, price_ticks: int, size_lots: int, book: BookUpdate) -> None:
        self.placed += 1
        cid = f"o{self.placed}"
        request = OrderRequest(SYMBOL, side, self.tick * price_ticks, self.lot * size_lots, cid)
        if self.model.submit(request, book.ts_ns, book).status is OrderStatus.OPEN:
            self.opens[cid] = OpenOrder(cid, side, price_ticks, size_lots)
        else:
            self.rejected += 1

    def book_fills(self, fills: list[Fill]) -> None:
        for fill in fills:
            self.portfolio.apply(fill)
            self.fills += 1
            have = self.opens.pop(fill.client_order_id)
            left = have.size_lots - round(fill.size / self.lot)
            if left > 0:
                self.opens[have.client_order_id] = OpenOrder(
                    have.client_order_id, have.side, have.price_ticks, left
                )
        self.cash = float(self.portfolio.cash)

    def step(self, with_engine: bool = True) -> None:
        book, trades = self.market.step()
        fills = self.model.on_book(book)
        for trade in trades:
            fills += self.model.on_trade(trade)
        if fills:
            self.book_fills(fills)
        if not with_engine:
            if len({order.side for order in self.opens.values()}) < 2:  # re-lay when a side is gone
                for cid in list(self.opens):
                    self.model.cancel(cid)
                self.opens.clear()
                mid_ticks = round(self.market.mid / float(self.tick))
                for layer in range(7):  # the engine's default grid: 25 bp half spread, 12 bp apart
                    offset = round(self.market.mid * (0.0025 + 0.0012 * layer) / float(self.tick))
                    self.place(Side.BUY, mid_ticks - offset, 4, book)
                    self.place(Side.SELL, mid_ticks + offset, 4, book)
            return
        top = book.top()
        position = float(self.portfolio.position)
        entry = float(self.portfolio.avg_entry) if position else float("nan")
        unrealized = position * (top.mid - entry) if position else 0.0
        equity = self.cash + unrealized
        self.peak = max(self.peak, equity)
        self.inventory = Inventory(position, entry, unrealized, equity, self.peak)
        decision = self.engine.on_book(top, self.inventory, top.ts_ns)
        tolerance = self.settings.strategy.price_tolerance_pct
        diff = diff_orders(list(self.opens.values()), list(decision.orders), tolerance)
        for cid in diff.cancels:
            self.model.cancel(cid)
            del self.opens[cid]
            self.cancelled += 1
        for want in diff.places:
            self.place(want.side, want.price_ticks, want.size_lots, book)

    def run(self, events: int, with_engine: bool = True) -> float:
        """Events per second over `events` steps."""
        step = self.step
        start = time.perf_counter()
        for _ in range(events):
            step(with_engine)
        return events / (time.perf_counter() - start)


def top_costs(events: int, seed: int, count: int = 3) -> list[tuple[str, float]]:
    """The `count` functions with the most own time in a profiled backtest, with their share."""
    backtest = Backtest(seed)
    profiler = cProfile.Profile()
    profiler.runcall(backtest.run, events)
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
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    raw_rate = run_market(args.events, args.seed, raw=True)
    market_rate = run_market(args.events, args.seed, raw=False)
    fills_only = Backtest(args.seed)
    fills_rate = fills_only.run(args.events, with_engine=False)
    backtest = Backtest(args.seed)
    loop_rate = backtest.run(args.events)

    print(f"{'':<44}{'events/s':>12}{'us/event':>10}")
    for label, rate in (
        ("market, step_raw() (no boundary objects)", raw_rate),
        ("market, step() (baseline)", market_rate),
        ("market + fill model + portfolio, fixed grid", fills_rate),
        ("full loop: + engine + order diff", loop_rate),
    ):
        print(f"{label:<44}{rate:>12,.0f}{1e6 / rate:>10.2f}")
    added_us = 1e6 / fills_rate - 1e6 / market_rate
    print(f"full loop: {loop_rate / market_rate:.3f}x the market alone (baseline)")
    print(f"fill model + portfolio: {added_us:+.2f} us/event over the market (fixed grid)")
    print(
        f"full loop: {backtest.fills} fills, {backtest.placed} placed, {backtest.cancelled} cancelled, "
        f"{backtest.rejected} rejected"
    )
    figures: dict[str, object] = {
        "events": args.events,
        "events_per_s": round(loop_rate),
        "market_events_per_s": round(market_rate),
        "market_raw_events_per_s": round(raw_rate),
        "fill_model_events_per_s": round(fills_rate),
        "ratio_vs_market": round(loop_rate / market_rate, 3),
        "fills": backtest.fills,
        "orders_placed": backtest.placed,
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
