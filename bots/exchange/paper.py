"""Paper trading: one fill model for paper, sim and backtests, and the Exchange built on it.

`PaperFillModel` holds our resting orders against someone else's market data and decides fills:
- cross: a buy fills in full when the best ask drops below its price or a trade prints below it
  (sells mirrored), at the order's own price, as a maker;
- touch: when the best opposite price or a trade only equals the order's price, it fills in full with
  probability `touch_fill_probability`, drawn per touching event;
- queue model (`queue_model=True`, replaces the touch rule): the order joins the back of the visible
  size at its level; trades printing at that level consume the queue ahead first, then fill the order,
  possibly partially (the rest stays resting). The queue ahead never exceeds the size the book shows
  at that level (cancellations ahead of us), and is 0 when we are alone at a price inside the spread.
Maker fills pay `-maker_rebate_bps` of notional (`Fill.fee` negative = rebate received). Fill ids are
`{prefix}{symbol}-{n}`, deterministic for a run. Fills are returned, never booked here: the caller
feeds each to `Portfolio.apply`, which owns increase/reduce and FIFO grid profit.

`PaperExchange` is the `Exchange` protocol over any async source of `(BookUpdate, list[Trade])` steps
(`paced(SimMarket(...).steps())`, `paced(read_recording(path))`, later GRVT public data), the fill
model and a `Portfolio`. Orders never leave the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, TypeVar

from bots.engine.portfolio import Portfolio
from bots.engine.types import Side
from bots.errors import ExchangeError, Rejected
from bots.exchange.base import (
    BookLevel,
    BookUpdate,
    Fill,
    InstrumentInfo,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Trade,
)
from settings.models import InstrumentSpec, PaperSettings

__all__ = ["PaperExchange", "PaperFillModel"]

Step = tuple[BookUpdate, list[Trade]]
T = TypeVar("T")

_ZERO = Decimal(0)
_BPS = Decimal(10_000)
_FINISHED_KEPT = 10_000  # final order states kept so a repeated client_order_id stays idempotent


def _rate(bps: float) -> Decimal:
    """A basis-point figure as an exact Decimal fraction (0.0 stays a plain, unsigned zero)."""
    return Decimal(repr(bps)) / _BPS if bps else _ZERO


@dataclass(slots=True)
class _Resting:
    """One of our orders on the book: fill progress and the visible size ahead of it."""

    request: OrderRequest
    exchange_order_id: str
    ts_ns: int
    filled: Decimal = _ZERO
    queue_ahead: Decimal = _ZERO

    def update(self, status: OrderStatus, reason: str | None, ts_ns: int) -> OrderUpdate:
        r, filled = self.request, self.filled
        oid = self.exchange_order_id
        return OrderUpdate(
            r.symbol, r.client_order_id, oid, r.side, r.price, r.size, filled, status, reason, ts_ns
        )


def _visible_size(levels: tuple[BookLevel, ...], price: Decimal, is_buy: bool) -> Decimal | None:
    """Size the book shows at `price` on one side (best first); 0 in a gap or inside the spread,
    None when `price` is deeper than the levels shown."""
    for level in levels:
        if level.price == price:
            return level.size
        if (level.price < price) if is_buy else (level.price > price):
            return _ZERO
    return None


class PaperFillModel:
    """Resting post-only orders against market data; see the module docstring for the fill rules."""

    def __init__(
        self,
        spec: InstrumentSpec,
        settings: PaperSettings,
        rng: random.Random,
        *,
        fill_id_prefix: str = "",
        taker_fee_bps: float = 5.0,
    ) -> None:
        """`taker_fee_bps` only applies to a non-post-only order that crosses (e.g. closing a position);
        `fill_id_prefix` keeps fill ids unique across runs that share a ledger."""
        self.spec = spec
        self.rng = rng
        self.book: BookUpdate | None = None  # the latest book seen
        self.immediate_fills: list[Fill] = []  # taker fills made by submit(); the caller drains them
        self._tick, self._lot, self._min = spec.tick_size, spec.lot_size, spec.effective_min_size
        self._p_touch = settings.touch_fill_probability
        self._queue = settings.queue_model
        self._maker_fee = -_rate(settings.maker_rebate_bps)  # per unit of notional; negative = rebate
        self._taker_fee = _rate(taker_fee_bps)
        self._prefix = fill_id_prefix
        self._orders: dict[str, _Resting] = {}  # insertion order = time priority
        self._finished: dict[str, OrderUpdate] = {}
        self._fills = self._placed = 0
        self._now_ns = 0
        self._max_buy: Decimal | None = None  # best resting prices, to skip events that touch nothing
        self._min_sell: Decimal | None = None

    # -- orders ----------------------------------------------------------------------------------
    def submit(self, request: OrderRequest, ts_ns: int, book: BookUpdate | None) -> OrderUpdate:
        """Accept a limit order (status OPEN) or refuse it (REJECTED with a reason); idempotent on
        `client_order_id`. A crossing non-post-only order takes the visible levels first."""
        self._now_ns = max(self._now_ns, ts_ns)
        known = self._orders.get(request.client_order_id)
        if known is not None:
            return known.update(OrderStatus.OPEN, None, ts_ns)
        if request.client_order_id in self._finished:
            return self._finished[request.client_order_id]
        self._placed += 1
        order = _Resting(request, f"paper-{self._placed}", ts_ns)
        is_buy = request.side is Side.BUY
        reason = self._invalid(request)
        opposite = (book.asks if is_buy else book.bids) if book is not None else ()
        crosses = reason is None and bool(opposite)
        crosses = crosses and (
            request.price >= opposite[0].price if is_buy else request.price <= opposite[0].price
        )
        if reason is None and crosses and request.post_only:
            reason = "post_only_would_cross"
        if reason is not None:
            return self._finish(order.update(OrderStatus.REJECTED, reason, ts_ns))
        self._orders[request.client_order_id] = order
        if crosses:
            self._take(order, opposite, ts_ns)
        if request.client_order_id not in self._orders:  # taken in full
            return self._finished[request.client_order_id]
        if self._queue and book is not None:
            ahead = _visible_size(book.bids if is_buy else book.asks, request.price, is_buy)
            order.queue_ahead = ahead if ahead is not None else _ZERO
        price = request.price
        if is_buy and (self._max_buy is None or price > self._max_buy):
            self._max_buy = price
        elif not is_buy and (self._min_sell is None or price < self._min_sell):
            self._min_sell = price
        return order.update(OrderStatus.OPEN, None, ts_ns)

    def cancel(self, client_order_id: str) -> OrderUpdate | None:
        """Cancel one resting order; None when it is not resting (filled, cancelled or unknown)."""
        order = self._orders.pop(client_order_id, None)
        if order is None:
            return None
        self._removed(order.request)
        return self._finish(order.update(OrderStatus.CANCELLED, "cancelled", self._now_ns))

    def cancel_all(self) -> list[OrderUpdate]:
        """Cancel every resting order; returns their final states."""
        return [update for cid in list(self._orders) if (update := self.cancel(cid)) is not None]

    def open_orders(self) -> list[OrderUpdate]:
        """The resting orders, oldest first."""
        return [order.update(OrderStatus.OPEN, None, self._now_ns) for order in self._orders.values()]

    def order(self, client_order_id: str) -> OrderUpdate | None:
        """The current state of a resting or recently finished order."""
        order = self._orders.get(client_order_id)
        if order is not None:
            return order.update(OrderStatus.OPEN, None, self._now_ns)
        return self._finished.get(client_order_id)

    # -- market events ---------------------------------------------------------------------------
    def on_book(self, book: BookUpdate) -> list[Fill]:
        """Fills caused by a new book: resting orders the book crossed (or touched)."""
        self.book = book
        self._now_ns = book.ts_ns
        fills: list[Fill] = []
        if not self._orders:
            return fills
        if self._queue:
            self._clip_queues(book)
        asks, bids = book.asks, book.bids
        if asks and self._max_buy is not None and asks[0].price <= self._max_buy:
            self._sweep(Side.BUY, asks[0].price, book.ts_ns, fills, None)
        if bids and self._min_sell is not None and bids[0].price >= self._min_sell:
            self._sweep(Side.SELL, bids[0].price, book.ts_ns, fills, None)
        return fills

    def on_trade(self, trade: Trade) -> list[Fill]:
        """Fills caused by a public trade: a sell taker hits our bids at or above its price, a buy
        taker lifts our asks at or below it."""
        self._now_ns = max(self._now_ns, trade.ts_ns)
        fills: list[Fill] = []
        if trade.taker_side is Side.SELL:
            if self._max_buy is not None and trade.price <= self._max_buy:
                self._sweep(Side.BUY, trade.price, trade.ts_ns, fills, trade.size)
        elif self._min_sell is not None and trade.price >= self._min_sell:
            self._sweep(Side.SELL, trade.price, trade.ts_ns, fills, trade.size)
        return fills

    # -- internals -------------------------------------------------------------------------------
    def _sweep(
        self, side: Side, price: Decimal, ts_ns: int, fills: list[Fill], volume: Decimal | None
    ) -> None:
        """Fill our `side` orders that the opposite price `price` crossed or touched; `volume` is the
        trade size (None for a book event, which never advances a queue)."""
        is_buy = side is Side.BUY
        at_level: list[_Resting] = []
        for order in list(self._orders.values()):
            request = order.request
            if request.side is not side:
                continue
            if (price < request.price) if is_buy else (price > request.price):
                self._fill(order, ts_ns, fills)
            elif price == request.price:
                if not self._queue:
                    if self.rng.random() < self._p_touch:
                        self._fill(order, ts_ns, fills)
                elif volume is not None:
                    at_level.append(order)
        if not at_level or volume is None:
            return
        used = _ZERO  # trade volume already given to our earlier orders at this level
        for order in at_level:
            reach = volume - order.queue_ahead - used
            order.queue_ahead = max(_ZERO, order.queue_ahead - volume)
            qty = min(reach, order.request.size - order.filled) // self._lot * self._lot
            if qty > 0:
                self._fill(order, ts_ns, fills, qty)
                used += qty

    def _take(self, order: _Resting, levels: tuple[BookLevel, ...], ts_ns: int) -> None:
        """A crossing non-post-only order trades with the visible levels up to its limit, as a taker."""
        request = order.request
        for level in levels:
            beyond = level.price > request.price if request.side is Side.BUY else level.price < request.price
            remaining = request.size - order.filled
            if beyond or remaining <= 0:
                break
            qty = min(level.size, remaining) // self._lot * self._lot
            if qty > 0:
                self._fill(order, ts_ns, self.immediate_fills, qty, level.price, taker=True)

    def _fill(
        self,
        order: _Resting,
        ts_ns: int,
        fills: list[Fill],
        qty: Decimal | None = None,
        price: Decimal | None = None,
        *,
        taker: bool = False,
    ) -> None:
        """Record a fill of `qty` (all that remains by default) at `price` (the order's by default)."""
        request = order.request
        qty = request.size - order.filled if qty is None else qty
        price = request.price if price is None else price
        self._fills += 1
        fee = price * qty * (self._taker_fee if taker else self._maker_fee)
        fill_id = f"{self._prefix}{request.symbol}-{self._fills}"
        cid = request.client_order_id
        fills.append(Fill(fill_id, request.symbol, cid, request.side, price, qty, fee, ts_ns, taker))
        order.filled += qty
        if order.filled >= request.size:
            del self._orders[request.client_order_id]
            self._finish(order.update(OrderStatus.FILLED, None, ts_ns))
            self._removed(request)

    def _invalid(self, request: OrderRequest) -> str | None:
        """Why the exchange would refuse this order's price or size, or None."""
        if not (request.price.is_finite() and request.price > 0):
            return "price_not_positive"
        if not (request.size.is_finite() and request.size > 0):
            return "size_not_positive"
        if request.price % self._tick:
            return "price_off_tick"
        if request.size % self._lot:
            return "size_off_lot"
        if request.size < self._min:
            return "size_below_min"
        return None

    def _clip_queues(self, book: BookUpdate) -> None:
        for order in self._orders.values():
            if order.queue_ahead > 0:
                is_buy = order.request.side is Side.BUY
                shown = _visible_size(book.bids if is_buy else book.asks, order.request.price, is_buy)
                if shown is not None and shown < order.queue_ahead:
                    order.queue_ahead = shown

    def _removed(self, request: OrderRequest) -> None:
        """Keep the best resting prices right after an order leaves (a rescan only when it was best)."""
        side = request.side
        if request.price == (self._max_buy if side is Side.BUY else self._min_sell):
            prices = [o.request.price for o in self._orders.values() if o.request.side is side]
            if side is Side.BUY:
                self._max_buy = max(prices) if prices else None
            else:
                self._min_sell = min(prices) if prices else None

    def _finish(self, update: OrderUpdate) -> OrderUpdate:
        if len(self._finished) >= _FINISHED_KEPT:
            del self._finished[next(iter(self._finished))]
        self._finished[update.client_order_id] = update
        return update


class _Topic(Generic[T]):
    """Fan-out of one event kind to bounded per-subscriber queues (a slow reader slows the source)."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._queues: list[asyncio.Queue[T | None]] = []
        self.closed = False

    async def publish(self, item: T) -> None:
        for queue in self._queues:
            await queue.put(item)

    def close(self) -> None:
        self.closed = True
        for queue in self._queues:
            if queue.full():  # shutting down: make room for the end marker
                queue.get_nowait()
            queue.put_nowait(None)

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

    A pump task reads the source, updates the fill model, books fills into the portfolio and fans
    books, trades and fills out to the streams. It starts with `start()`, `run()`, `book()` or the
    first stream read; it stops when the source ends or on `close()`. Stream queues hold
    `queue_size` items and the pump waits for the slowest reader, so in a backtest the market never
    runs more than a step or two ahead of the bot reading it.
    """

    def __init__(
        self,
        symbol: str,
        spec: InstrumentSpec,
        source: AsyncIterable[Step],
        settings: PaperSettings | None = None,
        *,
        seed: int = 0,
        fill_id_prefix: str = "",
        taker_fee_bps: float = 5.0,
        queue_size: int = 1,
    ) -> None:
        settings = settings or PaperSettings()
        self.symbol = symbol
        self.info = InstrumentInfo(symbol, spec.tick_size, spec.lot_size, spec.effective_min_size)
        self.model = PaperFillModel(
            spec, settings, random.Random(seed), fill_id_prefix=fill_id_prefix, taker_fee_bps=taker_fee_bps
        )
        self.portfolio = Portfolio(symbol=symbol, starting_balance=settings.starting_balance_usd)
        self.steps = 0  # market-data steps processed
        self._source = source
        self._fills: list[Fill] = []
        self._books: _Topic[BookUpdate] = _Topic(queue_size)
        self._trades: _Topic[Trade] = _Topic(queue_size)
        self._fill_topic: _Topic[Fill] = _Topic(queue_size)
        self._first_book = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start pumping market data (idempotent; needs a running event loop)."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._pump(), name=f"paper-{self.symbol}")

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
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._end_streams()

    async def _pump(self) -> None:
        try:
            async for book, trades in self._source:
                fills = self.model.on_book(book)
                for trade in trades:
                    fills += self.model.on_trade(trade)
                for fill in fills:
                    self._book_fill(fill)
                self._first_book.set()
                self.steps += 1
                await self._books.publish(book)
                for trade in trades:
                    await self._trades.publish(trade)
                for fill in fills:
                    await self._fill_topic.publish(fill)
        finally:
            self._end_streams()

    def _end_streams(self) -> None:
        for topic in (self._books, self._trades, self._fill_topic):
            if not topic.closed:
                topic.close()
        self._first_book.set()  # wake book() waiters: there will be no (more) data

    def _book_fill(self, fill: Fill) -> None:
        self.portfolio.apply(fill)
        self._fills.append(fill)

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

    async def stream_books(self, symbol: str) -> AsyncIterator[BookUpdate]:
        self._check(symbol)
        self.start()
        async for book in self._books.subscribe():
            yield book

    async def stream_trades(self, symbol: str) -> AsyncIterator[Trade]:
        self._check(symbol)
        self.start()
        async for trade in self._trades.subscribe():
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
                raise Rejected("reduce_only_would_increase")
        update = self.model.submit(request, self.model.book.ts_ns if self.model.book else 0, self.model.book)
        taken, self.model.immediate_fills = self.model.immediate_fills, []
        for fill in taken:
            self._book_fill(fill)
            await self._fill_topic.publish(fill)
        if update.status is OrderStatus.REJECTED:
            raise Rejected(update.reason or "rejected")
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
        """Cursor = how many fills the caller has seen, as a string."""
        self._check(symbol)
        try:
            start = int(cursor) if cursor else 0
        except ValueError as exc:
            raise ExchangeError(f"bad fills cursor {cursor!r}") from exc
        return self._fills[start:], str(len(self._fills))
