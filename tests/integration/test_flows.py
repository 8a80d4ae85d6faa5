"""The five Prefect flows end to end: real Prefect (a temporary server), real sim fleets (supervisor and
worker processes), their real ledger and, for rollouts and tuning, a real Prometheus scraping the bots.

Fleets:
- calm (module-wide): BTC, ETH (both trading) and SOL, which is stopped from its start (its
  `trading_enabled` state written before the fleet starts) so the tuner's figures come only from
  fills this test writes; ETH holds `risk.max_position_usd: 2000`, which makes a patch valid for
  the other bots invalid for it.
- volatile (the rollback test): two bots whose `order_size_usd` (10 USD) is below one lot, so they
  quote nothing and their drawdown is exactly 0, in a sim moving about 1% per wall-clock second.
  The rolled-out patch restores a normal order size: the canary trades in that market and its drawdown
  leaves 0 within seconds (the alert end-to-end test relies on the same market); the guard allows 0.05
  points over the baseline. So the breach comes from the real drawdown series in Prometheus, not from
  a stand-in metric; it is random only in when, not in whether, within the 60 s watch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prefect.client.orchestration import get_client
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from bots.control import merged_settings
from bots.core.markouts import FillMarkout
from bots.engine.types import Side
from bots.exchange.base import Fill, OrderStatus, OrderUpdate
from bots.exchange.sim import UNINFORMED
from bots.store import Ledger
from bots.store.schema import config_versions, equity_history, market_features
from bots.worker import ENABLED_KEY
from flows.canary import CanaryGuard, Health, judge
from flows.fleet_control import fleet_control
from flows.pnl_report import daily_pnl_report
from flows.retrain import decide, retrain_regime_model
from flows.rollout import restore_values, rollout_config
from flows.serve import deployments
from flows.tune import tune_parameters
from ml.registry import list_versions, read_metadata
from settings import load_fleet
from settings.fleet import deep_merge
from tests.integration.test_fleet import free_port, http, ready, scrape, total, wait_for, write_fleet

BTC, ETH, SOL = "BTC_USDT_Perp", "ETH_USDT_Perp", "SOL_USDT_Perp"
NS = 1_000_000_000
FAST_GUARD = {"watch_s": 3.0, "poll_s": 1.0}


# --- fixtures -----------------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("prefect_harness")  # tests/integration/conftest.py


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        message = "prometheus is not installed (`make infra-deps` installs Debian's package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass
class Fleet:
    config: Path
    data: Path
    base_port: int
    names: list[str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    prometheus_port: int | None = None

    def ledger(self) -> Ledger:
        return Ledger(self.data / "ledger.db")

    def port(self, bot: str) -> int:
        return self.base_port + self.names.index(bot)

    def metric(self, bot: str, name: str) -> float:
        return total(scrape(self.port(bot)), name)

    def guard(self, **overrides: Any) -> CanaryGuard:
        url = f"http://127.0.0.1:{self.prometheus_port}"
        return CanaryGuard(prometheus_url=url, **{**FAST_GUARD, **overrides})

    def start_prometheus(self) -> None:
        binary = prometheus_binary()
        port = free_port()
        home = self.data.parent / "prometheus"
        home.mkdir(exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "mmfleet-bots",
                    "file_sd_configs": [{"files": [str(self.data / "fleet" / "targets.json")]}],
                }
            ],
        }
        (home / "prometheus.yml").write_text(yaml.safe_dump(config))
        command = [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        self.processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.prometheus_port = port
        wait_for(lambda: http(port, "/-/ready")[0] == 200, timeout_s=60, what="prometheus ready")
        for bot in self.names:
            wait_for(
                partial(self.prom_has, f'last_over_time(mmfleet_drawdown_ratio{{bot="{bot}"}}[30s])'),
                timeout_s=60,
                what=f"prometheus scraping {bot}",
            )

    def prom_has(self, query: str) -> bool:
        status, body = http(
            int(self.prometheus_port or 0), "/api/v1/query?" + urllib.parse.urlencode({"query": query})
        )
        return status == 200 and bool(json.loads(body)["data"]["result"])

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()  # the supervisor stops its workers on SIGTERM
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def start_fleet(
    tmp: Path,
    bots: list[dict[str, Any]],
    defaults: dict[str, Any],
    before: Callable[[Path], None] | None = None,
) -> Fleet:
    """Write a fleet file (BUSY_BOT defaults plus `defaults`), run `before(data_dir)`, start the fleet."""
    config, base = write_fleet(tmp, [bot["symbol"] for bot in bots])
    document = yaml.safe_load(config.read_text())
    document["defaults"] = deep_merge(document["defaults"], defaults)
    document["bots"] = bots
    config.write_text(yaml.safe_dump(document))
    data = tmp / "data"
    if before is not None:
        before(data)
    fleet = Fleet(config, data, base, [bot["symbol"] for bot in bots])
    log = (tmp / "supervisor.log").open("wb")  # never a pipe: nobody reads it during the module
    command = [sys.executable, "-m", "bots.cli", "fleet", "up", "--config", str(config), "--no-table"]
    fleet.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
    try:
        for i in range(len(bots)):
            wait_for(partial(ready, base + i), timeout_s=120, what=f"worker on {base + i}")
    except AssertionError:
        fleet.stop()
        raise
    return fleet


def _stop_sol_from_the_start(data: Path) -> None:
    with Ledger(data / "ledger.db") as ledger:
        ledger.set_state(SOL, ENABLED_KEY, False)


@pytest.fixture(scope="module")
def calm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("calm")
    bots: list[dict[str, Any]] = [
        {"symbol": BTC},
        {"symbol": ETH, "risk": {"max_position_usd": 2000.0}},
        # SOL's market jumps: sweeps (one every 5 s, 10 bp deep on average) reach its quotes ~10 bp from
        # the mid (kappa 1000: a number the tuner moves; it never writes one over `kappa: auto`), so a
        # short backtest of it trades (the tuner test); without them nothing comes that far.
        {
            "symbol": SOL,
            "ml": {"tuner": {"enabled": True}},
            "sim": {"sweep_rate_per_s": 0.2, "sweep_bps": 10.0},
            "strategy": {"kappa": 1000.0},
        },
    ]
    fleet = start_fleet(tmp, bots, {"ml": {"model_dir": str(tmp / "models")}}, _stop_sol_from_the_start)
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def calm_watched(calm: Fleet) -> Fleet:
    """The calm fleet with a Prometheus scraping it (started once, on first use)."""
    if calm.prometheus_port is None:
        calm.start_prometheus()
    return calm


def config_version_count(fleet: Fleet) -> int:
    engine = create_engine(f"sqlite:///{fleet.data / 'ledger.db'}", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(config_versions)).scalar_one())
    finally:
        engine.dispose()


def insert_rows(fleet: Fleet, table: Any, rows: list[dict[str, Any]]) -> None:
    """Bulk rows straight into a ledger table (the Ledger API writes one row per transaction)."""
    engine = create_engine(
        f"sqlite:///{fleet.data / 'ledger.db'}", poolclass=NullPool, connect_args={"timeout": 30}
    )
    try:
        with engine.begin() as connection:
            connection.execute(table.insert(), rows)
    finally:
        engine.dispose()


# --- rollout-config -----------------------------------------------------------------------------------


def wait_for_first_publication(fleet: Fleet) -> None:
    """Until every bot has published its first quote cycle: its gauges read 0 before that (gamma is
    validated > 0, so a gamma of 0 is a bot that has not published yet)."""
    for bot in fleet.names:
        wait_for(
            partial(lambda name: fleet.metric(name, "gamma") > 0, bot), what=f"{bot}'s first publication"
        )


def test_a_rollout_invalid_for_one_bot_is_refused_before_touching_any(calm: Fleet) -> None:
    before = config_version_count(calm)
    wait_for_first_publication(calm)
    gammas = {bot: calm.metric(bot, "gamma") for bot in calm.names}
    # 3000 USD orders fit BTC's and SOL's 5000 USD position limit, not ETH's 2000.
    state = rollout_config(
        patch={"strategy": {"order_size_usd": 3000.0}}, config=str(calm.config), return_state=True
    )
    assert state.is_failed()
    assert "risk.max_position_usd must be at least strategy.order_size_usd" in str(state.message)
    assert f"(bots: {ETH})" in str(state.message) and "nothing was published" in str(state.message)
    assert config_version_count(calm) == before
    with calm.ledger() as ledger:
        assert all(ledger.applied_config(bot) is None for bot in calm.names)
    assert {bot: calm.metric(bot, "gamma") for bot in calm.names} == gammas

    state = rollout_config(patch={"strategy": {"gamma": -1}}, config=str(calm.config), return_state=True)
    assert state.is_failed() and "strategy.gamma" in str(state.message)
    assert config_version_count(calm) == before


def test_tune_parameters_rolls_an_accepted_proposal_out_through_the_rollout_flow(calm_watched: Fleet) -> None:
    fleet = calm_watched
    # SOL never traded (stopped from its start): these four fills and orders, and the markouts its worker
    # recorded of them, are its whole window. Every order filled (fill rate 1), the mid moved through
    # each fill (markouts of -0.5 USD, about -33 bps, at every horizon) and both round trips lost: the
    # tuner widens (kappa down) and raises inventory aversion (gamma up); a 60 s backtest of SOL's sim
    # market, whose sweeps run through its quotes and half stay (adverse selection), agrees (seed 0).
    now = time.time_ns()
    trades = [(Side.BUY, "150"), (Side.SELL, "149"), (Side.BUY, "150"), (Side.SELL, "149")]
    with fleet.ledger() as ledger:
        for i, (side, price) in enumerate(trades):
            ts = now - (600 - 60 * i) * NS
            coid = f"tune-{i}"
            ledger.record_order(
                SOL,
                OrderUpdate(
                    SOL,
                    coid,
                    None,
                    side,
                    Decimal(price),
                    Decimal(1),
                    Decimal(1),
                    OrderStatus.FILLED,
                    None,
                    ts,
                ),
            )
            fee = -(Decimal(price) * Decimal("0.0001"))
            fill = Fill(f"tune-fill-{i}", SOL, coid, side, Decimal(price), Decimal(1), fee, ts, False)
            ledger.record_fill(SOL, fill)
            ledger.record_markouts(
                [
                    FillMarkout(
                        SOL,
                        SOL,
                        fill.fill_id,
                        side,
                        fill.price,
                        fill.size,
                        ts,
                        h,
                        -0.5e4 / float(price),
                        -0.5,
                    )
                    for h in (1.0, 10.0, 60.0)
                ]
            )
    result = tune_parameters(backtest_s=60.0, seed=0, guard=fleet.guard(), config=str(fleet.config))
    assert set(result) == {SOL}, "only SOL enables the tuner"
    assert "accepted" in result[SOL] and "applied as version" in result[SOL], result[SOL]
    with fleet.ledger() as ledger:
        applied = ledger.applied_config(SOL)
    assert applied is not None and applied.targets == (SOL,)
    assert applied.config == {"strategy": {"gamma": 1.1, "kappa": 900.0}}
    wait_for(
        lambda: fleet.metric(SOL, "gamma") == 1.1 and fleet.metric(SOL, "kappa") == 900.0, what="SOL metrics"
    )


def test_a_good_rollout_reaches_every_bot_canary_first_then_batches(calm_watched: Fleet) -> None:
    fleet = calm_watched
    patch = {"strategy": {"gamma": 1.7}}
    with fleet.ledger() as ledger:
        before = {bot: ledger.applied_config(bot) for bot in fleet.names}
    result = rollout_config(
        patch=patch, canary=ETH, batch_size=1, guard=fleet.guard(), config=str(fleet.config)
    )
    assert list(result) == [ETH, BTC, SOL]  # the canary, then one batch per bot
    assert len(set(result.values())) == 3
    acked_at: dict[str, int] = {}
    with fleet.ledger() as ledger:
        for bot, version in result.items():
            acks = ledger.config_acks(version)
            assert [(a.bot, a.status) for a in acks] == [(bot, "applied")]
            acked_at[bot] = acks[0].at_ns
            applied = ledger.applied_config(bot)
            assert applied is not None and applied.version == version
            # Versions are cumulative per bot: a tuned SOL keeps its kappa under the new gamma.
            previous = before[bot]
            assert applied.config == deep_merge(previous.config if previous else {}, patch)
    assert acked_at[ETH] < acked_at[BTC] < acked_at[SOL]
    wait_for(lambda: all(fleet.metric(bot, "gamma") == 1.7 for bot in fleet.names), what="gamma metrics")


def test_a_canary_left_enabled_with_no_resting_order_fails_and_is_rolled_back(calm_watched: Fleet) -> None:
    """A patch that keeps trading enabled but quotes nothing (10 USD orders are below one BTC lot):
    the flag alone would pass it; the resting orders do not."""
    fleet = calm_watched
    wait_for(
        lambda: fleet.metric(BTC, "trading_enabled") == 1 and fleet.metric(BTC, "orders_open") > 0,
        what="BTC quoting",
    )
    versions = config_version_count(fleet)
    with fleet.ledger() as ledger:
        before = {bot: ledger.applied_config(bot) for bot in fleet.names}
    state = rollout_config(
        patch={"strategy": {"order_size_usd": 10.0}},
        canary=BTC,
        guard=fleet.guard(watch_s=30.0, quiet_s=5),
        config=str(fleet.config),
        return_state=True,
    )
    assert state.is_failed()
    message = str(state.message)
    assert (
        f"canary {BTC} failed: the canary stopped quoting: trading enabled but no resting order for 5 s"
        " (mmfleet_orders_open), no quote wanted either" in message
    ), message
    assert "rolled back" in message and "no other bot was changed" in message, message
    assert config_version_count(fleet) == versions + 2  # the trial and the rollback
    file_settings = next(b for b in load_fleet(fleet.config).bots if b.name == BTC)
    previous = last.config if (last := before[BTC]) is not None else {}
    with fleet.ledger() as ledger:
        applied = ledger.applied_config(BTC)
        assert applied is not None  # the canary ends on exactly its settings before the rollout
        assert merged_settings(file_settings, applied.config) == merged_settings(file_settings, previous)
        assert {bot: ledger.applied_config(bot) for bot in (ETH, SOL)} == {
            bot: before[bot] for bot in (ETH, SOL)
        }
    wait_for(lambda: fleet.metric(BTC, "orders_open") > 0, what="BTC quoting again after the rollback")


def test_a_rollout_against_an_unreachable_prometheus_fails_naming_its_url(tmp_path: Path) -> None:
    config, base = write_fleet(tmp_path, [BTC])
    fleet = Fleet(config, tmp_path / "data", base, [BTC])
    with fleet.ledger():
        pass  # creates the ledger's tables
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    state = rollout_config(
        patch={"strategy": {"gamma": 1.5}},
        guard=CanaryGuard(prometheus_url=url, **FAST_GUARD),
        config=str(config),
        return_state=True,
    )
    assert state.is_failed()
    message = str(state.message)
    assert f"Prometheus at {url} did not answer" in message and "nothing was published" in message, message
    assert "URLError" not in message
    assert config_version_count(fleet) == 0


def test_a_canary_breaching_the_drawdown_guard_is_rolled_back_and_no_other_bot_changes(
    tmp_path: Path,
) -> None:
    prometheus_binary()
    volatile = {  # a plain random walk, violent: a 20x order size takes losses within the watch
        "sim": {"sigma": 0.003, **UNINFORMED},
        "paper": {"starting_balance_usd": 1000},
        "strategy": {"order_size_usd": 10.0},
    }
    fleet = start_fleet(tmp_path, [{"symbol": BTC}, {"symbol": ETH}], volatile)
    try:
        fleet.start_prometheus()
        assert fleet.metric(BTC, "drawdown_ratio") == 0.0 and fleet.metric(BTC, "orders_open") == 0
        file_settings = {b.name: b for b in load_fleet(fleet.config).bots}
        began = time.monotonic()
        state = rollout_config(
            patch={"strategy": {"order_size_usd": 200.0}},
            canary=BTC,
            guard=fleet.guard(watch_s=60.0, poll_s=1.0, max_drawdown_increase=0.0005),
            config=str(fleet.config),
            return_state=True,
        )
        elapsed = time.monotonic() - began
        assert state.is_failed()
        message = str(state.message)
        assert f"canary {BTC} failed: drawdown" in message and "rolled back" in message, message
        with fleet.ledger() as ledger:
            trial, back = ledger.config_version(1), ledger.config_version(2)
            assert trial.targets == (BTC,) and trial.config == {"strategy": {"order_size_usd": 200.0}}
            assert back.targets == (BTC,) and back.config == {"strategy": {"order_size_usd": 10.0}}
            assert [(a.bot, a.status) for a in ledger.config_acks(1)] == [(BTC, "applied")]
            assert [(a.bot, a.status) for a in ledger.config_acks(2)] == [(BTC, "applied")]
            with pytest.raises(KeyError):
                ledger.config_version(3)
            applied = ledger.applied_config(BTC)
            assert applied is not None and applied.version == 2
            assert ledger.applied_config(ETH) is None
        # The canary ends on exactly its settings before the rollout; ETH never saw a version.
        assert merged_settings(file_settings[BTC], applied.config) == file_settings[BTC]
        assert fleet.metric(ETH, "orders_open") == 0
        print(f"canary rolled back after {elapsed:.1f}s: {message}")
    finally:
        fleet.stop()


# --- fleet-control ------------------------------------------------------------------------------------


def test_fleet_control_stop_reaches_the_bot_and_reports_its_ack(calm: Fleet) -> None:
    result = fleet_control("stop", bot=BTC, config=str(calm.config))
    assert list(result) == [BTC] and result[BTC].startswith("done: stopped;"), result
    with calm.ledger() as ledger:
        assert ledger.get_state(BTC, ENABLED_KEY) is False
        command = ledger.recent_commands(1)[0]
    assert (
        command.command == "stop"
        and command.bot == BTC
        and command.author.startswith("prefect:fleet-control:")
    )
    wait_for(lambda: calm.metric(BTC, "trading_enabled") == 0 and calm.metric(BTC, "orders_open") == 0)

    result = fleet_control("start", bot="*", config=str(calm.config))  # a broadcast: every bot answers
    assert set(result) == set(calm.names) and all(r == "done: trading enabled" for r in result.values())


# --- daily-pnl-report ---------------------------------------------------------------------------------

DAY = dt.date(2024, 3, 10)


def at(day: dt.date, hour: int, minute: int = 0) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC).timestamp()) * NS


def fill(fill_id: str, symbol: str, side: Side, price: str, size: str, fee: str, ts: int) -> Fill:
    return Fill(
        fill_id, symbol, fill_id, side, Decimal(price), Decimal(size), Decimal(fee), ts, Decimal(fee) > 0
    )


def test_daily_pnl_report_gives_the_hand_computed_numbers_and_the_same_again(
    calm: Fleet, tmp_path: Path
) -> None:
    before, after = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)
    with calm.ledger() as ledger:
        ledger.record_fills(BTC, [
            fill("b0", BTC, Side.BUY, "60000", "0.010", "-0.06", at(before, 23)),  # opening position
            fill("b1", BTC, Side.BUY, "59000", "0.010", "-0.059", at(DAY, 1)),
            fill("b2", BTC, Side.SELL, "61000", "0.015", "-0.0915", at(DAY, 2)),
            fill("b3", BTC, Side.SELL, "60500", "0.010", "0.3025", at(DAY, 3)),  # taker, flips short
            fill("b4", BTC, Side.BUY, "60000", "0.005", "-0.03", at(after, 0, 30)),  # the next day
        ])  # fmt: skip
        ledger.record_fills(ETH, [
            fill("e1", ETH, Side.SELL, "3000", "0.5", "-0.15", at(DAY, 4)),
            fill("e2", ETH, Side.BUY, "2990", "0.5", "-0.1495", at(DAY, 5)),
        ])  # fmt: skip
        # What the workers recorded of the mid after the fills (USD: side * (mid then - price) * size);
        # the bps column is the worker's and the report recomputes it from the day's totals.
        marked = [  # (fill, horizon, USD; the mid then)
            ("b0", 1.0, -1.0), ("b1", 1.0, -2.0),  # 58800
            ("b2", 1.0, 1.5), ("b2", 10.0, -3.0),  # 60900, 61200
            ("e1", 1.0, -0.5),  # 3001
        ]  # fmt: skip
        made = {f.fill_id: f for bot in (BTC, ETH) for f in ledger.fills(bot)}
        ledger.record_markouts([
            FillMarkout(made[i].symbol, made[i].symbol, i, made[i].side, made[i].price, made[i].size,
                        made[i].ts_ns, horizon, 0.0, usd)
            for i, horizon, usd in marked
        ])  # fmt: skip
    equity = {
        BTC: [(at(before, 12), "9000"), (at(DAY, 0), "10000"), (at(DAY, 6), "10030"), (at(DAY, 12), "10010"),
              (at(DAY, 18), "10040"), (at(DAY, 23), "10020"), (at(after, 1), "5000")],
        ETH: [(at(DAY, 0), "5000"), (at(DAY, 12), "4990"), (at(DAY, 20), "5005")],
    }  # fmt: skip
    insert_rows(calm, equity_history, [
        {"bot": bot, "symbol": bot, "ts_ns": ts, "equity": Decimal(v), "peak_equity": Decimal(v)}
        for bot, points in equity.items() for ts, v in points
    ])  # fmt: skip
    insert_rows(calm, market_features, [
        {"bot": BTC, "symbol": BTC, "ts_ns": at(DAY, 0, 30), "mid": 60100.0},
        {"bot": BTC, "symbol": BTC, "ts_ns": at(DAY, 1, 30), "mid": 59100.0},
        {"bot": BTC, "symbol": BTC, "ts_ns": at(DAY, 2, 30), "mid": 60900.0},
        {"bot": BTC, "symbol": BTC, "ts_ns": at(DAY, 23, 59), "mid": 60400.0},
        {"bot": BTC, "symbol": BTC, "ts_ns": at(after, 0, 1), "mid": 1.0},
    ])  # fmt: skip

    reports = tmp_path / "reports"
    result = daily_pnl_report(date=DAY, reports_dir=str(reports), config=str(calm.config))
    rows = {row["bot"]: row for row in result["exact"]}
    expected = {
        # BTC: open 0.010 @ 60000; buy 0.010 @ 59000 (avg 59500); sell 0.015 @ 61000: realized
        # 1500 * 0.015 = 22.5, FIFO 1000 * 0.010 + 2000 * 0.005 = 20; sell 0.010 @ 60500 closes
        # 0.005 (realized 1000 * 0.005 = 5, FIFO 1500 * 0.005 = 7.5) and opens 0.005 short at 60500.
        # Unrealized at the last mid 60400: -0.005 * (60400 - 60500) = 0.5. Drawdown 10030 -> 10010.
        # Spread capture against the mid before each fill: 0.010 * (60100 - 59000) = 11,
        # 0.015 * (61000 - 59100) = 28.5, 0.010 * (60500 - 60900) = -4: 35.5. Inventory PnL from the
        # first mid 60100 to the last 60400: 0.010 * 300 (opening) + 0.010 * (60400 - 60100)
        # - 0.015 * (60400 - 59100) - 0.010 * (60400 - 60900) = 3 + 3 - 19.5 + 5 = -8.5.
        # 35.5 - 8.5 = 27 = realized 27.5 + unrealized 0.5 - the opening 0.010 marked at 60100 (1).
        BTC: {"fills": "3", "volume_usd": "2110", "realized_pnl_usd": "27.5", "grid_profit_usd": "27.5",
              "rebates_usd": "0.1505", "fees_usd": "0.3025", "net_pnl_usd": "27.348",
              "spread_capture_usd": "35.5", "inventory_pnl_usd": "-8.5", "total_pnl_usd": "26.848",
              "unrealized_pnl_usd": "0.5", "max_drawdown_usd": "20", "max_drawdown_bps": "19.940179",
              "position_open": "0.01", "position_close": "-0.005", "mark_close": "60400.0"},
        # ETH: sell 0.5 @ 3000, buy back @ 2990: 5 realized and grid; flat, so no unrealized PnL.
        # No mid recorded: each fill at its own price, so no spread capture; 5 of inventory PnL.
        ETH: {"fills": "2", "volume_usd": "2995", "realized_pnl_usd": "5", "grid_profit_usd": "5",
              "rebates_usd": "0.2995", "fees_usd": "0", "net_pnl_usd": "5.2995", "unrealized_pnl_usd": "0",
              "spread_capture_usd": "0", "inventory_pnl_usd": "5", "total_pnl_usd": "5.2995",
              "max_drawdown_usd": "10", "max_drawdown_bps": "20", "position_close": "0"},
        SOL: {"fills": "0", "volume_usd": "0", "realized_pnl_usd": "0", "max_drawdown_usd": "0",
              "total_pnl_usd": "0"},
        # Fleet equity (BTC + ETH): 15000 15030 15000 15030 15045 15025: worst fall 30 from 15030.
        "fleet": {"fills": "5", "volume_usd": "5105", "realized_pnl_usd": "32.5", "grid_profit_usd": "32.5",
                  "rebates_usd": "0.45", "fees_usd": "0.3025", "net_pnl_usd": "32.6475",
                  "spread_capture_usd": "35.5", "inventory_pnl_usd": "-3.5", "total_pnl_usd": "32.1475",
                  "unrealized_pnl_usd": "0.5", "max_drawdown_usd": "30", "max_drawdown_bps": "19.960080"},
    }  # fmt: skip
    for bot, numbers in expected.items():
        for name, value in numbers.items():
            assert Decimal(rows[bot][name]) == Decimal(value), (bot, name, rows[bot][name], value)
    # Markouts of the day's fills: BTC 1 s -2 + 1.5 = -0.5 USD over 590 + 915 of notional, 10 s -3 over
    # 915; ETH 1 s -0.5 over 1500; the fleet's 1 s -1 over 3005. No 60 s markout was recorded: empty.
    markouts = {
        BTC: ("-0.5", "-3.322259", "-3", "-32.786885"),
        ETH: ("-0.5", "-3.333333", "", ""),
        "fleet": ("-1.0", "-3.327787", "-3", "-32.786885"),
    }
    for bot, (usd_1s, bps_1s, usd_10s, bps_10s) in markouts.items():
        row = rows[bot]
        assert Decimal(row["markout_1s_usd"]) == Decimal(usd_1s)
        assert Decimal(row["markout_1s_bps"]).quantize(Decimal("1e-6")) == Decimal(bps_1s)
        assert (row["markout_10s_usd"] and Decimal(row["markout_10s_usd"])) == (usd_10s and Decimal(usd_10s))
        bps_10s_got = row["markout_10s_bps"] and Decimal(row["markout_10s_bps"]).quantize(Decimal("1e-6"))
        assert bps_10s_got == (bps_10s and Decimal(bps_10s))
        assert row["markout_60s_usd"] == row["markout_60s_bps"] == ""
    # What a person reads: money to the cent (half-even), drawdown in bps to a tenth, sizes to the lot.
    shown = {row["bot"]: row for row in result["rows"]}
    assert {name: shown[BTC][name] for name in ("rebates_usd", "fees_usd", "net_pnl_usd", "total_pnl_usd",
            "max_drawdown_bps", "position_open", "position_close")} == {
        "rebates_usd": "0.15", "fees_usd": "0.30", "net_pnl_usd": "27.35", "total_pnl_usd": "26.85",
        "max_drawdown_bps": "19.9", "position_open": "0.010", "position_close": "-0.005"}  # fmt: skip
    assert shown["fleet"]["total_pnl_usd"] == "32.15" and shown["fleet"]["max_drawdown_bps"] == "20.0"
    assert (shown[BTC]["markout_1s_usd"], shown[BTC]["markout_1s_bps"]) == ("-0.50", "-3.3")
    out = reports / DAY.isoformat()
    assert (out / "pnl.csv").read_text().splitlines()[1].split(",")[:5] == [DAY.isoformat(), BTC, BTC, "3",
                                                                             "2110.00"]  # fmt: skip
    for name in ("report.html", "pnl.csv", "inventory.csv", "pnl.png", "equity.png", "inventory.png",
                 "activity.png", "summary.png", "summary.pdf"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    inventory = (out / "inventory.csv").read_text().splitlines()
    assert [line.split(",")[-1] for line in inventory if line.startswith(BTC)] == [
        "0.010",
        "0.020",
        "0.005",
        "-0.005",
    ]
    first = (out / "pnl.csv").read_bytes()

    again = daily_pnl_report(date=DAY, reports_dir=str(reports), config=str(calm.config))
    assert again["rows"] == result["rows"] and (out / "pnl.csv").read_bytes() == first

    async def artifacts() -> list[Any]:
        async with get_client() as client:
            found: list[Any] = await client.read_latest_artifacts()
            return found

    keys = {a.key for a in asyncio.run(artifacts())}
    assert {"daily-pnl-report", "daily-pnl-report-summary"} <= keys


# --- retrain-regime-model -----------------------------------------------------------------------------

# Per regime: volatility of log mid per row, drift per row, relative spread, trades per row.
REGIMES = {"calm": (2e-5, 0.0, 1e-4, 3), "volatile": (4e-4, 0.0, 5e-4, 10), "trend": (5e-5, 4e-5, 1e-4, 10)}


def regime_rows(bot: str, order: list[str], start_ns: int, seed: int) -> list[dict[str, Any]]:
    """800 one-second rows per regime, in `order`: a market whose regimes a GMM can tell apart."""
    rng = np.random.default_rng(seed)
    rows, mid, ts = [], 100.0, start_ns
    for name in order:
        sigma, drift, spread, trades = REGIMES[name]
        for _ in range(800):
            mid *= float(np.exp(drift + sigma * rng.standard_normal()))
            rows.append({
                "bot": bot, "symbol": bot, "ts_ns": ts, "mid": mid,
                "spread": spread * (1 + 0.1 * float(rng.random())),
                "imbalance": float(rng.uniform(-0.3, 0.3)), "trade_intensity": float(rng.poisson(trades)),
            })  # fmt: skip
            ts += NS
    return rows


def retrain(**parameters: Any) -> dict[str, Any]:
    """The flow's result (a run it skipped returns a state, whose data the call gives back)."""
    result = retrain_regime_model(**parameters)
    assert isinstance(result, dict), result
    return result


def test_retrain_publishes_a_valid_model_and_refuses_a_worse_one(calm: Fleet) -> None:
    # Two hours ago, each symbol went through the three regimes in its own order, so the holdout
    # (the latest 20% by time) holds every regime.
    start = time.time_ns() - 2 * 3600 * NS
    orders = {
        BTC: ["calm", "volatile", "trend"],
        ETH: ["volatile", "trend", "calm"],
        SOL: ["trend", "calm", "volatile"],
    }
    rows = [
        row
        for seed, (bot, order) in enumerate(orders.items())
        for row in regime_rows(bot, order, start, seed)
    ]
    insert_rows(calm, market_features, rows)
    models = calm.data.parent / "models"

    first = retrain(config=str(calm.config))
    assert first["published"] == {str(models): 1}, first
    assert list_versions(models) == [1]
    metadata = read_metadata(models, 1)
    assert metadata.metrics["holdout_log_likelihood"] == pytest.approx(first["candidate_ll"])
    assert metadata.metrics["n_components"] >= 3

    # Two components cannot describe three regimes as well: scored on the same holdout, it is worse.
    worse = retrain(n_components=2, config=str(calm.config))
    assert worse["published"] == {str(models): None}
    assert worse["candidate_ll"] < worse["current_ll"][str(models)] == pytest.approx(first["candidate_ll"])
    assert list_versions(models) == [1]


def test_a_retrain_with_too_few_rows_ends_completed_named_skipped_with_the_counts(tmp_path: Path) -> None:
    config, base = write_fleet(tmp_path, [BTC], ml={"model_dir": str(tmp_path / "models")})
    fleet = Fleet(config, tmp_path / "data", base, [BTC])
    with fleet.ledger():
        pass  # creates the ledger's tables
    # 1,600 one-second rows: 600 are the features' warm-up, 1,000 remain, 800 of them to train on.
    insert_rows(fleet, market_features, regime_rows(BTC, ["calm", "volatile"], time.time_ns() - 3600 * NS, 7))

    state = retrain_regime_model(config=str(config), return_state=True)
    assert state.is_completed() and state.name == "Skipped", (state.type, state.name)
    assert (
        state.message == "No model trained: not enough data: 800 training rows (min_rows=1000), 200 holdout"
    )
    data = state.result()
    assert isinstance(data, dict) and data["published"] == {} and data["rows"] == 800
    assert not (tmp_path / "models").exists()

    async def artifact() -> Any:
        async with get_client() as client:
            return await client.read_latest_artifacts()

    markdown = next(a for a in asyncio.run(artifact()) if a.key == "retrain-regime-model").data
    assert "| training | 800 | 1000 |" in markdown and "| holdout | 200 | 10 |" in markdown


def test_a_retrain_reads_only_the_rows_of_the_fleets_own_bots(tmp_path: Path) -> None:
    """Rows of another bot on the same symbol (another fleet, a sim bot's synthetic market) are not
    this fleet's market: with them the run would have 1,600 training rows and train; without, 800."""
    config, base = write_fleet(tmp_path, [BTC], ml={"model_dir": str(tmp_path / "models")})
    fleet = Fleet(config, tmp_path / "data", base, [BTC])
    with fleet.ledger():
        pass  # creates the ledger's tables
    start = time.time_ns() - 3600 * NS
    insert_rows(fleet, market_features, regime_rows(BTC, ["calm", "volatile"], start, 7))
    foreign = regime_rows("BTC_sim_elsewhere", ["volatile", "trend"], start, 8)
    insert_rows(fleet, market_features, [{**row, "symbol": BTC} for row in foreign])

    state = retrain_regime_model(config=str(config), return_state=True)
    assert state.is_completed() and state.name == "Skipped", (state.type, state.name, state.message)
    data = state.result()
    assert isinstance(data, dict) and data["rows"] == 800


# --- pure parts and the deployments ---------------------------------------------------------------------


def test_the_guard_judges_the_canary_against_its_own_baseline() -> None:
    guard = CanaryGuard(max_drawdown_increase=0.01, max_reject_rate_increase=0.5, watch_s=60, quiet_s=10)
    base = Health(drawdown=0.03, reject_rate=0.1, enabled=1.0, orders=6, quotes=6, samples=10)
    after = partial(Health, orders=6, quotes=6, samples=10, since_s=30)
    assert judge(base, after(0.039, 0.5, 1.0), guard) is None  # 3.9% is within 1 point of 3%
    assert "drawdown" in str(judge(base, after(0.041, 0.1, 1.0), guard))
    assert "reject rate" in str(judge(base, after(0.03, 0.7, 1.0), guard))
    assert "trading_enabled went to 0" in str(judge(base, after(0.03, 0.1, 0.0), guard))
    # Enabled, but nothing rested for the whole quiet window: stopped quoting, whatever the flag says.
    idle = judge(base, after(0.03, 0.1, 1.0, orders=0, quotes=None), guard)
    assert "no resting order for 10 s" in str(idle) and "no quote wanted" in str(idle)
    refused = judge(base, after(0.03, 0.1, 1.0, orders=0, quotes=4), guard)
    assert "no resting order" in str(refused) and "4 quotes wanted" in str(refused)
    # Before a whole window has passed since the change, no resting order proves nothing yet.
    assert judge(base, after(0.03, 0.1, 1.0, orders=0, since_s=9), guard) is None
    # A canary that was not quoting (disabled, or enabled with nothing resting) is not judged on it.
    for idle_base in (Health(0.0, 0.0, 0.0, 0, None, 10), Health(0.0, 0.0, 1.0, 0, None, 10)):
        assert judge(idle_base, after(0.0, 0.0, 1.0, orders=0), guard) is None
    assert "no sample" in str(judge(base, Health(None, None, None, None, None, 0, since_s=30), guard))


def test_a_rollback_restores_exactly_the_keys_the_patch_touched() -> None:
    old = {"strategy": {"gamma": 1.0, "kappa": 1000.0, "filters": {"rsi_period": 14}}, "risk": {"x": 1}}
    patch = {"strategy": {"gamma": 2.0, "filters": {"rsi_period": 20}}}
    assert restore_values(old, patch) == {"strategy": {"gamma": 1.0, "filters": {"rsi_period": 14}}}


def test_retrain_publishes_only_a_valid_model_that_is_not_worse() -> None:
    ok = partial(decide, converged=True, rows=5000, min_rows=1000)
    assert ok(candidate_ll=10.0, current_ll=None)[0]
    assert ok(candidate_ll=10.0, current_ll=10.0)[0]
    assert not ok(candidate_ll=9.9, current_ll=10.0)[0]
    assert not ok(candidate_ll=float("nan"), current_ll=None)[0]
    assert not decide(converged=False, rows=5000, min_rows=1000, candidate_ll=10.0, current_ll=None)[0]
    assert not decide(converged=True, rows=999, min_rows=1000, candidate_ll=10.0, current_ll=None)[0]


def test_the_five_deployments_and_their_schedules(tmp_path: Path) -> None:
    made = {d.flow_name: d for d in deployments(tmp_path / "fleet.yaml")}
    crons = {name: [s.schedule.cron for s in d.schedules] for name, d in made.items()}  # type: ignore[union-attr]
    assert crons == {
        "retrain-regime-model": ["30 0 * * *"],
        "tune-parameters": ["15 * * * *"],
        "daily-pnl-report": ["5 0 * * *"],
        "rollout-config": [],
        "fleet-control": [],
    }
    assert all(s.schedule.timezone == "UTC" for d in made.values() for s in d.schedules)  # type: ignore[union-attr]
    assert all(d.parameters == {"config": str(tmp_path / "fleet.yaml")} for d in made.values())
    names = {flow: d.name for flow, d in made.items()}
    assert names == {  # the UI lists deployments by these names alone: each says what and when
        "retrain-regime-model": "retrain-regime-gmm-daily-0030utc",
        "tune-parameters": "tune-gamma-kappa-hourly-at-15",
        "daily-pnl-report": "pnl-report-daily-0005utc",
        "rollout-config": "rollout-config-canary-on-demand",
        "fleet-control": "fleet-command-on-demand",
    }
