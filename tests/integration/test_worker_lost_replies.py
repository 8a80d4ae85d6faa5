"""A placement whose reply is lost, against the local GRVT exchange with the real SDK: the exchange books
the order after the bot's call gave up (the first attempt timed out, the retries were refused) and after
the core let it go (a reconciliation found it missing). Nothing tracks it then; the bot's periodic look
at the open orders finds it among the ids it sent and cancels it. One booked after the bot stopped is
beyond any look: the order's signed lifetime (`exchange.order_lifetime_s`) ends it at the exchange."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bots.control import WorkerExit
from bots.venues.grvt.server.app import GrvtSimConfig, GrvtSimServerThread
from bots.venues.grvt.server.book import BookOrder
from bots.worker import BotWorker
from settings.models import BotSettings
from tests.integration.worker_harness import RunningWorker, start_worker, stepping_until, stop_worker

pytestmark = pytest.mark.integration

SYMBOL = "BTC_USDT_Perp"
TIMEOUT_S = 2.0  # the bot's order-call timeout
BOOKED_AFTER_S = 5.0  # when the exchange handles the slowed create_order: long after the bot gave up


@pytest.fixture(scope="module")
def server() -> Iterator[GrvtSimServerThread]:
    """A market that moves only when a test steps it."""
    with GrvtSimServerThread(GrvtSimConfig(seed=11, step_interval_s=None)) as running:
        yield running


def _given_up(worker: BotWorker) -> str | None:
    """The first placement whose call kept failing (the core's journal)."""
    journal = worker.core.journal or []
    return next((str(args[0]) for name, args, _ in journal if name == "on_send_failed"), None)


def _order(server: GrvtSimServerThread, sub_account_id: str, cid: str) -> BookOrder | None:
    """The exchange's record of our order `cid`; None: it has none."""

    def read() -> BookOrder | None:
        account = server.server.exchange.accounts.sub_accounts.get(sub_account_id)
        return account.order(None, cid) if account is not None else None

    return server.call(read)


def _status(server: GrvtSimServerThread, sub_account_id: str, cid: str) -> str | None:
    """Its status (OPEN, CANCELLED, ...)."""
    order = _order(server, sub_account_id, cid)
    return None if order is None else order.status


def _settings(server: GrvtSimServerThread, **exchange: float) -> BotSettings:
    return BotSettings.model_validate(
        {
            "symbol": SYMBOL,
            "exchange": {"mode": "live", "base_url": server.url, "request_timeout_s": TIMEOUT_S, **exchange},
            "strategy": {"grid_layers": 2, "spread_pct": 0.0005},
        }
    )


async def _quoting(server: GrvtSimServerThread, settings: BotSettings, ledger: Path) -> RunningWorker:
    """A worker with its quotes resting, at rest, its journal (from now on) kept."""
    server.step(1)
    running = await start_worker(settings, ledger)
    try:
        await stepping_until(server, lambda: bool(running.worker.resting), "quotes")
        await running.worker.quiescent()
    except BaseException:
        await stop_worker(running)
        raise
    running.worker.core.journal = []
    return running


def _lost_placement(server: GrvtSimServerThread, booked_after_s: float) -> None:
    """The next order reaches the exchange but is handled only `booked_after_s` later, after the
    bot's timeout; the bot's retries (same client order id) are refused: the bot gives it up."""
    server.faults.slow_next(booked_after_s, 1, path="create_order")
    server.faults.http_errors(503, 3, path="create_order")


def test_an_order_booked_after_its_placement_gave_up_is_cancelled_by_the_periodic_look(
    server: GrvtSimServerThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(server, other_stores_check_s=0.5)

    async def scenario() -> tuple[str, bool, str | None, set[str], WorkerExit]:
        running = await _quoting(server, settings, tmp_path / "ledger.db")
        worker, sub = running.worker, running.sub_account_id
        try:
            _lost_placement(server, BOOKED_AFTER_S)
            await stepping_until(server, lambda: _given_up(worker) is not None, "a placement given up")
            cid = _given_up(worker)
            assert cid is not None
            await stepping_until(
                server, lambda: _status(server, sub, cid) is not None, "the late booking", 15.0
            )
            tracked_when_booked = cid in worker.core.orders
            await stepping_until(
                server, lambda: _status(server, sub, cid) != "OPEN", "the lost order gone", 10.0
            )
            await worker.quiescent()
            ours = {o.client_order_id for o in await running.exchange.open_orders(SYMBOL)}
            untracked = {c for c in ours if c not in worker.core.orders}
            return cid, tracked_when_booked, _status(server, sub, cid), untracked, await stop_worker(running)
        finally:
            server.faults.clear()
            if not running.task.done():
                await stop_worker(running)

    with caplog.at_level(logging.WARNING, logger="mmfleet.worker"):
        cid, tracked_when_booked, status, untracked, outcome = asyncio.run(scenario())
    assert not tracked_when_booked  # booked as an orphan: the core had let it go
    assert status == "CANCELLED"
    assert not untracked
    assert outcome is WorkerExit.STOPPED
    assert any("rests untracked" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert any(getattr(r, "fields", {}).get("client_order_id") == cid for r in caplog.records)


def test_an_order_booked_after_the_bot_stopped_ends_with_its_signed_lifetime(
    server: GrvtSimServerThread, tmp_path: Path
) -> None:
    """The bot gives a placement up and stops (cancelling all it knows, confirming nothing rests); the
    exchange books the lost order after that. No look of the bot's can find it now: it rests until
    its signature's expiration, `order_lifetime_s` after it was sent, and not past it."""
    lifetime_s, booked_after_s = 12.0, 8.0
    settings = _settings(server, order_lifetime_s=lifetime_s)

    async def scenario() -> tuple[list[str | None], BookOrder | None, int, int, WorkerExit]:
        running = await _quoting(server, settings, tmp_path / "ledger.db")
        worker, sub = running.worker, running.sub_account_id
        try:
            before_ns = time.time_ns()  # the lost order is signed after this...
            _lost_placement(server, booked_after_s)
            await stepping_until(server, lambda: _given_up(worker) is not None, "a placement given up")
            after_ns = time.time_ns()  # ... and before this
            cid = _given_up(worker)
            assert cid is not None
            outcome = await stop_worker(running)
            statuses = [_status(server, sub, cid)]  # the stop is over: not booked yet
            await stepping_until(
                server, lambda: _status(server, sub, cid) is not None, "the late booking", 15
            )
            statuses.append(_status(server, sub, cid))
            await stepping_until(server, lambda: _status(server, sub, cid) != "OPEN", "its expiry", 15)
            return statuses, _order(server, sub, cid), before_ns, after_ns, outcome
        finally:
            server.faults.clear()
            if not running.task.done():
                await stop_worker(running)

    statuses, order, before_ns, after_ns, outcome = asyncio.run(scenario())
    assert outcome is WorkerExit.STOPPED
    assert statuses == [None, "OPEN"], "booked after the stop (before it, the stop would cancel it), resting"
    assert order is not None and (order.status, order.reject_reason) == ("CANCELLED", "EXPIRED")
    lifetime_ns = round(lifetime_s * 1e9)
    assert before_ns + lifetime_ns <= order.expiration_ns <= after_ns + lifetime_ns  # signed by the bot
    assert order.update_time_ns >= order.expiration_ns  # ended by its expiry, not before
