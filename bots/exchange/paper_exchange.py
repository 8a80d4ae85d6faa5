"""`PaperExchange`: the `Exchange` protocol over any market-data source, with local fills.

The source is any async iterable of `(BookUpdate, list[Trade])` steps (`paced(SimMarket(...).steps())`,
`paced(read_recording(path))`, later GRVT public data). Orders never leave the process: the
`PaperFillModel` (`bots.exchange.paper`) decides fills and a `Portfolio` books them.

Funding: with a `FundingClock` (sim mode: the `sim.funding` process; paper mode on GRVT: the rates GRVT
settles), every funding time the market passes settles the portfolio's position at the venue's mark or
else the book's mid (`-position * mark * rate`: longs pay shorts under a positive rate); its `run()` goes
in the background from `start()`; `funding_since` hands the payments out with a cursor like the fills'.

Fill cursor: `fills_since` hands out `"<session id>:<count>"`, where the session id is unique to this
instance. The worker keeps the cursor in its ledger across restarts; after a restart a new exchange
starts counting from zero, so a cursor from another session (or an older plain count) means "from the
start of this session", never "skip that many fills".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from decimal import Decimal
from typing import Generic, TypeVar

from bots.engine.portfolio import Portfolio
from bots.errors import ExchangeError, Rejected, RejectReason
from bots.exchange.base import (
    BookUpdate,
    Capabilities,
    Fill,
    FundingPayment,
    FundingRate,
    InstrumentInfo,
    MarketListener,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Trade,
)
from bots.exchange.paper import PaperFillModel
from bots.exchange.sim.funding import FundingClock
from settings.models import InstrumentSpec, PaperSettings

log = logging.getLogger("mmfleet.paper")

__all__ = ["PaperExchange"]

Step = tuple[BookUpdate, list[Trade]]
T = TypeVar("T")


class _Topic(Generic[T]):
    """Fan-out of one event kind to bounded per-subscriber queues (a slow reader slows the source)."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._queues: list[asyncio.Queue[T | None]] = []
        self._ended: list[asyncio.Queue[T | None]] = []  # queues that hold their end marker
        self.closed = False

    async def publish(self, item: T) -> None:
        for queue in self._queues:
            await queue.put(item)

    async def finish(self) -> None:
        """End the streams after every reader took what is queued (the source ended)."""
        self.closed = True
        for queue in list(self._queues):
            await queue.put(None)
            self._ended.append(queue)

    def close(self) -> None:
        """End the streams now (shutting down or failed), dropping an item where the queue is full."""
        self.closed = True
        for queue in self._queues:
            if queue in self._ended:
                continue
            if queue.full():  # shutting down: make room for the end marker
                queue.get_nowait()
            queue.put_nowait(None)
            self._ended.append(queue)

    async def subscribe(self) -> AsyncIterator[T]:
        if self.closed:
            return
        queue: asyncio.Queue[T | None] = asyncio.Queue(self._maxsize)
        self._queues.append(queue)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self._queues.remove(queue)


class PaperExchange:
    """The `Exchange` protocol on a market-data source, `PaperFillModel` and a `Portfolio`.

    A pump task reads the source, updates the fill model, books fills into the portfolio, calls the
    market listeners (`listen_market`: the worker) and fans books, trades and fills out to the streams.
    It starts with `start()`, `run()`, `book()`, `listen_market()` or the first stream read; it stops
    when the source ends or on `close()`. Stream queues hold `queue_size` items and the pump waits for
    the slowest reader, so a stream reader never sees the market more than a step or two ahead.

    `portfolio` is the account to start from (the ledger's state after a restart, so reduce-only
    checks and `position()` see the real position); a fresh one with `starting_balance_usd` when None.
    The exchange books its fills into it.
    """

    capabilities = Capabilities(reconciles=False, local_fills=True, pushes_market=True)  # an in-process book

    def __init__(
        self,
        symbol: str,
        spec: InstrumentSpec,
        source: AsyncIterable[Step],
        settings: PaperSettings | None = None,
        *,
        seed: int = 0,
        fill_id_prefix: str = "",
        queue_size: int = 1,
        portfolio: Portfolio | None = None,
        funding: FundingClock | None = None,
    ) -> None:
        settings = settings or PaperSettings()
        if portfolio is not None and portfolio.symbol not in (None, symbol):
            raise ValueError(f"portfolio is for {portfolio.symbol}, this paper exchange trades {symbol}")
        self.symbol = symbol
        self.info = InstrumentInfo(symbol, spec.tick_size, spec.lot_size, spec.effective_min_size)
        self.model = PaperFillModel(spec, settings, random.Random(seed), fill_id_prefix=fill_id_prefix)
        self.portfolio = (
            portfolio if portfolio is not None else Portfolio(symbol, settings.starting_balance_usd)
        )
        self.session_id = uuid.uuid4().hex[:16]  # scopes fill cursors to this instance
        self.steps = 0  # market-data steps processed
        self.funding = funding
        self._id_prefix = fill_id_prefix
        if funding is not None:
            self.capabilities = dataclasses.replace(PaperExchange.capabilities, funding=True)
        self._source = source
        self._fills: list[Fill] = []
        self._fills_cursor = f"{self.session_id}:0"  # what `fills_since` hands out after the last fill
        self._payments: list[FundingPayment] = []
        self._books: _Topic[BookUpdate] = _Topic(queue_size)
        self._trades: _Topic[list[Trade]] = _Topic(queue_size)
        self._fill_topic: _Topic[Fill] = _Topic(queue_size)
        self._listeners: list[MarketListener] = []
        self._first_book = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._funding_task: asyncio.Task[None] | None = None
        self._closed = False

    def reconfigure_fills(self, settings: PaperSettings) -> None:
        """New fill-model settings between two decisions (a config version changing `paper.*`)."""
        self.model.configure(settings)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start pumping market data (idempotent; needs a running event loop)."""
        if self._task is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._pump(), name=f"paper-{self.symbol}")
            if self.funding is not None:
                self._funding_task = loop.create_task(self.funding.run(), name=f"funding-{self.symbol}")

    async def run(self) -> None:
        """Pump until the source ends (or `close()`): the whole backtest in one await."""
        self.start()
        if self._task is not None:
            await asyncio.wait({self._task})  # a close() ends the wait; a source error is raised here
            if not self._task.cancelled() and (error := self._task.exception()) is not None:
                raise error

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (self._task, self._funding_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._end_streams()

    async def _pump(self) -> None:
        try:
            async for book, trades in self._source:
                fills = self.model.on_book(book)
                for trade in trades:
                    fills += self.model.on_trade(trade)
                for fill in fills:
                    self._book_fill(fill)
                if self.funding is not None:
                    self._settle_funding(book)
                self._first_book.set()
                self.steps += 1
                for listener in self._listeners:
                    listener.book_arrived(book)
                    if trades:
                        listener.trades_arrived(trades)
                await self._books.publish(book)
                if trades:
                    await self._trades.publish(trades)  # a step's trades in one hand-over
                for fill in fills:
                    await self._fill_topic.publish(fill)
            for topic in (self._books, self._trades, self._fill_topic):
                await topic.finish()  # the last items are delivered, not dropped
        except (ValueError, KeyError, OSError) as exc:  # a corrupt or unreadable recording
            fields = {"symbol": self.symbol, "error": str(exc)}
            log.error("market data source failed", extra={"fields": fields})
            raise
        finally:
            self._end_streams()

    def _end_streams(self) -> None:
        for topic in (self._books, self._trades, self._fill_topic):
            topic.close()  # a no-op for the streams that already ended
        self._first_book.set()  # wake book() waiters: there will be no (more) data

    def _book_fill(self, fill: Fill) -> None:
        self.portfolio.apply(fill)
        self._fills.append(fill)
        self._fills_cursor = f"{self.session_id}:{len(self._fills)}"

    def _settle_funding(self, book: BookUpdate) -> None:
        """Funding times passed by this book settle the position at the venue's mark, else the book's
        mid (none on a one-sided book: they settle at the next two-sided one; a flat position gets no
        payment)."""
        assert self.funding is not None
        if not (book.bids and book.asks):
            return
        due = self.funding.advance(book.ts_ns)
        if not due:  # nearly every book
            return
        mid = (book.bids[0].price + book.asks[0].price) / 2
        for settlement in due:
            position = self.portfolio.position
            if position == 0:
                continue
            payment_id = f"{self._id_prefix}funding-{settlement.ts_ns}"
            mark = settlement.mark if settlement.mark is not None else mid
            payment = FundingPayment.settled(
                payment_id, self.symbol, settlement.ts_ns, position, mark, settlement.rate
            )
            self.portfolio.apply_funding(payment)
            self._payments.append(payment)

    def _check(self, symbol: str) -> None:
        if symbol != self.symbol:
            raise ExchangeError(f"this paper exchange trades {self.symbol}, not {symbol}")

    # -- the Exchange protocol -------------------------------------------------------------------
    async def instrument(self, symbol: str) -> InstrumentInfo:
        self._check(symbol)
        return self.info

    async def book(self, symbol: str) -> BookUpdate:
        self._check(symbol)
        if self.model.book is None:
            self.start()
            await self._first_book.wait()
        if self.model.book is None:
            raise ExchangeError(f"{symbol}: the market-data source ended without a book")
        return self.model.book

    async def listen_market(self, symbol: str, listener: MarketListener) -> None:
        """`listener` called by the pump with each book and its step's trades, as the streams get them,
        until the source ends or the exchange closes (a failed source is logged by the pump, and ends
        this as it ends the streams)."""
        self._check(symbol)
        self.start()
        if self._task is None:  # closed
            return
        self._listeners.append(listener)
        try:
            await asyncio.wait({self._task})
        finally:
            self._listeners.remove(listener)

    async def stream_books(self, symbol: str) -> AsyncIterator[BookUpdate]:
        self._check(symbol)
        self.start()
        async for book in self._books.subscribe():
            yield book

    async def stream_trades(self, symbol: str) -> AsyncIterator[Trade]:
        self._check(symbol)
        self.start()
        async for trades in self._trades.subscribe():
            for trade in trades:
                yield trade

    async def stream_fills(self, symbol: str) -> AsyncIterator[Fill]:
        """Our fills as they happen (already booked in `portfolio`), until the source ends."""
        self._check(symbol)
        self.start()
        async for fill in self._fill_topic.subscribe():
            yield fill

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        self._check(request.symbol)
        if request.reduce_only:
            position = self.portfolio.position
            if not (position * request.side.sign < 0 and request.size <= abs(position)):
                raise Rejected(RejectReason.REDUCE_ONLY_WOULD_INCREASE)
        update = self.model.submit(request, self.model.book.ts_ns if self.model.book else 0, self.model.book)
        taken, self.model.immediate_fills = self.model.immediate_fills, []
        for fill in taken:
            self._book_fill(fill)
            await self._fill_topic.publish(fill)
        if update.status is OrderStatus.REJECTED:
            raise Rejected(RejectReason(update.reason or RejectReason.OTHER))
        return update

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        self._check(symbol)
        self.model.cancel(client_order_id)

    async def cancel_all(self, symbol: str) -> int:
        self._check(symbol)
        return len(self.model.cancel_all())

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:
        self._check(symbol)
        return self.model.open_orders()

    async def position(self, symbol: str) -> Decimal:
        self._check(symbol)
        return self.portfolio.position

    async def balance(self) -> Decimal:
        return self.portfolio.cash

    async def fills_since(self, symbol: str, cursor: str | None) -> tuple[list[Fill], str | None]:
        """Cursor `"<session id>:<count>"`; one from another session (an earlier instance, e.g. before
        a restart, or an old plain count) reads from the start of this session."""
        self._check(symbol)
        if cursor == self._fills_cursor:  # nothing new: asked after every book
            return [], cursor
        start = self._cursor_position(cursor, len(self._fills), "fills")
        return self._fills[start:], self._fills_cursor

    async def funding_rate(self, symbol: str) -> FundingRate | None:
        """The funding process's current rate (None without one)."""
        self._check(symbol)
        funding = self.funding
        if funding is None:
            return None
        return FundingRate(self.symbol, funding.ts_ns, funding.decimal_rate(), funding.interval_s)

    async def funding_since(self, symbol: str, cursor: str | None) -> tuple[list[FundingPayment], str | None]:
        """Funding payments after `cursor`, a cursor like the fills' (`"<session id>:<count>"`)."""
        self._check(symbol)
        start = self._cursor_position(cursor, len(self._payments), "funding")
        return self._payments[start:], f"{self.session_id}:{len(self._payments)}"

    def _cursor_position(self, cursor: str | None, total: int, what: str) -> int:
        if not cursor:
            return 0
        session, sep, count = cursor.rpartition(":")
        if not sep or session != self.session_id:
            return 0  # another session's count says nothing about this one's fills
        try:
            start = int(count)
        except ValueError:
            start = -1
        if not 0 <= start <= total:
            raise ExchangeError(f"bad {what} cursor {cursor!r}")
        return start
