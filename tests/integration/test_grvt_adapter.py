"""The GRVT adapter with the real grvt-pysdk, over real sockets, against the local GRVT exchange.

Two local exchanges serve the module: `auto` steps its market every 50 ms (streams, faults, workers),
`manual` moves only when a test steps it (deterministic fills). Every test trades on its own
sub-account. Nothing leaves 127.0.0.1: a guard refuses any other address.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pysdk.grvt_ccxt_env as ccxt_env
import pysdk.grvt_ccxt_ws as ccxt_ws
import pysdk.grvt_raw_base as raw_base
import pytest
from prometheus_client import CollectorRegistry

from bots.control import WorkerExit
from bots.engine.portfolio import Portfolio
from bots.engine.types import Side
from bots.errors import RateLimited, Rejected, Timeout, TransientExchangeError, Unavailable
from bots.exchange.base import Exchange, OrderRequest, OrderStatus
from bots.exchange.factory import make_exchange, market_source
from bots.exchange.paper_exchange import PaperExchange
from bots.metrics import BotMetrics
from bots.retry import Backoff, retrying
from bots.store import Ledger
from bots.venues.grvt import fills as grvt_fills
from bots.venues.grvt import parse
from bots.venues.grvt.client import SDK_LOGGER_NAME
from bots.venues.grvt.endpoints import base_url_override, current_base_url
from bots.venues.grvt.execution import GrvtExchange, GrvtMarketData
from bots.venues.grvt.server.app import GrvtSimConfig, GrvtSimServerThread
from bots.worker import BotWorker
from settings.credentials import GrvtCredentials
from settings.models import BotSettings
from tests.integration.test_fleet import NEAR_TOUCH
from tests.integration.worker_harness import new_credentials

SYMBOL = "BTC_USDT_Perp"
TICK = Decimal("0.1")
LOT = Decimal("0.001")
T = TypeVar("T")
_COIDS = itertools.count(5_000_000_001)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# ----- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _localhost_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any name resolution other than the loopback fails the test: no test may reach the internet."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in _LOOPBACK and name is not None:
            raise AssertionError(f"a test tried to reach {name!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture(scope="module")
def auto() -> Iterator[GrvtSimServerThread]:
    params = {"trade_intensity_a": 20.0, "trade_decay_k": 400.0}
    with GrvtSimServerThread(GrvtSimConfig(seed=1, step_interval_s=0.05, market_params=params)) as server:
        yield server


@pytest.fixture(scope="module")
def manual() -> Iterator[GrvtSimServerThread]:
    params = {"max_spread_ticks": 12, "trade_intensity_a": 50.0, "trade_decay_k": 400.0}
    with GrvtSimServerThread(GrvtSimConfig(seed=2, step_interval_s=None, market_params=params)) as server:
        yield server


@pytest.fixture(autouse=True)
def _faults_cleared(auto: GrvtSimServerThread, manual: GrvtSimServerThread) -> Iterator[None]:
    yield
    auto.faults.clear()
    manual.faults.clear()


def _settings(url: str, mode: str = "live", **exchange: Any) -> BotSettings:
    return BotSettings.model_validate(
        {"symbol": SYMBOL, "exchange": {"mode": mode, "base_url": url, "request_timeout_s": 2.0, **exchange}}
    )


def _exchange(url: str, creds: GrvtCredentials | None = None, **exchange: Any) -> GrvtExchange:
    return GrvtExchange(_settings(url, **exchange), credentials=creds or new_credentials())


def _coid() -> str:
    return str(next(_COIDS))


def _order(side: Side, price: Decimal, size: Decimal = LOT, **kwargs: Any) -> OrderRequest:
    return OrderRequest(SYMBOL, side, price, size, kwargs.pop("coid", None) or _coid(), **kwargs)


def run(coro: Awaitable[T], timeout_s: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


async def _until(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _orders_with(server: GrvtSimServerThread, account: str, coid: str) -> int:
    """How many orders (active or finished) the exchange holds for one client order id."""

    def count() -> int:
        sub = server.server.exchange.accounts.sub_accounts.get(account)
        if sub is None:
            return 0
        return sum(o.client_order_id == coid for o in [*sub.active.values(), *sub.finished.values()])

    return server.call(count)


def _all_orders(server: GrvtSimServerThread) -> int:
    return server.call(
        lambda: sum(
            len(a.active) + len(a.finished) for a in server.server.exchange.accounts.sub_accounts.values()
        )
    )


async def _far_bid(ex: Exchange) -> Decimal:
    """A bid price the market will not reach during a test (5% under the best bid)."""
    book = await ex.book(SYMBOL)
    return (book.bids[0].price * Decimal("0.95")).quantize(TICK)


async def _inside_spread(server: GrvtSimServerThread, ex: Exchange) -> tuple[Decimal, Decimal]:
    """On the manual market: step until the spread is at least 3 ticks; (a bid inside it, best bid)."""
    for _ in range(200):
        book = await ex.book(SYMBOL)
        if book.asks[0].price - book.bids[0].price >= 3 * TICK:
            return book.bids[0].price + TICK, book.bids[0].price
        await asyncio.to_thread(server.step, 1)
    raise AssertionError("the manual market never showed a 3-tick spread")


# ----- the endpoint shim ------------------------------------------------------------------------------


def test_the_override_points_every_sdk_endpoint_at_one_host_only_inside_the_block() -> None:
    url = "http://127.0.0.1:9"
    testnet = ccxt_env.GrvtEnv.TESTNET
    sdk_rest = ccxt_env.get_grvt_endpoint(testnet, "CREATE_ORDER")
    assert sdk_rest.startswith("https://trades.testnet.grvt.io/")
    with base_url_override(url):
        assert current_base_url() == url
        assert ccxt_env.get_grvt_endpoint(testnet, "CREATE_ORDER") == f"{url}/full/v1/create_order"
        assert ccxt_env.get_grvt_endpoint(testnet, "AUTH") == f"{url}/auth/api_key/login"
        assert ccxt_env.get_grvt_endpoint(testnet, "GET_ORDER_BOOK") == f"{url}/full/v1/book"
        market_ws = ccxt_ws.get_grvt_ws_endpoint("testnet", ccxt_env.GrvtWSEndpointType.MARKET_DATA)
        trade_rpc = ccxt_ws.get_grvt_ws_endpoint("testnet", ccxt_env.GrvtWSEndpointType.TRADE_DATA_RPC_FULL)
        assert (market_ws, trade_rpc) == ("ws://127.0.0.1:9/ws", "ws://127.0.0.1:9/ws/full")
        raw = raw_base.get_env_config(raw_base.GrvtEnv.TESTNET)
        assert (raw.edge.rpc_endpoint, raw.market_data.ws_endpoint, raw.chain_id) == (
            url,
            f"{market_ws}",
            326,
        )
        with base_url_override(None):  # nested: the SDK's own hosts again
            assert ccxt_env.get_grvt_endpoint(testnet, "CREATE_ORDER") == sdk_rest
    assert ccxt_env.get_grvt_endpoint(testnet, "CREATE_ORDER") == sdk_rest  # nothing leaked
    with base_url_override(url + "/"), base_url_override(url):  # idempotent, trailing slash ignored
        assert ccxt_env.get_grvt_endpoint(testnet, "AUTH") == f"{url}/auth/api_key/login"
    with pytest.raises(ValueError, match="base_url"):
        base_url_override("ftp://example").__enter__()


def test_two_clients_with_different_hosts_in_one_process_do_not_leak(
    auto: GrvtSimServerThread, manual: GrvtSimServerThread
) -> None:
    async def main() -> None:
        on_auto, on_manual = _exchange(auto.url), _exchange(manual.url)
        try:
            for _ in range(3):  # interleaved calls from concurrent tasks
                a, m = await asyncio.gather(on_auto.open_orders(SYMBOL), on_manual.open_orders(SYMBOL))
                assert a == m == []
            await on_auto.place_order(_order(Side.BUY, await _far_bid(on_auto)))
            assert len(await on_auto.open_orders(SYMBOL)) == 1
            assert await on_manual.open_orders(SYMBOL) == []  # the order went to `auto` only
        finally:
            await asyncio.gather(on_auto.close(), on_manual.close())

    run(main())


# ----- market data, orders, account ---------------------------------------------------------------------


def test_instrument_book_and_streams_come_from_the_exchange(auto: GrvtSimServerThread) -> None:
    async def main() -> None:
        ex = _exchange(auto.url)
        try:
            info = await ex.instrument(SYMBOL)
            assert (info.tick_size, info.lot_size, info.min_size) == (TICK, LOT, LOT)
            book = await ex.book(SYMBOL)
            assert book.bids[0].price < book.asks[0].price
            assert all(a.price > b.price for a, b in itertools.pairwise(book.bids))
            books = []
            async for update in ex.stream_books(SYMBOL):
                books.append(update)
                if len(books) == 5:
                    break
            assert [b.ts_ns for b in books] == sorted(b.ts_ns for b in books)
            assert all(b.bids and b.asks and b.bids[0].price < b.asks[0].price for b in books)
            assert abs(time.time_ns() - books[-1].ts_ns) < 5_000_000_000
            trades = ex.stream_trades(SYMBOL)
            trade = await anext(trades)
            await trades.aclose()
            assert trade.symbol == SYMBOL and trade.price > 0 and trade.size > 0
            with pytest.raises(Exception, match="trades BTC_USDT_Perp"):
                await ex.book("ETH_USDT_Perp")
        finally:
            await ex.close()

    run(main())


def test_orders_are_placed_cancelled_and_cancel_all_leaves_nothing_resting(auto: GrvtSimServerThread) -> None:
    async def main() -> None:
        ex = _exchange(auto.url)
        try:
            price = await _far_bid(ex)
            first = await ex.place_order(_order(Side.BUY, price))
            assert first.status is OrderStatus.OPEN and first.exchange_order_id
            assert (first.price, first.size, first.filled_size, first.side) == (
                price,
                LOT,
                Decimal(0),
                Side.BUY,
            )
            resting = await ex.open_orders(SYMBOL)
            assert [o.client_order_id for o in resting] == [first.client_order_id]
            await ex.cancel_order(SYMBOL, first.client_order_id)
            assert await ex.open_orders(SYMBOL) == []
            await ex.cancel_order(SYMBOL, first.client_order_id)  # already gone: not an error
            await ex.cancel_order(SYMBOL, _coid())  # never existed: not an error either
            book = await ex.book(SYMBOL)
            ask = (book.asks[0].price * Decimal("1.05")).quantize(TICK)
            for request in (_order(Side.BUY, price), _order(Side.BUY, price - TICK), _order(Side.SELL, ask)):
                await ex.place_order(request)
            assert await ex.cancel_all(SYMBOL) == 3
            assert await ex.open_orders(SYMBOL) == []  # no orphan
            assert await ex.cancel_all(SYMBOL) == 0
        finally:
            await ex.close()

    run(main())


def test_placing_the_same_client_order_id_twice_makes_one_order(auto: GrvtSimServerThread) -> None:
    creds = new_credentials()

    async def main() -> None:
        ex = _exchange(auto.url, creds)
        other = _exchange(auto.url, creds)  # another process (a restarted one) with the same account
        try:
            request = _order(Side.BUY, await _far_bid(ex))
            first = await ex.place_order(request)
            again = await ex.place_order(request)  # a retry in this process: looked up, not resent
            elsewhere = await other.place_order(request)  # GRVT's duplicate check, answered with the order
            assert first.exchange_order_id == again.exchange_order_id == elsewhere.exchange_order_id
            assert len(await ex.open_orders(SYMBOL)) == 1
            assert (
                _orders_with(auto, creds.trading_account_id.get_secret_value(), request.client_order_id) == 1
            )
            await ex.cancel_all(SYMBOL)
        finally:
            await asyncio.gather(ex.close(), other.close())

    run(main())


def test_orders_off_the_grid_are_refused_before_sending_and_crossing_post_only_is_rejected(
    auto: GrvtSimServerThread,
) -> None:
    async def main() -> None:
        ex = _exchange(auto.url)
        try:
            price = await _far_bid(ex)
            before = _all_orders(auto)
            cases = {
                "price_off_tick": _order(Side.BUY, price + TICK / 2),
                "size_off_lot": _order(Side.BUY, price, LOT * Decimal("1.5")),
                "size_not_positive": _order(Side.BUY, price, Decimal(0)),
                "bad_client_order_id": _order(Side.BUY, price, coid="abc"),
            }
            for reason, request in cases.items():
                with pytest.raises(Rejected) as refused:
                    await ex.place_order(request)
                assert refused.value.reason == reason
            assert _all_orders(auto) == before  # none was sent
            book = await ex.book(SYMBOL)
            with pytest.raises(Rejected) as crossed:
                await ex.place_order(_order(Side.BUY, book.asks[0].price + 50 * TICK))
            assert crossed.value.reason == "post_only_would_cross"
            assert await ex.open_orders(SYMBOL) == []
        finally:
            await ex.close()

    run(main())


def test_fills_position_and_balance_follow_the_exchange(manual: GrvtSimServerThread) -> None:
    async def main() -> None:
        ours, theirs = _exchange(manual.url), _exchange(manual.url)
        try:
            start_balance = await ours.balance()
            assert start_balance == Decimal(10_000)
            assert await ours.fills_since(SYMBOL, None) == ([], None)
            bid, _ = await _inside_spread(manual, ours)
            maker = await ours.place_order(_order(Side.BUY, bid, 2 * LOT))
            await theirs.place_order(_order(Side.SELL, bid, 2 * LOT, post_only=False))  # hits our bid
            fills, cursor = await ours.fills_since(SYMBOL, None)
            assert [(f.client_order_id, f.side, f.price, f.size, f.is_taker) for f in fills] == [
                (maker.client_order_id, Side.BUY, bid, 2 * LOT, False)
            ]
            assert fills[0].fee < 0  # a maker rebate
            assert await ours.fills_since(SYMBOL, cursor) == ([], cursor)
            book = await ours.book(SYMBOL)
            taker = await ours.place_order(
                _order(Side.SELL, book.bids[0].price - 20 * TICK, LOT, post_only=False)
            )
            assert taker.status is OrderStatus.FILLED
            more, cursor2 = await ours.fills_since(SYMBOL, cursor)
            assert [f.client_order_id for f in more] == [taker.client_order_id] and more[0].is_taker
            assert await ours.position(SYMBOL) == LOT == sum(f.size * f.side.sign for f in [*fills, *more])
            booked = Portfolio.replay([*fills, *more], starting_balance=start_balance, symbol=SYMBOL)
            assert await ours.balance() == booked.cash  # realized PnL minus fees, as the ledger books it
            assert await theirs.position(SYMBOL) == -2 * LOT
            assert cursor2 != cursor
        finally:
            await asyncio.gather(ours.close(), theirs.close())

    run(main())


def test_fills_since_reads_every_page_of_the_history(
    auto: GrvtSimServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grvt_fills, "PAGE_LIMIT", 2)

    async def main() -> None:
        ex = _exchange(auto.url)
        try:
            for _ in range(5):
                book = await ex.book(SYMBOL)
                await ex.place_order(_order(Side.BUY, book.asks[0].price + 20 * TICK, post_only=False))
            fills, cursor = await ex.fills_since(SYMBOL, None)
            assert len({f.fill_id for f in fills}) == len(fills) >= 5
            assert [f.ts_ns for f in fills] == sorted(f.ts_ns for f in fills)
            assert sum(f.size for f in fills) == 5 * LOT == await ex.position(SYMBOL)
            assert await ex.fills_since(SYMBOL, cursor) == ([], cursor)
        finally:
            await ex.close()

    run(main())


# ----- faults ------------------------------------------------------------------------------------------


def test_a_5xx_is_unavailable_and_a_retry_places_exactly_one_order(auto: GrvtSimServerThread) -> None:
    creds = new_credentials()

    async def main() -> None:
        ex = _exchange(auto.url, creds)
        try:
            request = _order(Side.BUY, await _far_bid(ex))
            auto.faults.http_errors(503, 1, path="create_order")
            with pytest.raises(Unavailable) as down:
                await ex.place_order(request)
            assert down.value.status == 503
            assert ex.needs_reconcile
            auto.faults.http_errors(500, 2, path="create_order")
            errors: list[TransientExchangeError] = []
            placed = await retrying(
                lambda: ex.place_order(request),
                policy=Backoff(attempts=4, base_s=0.01),
                on_error=errors.append,
            )
            assert len(errors) == 2 and all(isinstance(e, Unavailable) for e in errors)
            assert placed.status is OrderStatus.OPEN
            assert (
                _orders_with(auto, creds.trading_account_id.get_secret_value(), request.client_order_id) == 1
            )
            auto.faults.http_errors(503, 1, path="open_orders")  # a read fails loudly, never as "no orders"
            with pytest.raises(Unavailable):
                await ex.open_orders(SYMBOL)
            assert await ex.cancel_all(SYMBOL) == 1
            assert await ex.open_orders(SYMBOL) == []
        finally:
            await ex.close()

    run(main())


def test_a_429_is_rate_limited_with_the_exchanges_retry_after(auto: GrvtSimServerThread) -> None:
    async def main() -> None:
        ex = _exchange(auto.url)
        try:
            await ex.instrument(SYMBOL)
            auto.faults.rate_limit(1, retry_after_s=0.4, path="open_orders")
            with pytest.raises(RateLimited) as limited:
                await ex.open_orders(SYMBOL)
            assert limited.value.retry_after_s == pytest.approx(0.4)
            auto.faults.rate_limit(1, retry_after_s=0.4, path="open_orders")
            started = time.monotonic()
            orders = await retrying(
                lambda: ex.open_orders(SYMBOL), policy=Backoff(base_s=0.001), on_error=lambda e: None
            )
            assert orders == [] and time.monotonic() - started >= 0.4  # waited as told
        finally:
            await ex.close()

    run(main())


def test_a_timeout_then_a_retry_of_the_same_order_makes_one_order(auto: GrvtSimServerThread) -> None:
    creds = new_credentials()

    async def main() -> None:
        ex = _exchange(auto.url, creds)
        try:
            request = _order(Side.BUY, await _far_bid(ex))
            await ex.instrument(SYMBOL)  # logged in, instruments loaded: only the order is slow
            auto.faults.latency(2.5)  # longer than request_timeout_s: the exchange handles it afterwards
            with pytest.raises(Timeout):
                await ex.place_order(request)
            auto.faults.latency(0)
            placed = await retrying(
                lambda: ex.place_order(request), policy=Backoff(base_s=0.2), on_error=lambda e: None
            )
            await asyncio.sleep(2.0)  # the late first request has been handled by now
            account = creds.trading_account_id.get_secret_value()
            assert _orders_with(auto, account, request.client_order_id) == 1
            resting = await ex.open_orders(SYMBOL)
            assert [o.exchange_order_id for o in resting] == [placed.exchange_order_id]
            assert await ex.cancel_all(SYMBOL) == 1 and await ex.open_orders(SYMBOL) == []
        finally:
            await ex.close()

    run(main())


def test_injected_rejects_are_rejected_with_their_reason(auto: GrvtSimServerThread) -> None:
    async def main() -> None:
        ex = _exchange(auto.url)
        try:
            price = await _far_bid(ex)
            auto.faults.reject_next(1, "BELOW_MARGIN")  # an order that comes back REJECTED
            with pytest.raises(Rejected) as rejected:
                await ex.place_order(_order(Side.BUY, price))
            assert rejected.value.reason == "below_margin"
            auto.faults.reject_next(1, 2081)  # a refusal with a GRVT error code
            with pytest.raises(Rejected) as refused:
                await ex.place_order(_order(Side.BUY, price))
            assert refused.value.reason == "exceed_max_position_size"
            auto.faults.reject_next(1, 2000)  # a signature from an unauthorized signer (a wrong key)
            with pytest.raises(Rejected) as unsigned:
                await ex.place_order(_order(Side.BUY, price))
            assert unsigned.value.reason == "bad_signature"
            assert await ex.open_orders(SYMBOL) == []
            assert (await ex.place_order(_order(Side.BUY, price))).status is OrderStatus.OPEN
            await ex.cancel_all(SYMBOL)
        finally:
            await ex.close()

    run(main())


def test_a_websocket_drop_reconnects_and_fills_missed_meanwhile_come_from_history(
    auto: GrvtSimServerThread,
) -> None:
    async def main() -> None:
        ex = _exchange(auto.url)
        try:
            books = ex.stream_books(SYMBOL)
            await anext(books)
            _, cursor = await ex.fills_since(SYMBOL, None)
            report = await ex.reconcile((), cursor)
            assert not ex.needs_reconcile and report.cursor == cursor
            auto.faults.drop_websockets(refuse_s=2.0)
            book = await ex.book(SYMBOL)  # REST still works while the websocket is down
            missed = await ex.place_order(_order(Side.BUY, book.asks[0].price + 20 * TICK, post_only=False))
            first_after = None
            deadline = time.monotonic() + 30
            async for update in books:  # the stream goes on after the reconnect
                if ex.reconnects >= 1 and first_after is None:
                    first_after = update
                if first_after is not None and update.ts_ns > first_after.ts_ns:
                    break
                assert time.monotonic() < deadline, "no book after the reconnect"
            await books.aclose()
            assert ex.reconnects >= 1 and ex.needs_reconcile
            fills, cursor = await ex.fills_since(SYMBOL, cursor)
            assert {f.client_order_id for f in fills} == {missed.client_order_id}
            assert sum(f.size for f in fills) == LOT
            report = await ex.reconcile((), cursor)
            assert report.fills == () and report.position == LOT and not ex.needs_reconcile
        finally:
            await ex.close()

    run(main(), timeout_s=90)


def test_partial_fills_leave_the_rest_resting(manual: GrvtSimServerThread) -> None:
    async def main() -> None:
        ex = _exchange(manual.url)
        try:
            bid, _ = await _inside_spread(manual, ex)
            size = 2 * LOT  # a print fills at most half of it: one lot, the other left resting
            await ex.place_order(_order(Side.BUY, bid, size))
            manual.faults.partial_fills(0.5)
            fills: list[Any] = []
            for _ in range(100):
                await asyncio.to_thread(manual.step, 1)
                fills, _cursor = await ex.fills_since(SYMBOL, None)
                if fills:
                    break
            assert max(f.size for f in fills) == size / 2  # the first fill took half of it
            # a step may print twice (both halves): the stream may still bring the second fill when
            # the position already counts it (seen: fills 0.001, position 0.002)
            position = await ex.position(SYMBOL)
            for _ in range(100):
                if sum(f.size for f in fills) >= position:
                    break
                await asyncio.sleep(0.05)
                fills, _cursor = await ex.fills_since(SYMBOL, None)
            filled = sum(f.size for f in fills)
            assert filled == position
            resting = await ex.open_orders(SYMBOL)
            if filled < size:  # (ten trades in one step would have filled it all)
                assert [(o.status, o.filled_size) for o in resting] == [(OrderStatus.OPEN, filled)]
                assert await ex.cancel_all(SYMBOL) == 1
            assert await ex.open_orders(SYMBOL) == []
        finally:
            await ex.close()

    run(main())


# ----- reconciliation and restarts --------------------------------------------------------------------


def test_reconcile_reports_unknown_orders_and_cancels_them_only_when_configured(
    auto: GrvtSimServerThread,
) -> None:
    creds = new_credentials()

    async def main() -> None:
        earlier = _exchange(auto.url, creds)  # a previous life of the bot, or a human in the UI
        try:
            price = await _far_bid(earlier)
            ours = await earlier.place_order(_order(Side.BUY, price))
            stray = await earlier.place_order(_order(Side.BUY, price - TICK))
        finally:
            await earlier.close()
        reporter = _exchange(auto.url, creds)
        assert reporter.capabilities.reconciles and reporter.needs_reconcile
        try:
            report = await reporter.reconcile([ours.client_order_id, "123"])
            assert [o.client_order_id for o in report.unknown_orders] == [stray.client_order_id]
            assert report.cancelled_unknown == () and report.missing_client_order_ids == ("123",)
            assert len(await reporter.open_orders(SYMBOL)) == 2  # reported only
        finally:
            await reporter.close()
        canceller = _exchange(auto.url, creds, cancel_unknown_orders=True)
        try:
            report = await canceller.reconcile([ours.client_order_id])
            assert report.cancelled_unknown == (stray.client_order_id,)
            assert [o.client_order_id for o in await canceller.open_orders(SYMBOL)] == [ours.client_order_id]
            await canceller.cancel_all(SYMBOL)
        finally:
            await canceller.close()

    run(main())


def test_a_restarted_bot_ends_up_with_the_exchanges_position(auto: GrvtSimServerThread) -> None:
    creds = new_credentials()

    async def main() -> None:
        first = _exchange(auto.url, creds)
        try:
            for side in (Side.BUY, Side.BUY, Side.SELL, Side.BUY):
                book = await first.book(SYMBOL)
                price = book.asks[0].price + 20 * TICK if side is Side.BUY else book.bids[0].price - 20 * TICK
                await first.place_order(_order(side, price, post_only=False))
            every, _ = await first.fills_since(SYMBOL, None)
            early = [f for f in every if f.ts_ns < every[-1].ts_ns]  # the ledger saw all but the last order
            cursor = parse.encode_cursor(
                early[-1].ts_ns, {f.fill_id for f in early if f.ts_ns == early[-1].ts_ns}
            )
        finally:
            await first.close()
        restarted = _exchange(auto.url, creds)
        try:
            ledger = Portfolio.replay(early, starting_balance=Decimal(10_000), symbol=SYMBOL)
            report = await restarted.reconcile((), cursor)
            known = {f.fill_id for f in early}
            new = [f for f in report.fills if f.fill_id not in known]  # the ledger drops repeats by id
            assert {f.fill_id for f in new} == {f.fill_id for f in every} - known
            for fill in new:
                ledger.apply(fill)
            assert report.position == 2 * LOT == ledger.position == await restarted.position(SYMBOL)
            assert report.adjustment_fill(ledger.position) is None
            # A ledger missing fills the history no longer has: the adjustment closes the gap.
            stale = Portfolio.replay(early[:1], starting_balance=Decimal(10_000), symbol=SYMBOL)
            adjustment = report.adjustment_fill(stale.position)
            assert adjustment is not None
            stale.apply(adjustment)
            assert stale.position == report.position
            everything = Portfolio.replay((await restarted.fills_since(SYMBOL, None))[0], symbol=SYMBOL)
            assert everything.position == report.position  # from the start of the history
        finally:
            await restarted.close()

    run(main())


# ----- the factory's modes with a real worker -------------------------------------------------------------

# A bot's fills on the local server, live or paper, come with a trade's own volume after the size the book
# shows at better prices (the server's matching and the paper fill model agree). The server's prints land
# ~25 bp deep, through every visible level, so a busy bot quotes at the touch (a fixed large kappa: the
# model's spread is under the 0.5 bp floor), where each print on its side reaches it first; its orders
# follow every tick.
TOUCH_STRATEGY = {**NEAR_TOUCH, "kappa": 100_000.0, "grid_layers": 2, "refresh_interval_s": 0.2}
BUSY = {"strategy": TOUCH_STRATEGY, "risk": {"max_loss_usd": 1_000.0, "max_drawdown_pct": 0.5}}


async def _with_worker(
    tmp_path: Path, settings: BotSettings, body: Callable[[BotWorker, Ledger], Awaitable[None]]
) -> tuple[BotWorker, Ledger]:
    ledger = Ledger(tmp_path / "ledger.db")
    portfolio = ledger.restore_portfolio(settings.name, settings.symbol, settings.paper.starting_balance_usd)
    exchange = await make_exchange(settings, portfolio)
    metrics = BotMetrics(
        CollectorRegistry(),
        settings.name,
        settings.symbol,
        settings.exchange.mode,
        settings.strategy.grid_layers,
    )
    worker = BotWorker(settings, exchange, ledger, metrics, backoff=Backoff(attempts=3, base_s=0.01))
    task = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + 20
        while worker.last_book is None:
            assert time.monotonic() < deadline and not task.done(), "no first book"
            await asyncio.sleep(0.05)
        await body(worker, ledger)
    finally:
        worker.request_stop()
        assert await asyncio.wait_for(task, timeout=30) is WorkerExit.STOPPED
        assert await exchange.open_orders(settings.symbol) == []
        await exchange.close()
    return worker, ledger


def _with_busy(url: str, mode: str) -> BotSettings:
    data: dict[str, Any] = {"symbol": SYMBOL, "name": f"{mode}-bot", **BUSY}
    data["exchange"] = {"mode": mode, "base_url": url, "request_timeout_s": 2.0}
    return BotSettings.model_validate(data)


async def _fills(worker: BotWorker, n: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while worker.portfolio.fill_count < n:
        assert time.monotonic() < deadline, f"fewer than {n} fills"
        await asyncio.sleep(0.1)


def test_paper_mode_quotes_on_the_exchanges_book_and_never_sends_an_order(
    auto: GrvtSimServerThread, tmp_path: Path
) -> None:
    settings = _with_busy(auto.url, "paper")
    orders_before = _all_orders(auto)

    async def body(worker: BotWorker, ledger: Ledger) -> None:
        assert isinstance(worker.exchange, PaperExchange)
        mid = auto.call(lambda: auto.server.market(SYMBOL).mid)
        assert worker.last_book is not None
        assert abs(float(worker.last_book.top().bid_price) - mid) / mid < 0.01  # the exchange's book
        await _fills(worker, 3)

    worker, ledger = run(_with_worker(tmp_path, settings, body))
    assert len(ledger.fills(worker.name)) >= 3  # fills from the paper fill model, booked
    assert _all_orders(auto) == orders_before  # not one order reached the exchange


def test_market_source_for_paper_is_the_exchanges_public_data_and_closes_its_socket(
    auto: GrvtSimServerThread,
) -> None:
    settings = _with_busy(auto.url, "paper")

    def connections() -> int:
        return auto.call(lambda: len(auto.server.hub.connections))

    async def main() -> None:
        steps = market_source(settings)
        got = [await anext(steps) for _ in range(20)]
        assert all(book.symbol == SYMBOL and book.bids and book.asks for book, _ in got)
        assert any(trades for _, trades in got)  # trades ride with the next book
        open_now = connections()
        await steps.aclose()  # type: ignore[attr-defined]

        async def closed() -> bool:
            return connections() < open_now

        await _until(closed, timeout_s=5, what="the websocket closed")
        async for book, _ in GrvtMarketData(SYMBOL, base_url=auto.url):  # the class iterates as well
            assert book.symbol == SYMBOL
            break

    run(main())


def test_a_live_worker_trades_on_the_exchange_and_restarts_with_its_position(
    auto: GrvtSimServerThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = new_credentials()
    for name, secret in (("API_KEY", creds.api_key), ("PRIVATE_KEY", creds.private_key)):
        monkeypatch.setenv(f"GRVT_{name}", secret.get_secret_value())
    monkeypatch.setenv("GRVT_TRADING_ACCOUNT_ID", creds.trading_account_id.get_secret_value())
    settings = _with_busy(auto.url, "live")

    async def trade(worker: BotWorker, ledger: Ledger) -> None:
        assert isinstance(worker.exchange, GrvtExchange)
        await _fills(worker, 2, timeout_s=45)

    worker, ledger = run(_with_worker(tmp_path, settings, trade), timeout_s=120)
    exchange_position = run(_position(settings))
    fills_before = len(ledger.fills(worker.name))
    assert sum(f.size * f.side.sign for f in ledger.fills(worker.name)) == exchange_position

    async def restart(worker: BotWorker, ledger: Ledger) -> None:
        if worker.portfolio.fill_count == fills_before:  # (no new fill yet since the restart)
            assert worker.portfolio.position == exchange_position  # rebuilt from the ledger and its cursor

    run(_with_worker(tmp_path, settings, restart), timeout_s=120)
    assert sum(f.size * f.side.sign for f in ledger.fills(worker.name)) == run(_position(settings))


async def _position(settings: BotSettings) -> Decimal:
    exchange = GrvtExchange(settings)
    try:
        return await exchange.position(SYMBOL)
    finally:
        await exchange.close()


# ----- secrets ---------------------------------------------------------------------------------------------


def test_credentials_never_reach_a_log_line_or_an_error(
    auto: GrvtSimServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    creds = new_credentials()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=SDK_LOGGER_NAME)
    errors: list[str] = []

    async def main() -> None:
        ex = _exchange(auto.url, creds)
        try:
            book = await ex.book(SYMBOL)
            await ex.place_order(_order(Side.BUY, book.asks[0].price + 20 * TICK, post_only=False))
            await ex.fills_since(SYMBOL, None)
            faults: list[Callable[[], None]] = [
                lambda: auto.faults.http_errors(503, 1),
                lambda: auto.faults.reject_next(1, 2000),
            ]
            for fault in faults:
                fault()
                try:
                    await ex.place_order(_order(Side.BUY, await _far_bid(ex)))
                except Exception as exc:  # collecting every message
                    errors.append(repr(exc))
            books = ex.stream_books(SYMBOL)
            await anext(books)
            await books.aclose()
        finally:
            await ex.close()

    run(main())
    assert len(errors) == 2
    assert any(r.name == SDK_LOGGER_NAME for r in caplog.records)  # the SDK did log
    text = "\n".join([*(r.getMessage() for r in caplog.records), *errors])
    for secret in (creds.api_key, creds.private_key):
        value = secret.get_secret_value()
        assert value not in text and value.removeprefix("0x") not in text
    assert "gravity=" not in text.replace("gravity=***", "")
