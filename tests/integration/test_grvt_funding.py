"""Funding on GRVT as grvt-pysdk sees it, against the local GRVT exchange: its rate and payment
endpoints parse with the SDK's own types, a position pays (or receives) at each funding time the
amount GRVT's convention says, the live adapter reads those payments, and a live worker books them in
its ledger.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dacite import Config, from_dict
from eth_account import Account
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from pysdk import grvt_raw_types as raw
from pysdk.grvt_ccxt_env import GrvtEnv
from pysdk.grvt_ccxt_pro import GrvtCcxtPro
from pysdk.grvt_raw_async import GrvtRawAsync
from pysdk.grvt_raw_base import GrvtApiConfig
from pysdk.grvt_raw_env import GrvtEnv as RawEnv

from bots.control import WorkerExit
from bots.core.core import BotCore
from bots.core.orders import OrderIds
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import QuoteEngine
from bots.engine.types import Side
from bots.exchange.base import Exchange, OrderRequest
from bots.exchange.factory import make_exchange
from bots.exchange.paper_exchange import PaperExchange
from bots.funding_sync import FundingSync
from bots.metrics import BotMetrics
from bots.retry import Backoff
from bots.store import Ledger
from bots.store.writer import StoreWriter
from bots.venues.grvt.endpoints import base_url_override
from bots.venues.grvt.execution import GrvtExchange
from bots.venues.grvt.funding import FUNDING_INTERVAL_S
from bots.venues.grvt.server.app import GrvtSimConfig, GrvtSimServerThread
from bots.worker import BotWorker
from settings.credentials import GrvtCredentials
from settings.models import BUILTIN_INSTRUMENTS, BotSettings
from tests.integration.test_grvt_adapter import TOUCH_STRATEGY

SYMBOL = "BTC_USDT_Perp"
NS = 1_000_000_000
T = TypeVar("T")
# A funding time every simulated second (10 manual steps), a rate around +0.05% that moves.
FUNDING = {"interval_s": 1.0, "mean": 0.0005, "std": 0.0002, "half_life_s": 60.0}


def run(coro: Awaitable[T], timeout_s: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


@pytest.fixture(scope="module")
def manual() -> Iterator[GrvtSimServerThread]:
    mp = pytest.MonkeyPatch()
    mp.setenv("NO_PROXY", "127.0.0.1,localhost")
    config = GrvtSimConfig(seed=3, step_interval_s=None, funding_params=FUNDING)
    with GrvtSimServerThread(config) as server:
        yield server
    mp.undo()


def _creds() -> GrvtCredentials:
    account = random.randrange(10**9, 10**12)
    return GrvtCredentials(
        api_key=SecretStr(f"api-key-{account}"),
        private_key=SecretStr(Account.create().key.hex()),
        trading_account_id=SecretStr(str(account)),
    )


def _settings(url: str, **data: Any) -> BotSettings:
    exchange = {"mode": "live", "base_url": url, "request_timeout_s": 2.0}
    return BotSettings.model_validate({"symbol": SYMBOL, "exchange": exchange, **data})


def strict(cls: type[Any], body: dict[str, Any]) -> Any:
    return from_dict(cls, body, Config(cast=[Enum], strict=True))


async def _buy_now(exchange: GrvtExchange) -> Decimal:
    """Take the ask with the minimum size: a long position at once; returns its size."""
    info = await exchange.instrument(SYMBOL)
    book = await exchange.book(SYMBOL)
    price = book.asks[0].price + 20 * info.tick_size
    request = OrderRequest(
        SYMBOL, Side.BUY, price, info.min_size, str(random.randrange(1, 2**62)), post_only=False
    )
    await exchange.place_order(request)
    assert await exchange.position(SYMBOL) == info.min_size
    return info.min_size


def test_a_long_pays_at_each_funding_time_what_grvts_convention_says(manual: GrvtSimServerThread) -> None:
    creds = _creds()
    sub = creds.trading_account_id.get_secret_value()

    async def body() -> None:
        exchange = GrvtExchange(_settings(manual.url), credentials=creds)
        try:
            size = await _buy_now(exchange)
            balance = manual.call(lambda: manual.server.exchange.accounts.sub_accounts[sub].balance)
            await asyncio.to_thread(manual.step, 35)  # three or four funding times pass
            payments, cursor = await exchange.funding_since(SYMBOL, None)
            assert len(payments) >= 3
            assert await exchange.funding_since(SYMBOL, cursor) == ([], cursor)  # each payment once
            rates = {
                int(r["funding_time"]): r
                for r in manual.call(lambda: list(manual.server.exchange.instruments[SYMBOL].funding.history))
            }
            for payment in payments:
                settled = rates[payment.ts_ns]
                rate = Decimal(settled["funding_rate"]) / 100  # GRVT: percentage points
                # a long pays size * mark * rate: the cash that came in is minus that
                assert payment.amount == -(size * Decimal(settled["mark_price"]) * rate)
                assert (payment.amount < 0) == (rate > 0)
            after = manual.call(lambda: manual.server.exchange.accounts.sub_accounts[sub].balance)
            assert after - balance == sum((p.amount for p in payments), Decimal(0))
            rate_now = await exchange.funding_rate(SYMBOL)
            assert rate_now is not None and rate_now.interval_s == FUNDING_INTERVAL_S
            current = manual.call(manual.server.exchange.instruments[SYMBOL].funding.current)
            assert rate_now.rate == current
        finally:
            await exchange.close()

    run(body())


async def _read_with_the_sdk(sub: str, creds: GrvtCredentials) -> None:
    """The funding endpoints through the SDK's raw client (strict dataclasses) and its ccxt client."""
    config = GrvtApiConfig(RawEnv.TESTNET, sub, creds.private_key.get_secret_value(), f"api-key-{sub}", None)
    client = GrvtRawAsync(config)
    try:
        rates = await client.funding_rate_v1(raw.ApiFundingRateRequest(SYMBOL, limit=2))
        assert isinstance(rates, raw.ApiFundingRateResponse) and len(rates.result) == 2
        newest, older = rates.result
        assert int(newest.funding_time) - int(older.funding_time) == 1 * NS  # newest first
        paid = await client.funding_payment_history_v1(raw.ApiFundingPaymentHistoryRequest(sub, SYMBOL))
        assert isinstance(paid, raw.ApiFundingPaymentHistoryResponse) and len(paid.result) >= 2
        assert paid.result[0].event_time == newest.funding_time and paid.result[0].currency == "USDT"
        ticker = await client.ticker_v1(raw.ApiTickerRequest(SYMBOL))
        assert isinstance(ticker, raw.ApiTickerResponse) and ticker.result.funding_rate_8h_curr is not None
    finally:
        await client._session.close()
    params = {"api_key": f"api-key-{sub}", "private_key": creds.private_key.get_secret_value(),
              "trading_account_id": sub}  # fmt: skip
    ccxt = GrvtCcxtPro(GrvtEnv.TESTNET, parameters=params)
    try:
        history = await ccxt.fetch_funding_rate_history(SYMBOL, limit=3)
        strict(raw.ApiFundingRateResponse, history)  # every field GRVT's, nothing else
        assert len(history["result"]) == 3
        since = int(history["result"][-1]["funding_time"])
        assert {
            int(r["funding_time"]) for r in (await ccxt.fetch_funding_rate_history(SYMBOL, since))["result"]
        } == {since + k * NS for k in range(3)}
    finally:
        await ccxt._session.close()
        ccxt._session = None


def test_the_funding_endpoints_parse_with_the_sdks_own_types(manual: GrvtSimServerThread) -> None:
    creds = _creds()
    sub = creds.trading_account_id.get_secret_value()

    async def body() -> None:
        exchange = GrvtExchange(_settings(manual.url), credentials=creds)
        try:
            await _buy_now(exchange)
        finally:
            await exchange.close()
        await asyncio.to_thread(manual.step, 25)
        with base_url_override(manual.url):  # the SDK's own clients, at the local exchange
            await _read_with_the_sdk(sub, creds)

    run(body())


# -- a live worker ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def auto() -> Iterator[GrvtSimServerThread]:
    params = {"trade_intensity_a": 20.0, "trade_decay_k": 400.0}
    funding = FUNDING | {"interval_s": 2.0}
    with GrvtSimServerThread(
        GrvtSimConfig(seed=4, step_interval_s=0.05, market_params=params, funding_params=funding)
    ) as server:
        yield server


LOOSE_RISK = {"max_loss_usd": 1000.0, "max_drawdown_pct": 0.5}


async def _worker_until_funding(
    settings: BotSettings, tmp_path: Path, registry: CollectorRegistry
) -> tuple[BotWorker, Ledger, Exchange]:
    """A worker of `settings` until its ledger holds two funding payments, then stopped (its exchange
    still open, for the caller to read and close)."""
    ledger = Ledger(tmp_path / "ledger.db")
    starting = settings.paper.starting_balance_usd
    exchange = await make_exchange(settings, ledger.restore_portfolio(settings.name, SYMBOL, starting))
    metrics = BotMetrics(registry, settings.name, SYMBOL, settings.exchange.mode, 2)
    worker = BotWorker(settings, exchange, ledger, metrics, backoff=Backoff(attempts=3, base_s=0.01))
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 90
    while len(ledger.funding_payments(settings.name)) < 2:
        assert time.monotonic() < deadline and not task.done(), "no funding booked within 90 s"
        await asyncio.sleep(0.2)
    worker.request_stop()
    assert await asyncio.wait_for(task, 30) is WorkerExit.STOPPED
    return worker, ledger, exchange


def test_a_live_worker_books_the_venues_funding_payments_in_its_ledger(
    auto: GrvtSimServerThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = _creds()
    for name, secret in (("API_KEY", creds.api_key), ("PRIVATE_KEY", creds.private_key)):
        monkeypatch.setenv(f"GRVT_{name}", secret.get_secret_value())
    monkeypatch.setenv("GRVT_TRADING_ACCOUNT_ID", creds.trading_account_id.get_secret_value())
    settings = _settings(auto.url, strategy=TOUCH_STRATEGY, risk=LOOSE_RISK)
    registry = CollectorRegistry()

    async def body() -> tuple[BotWorker, Ledger]:
        worker, ledger, exchange = await _worker_until_funding(settings, tmp_path, registry)
        assert isinstance(exchange, GrvtExchange)
        venue, _ = await exchange.funding_since(SYMBOL, None)
        await exchange.close()
        booked = ledger.funding_payments(settings.name)
        assert {p.payment_id: p.amount for p in booked}.items() <= {
            p.payment_id: p.amount for p in venue
        }.items()
        return worker, ledger

    worker, ledger = run(body(), timeout_s=150)
    booked = ledger.funding_payments(settings.name)
    assert worker.portfolio.funding == sum((p.amount for p in booked), Decimal(0)) != 0
    restored = ledger.restore_portfolio(settings.name, SYMBOL, settings.paper.starting_balance_usd)
    assert (restored.cash, restored.funding) == (worker.portfolio.cash, worker.portfolio.funding)
    labels = {"bot": settings.name, "symbol": SYMBOL, "mode": "live"}
    net = registry.get_sample_value("mmfleet_funding_pnl_usd", labels)
    assert net == pytest.approx(float(worker.portfolio.funding))


def test_a_venue_refusing_the_funding_request_is_counted_and_asked_again(
    manual: GrvtSimServerThread, tmp_path: Path
) -> None:
    creds = _creds()
    settings = _settings(manual.url, instrument=BUILTIN_INSTRUMENTS[SYMBOL].model_dump())
    registry = CollectorRegistry()
    metrics = BotMetrics(registry, settings.name, SYMBOL, "live", 2)
    handlers = manual.server.exchange.handlers

    async def passthrough(call: Callable[[], Awaitable[T]]) -> T | None:
        return await call()

    async def body() -> None:
        exchange = GrvtExchange(settings, credentials=creds)
        ledger = Ledger(tmp_path / "ledger.db")
        store = StoreWriter(ledger, settings.name)
        store.start()
        try:
            await _buy_now(exchange)
            await asyncio.to_thread(manual.step, 15)
            core = BotCore(
                settings.core_config(),
                QuoteEngine(settings.engine_config()),
                Portfolio(SYMBOL, Decimal(10_000)),
                OrderIds(0, 1, 0),
            )
            sync = FundingSync(settings.name, SYMBOL, exchange, store, metrics, None, poll_interval_s=0)
            served = manual.call(lambda: handlers.pop("funding_payment_history"))  # a venue without it
            assert await sync.sync(core, passthrough, 0.0) == []
            errors = {"bot": settings.name, "symbol": SYMBOL, "mode": "live", "kind": "other"}
            assert registry.get_sample_value("mmfleet_exchange_errors_total", errors) == 1
            manual.call(lambda: handlers.__setitem__("funding_payment_history", served))
            booked = await sync.sync(core, passthrough, 1.0)  # the next poll reads them
            assert booked and core.portfolio.funding == sum(
                (p.amount for p in ledger.funding_payments(settings.name)), Decimal(0)
            )
        finally:
            await store.close()
            ledger.close()
            await exchange.close()

    run(body())


def _orders_held(server: GrvtSimServerThread) -> int:
    accounts = server.server.exchange.accounts.sub_accounts.values()
    return server.call(lambda: sum(len(a.active) + len(a.finished) for a in accounts))


def test_a_paper_worker_settles_the_rates_grvt_settles_on_its_paper_position(
    auto: GrvtSimServerThread, tmp_path: Path
) -> None:
    settings = BotSettings.model_validate({
        "symbol": SYMBOL, "name": "paper-funding", "strategy": TOUCH_STRATEGY, "risk": LOOSE_RISK,
        "exchange": {"mode": "paper", "base_url": auto.url, "request_timeout_s": 2.0},
    })  # fmt: skip
    orders_before = _orders_held(auto)

    async def body() -> tuple[BotWorker, Ledger]:
        worker, ledger, exchange = await _worker_until_funding(settings, tmp_path, CollectorRegistry())
        assert isinstance(exchange, PaperExchange) and exchange.capabilities.funding
        await exchange.close()
        return worker, ledger

    worker, ledger = run(body(), timeout_s=150)
    settled = {
        int(r["funding_time"]): r
        for r in auto.call(lambda: list(auto.server.exchange.instruments[SYMBOL].funding.history))
    }
    payments = ledger.funding_payments(settings.name)
    for p in payments:
        row = settled[p.ts_ns]  # a funding time GRVT settled, at its rate and mark price
        assert p.rate == Decimal(row["funding_rate"]) / 100 and p.mark == Decimal(row["mark_price"])
        assert p.position and p.amount == -p.position * p.mark * p.rate
    assert worker.portfolio.funding == sum((p.amount for p in payments), Decimal(0))
    orders_after = _orders_held(auto)
    assert orders_after == orders_before  # paper: not one order reached the exchange
