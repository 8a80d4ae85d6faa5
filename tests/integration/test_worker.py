"""A real worker on the real sim exchange and a real SQLite ledger, driven through the control plane."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bots.control import WorkerExit
from bots.engine.portfolio import Portfolio
from bots.exchange.factory import make_exchange
from bots.exchange.sim.market import UNINFORMED, SimMarket
from bots.exchange.sim.replay import write_recording
from bots.metrics import BotMetrics
from bots.store import Ledger
from bots.worker import BotWorker
from settings.models import BUILTIN_INSTRUMENTS, BotSettings
from tests.integration.test_fleet import NEAR_TOUCH

BUSY = {
    # A lively, fast sim so a few seconds hold many fills: 20x real time, ten times the sim's trades at
    # its usual depth, and quotes where they arrive (the model's spread for the fitted kappa, no floor).
    "sim": {"seed": 11, "speed": 20.0, "trade_intensity_a": 20.0},
    "strategy": {**NEAR_TOUCH, "refresh_interval_s": 0.2},
    "risk": {"max_loss_usd": 1_000.0, "max_drawdown_pct": 0.5},
}


def _settings(**overrides: Any) -> BotSettings:
    data: dict[str, Any] = {"symbol": "BTC_USDT_Perp", **BUSY}
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value}
    return BotSettings.model_validate(data)


async def _until(check: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _with_worker(
    tmp_path: Path, settings: BotSettings, body: Callable[[BotWorker, Ledger], Awaitable[None]]
) -> tuple[BotWorker, Ledger]:
    ledger = Ledger(tmp_path / "ledger.db")
    exchange = await make_exchange(
        settings, Portfolio(symbol=settings.symbol, starting_balance=settings.paper.starting_balance_usd)
    )
    metrics = BotMetrics(
        CollectorRegistry(), settings.name, settings.symbol, "sim", settings.strategy.grid_layers
    )
    worker = BotWorker(settings, exchange, ledger, metrics)
    run = asyncio.create_task(worker.run())
    try:
        await _until(lambda: worker.last_book is not None, what="first book")
        await body(worker, ledger)
    finally:
        worker.request_stop()
        outcome = await asyncio.wait_for(run, timeout=20)
        assert outcome is WorkerExit.STOPPED
        assert await exchange.open_orders(settings.symbol) == []  # nothing left resting
        assert ledger.latest_orders(settings.name, open_only=True) == []  # and the order log agrees
        assert ledger.latest_orders(settings.name)  # every placement was recorded
        await exchange.close()
    return worker, ledger


def _ack(ledger: Ledger, command_id: int) -> str | None:
    acks = ledger.command_acks(command_id)
    return acks[0].outcome if acks else None


def test_worker_trades_and_the_ledger_holds_every_fill(tmp_path: Path) -> None:
    async def body(worker: BotWorker, ledger: Ledger) -> None:
        await _until(lambda: worker.portfolio.fill_count >= 5, what="five fills")

    worker, ledger = asyncio.run(_with_worker(tmp_path, _settings(), body))
    fills = ledger.fills(worker.name)
    assert len(fills) == worker.portfolio.fill_count >= 5
    assert sum(f.size * f.side.sign for f in fills) == worker.portfolio.position
    restored = ledger.restore_portfolio(
        worker.name, worker.symbol, worker.settings.paper.starting_balance_usd
    )
    assert (restored.position, restored.cash, restored.grid_profit) == (
        worker.portfolio.position,
        worker.portfolio.cash,
        worker.portfolio.grid_profit,
    )
    assert all(f.fee < 0 for f in fills if not f.is_taker)  # maker rebate received


def test_markouts_of_the_fills_reach_the_ledger_and_the_histograms_when_their_horizon_passes(
    tmp_path: Path,
) -> None:
    async def body(worker: BotWorker, ledger: Ledger) -> None:
        await _until(
            lambda: len({m.fill_id for m in ledger.markouts(worker.name) if m.horizon_s == 1}) >= 3,
            what="1 s markouts of three fills",
        )

    worker, ledger = asyncio.run(_with_worker(tmp_path, _settings(), body))
    fills = {f.fill_id: f for f in ledger.fills(worker.name)}
    markouts = ledger.markouts(worker.name)
    for markout in markouts:  # each of a recorded fill, no further from its price than the market moved
        fill = fills[markout.fill_id]
        assert (markout.side, markout.price, markout.size, markout.fill_ts_ns) == (
            fill.side,
            fill.price,
            fill.size,
            fill.ts_ns,
        )
        assert abs(markout.bps) < 500
    registry = worker.metrics.registry
    for horizon in (1, 10, 60):
        for side in ("buy", "sell"):
            labels = {"bot": worker.name, "symbol": worker.symbol, "mode": "sim", "side": side}
            observed = registry.get_sample_value(
                "mmfleet_fill_markout_bps_count", {**labels, "horizon": f"{horizon}s"}
            )
            recorded = [m for m in markouts if m.horizon_s == horizon and m.side.value == side]
            assert observed == len(recorded)
            usd = registry.get_sample_value("mmfleet_markout_pnl_usd", {**labels, "horizon": f"{horizon}s"})
            assert usd == pytest.approx(sum(m.usd for m in recorded))


def test_stop_cancels_everything_and_start_resumes(tmp_path: Path) -> None:
    async def body(worker: BotWorker, ledger: Ledger) -> None:
        await _until(lambda: len(worker.resting) > 0, what="resting orders")
        stop = ledger.enqueue_command(worker.name, "stop", author="test")
        await _until(lambda: _ack(ledger, stop) is not None, what="stop ack")
        assert worker.resting == {}
        assert await worker.exchange.open_orders(worker.symbol) == []
        await asyncio.sleep(0.5)  # further book events must not bring orders back
        assert worker.resting == {}
        assert ledger.get_state(worker.name, "trading_enabled") is False
        start = ledger.enqueue_command(worker.name, "start", author="test")
        await _until(lambda: _ack(ledger, start) is not None and len(worker.resting) > 0, what="quotes again")

    asyncio.run(_with_worker(tmp_path, _settings(), body))


def test_stop_close_flattens_the_position(tmp_path: Path) -> None:
    async def body(worker: BotWorker, ledger: Ledger) -> None:
        await _until(lambda: worker.portfolio.position != 0, what="a position")
        command = ledger.enqueue_command(worker.name, "stop_close", author="test")
        await _until(lambda: _ack(ledger, command) is not None, what="stop_close ack")
        assert worker.portfolio.position == 0
        assert await worker.exchange.open_orders(worker.symbol) == []

    worker, ledger = asyncio.run(_with_worker(tmp_path, _settings(), body))
    assert sum(f.size * f.side.sign for f in ledger.fills(worker.name)) == 0


def test_config_version_changes_gamma_without_a_restart_and_a_bad_one_changes_nothing(tmp_path: Path) -> None:
    async def body(worker: BotWorker, ledger: Ledger) -> None:
        engine_before = worker.engine
        good = ledger.publish_config({"strategy": {"gamma": 2.5}}, [worker.name], author="test")
        await _until(lambda: bool(ledger.config_acks(good)), what="ack of the good version")
        assert ledger.config_acks(good)[0].status == "applied"
        assert worker.engine.gamma == 2.5 and worker.settings.strategy.gamma == 2.5
        assert worker.engine is not engine_before
        labels = {"bot": worker.name, "symbol": worker.symbol, "mode": "sim"}
        gamma = partial(worker.metrics.registry.get_sample_value, "mmfleet_gamma", labels)
        await _until(lambda: gamma() == 2.5, what="gamma metric")  # read at scrape time

        bad = ledger.publish_config(
            {"strategy": {"gamma": -1, "grid_layers": 3}}, [worker.name], author="test"
        )
        await _until(lambda: bool(ledger.config_acks(bad)), what="ack of the bad version")
        ack = ledger.config_acks(bad)[0]
        assert ack.status == "rejected"
        assert ack.reason is not None and "gamma" in ack.reason
        assert worker.settings.strategy.gamma == 2.5 and worker.config_version == str(good)
        fills = worker.portfolio.fill_count
        await _until(lambda: worker.portfolio.fill_count > fills, what="trading on after the rejection")

    asyncio.run(_with_worker(tmp_path, _settings(), body))


def test_a_config_version_applies_every_section_it_names_or_is_rejected_naming_the_restart(
    tmp_path: Path,
) -> None:
    async def body(worker: BotWorker, ledger: Ledger) -> None:
        patch = {
            "paper": {"taker_fee_bps": 7.0},  # the fill model lives in the exchange: rebuilt in place
            "risk": {"max_position_usd": 1234.0},
            "strategy": {"price_tolerance_pct": 0.002},
            "ml": {"regime_enabled": True},
        }
        version = ledger.publish_config(patch, [worker.name], author="test")
        await _until(lambda: bool(ledger.config_acks(version)), what="ack")
        assert ledger.config_acks(version)[0].status == "applied"
        assert worker.core.config.price_tolerance_pct == 0.002 and worker.core.config.regime_enabled
        assert worker.metrics.max_position_usd._value.get() == 1234.0

        # the new taker fee is what the next close pays (a position can go flat before the close)
        for _ in range(5):
            await _until(lambda: worker.portfolio.position != 0, what="a position")
            close = ledger.enqueue_command(worker.name, "stop_close", author="test")
            await _until(lambda: _ack(ledger, close) is not None, what="stop_close ack")  # noqa: B023
            if any(f.is_taker for f in ledger.fills(worker.name)):
                break
            start = ledger.enqueue_command(worker.name, "start", author="test")
            await _until(lambda: _ack(ledger, start) is not None, what="start ack")  # noqa: B023
        taker = [f for f in ledger.fills(worker.name) if f.is_taker]
        assert taker and all(f.fee == f.price * f.size * Decimal("0.0007") for f in taker)

        for restart, field in (
            ({"sim": {"sigma": 0.001}}, "sim.sigma"),
            ({"paper": {"starting_balance_usd": "5"}}, "paper.starting_balance_usd"),
            ({"exchange": {"request_timeout_s": 3.0}}, "exchange.request_timeout_s"),
        ):
            refused = ledger.publish_config(restart, [worker.name], author="test")
            await _until(lambda: bool(ledger.config_acks(refused)), what=f"ack of {field}")  # noqa: B023
            ack = ledger.config_acks(refused)[0]
            assert (ack.status, ack.reason) == ("rejected", f"needs restart: {field}")
        assert worker.config_version == str(version)

    asyncio.run(_with_worker(tmp_path, _settings(), body))


def test_decisions_never_overlap_when_the_exchange_is_slower_than_the_refresh_interval(
    tmp_path: Path,
) -> None:
    """Each order call takes 0.1 s while the timer fires every 0.02 s and books keep coming: one
    consumer makes one call at a time, so nothing is placed twice against the same resting orders."""
    in_flight = most = calls = 0
    delay_s = 0.1

    def slow(call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def delayed(*args: Any) -> Any:
            nonlocal in_flight, most, calls
            in_flight += 1
            calls += 1
            most = max(most, in_flight)
            try:
                await asyncio.sleep(delay_s)
                return await call(*args)
            finally:
                in_flight -= 1

        return delayed

    async def body(worker: BotWorker, ledger: Ledger) -> None:
        exchange: Any = worker.exchange
        exchange.place_order = slow(exchange.place_order)
        exchange.cancel_order = slow(exchange.cancel_order)
        nonlocal delay_s
        await _until(lambda: calls >= 30, what="thirty slow order calls")
        delay_s = 0.0  # the exchange recovers: the worker catches up and comes to rest
        await asyncio.wait_for(worker.quiescent(), 20)
        resting = await exchange.open_orders(worker.symbol)
        keys = [(order.side, order.price) for order in resting]
        assert len(keys) == len(set(keys)), "two resting orders share side and price"

    asyncio.run(_with_worker(tmp_path, _settings(strategy={"refresh_interval_s": 0.02}), body))
    assert most == 1, f"{most} order calls were in flight at once"


def test_a_restart_rebuilds_the_same_state_from_the_ledger(tmp_path: Path) -> None:
    async def trade(worker: BotWorker, ledger: Ledger) -> None:
        await _until(
            lambda: worker.portfolio.fill_count >= 3 and worker.portfolio.position != 0, what="fills"
        )
        # a market record (once a second) committed: the peak equity the restart must read back
        await _until(lambda: ledger.peak_equity(worker.name) is not None, what="the peak equity")
        halt = ledger.enqueue_command(worker.name, "stop", author="test")
        await _until(lambda: _ack(ledger, halt) is not None, what="stop ack")

    settings = _settings()
    first, ledger = asyncio.run(_with_worker(tmp_path, settings, trade))
    ledger.close()

    def numbers(p: Portfolio) -> tuple[object, ...]:
        return (
            p.position,
            p.cash,
            p.realized_pnl,
            p.grid_profit,
            p.fees,
            p.volume,
            p.entry_price,
            list(p.lots),
        )

    async def restart() -> BotWorker:
        with Ledger(tmp_path / "ledger.db") as reopened:
            exchange = await make_exchange(
                settings, reopened.restore_portfolio(settings.name, settings.symbol, Decimal(10_000))
            )
            metrics = BotMetrics(CollectorRegistry(), settings.name, settings.symbol, "sim", 3)
            worker = BotWorker(settings, exchange, reopened, metrics)
            await worker.start()
            peak = reopened.peak_equity(settings.name)
            assert peak is not None and float(peak) == worker.core.peak  # the model's float of it
            await exchange.close()
            return worker

    second = asyncio.run(restart())
    assert numbers(second.portfolio) == numbers(first.portfolio)
    assert second.enabled is False  # a stopped bot stays stopped across a restart


def test_indicators_are_seeded_from_recorded_features_so_there_is_no_warm_up(tmp_path: Path) -> None:
    settings = _settings()
    now = time.time_ns()
    with Ledger(tmp_path / "ledger.db") as ledger:
        for i in range(60):  # a minute of recorded mids, one per second, ending now
            mid = 65_000.0 * (1 + 0.0004 * ((-1) ** i))
            ledger.record_features(
                "another-bot", settings.symbol, now - (60 - i) * 1_000_000_000, {"mid": mid}
            )

    async def fresh_start() -> BotWorker:
        with Ledger(tmp_path / "ledger.db") as ledger:
            exchange = await make_exchange(settings, Portfolio(symbol=settings.symbol))
            worker = BotWorker(
                settings, exchange, ledger, BotMetrics(CollectorRegistry(), "b", settings.symbol, "sim", 3)
            )
            assert worker.engine.sigma() != worker.engine.sigma()  # NaN before seeding
            await worker.start()
            await exchange.close()
            return worker

    worker = asyncio.run(fresh_start())
    sigma = worker.engine.sigma()
    # log returns alternate +-ln(1.0004/0.9996) ~ 0.0008 once a second: sample std over 20 of them
    assert sigma == pytest.approx(math.log(1.0004 / 0.9996) * math.sqrt(20 / 19), rel=1e-3)


def test_stale_market_data_cancels_every_order_and_quoting_resumes_with_fresh_data(tmp_path: Path) -> None:
    market = SimMarket("BTC_USDT_Perp", BUILTIN_INSTRUMENTS["BTC_USDT_Perp"], seed=4, s0=65_000.0)
    # Real time (speed 1): staleness compares exchange time with the wall clock.
    steps = list(market.steps(40))  # 4 s of data
    gap_ns = 5 * 1_000_000_000  # then the feed goes silent for 5 s
    steps += [(replace(book, ts_ns=book.ts_ns + gap_ns), trades) for book, trades in market.steps(60)]
    recording = tmp_path / "gap.csv"
    write_recording(recording, steps)
    settings = _settings(sim={"replay_file": str(recording), "speed": 1.0}, risk={"max_book_age_s": 1.0})

    async def body(worker: BotWorker, ledger: Ledger) -> None:
        await _until(lambda: len(worker.resting) > 0, what="quotes on fresh data")
        await _until(
            lambda: worker.readiness() is not None and "old" in str(worker.readiness()), what="stale"
        )
        await _until(lambda: worker.resting == {}, timeout_s=5, what="orders cancelled on stale data")
        assert await worker.exchange.open_orders(worker.symbol) == []
        await _until(lambda: len(worker.resting) > 0, what="quotes again after the gap")
        assert worker.readiness() is None

    asyncio.run(_with_worker(tmp_path, settings, body))


def test_recorded_features_carry_the_public_trade_intensity(tmp_path: Path) -> None:
    settings = _settings(sim=UNINFORMED)  # Poisson arrivals only: no informed flow, clustering or sweeps

    async def body(worker: BotWorker, ledger: Ledger) -> None:
        def rows_with_intensity() -> int:
            rows = ledger.features(worker.symbol)
            return sum(row.values["trade_intensity"] is not None for row in rows)

        await _until(lambda: rows_with_intensity() >= 3, what="three feature rows with trade_intensity")

    worker, ledger = asyncio.run(_with_worker(tmp_path, settings, body))
    rows = ledger.features(worker.symbol, bot=worker.name)
    assert rows[0].values["trade_intensity"] is None  # the first row has no interval behind it
    intensities = [v for row in rows if (v := row.values["trade_intensity"]) is not None]
    # The sim prints Poisson(A * dt) trades per side per step: 2 * A per second of market time,
    # whatever the sim speed (the intensity is per second of exchange time).
    expected = 2 * settings.sim.trade_intensity_a
    assert 0.7 * expected < sum(intensities) / len(intensities) < 1.3 * expected
