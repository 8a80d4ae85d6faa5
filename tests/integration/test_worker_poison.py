"""A real worker on the sim exchange and a real SQLite ledger, fed poison through the control plane:
it keeps trading, refuses each bad row once with the reason, and `reload_config` is a checked, durable
config version."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from bots.engine.portfolio import Portfolio
from bots.exchange.factory import make_exchange
from bots.metrics import BotMetrics
from bots.store import Ledger
from bots.worker import BotWorker
from settings import bot_settings, load_fleet
from settings.models import BotSettings
from tests.integration.test_worker import BUSY, _ack, _until

NAME = "poisoned"


def _fleet_file(path: Path, symbol: str = "BTC_USDT_Perp", gamma: float = 1.0) -> None:
    bot: dict[str, Any] = {"name": NAME, "symbol": symbol, **BUSY}
    bot["strategy"] = {**BUSY["strategy"], "gamma": gamma}
    path.write_text(yaml.safe_dump({"data_dir": str(path.parent / "data"), "bots": [bot]}))


def _from_file(path: Path) -> BotSettings:
    return bot_settings(load_fleet(path), NAME)


async def _run(
    tmp_path: Path, fleet: Path, body: Callable[[BotWorker, Ledger], Awaitable[None]]
) -> tuple[BotWorker, Ledger]:
    settings = _from_file(fleet)
    ledger = Ledger(tmp_path / "ledger.db")
    exchange = await make_exchange(settings, Portfolio(symbol=settings.symbol))
    metrics = BotMetrics(CollectorRegistry(), settings.name, settings.symbol, "sim", 3)
    worker = BotWorker(settings, exchange, ledger, metrics, reload_settings=lambda: _from_file(fleet))
    run = asyncio.create_task(worker.run())
    try:
        await _until(lambda: worker.last_book is not None, what="first book")
        await body(worker, ledger)
        assert not run.done(), "the worker stopped"
    finally:
        worker.request_stop()
        await asyncio.wait_for(run, timeout=20)
        await exchange.close()
    return worker, ledger


def _raw(ledger: Ledger, sql: str, **params: Any) -> int:
    with ledger.engine.begin() as connection:
        return int(connection.execute(text(sql + " RETURNING rowid"), params).one()[0])


def test_poison_rows_are_refused_once_and_the_bot_trades_on(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    _fleet_file(fleet)

    async def body(worker: BotWorker, ledger: Ledger) -> None:
        await _until(lambda: worker.portfolio.fill_count >= 1, what="trading")
        insert = (
            "INSERT INTO commands (bot, command, payload, author, created_at_ns, status) "
            "VALUES (:bot, 'stop', :payload, 'poison', :now, 'pending')"
        )
        now = worker.started_ns + 1
        broadcast = _raw(ledger, insert, bot="*", payload="[1]", now=now)  # took a fleet down before
        deep = _raw(ledger, insert, bot=NAME, payload='{"a": ' * 10_000 + "1" + "}" * 10_000, now=now)
        not_json = _raw(ledger, insert, bot=NAME, payload="{stop", now=now)
        version = _raw(
            ledger,
            "INSERT INTO config_versions (config, targets, author, created_at_ns) "
            "VALUES ('null', '7', 'poison', 1)",
        )
        for command_id in (broadcast, deep, not_json):
            await _until(partial(lambda c: _ack(ledger, c) is not None, command_id), what=f"ack {command_id}")
            outcome = _ack(ledger, command_id)
            assert outcome is not None and outcome.startswith("rejected: payload: "), outcome
        await _until(lambda: bool(ledger.config_acks(version)), what="ack of the bad version")
        (ack,) = ledger.config_acks(version)
        assert (ack.status, ack.reason) == (
            "rejected",
            "targets: not a list of 1 to 10000 bot names (got an integer)",
        )
        assert worker.enabled  # the bad 'stop' was never obeyed
        fills = worker.portfolio.fill_count
        await _until(lambda: worker.portfolio.fill_count > fills, what="trading on")
        assert ledger.pending_commands(NAME) == []

    asyncio.run(_run(tmp_path, fleet, body))


def test_reload_config_checks_identity_applies_a_version_and_survives_a_restart(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    _fleet_file(fleet)

    async def body(worker: BotWorker, ledger: Ledger) -> None:
        _fleet_file(fleet, symbol="ETH_USDT_Perp")  # the same name now on another market
        wrong = ledger.enqueue_command(NAME, "reload_config", author="ops")
        await _until(lambda: _ack(ledger, wrong) is not None, what="ack of the wrong reload")
        outcome = _ack(ledger, wrong)
        assert outcome is not None and outcome.startswith("rejected: config version ")
        assert "symbol cannot change without a restart" in outcome
        assert worker.symbol == worker.settings.symbol == "BTC_USDT_Perp"

        _fleet_file(fleet, gamma=2.5)
        good = ledger.enqueue_command(NAME, "reload_config", author="ops")
        await _until(lambda: _ack(ledger, good) is not None, what="ack of the good reload")
        outcome = _ack(ledger, good)
        assert outcome is not None and outcome.startswith("config reloaded from file as version ")
        assert worker.settings.strategy.gamma == 2.5 and worker.engine.gamma == 2.5
        applied = ledger.applied_config(NAME)
        assert applied is not None and applied.config == {"strategy": {"gamma": 2.5}}
        assert applied.author == "reload_config by ops"
        assert worker.config_version == str(applied.version)

    _, ledger = asyncio.run(_run(tmp_path, fleet, body))
    ledger.close()
    _fleet_file(fleet)  # the file goes back to gamma 1.0; the reload is what the bot last applied

    async def restarted(worker: BotWorker, ledger: Ledger) -> None:
        assert worker.settings.strategy.gamma == 2.5

    asyncio.run(_run(tmp_path, fleet, restarted))


def test_a_stored_version_no_longer_valid_does_not_keep_the_bot_from_starting(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    _fleet_file(fleet)
    with Ledger(tmp_path / "ledger.db") as ledger:
        old = ledger.publish_config({"strategy": {"gamma": 3.0}}, [NAME], author="flow")
        ledger.ack_config(old, NAME, "applied")
        newer = ledger.publish_config({"strategy": {"gamma": 4.0}}, [NAME], author="flow")
        ledger.ack_config(newer, NAME, "applied")
        with ledger.engine.begin() as connection:  # valid once, not under today's bounds
            connection.execute(
                text("UPDATE config_versions SET config = :c WHERE version = :v"),
                {"c": '{"strategy": {"gamma": 5000}}', "v": newer},
            )

    async def body(worker: BotWorker, ledger: Ledger) -> None:
        assert worker.settings.strategy.gamma == 3.0
        assert worker.config_version == str(old)
        (ack,) = ledger.config_acks(newer)
        assert ack.status == "rejected" and ack.reason is not None
        assert ack.reason.startswith("no longer valid at start: ")

    asyncio.run(_run(tmp_path, fleet, body))


def test_an_unreadable_risk_state_fails_closed_until_an_operator_resets_risk(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    _fleet_file(fleet)
    with Ledger(tmp_path / "ledger.db") as ledger:
        ledger.set_state(NAME, "risk_state", ["tripped?"])

    async def body(worker: BotWorker, ledger: Ledger) -> None:
        assert worker.engine.risk_state.breaker_tripped
        await asyncio.sleep(0.5)
        assert worker.resting == {}  # halted: no quotes on a state it cannot read
        start = ledger.enqueue_command(NAME, "start", author="ops")  # a start does not lift a halt
        await _until(lambda: _ack(ledger, start) is not None, what="start ack")
        assert str(_ack(ledger, start)).startswith("refused: halted: circuit breaker")
        assert worker.resting == {}
        reset = ledger.enqueue_command(NAME, "reset_risk", author="ops")
        await _until(lambda: _ack(ledger, reset) is not None and len(worker.resting) > 0, what="quotes")
        halts = {"breaker_tripped": False, "drawdown_tripped": False, "other_store": None}
        assert ledger.get_state(NAME, "risk_state") == halts

    asyncio.run(_run(tmp_path, fleet, body))


def test_a_command_that_hits_a_bug_is_acked_before_the_crash_so_a_restart_does_not_repeat_it(
    tmp_path: Path,
) -> None:
    settings = _from_file(_write_default(tmp_path))

    def broken() -> BotSettings:
        raise RuntimeError("a bug in reloading")

    async def main() -> None:
        with Ledger(tmp_path / "ledger.db") as ledger:
            exchange = await make_exchange(settings, Portfolio(symbol=settings.symbol))
            metrics = BotMetrics(CollectorRegistry(), settings.name, settings.symbol, "sim", 3)
            worker = BotWorker(settings, exchange, ledger, metrics, reload_settings=broken)
            run = asyncio.create_task(worker.run())
            await _until(lambda: worker.last_book is not None, what="first book")
            command = ledger.enqueue_command("*", "reload_config", author="ops")
            with pytest.raises(RuntimeError, match="a bug in reloading"):
                await asyncio.wait_for(run, timeout=20)
            await exchange.close()
            assert _ack(ledger, command) == "failed: RuntimeError"
            assert ledger.pending_commands(NAME) == []  # the next life will not run it again

    asyncio.run(main())


def _write_default(tmp_path: Path) -> Path:
    fleet = tmp_path / "fleet.yaml"
    _fleet_file(fleet)
    return fleet
