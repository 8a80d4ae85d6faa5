"""The store thread on both backends: commands without polling queries, the lease heartbeat where a
blocked loop cannot starve it, one PostgreSQL connection per bot, LISTEN included."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from bots.control import WorkerExit
from bots.core.orders import store_tag
from bots.engine.portfolio import Portfolio
from bots.engine.types import Side
from bots.exchange.base import Fill
from bots.exchange.factory import make_exchange
from bots.metrics import BotMetrics
from bots.store import Ledger
from bots.store.signal_watch import SignalWatch
from bots.store.writer import ControlWork, Lease, StoreWriter
from bots.worker import BotWorker
from settings.models import BotSettings
from tests.integration.conftest import LedgerFactory

pytestmark = pytest.mark.integration

BOT = "btc-a"
SYMBOL = "BTC_USDT_Perp"


async def _until(check: object, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("inotify", [True, False], ids=["watched", "ticking"])
def test_a_command_reaches_the_bot_without_polling_queries(
    ledgers: LedgerFactory, inotify: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The fallback poll is off (an hour): only LISTEN/NOTIFY (PostgreSQL) or the control signal file
    (SQLite: watched with inotify, else looked at every tick, which the log says) can tell the store
    thread; while nothing changes it reads no control table at all."""
    if not inotify:
        if ledgers.backend != "sqlite":
            pytest.skip("PostgreSQL listens on its connection")
        monkeypatch.setattr(SignalWatch, "open", lambda path: None)
    bot_ledger, cli_ledger = ledgers.open(), ledgers.open()
    marks = 0
    control_mark = bot_ledger.control_mark

    def counted() -> tuple[int, int]:
        nonlocal marks
        marks += 1
        return control_mark()

    bot_ledger.control_mark = counted  # type: ignore[method-assign]
    handed: list[ControlWork] = []

    async def scenario() -> None:
        writer = StoreWriter(bot_ledger, BOT, tick_s=0.02, fallback_poll_s=3600.0)
        writer.start()
        try:
            writer.watch(handed.append)
            await _until(lambda: marks >= 1, "the first full check")
            await asyncio.sleep(0.5)  # many ticks with nothing new
            assert marks == 1, "the store thread queried the control tables although nothing changed"
            command = cli_ledger.enqueue_command(BOT, "stop", author="test")
            await _until(lambda: any(c.id == command for w in handed for c in w.commands), "the command")
            version = cli_ledger.publish_config({"strategy": {"gamma": 0.5}}, [BOT], author="test")
            await _until(lambda: any(w.config and w.config.version == version for w in handed), "the config")
            assert [c.id for w in handed for c in w.commands] == [command]  # handed once, not per tick
        finally:
            await writer.close()

    with caplog.at_level(logging.WARNING, logger="mmfleet.store"):
        asyncio.run(scenario())
    ticking = [r for r in caplog.records if "no inotify" in r.getMessage()]
    assert len(ticking) == (0 if inotify or ledgers.backend != "sqlite" else 1)


def test_a_control_write_before_anyone_watches_does_not_keep_the_thread_awake(ledgers: LedgerFactory) -> None:
    """The thread sleeps on its connection (PostgreSQL) or the signal file (SQLite): a notification that
    came before `watch()` is read off at once (else it would wake the thread again and again), and the
    watcher still gets the command when it comes."""
    bot_ledger, cli_ledger = ledgers.open(), ledgers.open()
    handed: list[ControlWork] = []

    async def scenario() -> None:
        writer = StoreWriter(bot_ledger, BOT, fallback_poll_s=3600.0)
        wakeups = 0
        sleep = writer._sleep

        def counted(timeout_s: float, listening: Any) -> None:
            nonlocal wakeups
            wakeups += 1
            sleep(timeout_s, listening)

        writer._sleep = counted  # type: ignore[method-assign]
        writer.start()
        try:
            await writer.call(lambda store: store.control_mark())  # connected, listening
            command = cli_ledger.enqueue_command(BOT, "stop", author="test")
            await asyncio.sleep(0.5)
            assert wakeups < 10, f"the store thread woke {wakeups} times in 0.5 s with nothing to do"
            writer.watch(handed.append)
            await _until(lambda: any(c.id == command for w in handed for c in w.commands), "the command")
        finally:
            await writer.close()

    asyncio.run(scenario())


def test_the_lease_heartbeat_runs_while_the_event_loop_is_blocked(ledgers: LedgerFactory) -> None:
    ledger = ledgers.open()
    assert ledger.acquire_lock("acct", SYMBOL)
    before = ledger.lock_holder("acct", SYMBOL)
    assert before is not None

    async def scenario() -> None:
        writer = StoreWriter(ledger, BOT, lease=Lease("acct", SYMBOL, heartbeat_s=0.05))
        writer.start()
        try:
            time.sleep(1.0)  # a decision that hogs the loop (deliberately blocking)
            holder = await writer.call(lambda store: store.lock_holder("acct", SYMBOL))
            assert holder is not None and holder.heartbeat_ns > before.heartbeat_ns
        finally:
            await writer.close()

    asyncio.run(scenario())


def test_fills_commit_in_batches_and_come_back_new_once(ledgers: LedgerFactory) -> None:
    ledger = ledgers.open()

    def fill(n: int) -> Fill:
        return Fill(
            f"f{n}", SYMBOL, f"c{n}", Side.BUY, Decimal("65000.5"), Decimal("0.001"), Decimal(0), n, False
        )

    async def scenario() -> list[list[Fill]]:
        writer = StoreWriter(ledger, BOT)
        writer.start()
        try:
            first = writer.commit_fills([fill(1), fill(2)], "cursor-2")
            again = writer.commit_fills([fill(2), fill(3)], "cursor-3")  # a replayed page
            return [await first, await again]
        finally:
            await writer.close()

    first, again = asyncio.run(scenario())
    assert [f.fill_id for f in first] == ["f1", "f2"] and [f.fill_id for f in again] == ["f3"]
    assert [f.fill_id for f in ledger.fills(BOT)] == ["f1", "f2", "f3"]
    assert ledger.fill_cursor(BOT) == "cursor-3"


def test_a_bot_holds_one_postgresql_connection_listen_included(postgres_url: str) -> None:
    schema = f"mmfleet_test_{uuid.uuid4().hex[:16]}"
    app = f"mmfleet-budget-{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}?application_name={app}"
    cli = Ledger(postgres_url, schema=schema)
    ledger = Ledger(url, schema=schema, max_connections=1)  # as the runner opens it

    def connections() -> int:
        with psycopg.connect(postgres_url) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,))
            return int(row.fetchone()[0])  # type: ignore[index]

    handed: list[ControlWork] = []

    async def scenario() -> int:
        writer = StoreWriter(ledger, BOT, lease=Lease("acct", SYMBOL, heartbeat_s=0.05), tick_s=0.02)
        writer.start()
        try:
            writer.watch(handed.append)
            command = cli.enqueue_command(BOT, "stop", author="test")
            await _until(lambda: any(c.id == command for w in handed for c in w.commands), "the command")
            writer.record(lambda store: store.set_state(BOT, "k", 1))
            await writer.call(lambda store: store.get_state(BOT, "k"))
            return connections()
        finally:
            await writer.close()

    try:
        assert asyncio.run(scenario()) == 1
    finally:
        ledger.close()
        with cli.engine.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        cli.close()


def test_a_worker_on_the_runners_one_postgresql_connection_trades_through_its_store_thread(
    postgres_url: str,
) -> None:
    """As the runner runs a bot: one pooled connection, pinned by the store thread, the store id read
    through it. Any SQL on the loop would wait for that connection and fail; fills, funding payments
    and records all reach the ledger through the thread."""
    schema = f"mmfleet_test_{uuid.uuid4().hex[:16]}"
    app = f"mmfleet-worker-{uuid.uuid4().hex[:8]}"
    cli = Ledger(postgres_url, schema=schema)
    ledger = Ledger(f"{postgres_url}?application_name={app}", schema=schema, max_connections=1)
    settings = BotSettings.model_validate(
        {
            "symbol": SYMBOL,
            "name": BOT,
            "sim": {"seed": 8, "speed": 10.0, "trade_intensity_a": 40.0,
                    "funding": {"interval_s": 5, "rate_mean": 0.001, "rate_std": 0}},
            "strategy": {"kappa": "auto", "spread_pct": 0.00005, "grid_layers": 3,
                         "grid_spacing_pct": 0.0001, "price_tolerance_pct": 0.0,
                         "refresh_interval_s": 0.2},
            "risk": {"max_loss_usd": 1_000.0, "max_drawdown_pct": 0.5},
        }
    )  # fmt: skip

    def connections() -> int:
        with psycopg.connect(postgres_url) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,))
            return int(row.fetchone()[0])  # type: ignore[index]

    async def scenario() -> tuple[BotWorker, int, int]:
        store = StoreWriter(ledger, BOT)
        store.start()
        exchange = await make_exchange(
            settings, Portfolio(symbol=SYMBOL, starting_balance=settings.paper.starting_balance_usd)
        )
        try:
            metrics = BotMetrics(CollectorRegistry(), BOT, SYMBOL, "sim", settings.strategy.grid_layers)
            with pytest.raises(ValueError, match="store_id"):
                BotWorker(settings, exchange, ledger, metrics, store=store)
            store_id = await store.call(lambda led: led.store_id())
            worker = BotWorker(settings, exchange, ledger, metrics, store=store, store_id=store_id)
            run = asyncio.create_task(worker.run())
            try:

                def traded() -> bool:  # fills, and a funding payment on the position they made
                    return run.done() or (len(cli.fills(BOT)) >= 3 and bool(cli.funding_payments(BOT)))

                await _until(traded, "fills and a funding payment", timeout_s=60.0)
                assert not run.done(), "the worker ended"
                held = connections()
            finally:
                worker.request_stop()
                assert await asyncio.wait_for(run, 30) is WorkerExit.STOPPED
            return worker, store_id, held
        finally:
            await store.close()
            await exchange.close()

    try:
        worker, store_id, held = asyncio.run(scenario())
        assert held == 1
        assert worker.core.ids.owner.store == store_tag(store_id)
        assert ledger.restore_portfolio(BOT, SYMBOL, Decimal(0)).position == worker.portfolio.position
        payments = ledger.funding_payments(BOT)
        assert payments and worker.portfolio.funding == sum((p.amount for p in payments), Decimal(0))
    finally:
        ledger.close()
        with cli.engine.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        cli.close()


class _SyncProbe:
    """An appender that writes nothing: it reads whether the transaction it runs in waits for the disk."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, str]] = []

    def write(self, ledger: Ledger, rows: list[Any]) -> None:
        sql = "PRAGMA synchronous" if ledger.backend == "sqlite" else "SHOW synchronous_commit"
        with ledger._begin() as connection:  # the store thread's connection, in the batch's transaction
            setting = str(connection.exec_driver_sql(sql).scalar())
        self.seen += [(row, setting) for row in rows]

    def rolled_back(self) -> None:
        pass


def test_history_commits_without_waiting_for_the_disk_and_anything_else_synced(
    ledgers: LedgerFactory,
) -> None:
    """A batch of appended rows only (order states, equity, positions, features) does not wait for the
    disk; a batch with a fill (or any call, ack or state) does, and so makes the history before it
    durable. A connection handed back to the pool is synced again for whoever takes it next (SQLite
    keeps the setting per connection)."""
    ledger = ledgers.open()
    probe = _SyncProbe()
    fill = Fill("f1", SYMBOL, "c1", Side.BUY, Decimal("65000.5"), Decimal("0.001"), Decimal(0), 1, False)

    async def scenario() -> None:
        writer = StoreWriter(ledger, BOT, record_interval_s=0.01, tick_s=0.01)
        writer.start()
        try:
            writer.append(probe, ["history"])
            await _until(lambda: probe.seen, "the history batch")
            writer.append(probe, ["with a fill"])
            assert [f.fill_id for f in await writer.commit_fills([fill], "cursor-1")] == ["f1"]
        finally:
            await writer.close()

    asyncio.run(scenario())
    lazy, synced = ("1", "2") if ledger.backend == "sqlite" else ("off", "on")
    assert probe.seen == [("history", lazy), ("with a fill", synced)]
    if ledger.backend == "sqlite":
        with ledger.engine.connect() as connection:  # the pool's one file connection, the thread's before
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
