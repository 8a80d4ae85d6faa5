"""Stopping, halting and handing over against the local GRVT exchange: a wrong signing key backs off
and halts; a stop the exchange cannot confirm ends ORDERS_LEFT naming what rests; a worker that lost
its lease cancels only its own orders, never the new holder's."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bots.control import WorkerExit
from bots.errors import RejectReason
from bots.venues.grvt.server.app import GrvtSimConfig, GrvtSimServerThread
from bots.venues.grvt.server.faults import Faults
from settings.models import BotSettings
from tests.integration.worker_harness import RunningWorker, new_credentials, start_worker, stop_worker

pytestmark = pytest.mark.integration

SYMBOL = "BTC_USDT_Perp"
GRVT_SIGNATURE_REFUSED = 2000  # GRVT's error code for an order whose signature does not verify


@pytest.fixture(scope="module")
def server() -> Iterator[GrvtSimServerThread]:
    with GrvtSimServerThread(GrvtSimConfig(seed=3, step_interval_s=0.05)) as running:
        yield running


def test_refused_signatures_back_off_then_halt(
    server: GrvtSimServerThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = BotSettings.model_validate(
        {
            "symbol": SYMBOL,
            "exchange": {"mode": "live", "base_url": server.url, "request_timeout_s": 2.0},
            "strategy": {"grid_layers": 3, "spread_pct": 0.0005, "refresh_interval_s": 0.2},
        }
    )

    async def scenario() -> tuple[float, bool, int]:
        server.faults.reject_next(1_000, GRVT_SIGNATURE_REFUSED)
        running = await start_worker(settings, tmp_path / "ledger.db")
        worker = running.worker
        refused = worker.metrics.orders_rejected[RejectReason.BAD_SIGNATURE]
        try:
            deadline = time.monotonic() + 60
            while worker.core.enabled:
                assert time.monotonic() < deadline, "never halted"
                await asyncio.sleep(0.05)
            halted_at = refused._value.get()
            await asyncio.sleep(2.0)  # halted: nothing more is sent
            assert refused._value.get() == halted_at
            enabled = bool(running.ledger.get_state(worker.name, "trading_enabled", True))
            resting = len(await running.exchange.open_orders(SYMBOL))
        finally:
            server.faults.clear()
            await stop_worker(running)
        return halted_at, enabled, resting

    with caplog.at_level(logging.ERROR, logger="mmfleet.worker"):
        refusals, enabled, resting = asyncio.run(scenario())
    assert refusals == 5  # backed off between them, halted at the fifth
    assert not enabled and resting == 0  # persisted: a restart stays halted; nothing left resting
    assert any("refuses our orders' credentials" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "fail",
    [
        pytest.param(lambda faults: faults.http_errors(503, 100_000), id="503-storm"),
        pytest.param(lambda faults: faults.rate_limit(100_000, retry_after_s=30.0), id="429-retry-after-30s"),
    ],
)
def test_a_stop_the_exchange_cannot_confirm_ends_orders_left_naming_them(
    server: GrvtSimServerThread,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    fail: Callable[[Faults], None],
) -> None:
    """SIGTERM while the exchange is down: the bot keeps cancelling until `stop_deadline_s` (a
    Retry-After beyond it is not waited for), then ends ORDERS_LEFT with an ERROR naming what rests,
    never a quiet "stopped" with orders resting."""
    settings = BotSettings.model_validate(
        {
            "symbol": SYMBOL,
            "exchange": {
                "mode": "live", "base_url": server.url, "request_timeout_s": 1.0, "stop_deadline_s": 2.0,
            },
            "strategy": {"grid_layers": 3, "spread_pct": 0.0005},
        }
    )  # fmt: skip

    async def scenario() -> tuple[WorkerExit, list[str]]:
        running = await start_worker(settings, tmp_path / "ledger.db")
        worker = running.worker
        try:
            while not worker.resting:
                await asyncio.sleep(0.05)
            await worker.quiescent()
            fail(server.faults)
            worker.request_stop()
            outcome = await asyncio.wait_for(running.task, timeout=30)  # a liveness bound, not a timing
        finally:
            server.faults.clear()
            left = [o.client_order_id for o in await running.exchange.open_orders(SYMBOL)]
            await stop_worker(running)
        return outcome, left

    with caplog.at_level(logging.ERROR, logger="mmfleet.worker"):
        outcome, left = asyncio.run(scenario())
    assert outcome is WorkerExit.ORDERS_LEFT  # the exchange never confirmed: never a quiet "stopped"
    errors = [r for r in caplog.records if "stopped with orders resting" in r.getMessage()]
    assert errors and set(left) <= set(errors[0].__dict__["fields"]["client_order_ids"])


def test_a_stop_leaves_nothing_resting_when_the_exchange_answers(
    server: GrvtSimServerThread, tmp_path: Path
) -> None:
    settings = BotSettings.model_validate(
        {
            "symbol": SYMBOL,
            "exchange": {"mode": "live", "base_url": server.url, "request_timeout_s": 2.0},
            "strategy": {"grid_layers": 3, "spread_pct": 0.0005},
        }
    )

    async def scenario() -> tuple[WorkerExit, int]:
        running = await start_worker(settings, tmp_path / "ledger.db")
        try:
            while not running.worker.resting:
                await asyncio.sleep(0.05)
            running.worker.request_stop()
            outcome = await asyncio.wait_for(running.task, timeout=30)
            return outcome, len(await running.exchange.open_orders(SYMBOL))
        finally:
            await stop_worker(running)

    assert asyncio.run(scenario()) == (WorkerExit.STOPPED, 0)


@pytest.fixture(scope="module")
def still_server() -> Iterator[GrvtSimServerThread]:
    """A market that moves only when a test steps it."""
    with GrvtSimServerThread(GrvtSimConfig(seed=4, step_interval_s=None)) as running:
        yield running


def test_a_worker_that_lost_its_lease_cancels_only_its_own_orders(
    still_server: GrvtSimServerThread, tmp_path: Path
) -> None:
    """A holder hung, the lease went to a new worker of the same bot on the same account; when the old
    one wakes and learns it lost the lease, the new holder's orders stay resting."""
    server = still_server
    settings = BotSettings.model_validate(
        {
            "symbol": SYMBOL,
            "exchange": {"mode": "live", "base_url": server.url, "request_timeout_s": 2.0},
            "strategy": {"grid_layers": 2, "spread_pct": 0.0005},
        }
    )
    credentials = new_credentials()

    async def until_quoting(running: RunningWorker) -> None:
        for _ in range(200):
            server.step(1)
            await asyncio.sleep(0.05)
            if running.worker.resting:
                return
        raise AssertionError("never quoted")

    async def scenario() -> tuple[set[str], set[str]]:
        server.step(1)
        store = tmp_path / "ledger.db"  # one store: its lease went from the old worker to the new one
        old = await start_worker(settings, store, credentials=credentials)
        new = None
        try:
            await until_quoting(old)
            new = await start_worker(settings, store, credentials=credentials)
            await until_quoting(new)  # the market holds still from here: the new holder rests as it is
            await new.worker.quiescent()
            await old.worker.quiescent()
            theirs = set(new.worker.resting)
            old.worker.lease_lost()
            await asyncio.wait_for(old.task, timeout=30)
            resting = {o.client_order_id for o in await new.exchange.open_orders(SYMBOL)}
            return theirs, resting
        finally:
            await stop_worker(old)
            if new is not None:
                await stop_worker(new)

    theirs, resting = asyncio.run(scenario())
    assert theirs and theirs <= resting  # every order of the new holder still rests
