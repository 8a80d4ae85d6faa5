"""A stalled database does not stop a bot: its store thread waits, the trading loop goes on.

Another connection holds the ledger's write lock for ten seconds (SQLite: `BEGIN IMMEDIATE` on the file;
PostgreSQL: a transaction holding EXCLUSIVE locks on the tables the bot writes). Meanwhile the market
first moves, then goes silent. What the core journaled during the stall shows decisions on new books
and the stale-data cancel; the fills made during it are in the ledger afterwards, committed after the
lock was released. No timing is asserted: only what happened, and in which order.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from bots.control import WorkerExit
from bots.core.actions import Cancel, Place
from bots.core.core import JournalEntry
from bots.engine.portfolio import Portfolio
from bots.exchange.base import BookUpdate, Exchange
from bots.exchange.factory import make_exchange
from bots.exchange.sim.market import SimMarket
from bots.exchange.sim.replay import write_recording
from bots.metrics import BotMetrics
from bots.store import Ledger
from bots.worker import BotWorker
from settings.models import BUILTIN_INSTRUMENTS, BotSettings
from tests.integration.conftest import LedgerFactory

pytestmark = pytest.mark.integration

SYMBOL = "BTC_USDT_Perp"
STALL_S = 10.0
MAX_BOOK_AGE_S = 1.0
_WRITTEN_TABLES = "fills, orders, bot_state, equity_history, position_snapshots, market_features"


def _recording(path: Path) -> Path:
    """5 s of a busy market, 5 s of silence (inside the stall), then 20 s more."""
    market = SimMarket(SYMBOL, BUILTIN_INSTRUMENTS[SYMBOL], seed=5, s0=65_000.0, trade_intensity_a=40.0)
    steps = list(market.steps(50))
    gap_ns = 5 * 1_000_000_000
    steps += [(replace(book, ts_ns=book.ts_ns + gap_ns), trades) for book, trades in market.steps(200)]
    write_recording(path, steps)
    return path


@asynccontextmanager
async def _write_lock(ledgers: LedgerFactory, ledger: Ledger) -> AsyncIterator[Callable[[str], int]]:
    """Hold the database's write lock from another connection until the block ends; yields how many
    fills a bot has, read by the lock's holder (every transaction of the ledger waits for the lock)."""
    query = "SELECT count(*) FROM fills WHERE bot = "
    if ledgers.backend == "sqlite":
        holder = sqlite3.connect(ledger.url.database or "", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield lambda bot: int(holder.execute(query + "?", (bot,)).fetchone()[0])
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    with psycopg.connect(ledgers.url) as pg:  # a transaction until the block ends
        pg.execute(f'SET search_path TO "{ledgers.schema}"')
        pg.execute(f"LOCK TABLE {_WRITTEN_TABLES} IN EXCLUSIVE MODE")
        try:
            yield lambda bot: int(pg.execute(query + "%s", (bot,)).fetchone()[0])  # type: ignore[index]
        finally:
            pg.rollback()


@dataclass(frozen=True)
class _Running:
    worker: BotWorker
    exchange: Exchange
    registry: CollectorRegistry
    run: asyncio.Task[WorkerExit]


@asynccontextmanager
async def _sim_worker(settings: BotSettings, ledger: Ledger) -> AsyncIterator[_Running]:
    """A worker on its sim exchange, running; stopped on the way out (and it must stop cleanly)."""
    exchange = await make_exchange(
        settings, Portfolio(symbol=SYMBOL, starting_balance=settings.paper.starting_balance_usd)
    )
    registry = CollectorRegistry()
    metrics = BotMetrics(registry, settings.name, SYMBOL, "sim", settings.strategy.grid_layers)
    worker = BotWorker(settings, exchange, ledger, metrics)
    run = asyncio.create_task(worker.run())
    try:
        yield _Running(worker, exchange, registry, run)
    finally:
        worker.request_stop()
        assert await asyncio.wait_for(run, 30) is WorkerExit.STOPPED
        await exchange.close()


def _stale_cancels(journal: list[JournalEntry]) -> list[JournalEntry]:
    """Timer events that cancelled orders when the newest book was older than the bot allows."""
    newest: BookUpdate | None = None
    found = []
    for entry in journal:
        method, args, actions = entry
        if method == "on_book":
            newest = args[0]  # type: ignore[assignment]
        elif method == "on_timer" and newest is not None:
            age_ns = int(args[0]) - newest.ts_ns  # type: ignore[call-overload]
            if age_ns > MAX_BOOK_AGE_S * 1e9 and any(isinstance(a, Cancel) for a in actions):
                found.append(entry)
    return found


def test_a_stalled_database_stops_neither_decisions_nor_the_stale_cancel_and_fills_commit_after(
    ledgers: LedgerFactory, tmp_path: Path
) -> None:
    settings = BotSettings.model_validate(
        {
            "symbol": SYMBOL,
            "sim": {"replay_file": str(_recording(tmp_path / "market.csv")), "speed": 1.0},
            # kappa fixed near the touch: 5 s of market is too short to fit it and then be crossed
            "strategy": {"kappa": 100_000.0, "spread_pct": 0.00005, "grid_layers": 3,
                         "grid_spacing_pct": 0.0001, "price_tolerance_pct": 0.0,
                         "refresh_interval_s": 0.2},
            "risk": {"max_book_age_s": MAX_BOOK_AGE_S, "max_loss_usd": 1_000.0, "max_drawdown_pct": 0.5},
        }
    )  # fmt: skip
    ledger = ledgers.open()

    async def scenario() -> tuple[list[JournalEntry], int, int, Decimal]:
        labels = {"bot": settings.name, "symbol": SYMBOL, "mode": "sim"}
        async with _sim_worker(settings, ledger) as running:
            worker, run = running.worker, running.run

            def unconfirmed() -> int:  # the queue-depth metrics, as Prometheus would read them
                return int(running.registry.get_sample_value("mmfleet_store_unconfirmed_fills", labels) or 0)

            while worker.last_book is None:
                assert not run.done(), "the worker ended before its first book"
                await asyncio.sleep(0.02)
            async with _write_lock(ledgers, ledger) as count_fills:
                journal: list[JournalEntry] = []
                worker.core.journal = journal
                await asyncio.sleep(STALL_S)
                worker.core.journal = None
                waiting = unconfirmed()  # handed over during the stall, not committed
                stored_in_stall = count_fills(settings.name)
            while unconfirmed():
                await asyncio.sleep(0.05)
        return journal, waiting, stored_in_stall, worker.portfolio.position

    journal, waiting, stored_in_stall, position = asyncio.run(scenario())
    decisions = [e for e in journal if e[0] == "on_book" and any(isinstance(a, Place) for a in e[2])]
    assert decisions, "no book decision placed an order while the database was stalled"
    assert _stale_cancels(journal), "the stale-data cancel did not happen while the database was stalled"
    assert waiting > 0, "no fill was made during the stall: the scenario proves nothing"
    # none of them counted before its commit: the core heard of no fill while the database was stalled
    assert not [e for e in journal if e[0] == "on_fill"]
    # every fill made during the stall was committed after it
    assert len(ledger.fills(settings.name)) >= stored_in_stall + waiting
    assert ledger.restore_portfolio(settings.name, SYMBOL, Decimal(0)).position == position


def test_fills_waiting_past_the_bound_halt_quoting_until_the_ledger_commits_them(
    ledgers: LedgerFactory,
) -> None:
    settings = BotSettings.model_validate(
        {
            "symbol": SYMBOL,
            "sim": {"seed": 8, "speed": 10.0, "trade_intensity_a": 40.0},
            "strategy": {"kappa": "auto", "spread_pct": 0.00005, "grid_layers": 3,
                         "grid_spacing_pct": 0.0001, "price_tolerance_pct": 0.0,
                         "refresh_interval_s": 0.2},
            "risk": {"max_loss_usd": 1_000.0, "max_drawdown_pct": 0.5},
            "store": {"max_unconfirmed_fills": 1},
        }
    )  # fmt: skip
    ledger = ledgers.open()
    labels = {"bot": settings.name, "symbol": SYMBOL, "mode": "sim"}

    async def scenario() -> None:
        async with _sim_worker(settings, ledger) as running:
            worker, exchange, run = running.worker, running.exchange, running.run

            def halted() -> bool:
                return running.registry.get_sample_value("mmfleet_store_halted", labels) == 1

            async def until(check: Callable[[], bool], what: str) -> None:
                for _ in range(600):
                    if check():
                        return
                    assert not run.done(), "the worker ended"
                    await asyncio.sleep(0.05)
                raise AssertionError(f"timed out waiting for {what}")

            await until(lambda: bool(worker.resting), "quotes")
            async with _write_lock(ledgers, ledger):
                await until(halted, "the halt on fills waiting for the ledger")
                assert "halted" in str(worker.readiness())
                assert await exchange.open_orders(SYMBOL) == []  # every order cancelled
                assert worker.enabled  # the operator's switch is untouched: this halt lifts by itself
            await until(lambda: not halted(), "the resumption once the fills are committed")
            await until(lambda: bool(worker.resting), "quotes again")

    asyncio.run(scenario())
