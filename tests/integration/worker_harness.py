"""A live-mode `BotWorker` on its own event loop in a thread, trading on the local GRVT exchange with the
real SDK, for tests that drive it step by step from synchronous code (hypothesis state machines).

The worker gets its own loop because the tests' rules are synchronous and the SDK's client logs in
with a blocking request: the exchange (`GrvtSimServerThread`) and the worker each need a loop of their
own that keeps running between two rules.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from eth_account import Account
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from bots.control import WorkerExit
from bots.metrics import BotMetrics
from bots.retry import Backoff
from bots.store import Ledger
from bots.venues.grvt.execution import GrvtExchange
from bots.venues.grvt.server.app import GrvtSimServerThread
from bots.worker import BotWorker
from settings.credentials import GrvtCredentials
from settings.models import BotSettings

__all__ = ["LoopThread", "RunningWorker", "new_credentials", "start_worker", "stop_worker"]

T = TypeVar("T")
_ACCOUNTS = itertools.count(20_000_001)


class LoopThread:
    """An asyncio loop in a daemon thread; `run(coro)` waits for the coroutine's result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        started: Future[None] = Future()
        self._thread = threading.Thread(target=self._serve, args=(started,), name="worker-loop", daemon=True)
        self._thread.start()
        started.result(timeout=10)

    def _serve(self, started: Future[None]) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set_result, None)
        self.loop.run_forever()
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout_s), self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def new_credentials() -> GrvtCredentials:
    """A fresh sub-account of the local exchange with its own signing key."""
    account = next(_ACCOUNTS)
    return GrvtCredentials(
        api_key=SecretStr(f"sm-key-{account}-{random.getrandbits(32):x}"),
        private_key=SecretStr(Account.create().key.hex()),
        trading_account_id=SecretStr(str(account)),
    )


@dataclass
class RunningWorker:
    worker: BotWorker
    exchange: GrvtExchange
    ledger: Ledger
    task: asyncio.Task[WorkerExit]
    sub_account_id: str


async def start_worker(
    settings: BotSettings,
    ledger_path: Path,
    *,
    first_book_s: float = 20.0,
    credentials: GrvtCredentials | None = None,
) -> RunningWorker:
    """A worker running on `credentials`' sub-account (a fresh one by default), once it has a book."""
    credentials = credentials or new_credentials()
    exchange = GrvtExchange(settings, credentials=credentials)
    ledger = Ledger(ledger_path)
    metrics = BotMetrics(
        CollectorRegistry(), settings.name, settings.symbol, "live", settings.strategy.grid_layers
    )
    worker = BotWorker(
        settings, exchange, ledger, metrics, backoff=Backoff(attempts=4, base_s=0.01, max_s=0.1)
    )
    task = asyncio.create_task(worker.run(), name="worker")
    running = RunningWorker(worker, exchange, ledger, task, credentials.trading_account_id.get_secret_value())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + first_book_s
    while worker.last_book is None:
        if task.done() or loop.time() > deadline:
            await stop_worker(running)
            raise AssertionError("the worker got no first book")
        await asyncio.sleep(0.02)
    return running


async def stop_worker(running: RunningWorker) -> WorkerExit:
    """Stop the worker (it cancels its orders on the way out) and close its exchange and ledger."""
    running.worker.request_stop()
    try:
        return await asyncio.wait_for(running.task, timeout=30)
    finally:
        await running.exchange.close()
        running.ledger.close()


async def stepping_until(
    server: GrvtSimServerThread, check: Callable[[], bool], what: str, timeout_s: float = 20.0
) -> None:
    """Step the server's market (one step each 50 ms) until `check()` holds; fail naming `what` after
    `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        server.step(1)
        await asyncio.sleep(0.05)
