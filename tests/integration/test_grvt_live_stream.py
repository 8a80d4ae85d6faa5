"""A live worker takes its fills and order states from GRVT's private streams (the real grvt-pysdk on the
local GRVT exchange), with the REST fill history only to reconcile.

What is judged is counted at the exchange: the REST calls it served (`GrvtSimServer.requests`), the
fills it made on the worker's sub-account, its position. Each test trades on a fresh sub-account.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bots.control import WorkerExit
from bots.engine.types import Side
from bots.exchange.base import OrderRequest, OrderStatus, OrderUpdate
from bots.venues.grvt.execution import GrvtExchange
from bots.venues.grvt.parse import parse_fill
from bots.venues.grvt.server.app import GrvtSimConfig, GrvtSimServerThread
from settings.models import BotSettings
from tests.integration.test_grvt_adapter import BUSY
from tests.integration.worker_harness import RunningWorker, new_credentials, start_worker, stop_worker

SYMBOL = "BTC_USDT_Perp"
TICK = Decimal("0.1")
LOT = Decimal("0.001")
_COIDS = itertools.count(7_000_000_001)


@pytest.fixture(scope="module")
def market() -> Iterator[GrvtSimServerThread]:
    params = {"trade_intensity_a": 20.0, "trade_decay_k": 400.0}
    with GrvtSimServerThread(GrvtSimConfig(seed=21, step_interval_s=0.05, market_params=params)) as server:
        yield server


@pytest.fixture(scope="module")
def still() -> Iterator[GrvtSimServerThread]:
    """A market that moves only when a test steps it: the worker's quotes stay where they are."""
    with GrvtSimServerThread(GrvtSimConfig(seed=22, step_interval_s=None)) as server:
        yield server


@pytest.fixture(autouse=True)
def _faults_cleared(market: GrvtSimServerThread, still: GrvtSimServerThread) -> Iterator[None]:
    yield
    market.faults.clear()
    still.faults.clear()


def _settings(url: str, name: str, *, order_lifetime_s: float | None = None, **risk: float) -> BotSettings:
    exchange: dict[str, Any] = {"mode": "live", "base_url": url, "request_timeout_s": 5.0}
    if order_lifetime_s is not None:  # else the setting's default
        exchange["order_lifetime_s"] = order_lifetime_s
    data = {"symbol": SYMBOL, "name": name, **BUSY, "exchange": exchange}
    return BotSettings.model_validate(data | {"risk": BUSY["risk"] | risk})


def _coid() -> str:
    return str(next(_COIDS))


def _requests(server: GrvtSimServerThread, endpoint: str) -> int:
    return server.call(lambda: server.server.requests[endpoint])


def _exchange_fills(server: GrvtSimServerThread, sub_account_id: str) -> list[dict[str, Any]]:
    return server.call(lambda: list(server.server.exchange.accounts.sub_accounts[sub_account_id].fills))


def _exchange_position(server: GrvtSimServerThread, sub_account_id: str) -> Decimal:
    account = server.server.exchange.accounts.sub_accounts[sub_account_id]
    return server.call(lambda: account.position(SYMBOL).size)


async def _until(check: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _streaming(running: RunningWorker) -> None:
    """Until the adapter serves fills from the stream (its start-up history read joined it)."""
    await _until(lambda: running.exchange.fills_streamed, "fills served from the stream")


def _books(running: RunningWorker) -> float:
    """Book events the worker decided on (its tick-to-quote observations)."""
    labels = {"bot": running.worker.name, "symbol": SYMBOL, "mode": "live"}
    count = running.worker.metrics.registry.get_sample_value("mmfleet_tick_to_quote_seconds_count", labels)
    return count or 0.0


def _agrees_with_the_exchange(server: GrvtSimServerThread, running: RunningWorker) -> None:
    """Every fill the exchange made on the account is in the ledger once, and only those; the
    worker's position is the exchange's."""
    made = sorted(parse_fill(row).fill_id for row in _exchange_fills(server, running.sub_account_id))
    booked = sorted(f.fill_id for f in running.ledger.fills(running.worker.name))
    assert booked == made, "the ledger's fills differ from the exchange's"
    assert running.worker.portfolio.fill_count == len(made), "a fill was applied twice, or not at all"
    assert running.worker.portfolio.position == _exchange_position(server, running.sub_account_id)


def test_fills_arrive_on_the_stream_without_a_history_call_per_book(
    market: GrvtSimServerThread, tmp_path: Path
) -> None:
    async def main() -> None:
        running = await start_worker(_settings(market.url, "stream-bot"), tmp_path / "ledger.db")
        try:
            await _streaming(running)
            history, books = _requests(market, "fill_history"), _books(running)
            fills = running.worker.portfolio.fill_count
            await _until(
                lambda: running.worker.portfolio.fill_count >= fills + 5 and _books(running) >= books + 20,
                "five fills and twenty book events",
            )
            assert _requests(market, "fill_history") == history  # not one history read: no reconnect
            assert not running.exchange.needs_reconcile
        finally:
            assert await stop_worker(running) is WorkerExit.STOPPED
        _agrees_with_the_exchange(market, running)

    asyncio.run(main())


def test_the_stream_serves_only_a_read_that_goes_on_from_the_last_cursor(market: GrvtSimServerThread) -> None:
    """A read from any other cursor (None: the whole history) cannot be served by the stream."""

    async def main() -> None:
        ex = GrvtExchange(_settings(market.url, "reader"), credentials=new_credentials())
        try:
            for _ in range(3):  # taking orders: fills at once
                book = await ex.book(SYMBOL)
                price = book.asks[0].price * Decimal("1.01")
                await ex.place_order(
                    OrderRequest(SYMBOL, Side.BUY, price.quantize(TICK), LOT, _coid(), post_only=False)
                )
            # a read joins the stream only once the trade-data websocket is live (subscribed): read the
            # whole history again until one did
            deadline = time.monotonic() + 30.0
            every, cursor = await ex.fills_since(SYMBOL, None)
            while not ex.fills_streamed:
                assert time.monotonic() < deadline, "no history read joined the stream"
                await asyncio.sleep(0.05)
                every, cursor = await ex.fills_since(SYMBOL, None)
            assert len(every) >= 3
            history = _requests(market, "fill_history")
            assert await ex.fills_since(SYMBOL, cursor) == ([], cursor)  # goes on: the stream, no call
            assert _requests(market, "fill_history") == history
            again, _ = await ex.fills_since(SYMBOL, None)  # from the start: the history
            assert [f.fill_id for f in again] == [f.fill_id for f in every]
            assert _requests(market, "fill_history") == history + 1
        finally:
            await ex.close()

    asyncio.run(main())


def test_fills_made_while_the_websocket_is_down_come_once_from_history(
    market: GrvtSimServerThread, tmp_path: Path
) -> None:
    async def main() -> None:
        running = await start_worker(_settings(market.url, "drop-bot"), tmp_path / "ledger.db")
        try:
            await _streaming(running)
            missed = 0
            for _ in range(5):  # until fills happened while the websocket was down
                reconnects, down_ns = running.exchange.reconnects, time.time_ns()
                history = _requests(market, "fill_history")
                market.faults.drop_websockets(refuse_s=1.5)
                await _until(lambda: running.exchange.reconnects > reconnects, "the reconnect")  # noqa: B023
                up_ns = time.time_ns()
                made = _exchange_fills(market, running.sub_account_id)
                missed += sum(down_ns <= int(row["event_time"]) <= up_ns for row in made)
                await _streaming(running)  # after a history read that took what the stream missed
                assert _requests(market, "fill_history") > history
                if missed:
                    break
            assert missed, "no fill happened while the websocket was down"
            fills = running.worker.portfolio.fill_count
            await _until(lambda: running.worker.portfolio.fill_count > fills, "a fill after the reconnect")
        finally:
            assert await stop_worker(running) is WorkerExit.STOPPED
        _agrees_with_the_exchange(market, running)

    asyncio.run(main())


def test_an_order_the_exchange_cancels_on_its_own_is_dropped_and_requoted(
    still: GrvtSimServerThread, tmp_path: Path
) -> None:
    credentials = new_credentials()

    async def main() -> None:
        settings = _settings(still.url, "state-bot", max_book_age_s=600.0)  # one book for the whole test
        running = await start_worker(settings, tmp_path / "ledger.db", credentials=credentials)
        by_hand = GrvtExchange(_settings(still.url, "by-hand"), credentials=credentials)
        events = running.exchange.stream_order_events(SYMBOL)
        try:
            await _until(lambda: len(running.worker.resting) >= 2, "resting quotes")
            cid = sorted(running.worker.resting)[0]
            price = running.worker.resting[cid].price_ticks
            reconciles = _requests(still, "fill_history") + _requests(still, "open_orders")
            await by_hand.cancel_order(SYMBOL, cid)  # cancelled on the account, not by the worker

            async def cancelled() -> OrderUpdate:
                async for event in events:
                    if (
                        isinstance(event, OrderUpdate)
                        and event.client_order_id == cid
                        and event.status.is_final
                    ):
                        return event
                raise AssertionError("the stream ended")

            update = await asyncio.wait_for(cancelled(), 10)
            assert update.status is OrderStatus.CANCELLED and update.reason == "cancelled"
            await _until(lambda: cid not in running.worker.resting, "the worker dropping the order")
            await _until(
                lambda: any(o.price_ticks == price for o in running.worker.resting.values()), "the requote"
            )
            assert _requests(still, "fill_history") + _requests(still, "open_orders") == reconciles
            tick = running.worker.settings.spec.tick_size
            assert any(o.price == price * tick for o in await by_hand.open_orders(SYMBOL))  # at the exchange
        finally:
            await events.aclose()
            await by_hand.close()
            assert await stop_worker(running) is WorkerExit.STOPPED

    asyncio.run(main())


def test_orders_at_the_end_of_their_signed_lifetime_expire_at_the_exchange_and_are_requoted(
    still: GrvtSimServerThread, tmp_path: Path
) -> None:
    """`exchange.order_lifetime_s`: the exchange ends each order that long after it was sent (a bot that
    died leaves nothing resting for longer); a running bot hears of it on the order stream and quotes
    again."""
    credentials = new_credentials()
    lifetime_s = 5.0  # the least allowed

    async def main() -> None:
        settings = _settings(still.url, "expiry-bot", order_lifetime_s=lifetime_s, max_book_age_s=600.0)
        running = await start_worker(settings, tmp_path / "ledger.db", credentials=credentials)
        by_hand = GrvtExchange(_settings(still.url, "by-hand"), credentials=credentials)
        try:
            await _until(lambda: len(running.worker.resting) >= 2, "resting quotes")
            await running.worker.quiescent()
            first = set(running.worker.resting)
            await asyncio.sleep(lifetime_s + 0.5)  # the market stands still: nothing replaced them
            assert set(running.worker.resting) == first
            still.step(1)  # the exchange ends what expired as it handles the next market step

            def ended() -> set[tuple[str, str]]:
                account = still.server.exchange.accounts.sub_accounts[running.sub_account_id]
                orders = [account.order(None, cid) for cid in first]
                return {(o.status, o.reject_reason) for o in orders if o is not None}

            assert still.call(ended) == {("CANCELLED", "EXPIRED")}
            await _until(lambda: bool(running.worker.resting) and not first & set(running.worker.resting),
                         "quotes again")  # fmt: skip
            await running.worker.quiescent()
            at_exchange = {o.client_order_id for o in await by_hand.open_orders(SYMBOL)}
            assert at_exchange == set(running.worker.resting)
        finally:
            await by_hand.close()
            assert await stop_worker(running) is WorkerExit.STOPPED

    asyncio.run(main())
