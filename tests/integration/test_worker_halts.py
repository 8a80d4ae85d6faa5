"""Halts against the local GRVT exchange with the real SDK: two stores on one account, and a drawdown
halt that `ctl start` refuses to lift and `ctl reset-risk` lifts.

Two stores are two data directories (two ledgers, two random store ids) whose bots trade one account
and symbol: the worker lease guards one store only, so the bots tell each other apart by the store in
their client order ids, and the one that finds the other's orders halts without touching them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from bots.control import WorkerExit
from bots.core.orders import OrderIds, owner_of, store_tag
from bots.engine.types import Side
from bots.exchange.base import OrderRequest
from bots.exitcodes import COMMAND_REFUSED
from bots.store import Ledger
from bots.venues.grvt.server.app import GrvtSimConfig, GrvtSimServerThread
from bots.worker import ENABLED_KEY
from settings.models import BotSettings
from tests.integration.worker_harness import (
    RunningWorker,
    new_credentials,
    start_worker,
    stepping_until,
    stop_worker,
)

pytestmark = pytest.mark.integration

SYMBOL = "BTC_USDT_Perp"
OTHER_STORE = "orders of another mmfleet store"


@pytest.fixture(scope="module")
def server() -> Iterator[GrvtSimServerThread]:
    """A market that moves only when a test steps it: what rests, rests."""
    with GrvtSimServerThread(GrvtSimConfig(seed=5, step_interval_s=None)) as running:
        yield running


def _settings(server: GrvtSimServerThread, **exchange: Any) -> BotSettings:
    return BotSettings.model_validate(
        {
            "symbol": SYMBOL,
            "exchange": {"mode": "live", "base_url": server.url, "request_timeout_s": 2.0, **exchange},
            "strategy": {"grid_layers": 2, "spread_pct": 0.0005},
        }
    )


async def _resting(running: RunningWorker) -> set[str]:
    return {o.client_order_id for o in await running.exchange.open_orders(SYMBOL)}


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_bot_of_a_second_store_on_the_account_halts_and_leaves_the_first_stores_orders(
    server: GrvtSimServerThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Store A's bot quotes; store B's bot (its own data directory, the same account and symbol, even
    with `cancel_unknown_orders`) finds A's orders at its start and refuses to quote: an ERROR, the
    metric, a refused `start`; neither its start nor its stop cancels one of A's orders."""
    credentials = new_credentials()

    async def scenario() -> tuple[set[str], set[str], set[str], set[str], str | None, Any, float, WorkerExit]:
        server.step(1)
        first = await start_worker(_settings(server), tmp_path / "a" / "ledger.db", credentials=credentials)
        second = None
        try:
            await stepping_until(server, lambda: bool(first.worker.resting), "store A quotes")
            await first.worker.quiescent()
            theirs = set(first.worker.resting)
            second = await start_worker(
                _settings(server, cancel_unknown_orders=True), tmp_path / "b" / "ledger.db",
                credentials=credentials,
            )  # fmt: skip
            for _ in range(20):  # B lives a while on a still market: it places nothing
                await asyncio.sleep(0.05)
                assert not second.worker.resting
            resting_while_b_runs = await _resting(first)
            b_ledger = second.ledger
            start = b_ledger.enqueue_command(second.worker.name, "start", author="test")
            await stepping_until(server, lambda: bool(b_ledger.command_acks(start)), "B acks start")
            refused = b_ledger.command_acks(start)[0].outcome
            kept = b_ledger.get_state(second.worker.name, "risk_state")
            gauge = second.worker.metrics.other_store_orders._value.get()
            await first.worker.quiescent()
            theirs_at_b_stop = set(first.worker.resting)  # the market stepped meanwhile: A requoted
            b_exit = await stop_worker(second)
            second = None
            resting_after_b = await _resting(first)
            return (
                theirs,
                resting_while_b_runs,
                theirs_at_b_stop,
                resting_after_b,
                refused,
                kept,
                gauge,
                b_exit,
            )
        finally:
            if second is not None:
                await stop_worker(second)
            await stop_worker(first)

    with caplog.at_level(logging.ERROR, logger="mmfleet.worker"):
        theirs, while_b, at_b_stop, after_b, refused, kept, gauge, b_exit = asyncio.run(scenario())
    assert all(2**63 <= int(cid) < 2**64 for cid in theirs)  # the SDK sent them, the exchange keeps them
    assert theirs and theirs <= while_b  # B's start (and its reconciliation) cancelled none of A's
    assert at_b_stop and at_b_stop <= after_b  # nor did B's stop
    assert gauge > 0
    assert b_exit is WorkerExit.STOPPED  # B's stop cancelled nothing it could not confirm
    assert refused is not None and refused.startswith(f"refused: halted: {OTHER_STORE}")
    assert "reset-risk" in refused
    assert kept["other_store"].startswith(OTHER_STORE)  # a restart stays halted; `ctl status` says so
    assert any(m.startswith(f"halted: {OTHER_STORE}") for m in _errors(caplog))


async def _place_as_another_store(running: RunningWorker) -> str:
    """An order 5% below the book (it never fills here) on the bot's account with another store's client
    order id (a store joining while the bot quotes); its client order id."""
    worker = running.worker
    spec = worker.settings.spec
    book = worker.last_book
    assert book is not None and book.bids
    cid = OrderIds(store_tag(worker.store_id) ^ 1, 9, 0).next()
    request = OrderRequest(
        symbol=SYMBOL, side=Side.BUY, price=(book.bids[0].price * Decimal("0.95")).quantize(spec.tick_size),
        size=spec.effective_min_size, client_order_id=cid,
        post_only=True, reduce_only=False,
    )  # fmt: skip
    await running.exchange.place_order(request)
    return cid


@pytest.mark.parametrize(
    ("check_s", "latency_s"),
    [(0.5, 0.0), (3600.0, 0.0), (0.5, 0.1)],
    ids=["periodic-look", "order-stream", "periodic-look-slow-exchange"],
)
def test_another_stores_order_appearing_while_quoting_halts_the_bot_which_cancels_only_its_own(
    server: GrvtSimServerThread,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    check_s: float,
    latency_s: float,
) -> None:
    """Found by the periodic look at the open orders (no reconciliation under way), or with that look
    an hour away by the order stream alone: the bot cancels its own orders by id, never a cancel-all,
    and its stop leaves the other store's order resting. On a slow exchange (every call 0.1 s, as on a
    loaded machine) the halt's cancels go out one by one: the exchange is read once the bot tracks no
    order of ours, cancels still unconfirmed included (`worker.resting` alone empties when they are sent)."""
    settings = _settings(server, other_stores_check_s=check_s)

    async def scenario() -> tuple[str, set[str], set[str], WorkerExit]:
        server.step(1)
        running = await start_worker(settings, tmp_path / "ledger.db")
        try:
            await stepping_until(server, lambda: bool(running.worker.resting), "quotes")
            server.faults.latency(latency_s)
            theirs = await _place_as_another_store(running)
            await stepping_until(
                server, lambda: running.worker.core.other_store is not None, "the halt", 10.0
            )
            tracked = running.worker.core.orders  # resting and cancelling
            await stepping_until(server, lambda: not tracked, "our cancels confirmed", 10.0)
            halted = await _resting(running)
            running.worker.request_stop()
            outcome = await asyncio.wait_for(running.task, timeout=30)
            return theirs, halted, await _resting(running), outcome
        finally:
            server.faults.latency(0.0)
            await stop_worker(running)

    with caplog.at_level(logging.ERROR, logger="mmfleet.worker"):
        theirs, halted, after_stop, outcome = asyncio.run(scenario())
    assert halted == {theirs} and after_stop == {theirs}  # ours gone, theirs left, at halt and at stop
    assert outcome is WorkerExit.STOPPED
    owner = owner_of(theirs)
    assert owner is not None
    assert any(m.startswith(f"halted: {OTHER_STORE} (store {owner.store:04x}") for m in _errors(caplog))


async def _ctl(config: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "ctl", *args, "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_a_drawdown_halt_is_refused_by_start_and_lifted_by_reset_risk(
    server: GrvtSimServerThread, tmp_path: Path
) -> None:
    """The stored peak equity is twice the equity: the first decision trips the drawdown limit. `ctl
    start` refuses, saying why and what lifts it; `ctl reset-risk` lifts it, audited with its author;
    the bot quotes again and does not trip again (the peak was re-armed in the ledger too)."""
    settings = _settings(server)
    data_dir = tmp_path / "data"
    config = tmp_path / "fleet.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(data_dir), "bots": [{"symbol": SYMBOL}]}))
    store = data_dir / "ledger.db"
    with Ledger(store) as ledger:
        ledger.reset_peak_equity(settings.name, 2 * settings.paper.starting_balance_usd)

    async def scenario() -> dict[str, Any]:
        server.step(1)
        running = await start_worker(settings, store)
        worker, ledger = running.worker, running.ledger
        seen: dict[str, Any] = {}
        try:
            await stepping_until(
                server, lambda: worker.core.engine.risk_state.drawdown_tripped, "the drawdown halt"
            )
            seen["start"] = await _ctl(config, "start", "--bot", settings.name, "--wait", "60")
            await stepping_until(server, lambda: True, "a step")
            seen["resting_halted"] = len(worker.resting)
            seen["reset"] = await _ctl(config, "reset-risk", "--bot", settings.name, "--wait", "60")
            await stepping_until(server, lambda: bool(worker.resting), "quotes again")
            for _ in range(40):  # two seconds of books: no trip again
                server.step(1)
                await asyncio.sleep(0.05)
                assert not worker.core.engine.risk_state.drawdown_tripped
            seen["peak"] = ledger.peak_equity(settings.name)
            seen["risk"] = ledger.get_state(settings.name, "risk_state")
            seen["enabled"] = ledger.get_state(settings.name, ENABLED_KEY, True)
            seen["authors"] = {c.command: c.author for c in ledger.recent_commands()}
        finally:
            await stop_worker(running)
        return seen

    seen = asyncio.run(scenario())
    code, out, err = seen["start"]
    assert code == COMMAND_REFUSED, (out, err)
    assert f"{SYMBOL}: failed: refused: halted: drawdown halt" in out
    assert f"`mmfleet ctl reset-risk --bot {SYMBOL}` lifts the halt" in out
    assert seen["resting_halted"] == 0
    code, out, err = seen["reset"]
    assert code == 0, (out, err)
    assert f"{SYMBOL}: done: halt lifted (drawdown halt" in out and "peak equity reset to" in out
    balance = settings.paper.starting_balance_usd
    assert seen["peak"] is not None and abs(seen["peak"] - balance) < Decimal("0.01") * balance
    assert seen["risk"] == {"breaker_tripped": False, "drawdown_tripped": False, "other_store": None}
    assert seen["enabled"] is True
    assert seen["authors"]["reset_risk"].startswith("cli ") and "@" in seen["authors"]["reset_risk"]
