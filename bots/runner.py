"""One bot process: the lock, the metrics port, signals, and the restart loop around a `BotWorker`."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import uvloop
from prometheus_client import CollectorRegistry

from bots import native
from bots.control import WorkerExit
from bots.errors import ConfigError, TransientExchangeError
from bots.exchange.base import Exchange
from bots.exchange.factory import make_exchange
from bots.exitcodes import ExitCode, signal_exit_code
from bots.http import start_http
from bots.metrics import BotMetrics
from bots.retry import Backoff, retrying
from bots.store import Ledger
from bots.store.writer import Lease, StoreWriter
from bots.worker import BotWorker
from ml.live_regime import LiveRegime
from settings import FleetSettings, bot_settings, load_fleet
from settings.credentials import resolve_credentials
from settings.models import BotSettings, InstrumentSpec

__all__ = ["BotProcess", "account_key", "run_bot"]

log = logging.getLogger("mmfleet.runner")

_HEARTBEAT_S = 5.0
_STORE_CLOSE_S = 10.0  # the last writes' commit at exit (within the supervisor's stop margin)
_CONNECT_BACKOFF = Backoff(attempts=8, base_s=0.5, max_s=15.0)  # about a minute of a failing exchange


def account_key(settings: BotSettings) -> str:
    """The exchange account a bot trades on, as the lock's key; never the raw account id."""
    mode = settings.exchange.mode
    if mode != "live":
        return f"{mode}:{settings.name}"  # simulated accounts are per bot
    account_id = resolve_credentials(settings.exchange).trading_account_id.get_secret_value()
    digest = hashlib.sha256(account_id.encode()).hexdigest()[:16]
    return f"live:{settings.exchange.env}:{digest}"


@dataclass(frozen=True, slots=True)
class BotProcess:
    """What `mmfleet bot run` was asked to run."""

    config_path: Path
    bot: str
    metrics_port: int | None
    metrics_host: str = "127.0.0.1"
    allow_live: bool = False


def _load(process: BotProcess) -> tuple[FleetSettings, BotSettings, int]:
    native.require_fresh()  # what runs is what was tested
    fleet = load_fleet(process.config_path)
    settings = bot_settings(fleet, process.bot)
    if settings.exchange.mode == "live" and not process.allow_live:
        raise ConfigError(
            f"{settings.name}: exchange.mode is live; pass --i-understand-live-trading to trade real money"
        )
    index = [b.name for b in fleet.bots].index(settings.name)
    port = process.metrics_port if process.metrics_port is not None else fleet.metrics_base_port + index
    return fleet, settings, port


_EXITS = {
    WorkerExit.SHUTDOWN: ExitCode.SHUTDOWN,
    WorkerExit.MARKET_ENDED: ExitCode.MARKET_DATA_ENDED,
    WorkerExit.ORDERS_LEFT: ExitCode.ORDERS_LEFT,
}


def run_bot(process: BotProcess) -> int:
    """Run one bot until a signal or a shutdown command; the process exit code (`bots.exitcodes`).

    Raises ConfigError (exit 2) before any order is sent when the config or the lock says no, and
    StoreError (exit 3) when the ledger cannot be opened.
    """
    fleet, settings, port = _load(process)
    ledger = Ledger(
        fleet.ledger_url(), max_connections=1
    )  # PostgreSQL: one connection per bot, LISTEN included
    account = account_key(settings)
    if not ledger.acquire_lock(account, settings.symbol):
        holder = ledger.lock_holder(account, settings.symbol)
        who = f"pid {holder.pid} on {holder.host}" if holder else "another worker"
        ledger.close()
        raise ConfigError(f"{settings.name}: {settings.symbol} on this account is already run by {who}")
    try:
        # uvloop: the event loop's own work (timers, wake-ups, callbacks) in C, a large share of a
        # sim bot's CPU per book event with the stdlib loop (bench/fleet_scale.py)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_serve(process, settings, ledger, account, port))
    finally:
        ledger.release_lock(account, settings.symbol)
        ledger.close()


async def _serve(process: BotProcess, settings: BotSettings, ledger: Ledger, account: str, port: int) -> int:
    registry = CollectorRegistry()
    metrics = BotMetrics(
        registry, settings.name, settings.symbol, settings.exchange.mode, settings.strategy.grid_layers
    )
    current: list[BotWorker] = []

    def readiness() -> str | None:
        return current[0].readiness() if current else "starting"

    runner = await start_http(registry, readiness, process.metrics_host, port)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    stopped_as: list[ExitCode] = []  # why a signal or a lost lock stopped us

    def stop(code: ExitCode) -> None:
        stopped_as[:] = [code]
        stopping.set()
        if current:
            current[0].request_stop()

    def lease_lost() -> None:
        stopped_as[:] = [ExitCode.CONFIG]
        stopping.set()
        if current:
            current[0].lease_lost()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, signal_exit_code(sig))
    # The store thread heartbeats the lease (a busy loop cannot starve it); another worker holding it
    # now stops us: a restart here would be refused the same way.
    store = StoreWriter(
        ledger,
        settings.name,
        queue_limit=settings.store.queue_limit,
        lease=Lease(account, settings.symbol, _HEARTBEAT_S),
        on_lease_lost=lease_lost,
    )
    store.start()
    store_id = await store.call(lambda ledger: ledger.store_id())  # never on the loop: the thread pins it
    log.info("serving metrics", extra={"fields": {"bot": settings.name, "port": port}})
    try:
        while not stopping.is_set():
            reload: Callable[[], BotSettings] = lambda: _load(process)[1]  # noqa: E731
            exchange, settings = await retrying(
                partial(_connect, settings, store), policy=_CONNECT_BACKOFF, on_error=_connect_failed
            )
            regime = LiveRegime(settings.ml.model_dir, settings.ml.max_model_age_s)
            worker = BotWorker(
                settings,
                exchange,
                ledger,
                metrics,
                reload_settings=reload,
                regime=regime,
                store=store,
                store_id=store_id,
            )
            current[:] = [worker]
            try:
                outcome = await worker.run()
            finally:
                await exchange.close()
            settings = worker.settings
            if outcome is not WorkerExit.RESTART:
                if outcome is WorkerExit.ORDERS_LEFT or not stopped_as:  # orders left outrank a signal
                    return _EXITS.get(outcome, ExitCode.TERMINATED)
                return stopped_as[0]
            log.info("restarting", extra={"fields": {"bot": settings.name}})
        return stopped_as[0] if stopped_as else ExitCode.TERMINATED
    finally:
        await store.close(_STORE_CLOSE_S)
        await runner.cleanup()


async def _connect(settings: BotSettings, store: StoreWriter) -> tuple[Exchange, BotSettings]:
    """The bot's exchange and, in live mode, its settings with the tick, lot and minimum size the
    exchange gives today."""
    name, symbol, balance = settings.name, settings.symbol, settings.paper.starting_balance_usd
    exchange = await make_exchange(
        settings,
        await store.call(lambda ledger: ledger.restore_portfolio(name, symbol, balance)),
        await store.call(partial(_last_mid, symbol=symbol)),
    )
    if settings.exchange.mode != "live":
        return exchange, settings
    try:
        info = await exchange.instrument(settings.symbol)
    except BaseException:
        await exchange.close()
        raise
    spec = InstrumentSpec(tick_size=info.tick_size, lot_size=info.lot_size, min_size=info.min_size)
    return exchange, settings.model_copy(update={"instrument": spec})


def _connect_failed(exc: TransientExchangeError) -> None:
    """A 5xx, a timeout or a rate limit while connecting: retried with backoff, not a crash."""
    log.warning("exchange unavailable at start, retrying", extra={"fields": {"error": str(exc)}})


def _last_mid(ledger: Ledger, symbol: str) -> float | None:
    row = ledger.last_features(symbol, since_ts_ns=time.time_ns() - 3600 * 1_000_000_000)
    return row.values.get("mid") if row is not None else None
