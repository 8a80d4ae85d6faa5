"""The local GRVT exchange driven by the real grvt-pysdk clients (`GrvtCcxtPro`, `GrvtCcxtWS`).

The server runs in its own thread (the SDK logs in with a blocking request in its constructors) on
127.0.0.1 with manual market steps, so every test decides when the market moves. Replies are also
parsed strictly with the SDK's own dataclasses (`pysdk.grvt_raw_types`), the way `GrvtRawAsync` does.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from enum import Enum
from typing import Any

import aiohttp
import pytest
from dacite import Config, from_dict
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import given, settings
from hypothesis import strategies as st
from pysdk import grvt_raw_types as raw
from pysdk.grvt_ccxt_env import GrvtEnv, GrvtWSEndpointType, get_grvt_endpoint
from pysdk.grvt_ccxt_pro import GrvtCcxtPro
from pysdk.grvt_ccxt_utils import get_grvt_order, get_order_payload
from pysdk.grvt_ccxt_ws import GrvtCcxtWS
from pysdk.grvt_raw_async import GrvtRawAsync
from pysdk.grvt_raw_base import GrvtApiConfig, GrvtError
from pysdk.grvt_raw_env import GrvtEnv as RawEnv
from pysdk.grvt_raw_signing import sign_order
from typer.testing import CliRunner

from bots.cli import app
from bots.engine.types import Side
from bots.exchange.base import BookLevel, BookUpdate, Trade
from bots.venues.grvt.server.app import GrvtSimConfig, GrvtSimServerThread
from bots.venues.grvt.server.book import BookOrder, InstrumentBook
from bots.venues.grvt.server.faults import parse_fault_spec
from tests.integration.grvt_shim import sdk_pointed_at

BTC = "BTC_USDT_Perp"
CONFIGURED_KEY: LocalAccount = Account.create()
CONFIGURED_SUB = "777000111"


@pytest.fixture(scope="module")
def sim() -> Iterator[GrvtSimServerThread]:
    mp = pytest.MonkeyPatch()
    mp.setenv("NO_PROXY", "127.0.0.1,localhost")  # `requests` (the SDK's login) must never use a proxy
    config = GrvtSimConfig(step_interval_s=None, seed=7, signers={CONFIGURED_SUB: CONFIGURED_KEY.address})
    with GrvtSimServerThread(config) as server, sdk_pointed_at(server.url):
        assert server.url.startswith("http://127.0.0.1:")
        yield server
    mp.undo()


@pytest.fixture(autouse=True)
def _faults_off(sim: GrvtSimServerThread) -> Iterator[None]:
    sim.faults.clear()
    yield
    sim.faults.clear()


def run(coro: Awaitable[None]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro, timeout=45)

    asyncio.run(bounded())


def new_sub() -> str:
    return str(random.randrange(10**9, 10**12))


@asynccontextmanager
async def pro(sub: str | None = None, key: LocalAccount | None = None) -> AsyncIterator[GrvtCcxtPro]:
    """A logged-in async client with markets loaded, on a fresh sub-account by default."""
    sub = sub or new_sub()
    key = key or Account.create()
    params = {"api_key": f"api-key-{sub}", "private_key": key.key.hex(), "trading_account_id": sub}
    client = GrvtCcxtPro(GrvtEnv.TESTNET, parameters=params)
    try:
        await client.load_markets()
        yield client
    finally:
        await client._session.close()
        client._session = None  # its __del__ would schedule a second close on a dead loop


def reply(client: GrvtCcxtPro, endpoint: str) -> dict[str, Any]:
    """The last raw reply body the client got from an endpoint (the SDK hides errors in it)."""
    body: dict[str, Any] = client.get_endpoint_return_value(get_grvt_endpoint(client.env, endpoint))
    return body


def strict(cls: type[Any], body: dict[str, Any]) -> Any:
    """Parse a reply with the SDK's dataclass, rejecting missing, extra or mistyped fields."""
    return from_dict(cls, body, Config(cast=[Enum], strict=True))


async def best(client: GrvtCcxtPro, symbol: str = BTC) -> tuple[float, float]:
    book = await client.fetch_order_book(symbol, 10)
    return float(book["bids"][0]["price"]), float(book["asks"][0]["price"])


async def post_only(
    client: GrvtCcxtPro, side: str, size: str, price: float, cid: int | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {"post_only": True, "client_order_id": cid or random.randrange(1, 2**62)}
    result: dict[str, Any] = await client.create_order(
        BTC, "limit", side, size, f"{price:.1f}", params=params
    )
    return result


def step_until(sim: GrvtSimServerThread, done: Callable[[], bool], max_steps: int = 2000) -> int:
    for steps in range(max_steps):
        if sim.call(done):
            return steps
        sim.step(1)
    raise AssertionError(f"not done after {max_steps} market steps")


def fills_of(sim: GrvtSimServerThread, sub: str) -> Callable[[], bool]:
    return lambda: bool(sim.server.exchange.accounts.sub_accounts[sub].fills)


async def until(
    predicate: Callable[[], bool], timeout_s: float = 15.0, *, stepping: GrvtSimServerThread | None = None
) -> None:
    """Wait for `predicate`, stepping the market of `stepping` once per poll when given."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        if stepping is not None:
            stepping.step(1)
        await asyncio.sleep(0.05)


# -- login, market data -----------------------------------------------------------------------------
def test_login_sets_the_session_cookie_and_account_header(sim: GrvtSimServerThread) -> None:
    async def body() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{sim.url}/full/v1/positions", json={"sub_account_id": "1"}) as r:
                assert r.status == 401
                assert await r.json() == {
                    "code": 1000,
                    "message": "You need to authenticate prior to using this functionality",
                    "status": 401,
                }
            async with http.post(f"{sim.url}/auth/api_key/login", json={"api_key": "anything"}) as r:
                assert r.status == 200
                assert r.cookies["gravity"].value
                assert r.headers["X-Grvt-Account-Id"].startswith("0x")
        async with pro() as client:
            assert client._cookie is not None
            assert client._cookie["expires"] > time.time() + 3600
            assert client._cookie["X-Grvt-Account-Id"]

    run(body())


def test_markets_book_and_tickers_parse_with_the_sdk_types(sim: GrvtSimServerThread) -> None:
    async def body() -> None:
        async with pro() as client:
            assert sorted(client.markets) == ["BTC_USDT_Perp", "ETH_USDT_Perp", "SOL_USDT_Perp"]
            btc = client.markets[BTC]
            assert (btc["instrument_hash"], btc["base_decimals"], btc["tick_size"], btc["min_size"]) == (
                "0x030501",
                9,
                "0.1",
                "0.001",
            )
            assert client.markets["ETH_USDT_Perp"]["instrument_hash"] == "0x030401"
            strict(raw.ApiGetFilteredInstrumentsResponse, reply(client, "GET_INSTRUMENTS"))
            book = await client.fetch_order_book(BTC, 5)
            strict(raw.ApiOrderbookLevelsResponse, reply(client, "GET_ORDER_BOOK"))
            assert len(book["bids"]) == len(book["asks"]) == 5
            assert float(book["bids"][0]["price"]) < float(book["asks"][0]["price"])
            await client.fetch_ticker(BTC)
            strict(raw.ApiTickerResponse, reply(client, "GET_TICKER"))
            await client.fetch_mini_ticker(BTC)
            strict(raw.ApiMiniTickerResponse, reply(client, "GET_MINI_TICKER"))
            sim.step(20)
            await client.fetch_recent_trades(BTC, 5)
            strict(raw.ApiTradeResponse, reply(client, "GET_TRADES"))

    run(body())


# -- orders -----------------------------------------------------------------------------------------
def test_post_only_order_open_cancel_and_cancel_all(sim: GrvtSimServerThread) -> None:
    async def body() -> None:
        key = Account.create()
        async with pro(key=key) as client:
            bid, _ = await best(client)
            order = await post_only(client, "buy", "0.01", bid - 5, cid=4242)
            strict(raw.ApiCreateOrderResponse, reply(client, "CREATE_ORDER"))
            assert order["state"]["status"] == "OPEN"
            assert order["metadata"]["client_order_id"] == "4242"
            assert order["signature"]["signer"] == key.address.lower()
            open_orders = await client.fetch_open_orders(BTC)
            strict(raw.ApiOpenOrdersResponse, reply(client, "GET_OPEN_ORDERS"))
            assert [o["order_id"] for o in open_orders] == [order["order_id"]]
            assert await client.cancel_order(order["order_id"]) is True
            assert await client.fetch_open_orders(BTC) == []
            fetched = await client.fetch_order(params={"client_order_id": 4242})
            assert fetched["result"]["state"]["status"] == "CANCELLED"
            assert fetched["result"]["state"]["reject_reason"] == "CLIENT_CANCEL"
            assert await client.cancel_order(order["order_id"]) is False  # no longer open: 1004
            assert reply(client, "CANCEL_ORDER")["code"] == 1004

            _, ask = await best(client)
            for side, price in (("buy", bid - 10), ("buy", bid - 11), ("sell", ask + 10)):
                await post_only(client, side, "0.002", price)
            assert len(await client.fetch_open_orders(BTC)) == 3
            assert await client.cancel_all_orders() is True
            assert await client.fetch_open_orders(BTC) == []
            history = await client.fetch_order_history()
            assert {o["state"]["reject_reason"] for o in history["result"][:3]} == {"CLIENT_BULK_CANCEL"}

    run(body())


def test_fill_after_the_market_trades_through_the_order(sim: GrvtSimServerThread) -> None:
    async def body() -> None:
        sub = new_sub()
        async with pro(sub) as client:
            bid, _ = await best(client)
            order = await post_only(client, "buy", "0.01", bid)
            step_until(sim, fills_of(sim, sub))
            trades = await client.fetch_my_trades(BTC)
            strict(raw.ApiFillHistoryResponse, reply(client, "GET_FILL_HISTORY"))
            fill = trades["result"][-1]
            assert (fill["order_id"], fill["is_buyer"], fill["is_taker"]) == (order["order_id"], True, False)
            assert float(fill["price"]) == bid
            assert float(fill["fee"]) < 0  # maker rebate
            step_until(sim, lambda: not sim.server.exchange.accounts.sub_accounts[sub].active)
            trades = await client.fetch_my_trades(BTC)
            assert sum(float(f["size"]) for f in trades["result"]) == pytest.approx(0.01)
            positions = await client.fetch_positions([BTC])
            strict(raw.ApiPositionsResponse, reply(client, "GET_POSITIONS"))
            assert [(p["instrument"], p["size"], float(p["entry_price"])) for p in positions] == [
                (BTC, "0.01", bid)
            ]
            summary = await client.get_account_summary()
            strict(raw.ApiSubAccountSummaryResponse, reply(client, "GET_ACCOUNT_SUMMARY"))
            rebate = -sum(float(f["fee"]) for f in trades["result"])
            assert float(summary["spot_balances"][0]["balance"]) == pytest.approx(10_000 + rebate)
            assert float(summary["total_equity"]) == pytest.approx(
                10_000 + rebate + float(summary["unrealized_pnl"])
            )
            assert len(summary["positions"]) == 1

    run(body())


def test_taker_orders_match_in_price_time_priority(sim: GrvtSimServerThread) -> None:
    async def body() -> None:
        first, second, taker = new_sub(), new_sub(), new_sub()
        async with pro(first) as a, pro(second) as b, pro(taker) as t:
            book = await a.fetch_order_book(BTC, 10)
            ask, shown = float(book["asks"][0]["price"]), float(book["asks"][0]["size"])
            await post_only(a, "sell", "0.003", ask)  # both join the synthetic level, a first
            await post_only(b, "sell", "0.003", ask)
            size = f"{shown + 0.003:.3f}"
            ioc = {"time_in_force": "IMMEDIATE_OR_CANCEL", "client_order_id": 1}
            result = await t.create_order(BTC, "limit", "buy", size, f"{ask:.1f}", params=ioc)
            assert result["state"]["status"] == "FILLED"
            taker_fills = (await t.fetch_my_trades(BTC))["result"]
            assert all(f["is_taker"] for f in taker_fills)
            assert len({f["trade_id"].split("-")[0] for f in taker_fills}) == 1  # one taker execution
            maker = (await a.fetch_my_trades(BTC))["result"]
            assert [(f["is_taker"], f["size"]) for f in maker] == [(False, "0.003")]
            assert (await b.fetch_my_trades(BTC))["result"] == []  # behind a in time
            # meeting its own resting order stops an order (self-trade protection)
            own = await b.create_order(BTC, "limit", "buy", "1", f"{ask:.1f}", params={"client_order_id": 2})
            assert (own["state"]["status"], own["state"]["reject_reason"]) == (
                "CANCELLED",
                "SELF_TRADE_PROTECTION",
            )

    run(body())


def test_the_raw_async_client_accepts_every_reply(sim: GrvtSimServerThread) -> None:
    async def body() -> None:
        sub, key = new_sub(), Account.create()
        config = GrvtApiConfig(RawEnv.TESTNET, sub, key.key.hex(), f"api-key-{sub}", None)
        client = GrvtRawAsync(config)
        try:
            listed = await client.get_filtered_instruments_v1(
                raw.ApiGetFilteredInstrumentsRequest(kind=[raw.Kind.PERPETUAL], limit=10)
            )
            assert isinstance(listed, raw.ApiGetFilteredInstrumentsResponse)
            instruments = {i.instrument: i for i in listed.result}
            book = await client.orderbook_levels_v1(raw.ApiOrderbookLevelsRequest(BTC, 10))
            assert isinstance(book, raw.ApiOrderbookLevelsResponse)
            price = str(Decimal(book.result.bids[0].price) - 1)
            order = raw.Order(
                sub_account_id=sub,
                time_in_force=raw.TimeInForce.GOOD_TILL_TIME,
                legs=[raw.OrderLeg(BTC, "0.01", True, price)],
                signature=raw.Signature(
                    "", "", "", 0, str(time.time_ns() + 60 * 10**9), random.randrange(2**32)
                ),
                metadata=raw.OrderMetadata(client_order_id=str(random.randrange(1, 2**62))),
                post_only=True,
            )
            signed = sign_order(order, config, Account.from_key(key.key), instruments)
            created = await client.create_order_v1(raw.ApiCreateOrderRequest(signed))
            assert isinstance(created, raw.ApiCreateOrderResponse)
            assert created.result.state is not None and created.result.state.status is raw.OrderStatus.OPEN
            opened = await client.open_orders_v1(raw.ApiOpenOrdersRequest(sub))
            assert isinstance(opened, raw.ApiOpenOrdersResponse) and len(opened.result) == 1
            summary = await client.sub_account_summary_v1(raw.ApiSubAccountSummaryRequest(sub))
            assert isinstance(summary, raw.ApiSubAccountSummaryResponse)
            cancelled = await client.cancel_order_v1(
                raw.ApiCancelOrderRequest(sub, order_id=created.result.order_id)
            )
            assert isinstance(cancelled, raw.AckResponse) and cancelled.result.ack
            refused = await client.cancel_order_v1(
                raw.ApiCancelOrderRequest(sub, order_id=created.result.order_id)
            )
            assert isinstance(refused, GrvtError) and refused.code == 1004
        finally:
            await client._session.close()

    run(body())


# -- rejections -------------------------------------------------------------------------------------
def _signed(
    client: GrvtCcxtPro, key_hex: str, price: str, markets: dict[str, Any] | None = None, symbol: str = BTC
) -> dict[str, Any]:
    order = get_grvt_order(
        client.get_trading_account_id(), symbol, "limit", "buy", "0.01", price, params={"post_only": True}
    )
    payload: dict[str, Any] = get_order_payload(order, key_hex, client.env, markets or client.markets)
    return payload


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("off_tick", 2064),
        ("off_lot", 2065),
        ("unknown_instrument", 2061),
        ("forged", 2002),
        ("expired", 2001),
    ],
)
def test_invalid_orders_get_grvt_errors(sim: GrvtSimServerThread, case: str, code: int) -> None:
    async def body() -> None:
        key = Account.create()
        async with pro(key=key) as client:
            bid, _ = await best(client)
            path = get_grvt_endpoint(client.env, "CREATE_ORDER")
            if case == "off_tick":
                assert await client.create_order(BTC, "limit", "buy", "0.01", f"{bid - 0.05:.2f}") == {}
            elif case == "off_lot":
                assert await client.create_order(BTC, "limit", "buy", "0.0015", f"{bid - 1:.1f}") == {}
            elif case == "unknown_instrument":  # the SDK refuses unknown symbols itself: send it raw
                markets = client.markets | {
                    "DOGE_USDT_Perp": client.markets[BTC] | {"instrument_hash": "0x030701"}
                }
                await client._auth_and_post(
                    path, _signed(client, key.key.hex(), "0.1", markets, "DOGE_USDT_Perp")
                )
            elif case == "forged":  # signed by another key, claiming to be this one
                payload = _signed(client, Account.create().key.hex(), f"{bid - 1:.1f}")
                payload["order"]["signature"]["signer"] = key.address
                await client._auth_and_post(path, payload)
            else:
                payload = _signed(client, key.key.hex(), f"{bid - 1:.1f}")
                payload["order"]["signature"]["expiration"] = str(time.time_ns() - 1)
                await client._auth_and_post(path, payload)
            error = reply(client, "CREATE_ORDER")
            assert error["code"] == code
            assert error["status"] in (400, 403)
            assert set(error) == {"code", "message", "status"}
            assert GrvtError(**error).code == code  # what GrvtRawAsync builds from an error body

    run(body())


def test_foreign_signers_are_refused(sim: GrvtSimServerThread) -> None:
    async def body() -> None:
        # a configured key: any other signer is refused from the first order on
        async with pro(CONFIGURED_SUB, Account.create()) as intruder:
            bid, _ = await best(intruder)
            assert await post_only(intruder, "buy", "0.01", bid - 1) == {}
            assert reply(intruder, "CREATE_ORDER")["code"] == 2000
        async with pro(CONFIGURED_SUB, CONFIGURED_KEY) as owner:
            assert (await post_only(owner, "buy", "0.01", bid - 1))["state"]["status"] == "OPEN"
            await owner.cancel_all_orders()
        # trust on first use: the first valid signer becomes the account's key
        sub, first = new_sub(), Account.create()
        async with pro(sub, first) as client:
            assert (await post_only(client, "buy", "0.01", bid - 1))["state"]["status"] == "OPEN"
        async with pro(sub, Account.create()) as other:
            assert await post_only(other, "buy", "0.01", bid - 1) == {}
            assert reply(other, "CREATE_ORDER")["code"] == 2000

    run(body())


def test_post_only_order_that_would_cross_is_rejected(sim: GrvtSimServerThread) -> None:
    async def body() -> None:
        async with pro() as client:
            _, ask = await best(client)
            order = await post_only(client, "buy", "0.01", ask)
            assert (order["state"]["status"], order["state"]["reject_reason"]) == (
                "REJECTED",
                "FAIL_POST_ONLY",
            )
            assert await client.fetch_open_orders(BTC) == []

    run(body())


# -- faults -----------------------------------------------------------------------------------------
def test_http_errors_rate_limit_and_latency_reach_the_client(sim: GrvtSimServerThread) -> None:
    async def body() -> None:
        async with pro() as client:
            sim.faults.http_errors(503, 2, path="book")
            assert await client.fetch_order_book(BTC) == {}
            assert reply(client, "GET_ORDER_BOOK") == {
                "code": 1009,
                "message": "We are temporarily deactivating this API endpoint, please try again later",
                "status": 503,
            }
            assert await client.fetch_ticker(BTC)  # another path is not affected
            assert await client.fetch_order_book(BTC) == {}
            assert (await client.fetch_order_book(BTC))["bids"]  # the count is used up
            sim.faults.http_errors(500, 1)
            await client.fetch_open_orders(BTC)
            assert reply(client, "GET_OPEN_ORDERS")["code"] == 1002

            sim.faults.rate_limit(1, 2.5)
            assert await client.fetch_order_book(BTC) == {}
            assert reply(client, "GET_ORDER_BOOK")["code"] == 1006
            sim.faults.rate_limit(1, 2.5)
            async with aiohttp.ClientSession() as http, http.post(f"{sim.url}/full/v1/book", json={}) as r:
                assert (r.status, r.headers["Retry-After"]) == (429, "2.5")

            sim.faults.latency(0.3)
            started = time.monotonic()
            assert (await client.fetch_order_book(BTC))["bids"]
            assert time.monotonic() - started >= 0.3

    run(body())


def test_a_slow_request_the_client_gave_up_on_is_still_handled(sim: GrvtSimServerThread) -> None:
    """`slow_next`: only the next matching request waits; the exchange books it after the client's
    timeout, as a gateway that received an order does (the order rests, nobody heard the reply)."""

    async def body() -> None:
        sub = new_sub()
        async with pro(sub) as client:
            bid, _ = await best(client)
            sim.faults.slow_next(0.6, 1, path="create_order")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(post_only(client, "buy", "0.01", bid - 10, cid=7_000_001), 0.2)
            assert not await client.fetch_open_orders(BTC)  # other paths are not slowed
            await asyncio.sleep(0.6)
            assert [o["metadata"]["client_order_id"] for o in await client.fetch_open_orders(BTC)] == [
                "7000001"
            ]
            started = time.monotonic()
            await post_only(client, "buy", "0.01", bid - 10)  # the count is used up
            assert time.monotonic() - started < 0.5
            await client.cancel_all_orders()

    run(body())


def test_injected_rejects_and_partial_fills(sim: GrvtSimServerThread) -> None:
    async def body() -> None:
        sub = new_sub()
        async with pro(sub) as client:
            bid, _ = await best(client)
            sim.faults.reject_next(2, "MM_PROTECTION")
            for _ in range(2):
                order = await post_only(client, "buy", "0.01", bid - 1)
                assert (order["state"]["status"], order["state"]["reject_reason"]) == (
                    "REJECTED",
                    "MM_PROTECTION",
                )
            sim.faults.reject_next(1, 2080)
            assert await post_only(client, "buy", "0.01", bid - 1) == {}
            assert reply(client, "CREATE_ORDER")["code"] == 2080
            assert (await post_only(client, "buy", "0.01", bid - 1))["state"]["status"] == "OPEN"
            await client.cancel_all_orders()

            sim.faults.partial_fills(0.5)
            order = await post_only(client, "buy", "0.01", bid)
            step_until(sim, fills_of(sim, sub))
            first = (await client.fetch_my_trades(BTC))["result"][-1]
            assert first["size"] == "0.005"
            state = (await client.fetch_order(order["order_id"]))["result"]["state"]
            assert float(state["traded_size"][0]) < 0.01 or state["status"] == "FILLED"

    run(body())


def test_fault_control_endpoint_and_cli_spec(sim: GrvtSimServerThread) -> None:
    spec = parse_fault_spec(
        "latency=0.05,http_errors=502:1:ticker,rate_limit=3:1,reject_next=1,partial_fills=0.5,"
        "slow_next=3:2:create_order"
    )
    assert spec["http_errors"] == {"status": 502, "count": 1, "path": "ticker"}
    assert spec["slow_next"] == {"seconds": 3.0, "count": 2, "path": "create_order"}

    async def body() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{sim.url}/_sim/faults", json=spec) as r:
                state = await r.json()
                assert state["latency_s"] == 0.05
                assert state["rate_limit"]["count"] == 3
                assert state["slow_next"] == {"seconds": 3.0, "count": 2, "path": "create_order"}
            async with http.post(
                f"{sim.url}/_sim/faults", json={"clear": True, "http_errors": {"status": 504}}
            ) as r:
                assert (await r.json())["rate_limit"] is None
            async with http.post(f"{sim.url}/full/v1/instruments", json={}) as r:
                assert r.status == 504
            async with http.post(f"{sim.url}/_sim/faults", json={"nonsense": 1}) as r:
                assert (r.status, (await r.json())["code"]) == (400, 1003)
            async with http.post(f"{sim.url}/_sim/step", json={"n": 3}) as r:
                assert (await r.json())["steps"] == 3

    run(body())
    result = CliRunner().invoke(app, ["sim", "fault", "bogus=1", "--url", sim.url])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["sim", "fault", "latency=0.01", "--url", sim.url])
    assert result.exit_code == 0 and sim.faults.latency_s == 0.01


# -- websockets -------------------------------------------------------------------------------------
async def _subscribe_all(
    client: GrvtCcxtWS, collect: Callable[[str], Callable[[dict[str, Any]], Awaitable[None]]]
) -> None:
    """Market streams (legacy frames on /ws, and one JSON-RPC subscription on /ws/full) and the
    account's private streams."""
    await client.subscribe("book.s", collect("book"), params={"instrument": BTC})
    await client.subscribe("book.d", collect("delta"), params={"instrument": BTC, "rate": 100})
    await client.subscribe("trade", collect("trade"), params={"instrument": BTC})
    for stream in ("order", "fill", "state"):
        await client.subscribe(stream, collect(stream))
    rpc = GrvtWSEndpointType.MARKET_DATA_RPC_FULL
    await client.subscribe("mini.s", collect("mini"), ws_end_point_type=rpc, params={"instrument": BTC})


def test_websocket_streams_rpc_and_reconnect_after_a_drop(sim: GrvtSimServerThread) -> None:
    sub = new_sub()
    got: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("book", "delta", "trade", "order", "fill", "state", "mini")
    }

    def collect(name: str) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def callback(message: dict[str, Any]) -> None:
            got[name].append(message)

        return callback

    async def body() -> None:
        loop = asyncio.get_running_loop()
        ours = asyncio.all_tasks()
        params = {
            "api_key": f"api-key-{sub}",
            "private_key": Account.create().key.hex(),
            "trading_account_id": sub,
        }
        client = GrvtCcxtWS(GrvtEnv.TESTNET, loop, parameters=params)
        try:
            await client.initialize()
            await _subscribe_all(client, collect)
            await until(lambda: bool(got["book"]) and bool(got["delta"]) and bool(got["mini"]))  # snapshots
            strict(raw.WSMiniTickerFeedDataV1, got["mini"][0])
            snapshot = strict(raw.WSOrderbookLevelsFeedDataV1, got["book"][0])
            assert (snapshot.stream, snapshot.selector) == ("v1.book.s", f"{BTC}@500-10")
            bid = float(snapshot.feed.bids[0].price)

            await post_only(client, "buy", "0.01", bid)
            await until(lambda: bool(got["order"]) and bool(got["state"]))
            strict(raw.WSOrderFeedDataV1, got["order"][0])
            strict(raw.WSOrderStateFeedDataV1, got["state"][0])
            assert got["order"][0]["feed"]["state"]["status"] == "OPEN"
            step_until(sim, fills_of(sim, sub))
            await until(lambda: bool(got["fill"]) and len(got["book"]) > 1)
            await until(lambda: bool(got["trade"]), stepping=sim)  # the market prints trades
            strict(raw.WSFillFeedDataV1, got["fill"][0])
            strict(raw.WSTradeFeedDataV1, got["trade"][0])
            strict(raw.WSOrderbookLevelsFeedDataV1, got["delta"][-1])
            assert [int(m["sequence_number"]) for m in got["book"]] == list(range(len(got["book"])))

            # JSON-RPC on /ws/full: the order comes back on the order stream
            seen = len(got["order"])
            await client.rpc_create_limit_order(
                BTC, "buy", "0.002", f"{bid - 20:.1f}", params={"post_only": True}
            )
            await until(lambda: len(got["order"]) > seen)
            assert got["order"][-1]["feed"]["legs"][0]["size"] == "0.002"

            # a dropped connection: the client reconnects, resubscribes, and feeds resume
            before = sim.server.hub.connections_total
            sim.faults.drop_websockets()
            await until(lambda: sim.server.hub.connections_total >= before + 2, timeout_s=20)
            books = len(got["book"])
            await until(lambda: len(got["book"]) > books + 1, timeout_s=20, stepping=sim)
        finally:
            for task in asyncio.all_tasks() - ours:  # the client's reader and reconnect loops
                task.cancel()
            await client.__aexit__()
            await client._session.close()
            client._session = None

    run(body())


# -- the matching rules, on the book alone ----------------------------------------------------------
def _level_book(bid: str, bid_size: str, ask: str) -> BookUpdate:
    return BookUpdate(
        BTC, 0, (BookLevel(Decimal(bid), Decimal(bid_size)),), (BookLevel(Decimal(ask), Decimal(1)),)
    )


def _buy(book: InstrumentBook, sub: str, price: str, size: str, market: BookUpdate) -> BookOrder:
    order = BookOrder(
        order_id=f"{sub}-{price}",
        sub_account_id=sub,
        client_order_id="1",
        instrument=BTC,
        is_buy=True,
        price=Decimal(price),
        size=Decimal(size),
        time_in_force="GOOD_TILL_TIME",
        post_only=True,
        reduce_only=False,
        signature={},
        create_time_ns=0,
        expiration_ns=2**62,
    )
    book.rest(order, market)
    return order


def _sell_print(price: str, size: str) -> Trade:
    return Trade(BTC, 0, Decimal(price), Decimal(size), Side.SELL, "t")


def test_a_print_fills_resting_orders_with_its_own_volume_behind_the_queue_and_better_prices() -> None:
    ids = iter(range(1, 1000))
    book = InstrumentBook(BTC, Decimal("0.001"), lambda: str(next(ids)))
    market = _level_book("100.0", "0.005", "100.1")
    first = _buy(book, "1", "100.0", "0.004", market)  # 0.005 shown ahead of it
    second = _buy(book, "2", "100.0", "0.004", market)
    assert (first.queue_ahead, second.queue_ahead) == (Decimal("0.005"), Decimal("0.005"))
    assert book.on_trade(_sell_print("100.0", "0.003"), market, "7", None, 1) == []  # eats the queue ahead
    fills = book.on_trade(_sell_print("100.0", "0.004"), market, "8", None, 2)
    assert [(m.order.sub_account_id, m.size, m.trade_id) for m in fills] == [("1", Decimal("0.002"), "8-1")]
    # through the level: nobody is left ahead there, but the print brings only its own size, oldest first
    fills = book.on_trade(_sell_print("99.9", "0.001"), market, "9", None, 3)
    assert [(m.order.sub_account_id, m.size) for m in fills] == [("1", Decimal("0.001"))]
    # size shown at better prices than ours is taken first: a small print deep through reaches nobody
    above = BookUpdate(
        BTC, 0, (BookLevel(Decimal("100.1"), Decimal("0.003")),), (BookLevel(Decimal("100.2"), Decimal(1)),)
    )
    assert book.on_trade(_sell_print("99.9", "0.003"), above, "10", None, 4) == []
    fills = book.on_trade(_sell_print("99.9", "0.010"), above, "11", None, 5)  # 0.003 above, then ours
    assert [(m.order.sub_account_id, m.size) for m in fills] == [
        ("1", Decimal("0.001")),
        ("2", Decimal("0.004")),
    ]
    assert (first.status, second.status, len(book)) == ("FILLED", "FILLED", 0)


@settings(max_examples=80, deadline=None)
@given(
    level_lots=st.lists(st.integers(1, 20), min_size=3, max_size=3),
    orders=st.lists(st.tuples(st.sampled_from("12"), st.integers(-1, 6), st.integers(1, 6)), max_size=8),
    prints=st.lists(st.tuples(st.integers(0, 8), st.integers(1, 30)), max_size=10),
)
def test_a_print_fills_at_most_its_size_after_the_size_shown_at_better_prices(
    level_lots: list[int], orders: list[tuple[str, int, int]], prints: list[tuple[int, int]]
) -> None:
    """Price before time on the local exchange as in the paper fill model: the fills one print causes
    never add up to more than its size after the synthetic size at better prices (a 2-lot print ~25 bp
    deep once filled every bid it passed, in full)."""
    lot, tick = Decimal("0.001"), Decimal("0.1")
    ids = iter(range(1, 10_000))
    book = InstrumentBook(BTC, lot, lambda: str(next(ids)))
    bids = tuple(BookLevel(Decimal("100.0") - i * tick, n * lot) for i, n in enumerate(level_lots))
    market = BookUpdate(BTC, 0, bids, (BookLevel(Decimal("100.2"), Decimal(1)),))
    for sub, ticks_behind, lots in orders:  # -1: inside the spread; past 2: deeper than the book shows
        _buy(book, sub, str(bids[0].price - ticks_behind * tick), str(lots * lot), market)
    for n, (ticks_through, lots) in enumerate(prints):
        printed = _sell_print(str(bids[0].price - ticks_through * tick), str(lots * lot))
        taken = Decimal(0)
        for match in book.on_trade(printed, market, str(n), None, n):
            taken += match.size
            better = sum((lv.size for lv in bids if lv.price > match.price), Decimal(0))
            assert better + taken <= printed.size, (match, printed, better, taken)
            assert match.price >= printed.price and not match.is_taker  # a maker, at its own limit


def test_a_book_that_moves_through_an_order_fills_it_and_partial_fills_cap_each_fill() -> None:
    ids = iter(range(1, 1000))
    book = InstrumentBook(BTC, Decimal("0.001"), lambda: str(next(ids)))
    order = _buy(book, "1", "100.0", "0.010", _level_book("100.0", "0.005", "100.1"))
    fills = book.on_book(_level_book("99.8", "0.005", "100.0"), 0.5, 1)  # best ask reached the bid
    assert [(m.size, m.price, m.is_taker) for m in fills] == [(Decimal("0.005"), Decimal("100.0"), False)]
    assert (order.status, order.traded) == ("OPEN", Decimal("0.005"))
    fills = book.on_book(_level_book("99.8", "0.005", "99.9"), None, 2)
    assert [m.size for m in fills] == [Decimal("0.005")] and order.status == "FILLED"


def test_the_serve_command_serves_until_interrupted() -> None:
    command = [sys.executable, "-m", "bots.cli", "sim", "serve", "--port", "0", "--step-interval", "0"]
    with subprocess.Popen([*command, "--faults", "latency=0.01"], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            url = line.split(" at ")[1].split()[0]
            assert url.startswith("http://127.0.0.1:")

            async def body() -> None:
                async with aiohttp.ClientSession() as http, http.get(f"{url}/_sim/faults") as r:
                    assert (await r.json())["latency_s"] == 0.01

            run(body())
            result = CliRunner().invoke(app, ["sim", "step", "2", "--url", url])
            assert result.exit_code == 0 and '"steps": 2' in result.output
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0
