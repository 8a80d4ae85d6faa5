"""Live mode's cost per book event: one live bot (the real grvt-pysdk) on the local GRVT exchange.

The exchange runs in a child process (its CPU is not ours) and steps its market every 0.1 s: 10 book
events/s published, as the fleet benchmark's bots see. Measured over `--seconds` each, one after the
other in this process: the live bot as it is (fills from the private stream), the same bot reading
the REST fill history on every decision as it did before the stream (its fill source never trusts
the stream, no order events: the baseline), and a sim-mode bot (in-process fill model, no exchange
I/O). Figures: REST calls per minute the exchange served (all, and fill history alone, from its
`/_sim/state` request counts) and this process's CPU per published book event and per decision (a
worker behind the market decides on the newest book only, so a cheaper one decides more often).
Ratio: stream over history-per-book CPU. Last line: one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import random
import tempfile
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from eth_account import Account
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from bots.exchange.base import Capabilities, Exchange
from bots.exchange.factory import make_exchange
from bots.metrics import BotMetrics
from bots.retry import Backoff
from bots.store import Ledger
from bots.venues.grvt.account import _AccountFeed
from bots.venues.grvt.execution import GrvtExchange
from bots.venues.grvt.fills import _FillSource
from bots.worker import BotWorker
from settings.credentials import GrvtCredentials
from settings.models import BotSettings

SYMBOL = "BTC_USDT_Perp"
STEP_INTERVAL_S = 0.1
_ACCOUNTS = itertools.count(30_000_001)
STRATEGY = {"spread_pct": 0.001, "grid_layers": 2, "grid_spacing_pct": 0.0005, "refresh_interval_s": 1.0}
BUSY = {  # quotes near the touch: the local market fills them often
    "strategy": STRATEGY,
    "risk": {"max_loss_usd": 1_000.0, "max_drawdown_pct": 0.5},
}


class _HistoryEveryRead(_FillSource):
    def streamed(self, account: _AccountFeed) -> bool:
        return False


class _HistoryPerBook(GrvtExchange):
    """The adapter as it was before the private streams: every `fills_since` reads the history, and
    no order events reach the worker."""

    capabilities = Capabilities(reconciles=True, local_fills=False, order_events=False)

    def __init__(self, settings: BotSettings, *, credentials: GrvtCredentials) -> None:
        super().__init__(settings, credentials=credentials)
        self._fills = _HistoryEveryRead(self._fills.symbol, self._fills.overlap_ns)


def _serve(pipe: Connection) -> None:
    """The child process: the local exchange until the parent says stop."""
    from bots.venues.grvt.server.app import GrvtSimConfig, GrvtSimServerThread  # noqa: PLC0415

    params = {"trade_intensity_a": 20.0, "trade_decay_k": 400.0}
    config = GrvtSimConfig(seed=11, step_interval_s=STEP_INTERVAL_S, market_params=params)
    with GrvtSimServerThread(config) as server:
        pipe.send(server.url)
        pipe.recv()


def _requests(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/_sim/state", timeout=5) as reply:
        state: dict[str, Any] = json.loads(reply.read())
    return {str(k): int(v) for k, v in state["requests"].items()}


def _settings(mode: str, url: str) -> BotSettings:
    data: dict[str, Any] = {"symbol": SYMBOL, "name": f"{mode}-bench", **BUSY}
    data["exchange"] = {"mode": mode, "base_url": url, "request_timeout_s": 5.0}
    data["sim"] = {"book_interval_s": STEP_INTERVAL_S, "seed": 5}
    return BotSettings.model_validate(data)


def _credentials() -> GrvtCredentials:
    account = next(_ACCOUNTS)
    return GrvtCredentials(
        api_key=SecretStr(f"bench-key-{account}-{random.getrandbits(32):x}"),
        private_key=SecretStr(Account.create().key.hex()),
        trading_account_id=SecretStr(str(account)),
    )


async def _run(settings: BotSettings, exchange: Exchange, ledger: Ledger, seconds: float) -> dict[str, float]:
    """Run one worker for `seconds` after its first book; CPU, book events, fills of that window."""
    registry = CollectorRegistry()
    metrics = BotMetrics(registry, settings.name, settings.symbol, settings.exchange.mode, 2)
    worker = BotWorker(settings, exchange, ledger, metrics, backoff=Backoff(attempts=4, base_s=0.05))
    task = asyncio.create_task(worker.run())
    labels = {"bot": settings.name, "symbol": SYMBOL, "mode": settings.exchange.mode}

    def books() -> float:
        return registry.get_sample_value("mmfleet_tick_to_quote_seconds_count", labels) or 0.0

    while worker.last_book is None:
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.0)  # start-up reconciliation and the first quotes are not the steady state
    books0, fills0, cpu0, wall0 = books(), worker.portfolio.fill_count, time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    wall_s = time.monotonic() - wall0
    figures = {
        "cpu_s": time.process_time() - cpu0,
        "published": wall_s / STEP_INTERVAL_S,
        "decisions": books() - books0,
        "fills": float(worker.portfolio.fill_count - fills0),
    }
    worker.request_stop()
    await asyncio.wait_for(task, 60)
    await exchange.close()
    ledger.close()
    return figures


async def _live(url: str, seconds: float, tmp: Path, kind: type[GrvtExchange]) -> dict[str, float]:
    settings = _settings("live", url)
    exchange = kind(settings, credentials=_credentials())
    before = _requests(url)
    start = time.monotonic()
    figures = await _run(settings, exchange, Ledger(tmp / f"{kind.__name__}.db"), seconds)
    after = _requests(url)
    minutes = (time.monotonic() - start) / 60  # the whole life: start-up and stop included
    figures["rest_per_min"] = sum(after.values()) - sum(before.values())
    figures["fill_history_per_min"] = after.get("fill_history", 0) - before.get("fill_history", 0)
    figures["rest_per_min"] /= minutes
    figures["fill_history_per_min"] /= minutes
    return figures


async def _sim(seconds: float, tmp: Path) -> dict[str, float]:
    settings = _settings("sim", "http://127.0.0.1:9")
    ledger = Ledger(tmp / "sim.db")
    portfolio = ledger.restore_portfolio(settings.name, SYMBOL, settings.paper.starting_balance_usd)
    return await _run(settings, await make_exchange(settings, portfolio), ledger, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time per mode")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        url = parent.recv()
        with tempfile.TemporaryDirectory() as tmp:
            live = asyncio.run(_live(url, args.seconds, Path(tmp), GrvtExchange))
            polled = asyncio.run(_live(url, args.seconds, Path(tmp), _HistoryPerBook))
            sim = asyncio.run(_sim(args.seconds, Path(tmp)))
    finally:
        parent.send("stop")
        server.join(timeout=30)
    ms = {
        name: 1000 * f["cpu_s"] / f["published"]
        for name, f in (("live", live), ("polled", polled), ("sim", sim))
    }
    for name, f in (("live, fills from the stream", live), ("live, history per decision", polled)):
        print(
            f"{name}: {f['published']:.0f} book events, {f['decisions']:.0f} decisions,"
            f" {f['fills']:.0f} fills,"
            f" {1000 * f['cpu_s'] / f['published']:.3f} ms CPU per book event;"
            f" {f['rest_per_min']:.1f} REST calls/min ({f['fill_history_per_min']:.1f} fill history)"
        )
    print(
        f"sim: {sim['published']:.0f} book events, {sim['fills']:.0f} fills,"
        f" {ms['sim']:.3f} ms CPU per book event"
    )
    figures = {
        "seconds": args.seconds,
        "book_events_per_s": 1 / STEP_INTERVAL_S,
        "stream_cpu_ms_per_book_event": round(ms["live"], 3),
        "stream_rest_calls_per_min": round(live["rest_per_min"], 1),
        "stream_fill_history_calls_per_min": round(live["fill_history_per_min"], 1),
        "stream_fills": int(live["fills"]),
        "stream_cpu_ms_per_decision": round(1000 * live["cpu_s"] / live["decisions"], 3),
        "polled_cpu_ms_per_book_event": round(ms["polled"], 3),
        "polled_rest_calls_per_min": round(polled["rest_per_min"], 1),
        "polled_fill_history_calls_per_min": round(polled["fill_history_per_min"], 1),
        "polled_fills": int(polled["fills"]),
        "polled_cpu_ms_per_decision": round(1000 * polled["cpu_s"] / polled["decisions"], 3),
        "sim_cpu_ms_per_book_event": round(ms["sim"], 3),
        "ratio_stream_vs_polled_cpu": round(ms["live"] / ms["polled"], 3),
        "ratio_stream_vs_polled_rest": round(live["rest_per_min"] / polled["rest_per_min"], 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
