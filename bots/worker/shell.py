"""The async shell around one bot's core: one event queue, one consumer, the exchange calls, the ledger.

Producers only enqueue: market data (books coalesced to the newest: a slow decision never works
through a backlog of old books), public trades, a timer, and control checks. One consumer takes an
event, asks the core (`bots.core.core.BotCore`), performs its actions one after the other, and feeds
what came of them back to the core. Decisions therefore never overlap, a command or a config version
is applied between two decisions, and what a `stop` acks is what the exchange did.

Where the exchange streams what becomes of our orders (live: `Capabilities.order_events`), a
producer enqueues it too: an order's final state as itself, a fill notice as a decision on the newest
book (which takes the fills first: the position changed, the quotes must follow).

Fills (and funding payments) are committed to the ledger before the core hears of them (a crash loses
none), but not on this loop: the bot's store thread (`bots.store.writer`) owns its database
connection, commits fills, records and acks in batches, keeps the lease alive and reads the control
plane; the loop hands fills over and applies them when the commit is confirmed. Past
`store.max_unconfirmed_fills` waiting for a stalled database, the bot halts quoting and cancels its
orders, and resumes by itself once they are committed (`bots.worker.fills`).

The shell's hands live beside it: the actions performed (`perform`), the retried exchange calls
(`calls`), the account shared with the world (`account`), agreeing with the exchange (`reconcile`), the
way out at a stop (`stopping`), and what the metrics show (`publish`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import cast

from bots.control import WorkerExit, apply_control, newest_applied_settings, restart_fields
from bots.core.actions import (
    Action,
)
from bots.core.core import BotCore
from bots.core.orders import OrderIds, bot_tag
from bots.engine.orders import OpenOrder
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import QuoteEngine
from bots.errors import ConfigError
from bots.exchange.base import (
    BookUpdate,
    Exchange,
    Fill,
    MarketPush,
    OrderEvents,
    OrderStatus,
    OrderUpdate,
    Trade,
)
from bots.funding_sync import FundingSync
from bots.inbox import Inbox
from bots.metrics import BotMetrics
from bots.retry import Backoff
from bots.store import Ledger
from bots.store.records import BotRecords
from bots.store.startup import StoredBot, load_bot
from bots.store.writer import ControlWork, StoreWriter
from bots.worker.account import AccountWatch
from bots.worker.calls import ExchangeCalls
from bots.worker.context import BotContext
from bots.worker.events import BOOK, COMMITTED, CONTROL, FILLS, STOP, TIMER, Event
from bots.worker.fills import FillSync
from bots.worker.perform import Performer
from bots.worker.ports import FillModelHost, RegimeSource
from bots.worker.publish import Publisher
from bots.worker.reconcile import Reconciler
from bots.worker.stopping import Stopping
from settings.models import BotSettings

__all__ = ["BotWorker"]

log = logging.getLogger("mmfleet.worker")

_NS_PER_S = 1_000_000_000
_STOP_GRACE_S = 10.0  # a stop lets the decision under way finish its calls this long
SEED_WINDOW_NS = 3600 * _NS_PER_S  # an hour of recorded history warms the indicators up
_TIMER_SLACK = 0.1  # the timer waits this long (fraction of its interval) past due for a book to run it


class BotWorker:
    """One bot on one symbol: the exchange, the ledger and the regime model are injected."""

    def __init__(
        self,
        settings: BotSettings,
        exchange: Exchange,
        ledger: Ledger,
        metrics: BotMetrics,
        *,
        backoff: Backoff | None = None,
        reload_settings: Callable[[], BotSettings] | None = None,
        regime: RegimeSource | None = None,
        store: StoreWriter | None = None,
        store_id: int | None = None,
    ) -> None:
        self.settings = settings
        self.exchange = exchange
        self.ledger = ledger  # for the store thread only: nothing here touches it on the loop
        self._own_store = store is None  # a worker run alone (tests) starts and closes its own
        self.store = store or StoreWriter(ledger, settings.name, queue_limit=settings.store.queue_limit)
        self._records = BotRecords(self.store, settings.name, settings.symbol)
        self._control_work: list[ControlWork] = []
        self.metrics = metrics
        self.reload_settings = reload_settings
        self.regime = regime
        self.name = settings.name
        self.symbol = settings.symbol
        self.config_version = "file"
        self.started_ns = time.time_ns()
        # carried by our client order ids (see `AccountWatch.check`); a shared store thread pins the one
        # connection, so its owner reads the id through it first; a worker's own store thread has not
        # started yet, so the ledger is free here
        if store_id is None and store is not None:
            raise ValueError("a worker on a shared store thread needs its store_id read through it")
        self.store_id = store_id if store_id is not None else ledger.store_id()
        self.core = self._new_core(
            Portfolio(symbol=self.symbol, starting_balance=settings.paper.starting_balance_usd)
        )
        self.last_book: BookUpdate | None = None  # the newest book received (maybe not decided on yet)
        self._received_ns = 0
        self.context = BotContext(
            settings.name,
            settings.symbol,
            exchange,
            metrics,
            core=lambda: self.core,
            settings=lambda: self.settings,
            perform=self.perform,
        )
        self.calls = ExchangeCalls(self.context, backoff or Backoff())
        self.fills = FillSync(self.context, self.store, self.calls, lambda: self._enqueue(COMMITTED))
        self.account = AccountWatch(self.context, self.calls)
        self.stopping = Stopping(self.context, self.account, self.calls)
        self.performer = Performer(
            self.context, self._records, regime, calls=self.calls, account=self.account, fills=self.fills
        )
        self.publish = Publisher(self.context)
        self.reconciler = Reconciler(self.context, self.store, self.calls, self.account, self.fills)
        self._exit = WorkerExit.STOPPED
        self._stop = asyncio.Event()
        self._lease_lost = False
        self._queue: Inbox[Event | Trade | OrderUpdate] = Inbox()
        self._queued: set[Event] = set()  # payload-free events are queued once at a time
        self._idle = asyncio.Event()
        self._funding: FundingSync | None = None  # when the exchange reports funding
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the one that runs the timer
        self._timer_due = 0.0  # loop time the timer event is due

    def _new_core(
        self,
        portfolio: Portfolio,
        *,
        previous: BotCore | None = None,
        enabled: bool = True,
        peak_equity: float = float("nan"),
    ) -> BotCore:
        return BotCore(
            self.settings.core_config(),
            QuoteEngine(self.settings.engine_config()),
            portfolio,
            self._order_ids(previous),
            enabled=enabled,
            peak_equity=peak_equity,
        )

    def _order_ids(self, previous: BotCore | None) -> OrderIds:
        """This store's and bot's client order ids, counting on from the wall clock in milliseconds and
        past the ids of the core this one replaces."""
        ids = previous.ids if previous is not None else None
        return OrderIds.resuming(self.store_id, bot_tag(self.name), time.time_ns() // 1_000_000, ids)

    # ----- what the core holds, for the supervisor, the HTTP port and tests -----------------------

    @property
    def portfolio(self) -> Portfolio:
        return self.core.portfolio

    @property
    def engine(self) -> QuoteEngine:
        return self.core.engine

    @property
    def enabled(self) -> bool:
        return self.core.enabled

    @property
    def resting(self) -> dict[str, OpenOrder]:
        return self.core.orders.orders

    def readiness(self) -> str | None:
        """None when fit to trade: fresh market data and a reachable exchange; else the reason."""
        if self.last_book is None:
            return "no market data yet"
        age_s = (time.time_ns() - self.last_book.ts_ns) / _NS_PER_S
        if age_s > self.settings.risk.max_book_age_s:
            return f"market data {age_s:.1f}s old"
        if self.calls.failing_in_a_row:
            return f"exchange failing ({self.calls.failing_in_a_row} calls in a row)"
        if self.fills.halted:
            return f"halted: {self.fills.handover.unconfirmed} fills wait for the ledger"
        return None

    # ----- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild state from the ledger, reconcile with the exchange, seed the indicators."""
        if self._own_store and not self.store.running:
            self.store.start()
        name = self.name
        stored = await self.store.call(
            partial(
                load_bot,
                bot=name,
                symbol=self.symbol,
                starting_balance=self.settings.paper.starting_balance_usd,
                features_since_ns=time.time_ns() - SEED_WINDOW_NS,
            )
        )
        portfolio, peak = stored.portfolio, stored.peak_equity
        self.fills.cursor = stored.cursor
        self.core = self._new_core(
            portfolio,
            previous=self.core,
            enabled=bool(stored.enabled),
            peak_equity=float(peak if peak is not None else portfolio.cash),
        )
        self.core.restore_halts(*stored.halts())
        # a rollout or reload applied before this restart still holds
        applied = await self.store.call(partial(newest_applied_settings, bot=name, current=self.settings))
        if applied is not None:
            self.apply_settings(*applied)
        self._funding = FundingSync.of(
            name, self.symbol, self.exchange, self.store, self.metrics, stored.funding_cursor
        )
        self.metrics.funding_pnl_usd.set(float(portfolio.funding))
        self.metrics.watch_store(lambda: self.store.depth, lambda: self.fills.handover.unconfirmed)
        self.metrics.watch_cycle(self.publish.cycle_state)
        self.store.watch(self._on_control_work)
        await self.fills.sync()
        await self.reconciler.reconcile(starting=True)  # orders of a previous life, fills missed while down
        self._seed_indicators(stored)
        self.metrics.set_config_version(self.config_version)
        self.metrics.max_position_usd.set(self.settings.risk.max_position_usd)
        log.info(
            "started",
            extra={"fields": {"bot": name, "position": str(portfolio.position), "enabled": self.enabled}},
        )

    def _seed_indicators(self, stored: StoredBot) -> None:
        """No warm-up wait: the last hour of recorded mids of the symbol (any bot) into the engine's
        indicators, this bot's own rows into the regime features."""
        rows = stored.symbol_features
        for row in rows:
            mid = row.values.get("mid")
            if mid is not None and mid > 0:
                self.core.seed(mid, row.ts_ns)
        if self.regime is not None:
            self.regime.seed(stored.own_features)
        if rows:
            log.info("indicators seeded", extra={"fields": {"bot": self.name, "ticks": len(rows)}})

    def request_stop(self, exit_as: WorkerExit = WorkerExit.STOPPED) -> None:
        self._exit = exit_as
        self._stop.set()

    def lease_lost(self) -> None:
        """Another worker holds this bot's lease now (this one hung, then woke): stop, and on the way
        out touch nothing but the orders this worker placed itself in this life, cancelled by id;
        never a cancel-all, which would cancel the new holder's orders."""
        self._lease_lost = True
        self.request_stop()

    async def run(self) -> WorkerExit:
        """Trade until stopped; always leaves no order of ours resting."""
        try:
            await self.start()
        except BaseException:
            if self._own_store:
                await self.store.close()
            raise
        producers = self._market_tasks()
        self._arm_timer()
        if self.exchange.capabilities.order_events:
            producers.append(asyncio.create_task(self._order_events(), name="order-events"))
        consumer = asyncio.create_task(self._consume(), name="consumer")
        stopper = asyncio.create_task(self._stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait([*producers, consumer, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
                if task.get_name() == "books" and not self._stop.is_set():
                    self._exit = WorkerExit.MARKET_ENDED  # nothing left to quote on
        finally:
            if self._timer is not None:
                self._timer.cancel()
            for task in [*producers, stopper]:
                task.cancel()
            self._stop.set()  # the consumer finishes the decision under way, then takes no more events
            self._queue.put_nowait(STOP)
            try:
                await asyncio.wait_for(asyncio.shield(consumer), _STOP_GRACE_S)
            except (TimeoutError, asyncio.CancelledError):
                consumer.cancel()
            except Exception:
                pass
            await asyncio.gather(*producers, stopper, consumer, return_exceptions=True)
            try:
                await self.shutdown()
            finally:
                if self._own_store:
                    await self.store.close()
        return self._exit

    async def shutdown(self) -> None:
        """Cancel everything until the exchange confirms nothing of ours rests (or the stop deadline
        passes: then exit ORDERS_LEFT with an ERROR naming them), take the last fills, persist a
        snapshot."""
        self.stopping.begin(self.settings.exchange.stop_deadline_s)
        try:
            if self._lease_lost:
                await self.stopping.cancel_own()
                return
            left = await self.stopping.flatten()
            if left:
                self._exit = WorkerExit.ORDERS_LEFT
                log.error(
                    "stopped with orders resting: the exchange did not confirm their cancel in time",
                    extra={"fields": {"bot": self.name, "client_order_ids": left}},
                )
            await asyncio.wait_for(self.fills.sync(wait=True), self.stopping.left_s())
            await asyncio.wait_for(self._settle_funding(), self.stopping.left_s())
        except TimeoutError:
            log.warning("last fills not taken before the stop deadline", extra={"fields": {"bot": self.name}})
        finally:
            self._records.orders(self.core.orders.take_log())
            self._records.position(self.portfolio, self.core.mark(), time.time_ns())
            self.publish.orders()
            log.info(
                "stopped", extra={"fields": {"bot": self.name, "position": str(self.portfolio.position)}}
            )

    async def _settle_funding(self) -> None:
        """Funding payments whose commit is under way at a stop: booked, so the cash is the ledger's."""
        if self._funding is not None:
            await self.perform(await self._funding.settle(self.core))

    # ----- what the control plane asks ------------------------------------------------------------

    async def perform(self, actions: Sequence[Action]) -> int | None:
        """Perform `actions` (`Performer.perform`); the cancel count of a cancel-all among them."""
        return await self.performer.perform(actions)

    async def check_other_stores(self) -> None:
        """A look at the symbol's open orders (`AccountWatch.look`), only where the account is shared
        with the world (paper and sim books are this process's own)."""
        if self.reconciler.exchange is not None:
            await self.account.look()

    async def close_now(self) -> None:
        """Flatten at once (a stop-and-close): for each attempt, the fills synced first, then a fresh
        book as an event: the core answers it with a reduce-only order sized from what it knows."""
        for _ in range(self.core.config.close_attempts + 1):
            await self.fills.sync(wait=True)
            if not self.core.close_requested:
                return
            book = await self.calls.call(partial(self.exchange.book, self.symbol))
            if book is None:
                return
            await self.perform(self.core.on_book(book, time.time_ns()))

    async def quiescent(self) -> None:
        """Return once every queued event is handled (the newest received book included), no
        exchange call is under way and every fill handed to the store is committed and applied: the
        bot is at rest until the next event."""
        while True:
            await self._idle.wait()
            await self.fills.handover.answered()
            await asyncio.sleep(0)
            if self._idle.is_set() and self._queue.empty() and not self.fills.handover.waiting:
                return

    # ----- producers: they only enqueue -------------------------------------------------------------

    def _enqueue(self, event: Event) -> None:
        if event not in self._queued:
            self._queued.add(event)
            self._idle.clear()
            self._queue.put_nowait(event)

    def _market_tasks(self) -> list[asyncio.Task[None]]:
        """What feeds `book_arrived` and `trades_arrived`: the exchange's own pump where it has one (a
        paper or sim market in this process), else a task per stream. The "books" task ending (a
        replay file's last step) ends the run."""
        if self.exchange.capabilities.pushes_market:
            listen = cast("MarketPush", self.exchange).listen_market(self.symbol, self)
            return [asyncio.create_task(listen, name="books")]
        return [
            asyncio.create_task(self._books(), name="books"),
            asyncio.create_task(self._trades(), name="trades"),
        ]

    def book_arrived(self, book: BookUpdate) -> None:
        """The newest book, decided on by the consumer (books that arrive while it is busy coalesce); it
        also runs a timer event that is due (see `_arm_timer`)."""
        self.last_book, self._received_ns = book, time.time_ns()
        self.metrics.last_book_ns = book.ts_ns
        self._enqueue(BOOK)
        if self._loop is not None and self._loop.time() >= self._timer_due:
            self._timer_fired()

    def trades_arrived(self, trades: Sequence[Trade]) -> None:
        """Public trades for the recorded `trade_intensity`."""
        self._idle.clear()
        for trade in trades:
            self._queue.put_nowait(trade)

    async def _books(self) -> None:
        async for book in self.exchange.stream_books(self.symbol):
            self.book_arrived(book)

    async def _trades(self) -> None:
        """The trade stream ending does not stop us."""
        async for trade in self.exchange.stream_trades(self.symbol):
            self.trades_arrived((trade,))
        await self._stop.wait()

    async def _order_events(self) -> None:
        """A fill notice queues a decision on the newest book, which takes the fills first (coalesced:
        one decision takes every fill there is), or a fill sync before the first book; an order's
        final state queues itself. The stream ending does not stop us."""
        async for event in cast("OrderEvents", self.exchange).stream_order_events(self.symbol):
            if isinstance(event, Fill):
                self._enqueue(BOOK if self.last_book is not None else FILLS)
            elif event.status.is_final or self.core.ids.is_other_stores(event.client_order_id):
                self._idle.clear()
                self._queue.put_nowait(event)
        await self._stop.wait()

    def _arm_timer(self) -> None:
        """The timer event `strategy.refresh_interval_s` from now (a quiet market still gets decisions
        and records). The first book at or after that time runs it, in the wake-up the book costs
        anyway; the loop's own timer fires only when no book came within `_TIMER_SLACK` of the interval
        after it (a sim bot's timer otherwise adds a wake-up to every ten of its books)."""
        self._loop = loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
        interval = self.settings.strategy.refresh_interval_s
        self._timer_due = loop.time() + interval
        self._timer = loop.call_at(self._timer_due + _TIMER_SLACK * interval, self._timer_fired)

    def _timer_fired(self) -> None:
        self._enqueue(TIMER)
        self._arm_timer()

    # ----- the one consumer -------------------------------------------------------------------------

    async def _consume(self) -> None:
        queue = self._queue
        while not self._stop.is_set():
            if queue.empty():
                self._idle.set()
            event = await queue.get()
            if isinstance(event, Trade):
                self.core.on_trade(event)
                continue
            if isinstance(event, OrderUpdate):
                self._on_order_state(event)
                continue
            self._queued.discard(event)
            if event is STOP:
                return
            if event is BOOK:
                await self._on_book()
            elif event is TIMER:
                await self._on_timer()
            elif event is FILLS:
                await self.fills.sync()
            elif event is COMMITTED:
                if self.fills.apply_committed():
                    await self._on_book()  # fills confirmed late (a slow commit): requote with them
            else:
                while self._control_work:
                    await apply_control(self, self._control_work.pop(0))

    def _on_control_work(self, work: ControlWork) -> None:
        """The store thread read commands or a config version for us: obeyed between two decisions."""
        self._control_work.append(work)
        self._enqueue(CONTROL)

    async def _on_book(self) -> None:
        update = self.last_book
        if update is None:
            return
        await self.fills.sync()
        if self.fills.halted:
            return
        started = time.perf_counter()
        actions = self.core.on_book(update, self._received_ns)
        self.metrics.tick_to_quote_seconds.observe(time.perf_counter() - started)
        await self.perform(actions)
        self.publish.decision()

    def _on_order_state(self, update: OrderUpdate) -> None:
        """An order the exchange ended on its own (cancelled by it, or rejected after it was accepted)
        rests no more: requote. Our own cancels settle through their calls, fills through the fills.
        Another store's order resting on our account and symbol halts us at once."""
        cid = update.client_order_id
        if not update.status.is_final and self.core.ids.is_other_stores(cid):
            self.account.halt([cid])
            self._enqueue(BOOK)  # the halted core cancels our own orders
            return
        if update.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED) and cid in self.core.orders.orders:
            self.core.on_order_gone(cid)
            self._enqueue(BOOK)

    async def _on_timer(self) -> None:
        """Reconcile when the exchange asks; a look for other stores' orders; a new model version; the
        core's quiet-market requote (stale data: cancel all) and records."""
        exchange = self.reconciler.exchange
        if exchange is not None and exchange.needs_reconcile:  # a reconnect, or a call that may have happened
            await self.reconciler.reconcile(starting=False)
        if time.monotonic() - self.account.checked >= self.settings.exchange.other_stores_check_s:
            await self.check_other_stores()
        if self.regime is not None and self.settings.ml.regime_enabled:
            adopted = self.regime.poll(time.time())
            if adopted is not None:
                self.metrics.set_model_version(str(adopted))
        await self.fills.sync()
        if self.fills.halted:
            return
        if self._funding is not None:
            await self.perform(await self._funding.sync(self.core, self.calls.call, time.monotonic()))
        decided = self.core.decided_ns
        await self.perform(self.core.on_timer(time.time_ns()))
        if self.core.decided_ns != decided:
            self.publish.decision()

    # ----- settings --------------------------------------------------------------------------------

    def apply_settings(self, settings: BotSettings, version: str) -> None:
        """Swap settings between two decisions: engine (warmed-up indicators kept when their windows
        are equal), core, fill model, regime model. Raises ConfigError naming a field that only a
        restart can change (nothing is changed then)."""
        if settings.instrument is None:  # live: keep the tick and lot the exchange gave at start
            settings = settings.model_copy(update={"instrument": self.settings.instrument})
        local_fills = self.exchange.capabilities.local_fills
        fields = restart_fields(self.settings, settings, fills_here=local_fills)
        if fields:
            raise ConfigError(f"needs restart: {', '.join(fields)}")
        if settings.paper != self.settings.paper and local_fills:
            cast("FillModelHost", self.exchange).reconfigure_fills(settings.paper)
        if self.regime is not None:
            self.regime.reconfigure(settings.ml.model_dir, settings.ml.max_model_age_s)
        if not settings.ml.regime_enabled:
            self.metrics.publish_regime(None, loaded=False)
        self.settings = settings
        self.core.reconfigure(settings.core_config(), self.core.engine.reconfigured(settings.engine_config()))
        self.config_version = version
        self.metrics.set_config_version(version)
        self.metrics.max_position_usd.set(settings.risk.max_position_usd)
        log.info("config applied", extra={"fields": {"bot": self.name, "version": version}})
