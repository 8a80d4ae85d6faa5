"""GRVT public market data over the SDK's websocket: `GrvtMarketData` and the feed it shares with
`GrvtExchange`; for recordings, the ticker's funding rate as well.

Why a module of its own: the websocket fan-out (books and trades to bounded per-reader queues, a
watchdog for a silent feed) is independent of orders and accounts. A market-data websocket drop loses
nothing but books and trades; our fills and order states come on the trade-data websocket
(`bots.venues.grvt.account`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Generic, TypeVar, cast

from pysdk.grvt_ccxt_env import GrvtEnv

from bots.errors import ExchangeError
from bots.exchange.base import BookUpdate, Trade
from bots.exchange.events import FundingRate
from bots.venues.grvt.client import _SdkClient, _TaskLoop
from bots.venues.grvt.endpoints import base_url_override
from bots.venues.grvt.funding import parse_funding_rate
from bots.venues.grvt.parse import parse_book, parse_trade
from settings.models import BotSettings

__all__ = ["GrvtMarketData", "Step", "_MarketFeed"]

log = logging.getLogger("mmfleet.grvt")
T = TypeVar("T")
Step = tuple[BookUpdate, list[Trade]]

_MAX_PENDING_TRADES = 100_000


class _Fanout(Generic[T]):
    """One event kind to bounded per-reader queues; a full queue drops its oldest item (a slow reader
    gets the newest data, never stalls the websocket)."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._queues: list[asyncio.Queue[tuple[T] | None]] = []
        self.dropped = 0
        self.closed = False

    def publish(self, item: T) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait((item,))

    def close(self) -> None:
        self.closed = True
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    async def subscribe(self) -> AsyncIterator[T]:
        if self.closed:
            return
        queue: asyncio.Queue[tuple[T] | None] = asyncio.Queue(self._maxsize)
        self._queues.append(queue)
        try:
            while (entry := await queue.get()) is not None:
                yield entry[0]
        finally:
            self._queues.remove(queue)


class _MarketFeed:
    """Book snapshots (`book.s`) and trades of one symbol on an SDK websocket client, fanned out to
    readers; with `steps`, also as `(book, trades since the previous book)` for one reader, and with
    `funding` the ticker's funding rate (`ticker.s`) whenever it changes, before the next step."""

    def __init__(
        self,
        client: _SdkClient,
        symbol: str,
        rate_ms: int,
        depth: int,
        *,
        steps: bool = False,
        funding: bool = False,
    ) -> None:
        self.client = client
        self.symbol = symbol
        self.books: _Fanout[BookUpdate] = _Fanout(1)
        self.trades: _Fanout[Trade] = _Fanout(10_000)
        self.last_message_s = time.monotonic()
        self._params = (
            {"instrument": symbol, "rate": rate_ms, "depth": depth},
            {"instrument": symbol, "limit": 50},
        )
        self._steps = steps
        self._funding = funding
        self._step_book: BookUpdate | None = None
        self._step_trades: list[Trade] = []
        self._step_funding: FundingRate | None = None
        self._last_rate: object = None
        self._step_ready = asyncio.Event()
        self._closed = False

    async def subscribe(self) -> None:
        book_params, trade_params = self._params
        await self.client.subscribe(stream="book.s", callback=self._on_book, params=book_params)
        await self.client.subscribe(stream="trade", callback=self._on_trade, params=trade_params)
        if self._funding:
            ticker_params = {"instrument": self.symbol, "rate": book_params["rate"]}
            await self.client.subscribe(stream="ticker.s", callback=self._on_ticker, params=ticker_params)

    def start_watchdog(self, loop: _TaskLoop, stale_after_s: float | None) -> None:
        if stale_after_s is not None:
            loop.create_task(self._watchdog(stale_after_s), name=f"grvt-watchdog-{self.symbol}")

    async def _watchdog(self, stale_after_s: float) -> None:
        while True:
            await asyncio.sleep(min(1.0, stale_after_s / 4))
            if time.monotonic() - self.last_message_s > stale_after_s:
                log.warning(
                    "GRVT market data silent: reconnecting", extra={"fields": {"symbol": self.symbol}}
                )
                self.client.force_reconnect()
                self.last_message_s = time.monotonic()

    async def _on_book(self, message: dict[str, Any]) -> None:
        self.last_message_s = time.monotonic()
        try:
            book = parse_book(message["feed"], self.symbol)
        except (ExchangeError, KeyError, TypeError, AttributeError):
            log.warning("malformed GRVT book message dropped", extra={"fields": {"symbol": self.symbol}})
            return
        self.books.publish(book)
        if self._steps:
            self._step_book = book
            self._step_ready.set()

    async def _on_trade(self, message: dict[str, Any]) -> None:
        self.last_message_s = time.monotonic()
        feed = message.get("feed")
        try:
            rows: list[Any] = feed if isinstance(feed, list) else [feed]
            trades = [parse_trade(row, self.symbol) for row in rows]
        except (ExchangeError, TypeError, AttributeError):
            log.warning("malformed GRVT trade message dropped", extra={"fields": {"symbol": self.symbol}})
            return
        for trade in trades:
            self.trades.publish(trade)
        if self._steps:
            self._step_trades.extend(trades)
            del self._step_trades[:-_MAX_PENDING_TRADES]

    async def _on_ticker(self, message: dict[str, Any]) -> None:
        self.last_message_s = time.monotonic()
        try:
            sample = parse_funding_rate(message["feed"], self.symbol)
        except (ExchangeError, ArithmeticError, KeyError, TypeError, AttributeError):
            sample = None
        else:
            if sample is None or sample.rate == self._last_rate:
                return
        if sample is None or not sample.rate.is_finite():
            log.warning("malformed GRVT ticker message dropped", extra={"fields": {"symbol": self.symbol}})
            return
        self._last_rate = sample.rate
        self._step_funding = sample if sample.ts_ns else dataclasses.replace(sample, ts_ns=time.time_ns())
        self._step_ready.set()

    async def next_step(self) -> Step | FundingRate | None:
        """A funding rate that changed, else the newest book with the trades since the previous step;
        None once closed."""
        while not self._closed:
            if self._step_funding is not None:
                sample, self._step_funding = self._step_funding, None
                return sample
            if self._step_book is not None:
                step = (self._step_book, self._step_trades)
                self._step_book, self._step_trades = None, []
                return step
            self._step_ready.clear()
            await self._step_ready.wait()
        return None

    def close(self) -> None:
        self._closed = True
        self._step_ready.set()
        self.books.close()
        self.trades.close()


class GrvtMarketData:
    """GRVT public market data (no credentials) as async `(BookUpdate, list[Trade])` steps: a book
    snapshot with the trades printed since the previous one (the paper source); `records()` adds the
    funding rate, as `FundingRate`s when it changes (the record source).

    Each iteration opens its own websocket client and closes it when the iteration ends or is
    cancelled. A slow reader gets the newest book with every trade since its last step. Reconnects
    are the SDK's (every 5 s); a feed silent for `stale_after_s` is reconnected as well.
    """

    def __init__(
        self,
        symbol: str,
        *,
        env: str = "testnet",
        base_url: str | None = None,
        book_rate_ms: int = 500,
        book_depth: int = 10,
        stale_after_s: float | None = 30.0,
    ) -> None:
        self.symbol = symbol
        self.env = GrvtEnv(env)
        self.base_url = base_url
        self.book_rate_ms = book_rate_ms
        self.book_depth = book_depth
        self.stale_after_s = stale_after_s

    @classmethod
    def from_settings(cls, settings: BotSettings) -> GrvtMarketData:
        return cls(settings.symbol, env=settings.exchange.env, base_url=settings.exchange.base_url)

    def __aiter__(self) -> AsyncIterator[Step]:
        return self.steps()

    def steps(self) -> AsyncGenerator[Step, None]:
        """Books and trades: without the ticker subscribed, the feed yields no funding sample."""
        return cast("AsyncGenerator[Step, None]", self._stream(funding=False))

    def records(self) -> AsyncGenerator[Step | FundingRate, None]:
        """Books and trades, and the ticker's funding rate whenever it changes."""
        return self._stream(funding=True)

    async def _stream(self, *, funding: bool) -> AsyncGenerator[Step | FundingRate, None]:
        loop = _TaskLoop(asyncio.get_running_loop())
        with base_url_override(self.base_url):
            client = _SdkClient(self.env, loop, params={}, api_key=None, timeout_s=10.0)
            feed = _MarketFeed(
                client, self.symbol, self.book_rate_ms, self.book_depth, steps=True, funding=funding
            )
        try:
            with base_url_override(self.base_url):
                await feed.subscribe()
                loop.create_task(client.connect_all_channels(), name=f"grvt-connect-{self.symbol}")
                feed.start_watchdog(loop, self.stale_after_s)
            while (step := await feed.next_step()) is not None:
                yield step
        finally:
            feed.close()
            try:
                await client.shutdown(loop)
            except GeneratorExit:  # finalised without `aclose()` (a reader that broke off): no awaiting
                client.abort(loop)
                raise
