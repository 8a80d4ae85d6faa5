"""Funding in the ledger (SQLite and PostgreSQL) and in a sim worker: payments settled on the position,
committed, booked into the portfolio, restored after a restart, exported as metrics."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from prometheus_client import CollectorRegistry
from sqlalchemy import inspect, select

from bots.control import WorkerExit
from bots.engine.portfolio import Portfolio
from bots.engine.types import Side
from bots.exchange.base import Fill, FundingPayment
from bots.exchange.factory import make_exchange
from bots.metrics import BotMetrics
from bots.store import Ledger, migrations
from bots.store.db import ledger_engine
from bots.store.migrations.versions import funding_payments as funding_revision
from bots.store.schema import fills
from bots.worker import BotWorker
from flows.pnl import day_bounds, fleet_day, report_rows, summarise_bot
from flows.pnl_report import read_bot_day
from flows.report_files import write_report
from settings import FleetSettings
from settings.models import BotSettings
from tests.integration.conftest import LedgerFactory
from tests.integration.test_worker import BUSY

SYMBOL = "BTC_USDT_Perp"
D = Decimal


def _payment(n: int, amount: str, **known: Any) -> FundingPayment:
    return FundingPayment(f"pay-{n}", SYMBOL, 1_700_000_000_000_000_000 + n, D(amount), **known)


def test_funding_payments_round_trip_exactly_once(ledger: Ledger) -> None:
    # a short of 0.123 at 65,000.5 (notional 7,995.0615) under +0.0125% receives 0.9993826875, every digit
    exact = _payment(1, "0.9993826875", rate=D("0.000125"), position=D("-0.123"), mark=D("65000.5"))
    assert exact.amount == -exact.position * exact.mark * exact.rate  # type: ignore[operator]
    assert ledger.record_funding("b1", exact) is True
    assert ledger.record_funding("b1", exact) is False  # the same payment again changes nothing
    assert ledger.record_funding("b1", _payment(2, "-2.5")) is True  # GRVT's: the amount alone
    assert ledger.record_funding("b2", exact) is True  # another bot's ids are its own
    assert ledger.funding_payments("b1") == [exact, _payment(2, "-2.5")]
    assert ledger.funding_payments("b1", since_ts_ns=exact.ts_ns + 1) == [_payment(2, "-2.5")]
    assert ledger.funding_payments("b1", until_ts_ns=exact.ts_ns + 1) == [exact]
    assert ledger.funding_payments("b1", symbol="ETH_USDT_Perp") == []


def test_a_payment_finer_than_the_ledger_keeps_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="amount"):
        ledger.record_funding("b1", _payment(1, "0.0000000000000000001"))
    assert ledger.funding_payments("b1") == []


def test_a_restart_restores_funding_with_the_fills(ledgers: LedgerFactory) -> None:
    ledger = ledgers.open()
    fill = Fill("f1", SYMBOL, "c1", Side.BUY, D("60000"), D("0.5"), D("-3"), 1, False)
    ledger.record_fill("b1", fill)
    # long 0.5 at 60,000 and 61,000 under +0.01%: pays 3.00, then 3.05
    ledger.record_funding("b1", _payment(1, "-3", rate=D("0.0001"), position=D("0.5"), mark=D(60_000)))
    ledger.record_funding("b1", _payment(2, "-3.05", rate=D("0.0001"), position=D("0.5"), mark=D(61_000)))
    ledger.close()
    restored = ledgers.open().restore_portfolio("b1", SYMBOL, D(10_000))
    assert restored.funding == D("-6.05")
    assert restored.cash == D(10_000) + D(3) - D("6.05")
    assert restored.position == D("0.5")


def test_the_funding_revision_upgrades_a_ledger_of_the_revision_before_it(ledgers: LedgerFactory) -> None:
    previous = funding_revision.down_revision
    assert isinstance(previous, str)
    engine = ledger_engine(ledgers.url, schema=ledgers.schema)
    row = {"bot": "b1", "symbol": SYMBOL, "fill_id": "f1", "client_order_id": "c1", "side": "sell",
           "price": D("65000.5"), "size": D("0.123"), "fee": D("-0.7995"), "is_taker": False, "ts_ns": 1,
           "recorded_at_ns": 2}  # fmt: skip
    try:
        with engine.begin() as connection:
            migrations.upgrade(connection, previous)
            connection.execute(fills.insert().values(**row))
    finally:
        engine.dispose()
    ledger = ledgers.open()  # upgrades to the head: the funding table comes, nothing else changes
    before = ledger.restore_portfolio("b1", SYMBOL, D(1000))
    assert (before.position, before.cash, before.funding) == (D("-0.123"), D("1000.7995"), D(0))
    # the short receives under +0.0125%: 0.123 * 65,000.5 * 0.000125
    ledger.record_funding("b1", _payment(1, "0.9993826875", rate=D("0.000125")))
    after = ledger.restore_portfolio("b1", SYMBOL, D(1000))
    assert (after.position, after.funding) == (D("-0.123"), D("0.9993826875"))
    assert after.cash == D("1000.7995") + D("0.9993826875") == D("1001.7988826875")
    ledger.close()
    engine = ledger_engine(ledgers.url, schema=ledgers.schema)
    try:  # and a downgrade removes the table again, the fills kept
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(Path(migrations.__file__).parent))
            config.attributes["connection"] = connection
            command.downgrade(config, previous)
            assert "funding_payments" not in inspect(connection).get_table_names()
            assert connection.execute(select(fills.c.fill_id)).scalars().all() == ["f1"]
    finally:
        engine.dispose()


# -- a sim worker ---------------------------------------------------------------------------------
# test_worker's lively sim (20x real time, deep trades) with a funding time every simulated second at
# +0.1%: payments come quickly
FUNDED = {
    "symbol": SYMBOL,
    **BUSY,
    "sim": BUSY["sim"] | {"seed": 5, "funding": {"interval_s": 1, "rate_mean": 0.001, "rate_std": 0}},
}


def test_a_sim_worker_books_funding_on_its_position_in_the_ledger_and_the_metrics(tmp_path: Path) -> None:
    settings = BotSettings.model_validate(FUNDED)
    registry = CollectorRegistry()
    labels = {"bot": settings.name, "symbol": SYMBOL, "mode": "sim"}

    async def run() -> tuple[BotWorker, Ledger]:
        ledger = Ledger(tmp_path / "ledger.db")
        exchange = await make_exchange(settings, Portfolio(SYMBOL, settings.paper.starting_balance_usd))
        metrics = BotMetrics(registry, settings.name, SYMBOL, "sim", settings.strategy.grid_layers)
        worker = BotWorker(settings, exchange, ledger, metrics)
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 60
        while len(ledger.funding_payments(settings.name)) < 3:
            assert time.monotonic() < deadline, "no funding payments within 60 s"
            await asyncio.sleep(0.2)
        worker.request_stop()
        assert await asyncio.wait_for(task, 20) is WorkerExit.STOPPED
        await exchange.close()
        return worker, ledger

    worker, ledger = asyncio.run(run())
    payments = ledger.funding_payments(settings.name)
    for p in payments:
        assert p.rate == D("0.001") and p.position and p.mark
        assert p.amount == -p.position * p.mark * p.rate  # longs pay, shorts receive
        assert p.ts_ns % 1_000_000_000 == 0  # on the funding times
    total = sum((p.amount for p in payments), D(0))
    assert worker.portfolio.funding == total
    restored = ledger.restore_portfolio(settings.name, SYMBOL, settings.paper.starting_balance_usd)
    assert (restored.cash, restored.funding) == (worker.portfolio.cash, worker.portfolio.funding)
    paid = sum((-p.amount for p in payments if p.amount < 0), D(0))
    received = sum((p.amount for p in payments if p.amount > 0), D(0))
    sample = registry.get_sample_value
    assert sample("mmfleet_funding_paid_usd_total", labels) == pytest.approx(float(paid))
    assert sample("mmfleet_funding_received_usd_total", labels) == pytest.approx(float(received))
    assert sample("mmfleet_funding_pnl_usd", labels) == pytest.approx(float(total))
    assert sample("mmfleet_funding_rate", labels) == pytest.approx(0.001)
    assert sample("mmfleet_funding_interval_seconds", labels) == 1.0


# -- the daily report --------------------------------------------------------------------------------
def test_the_daily_report_has_a_funding_column_and_funding_in_its_pnl(tmp_path: Path) -> None:
    day = dt.date(2024, 3, 10)
    start, end = day_bounds(day)
    hour = 3600 * 1_000_000_000
    fleet = FleetSettings(data_dir=tmp_path, bots=[BotSettings(symbol=SYMBOL)])
    with Ledger(fleet.ledger_url()) as ledger:
        # long 0.010 from the day before at 60,000 (1 bp rebate), then the day's three funding times
        ledger.record_fill(
            SYMBOL, Fill("f1", SYMBOL, "c1", Side.BUY, D(60_000), D("0.010"), D("-0.06"), start - hour, False)
        )
        for n, (at_hour, mark, rate) in enumerate([(-8, "59000", "0.0001"), (0, "60000", "0.0001"),
                                                   (8, "61000", "-0.0002"), (16, "60500", "0.0003"),
                                                   (24, "60000", "0.0001")]):  # fmt: skip
            amount = -D("0.010") * D(mark) * D(rate)  # a long pays at a positive rate
            ledger.record_funding(
                SYMBOL,
                FundingPayment(f"p{n}", SYMBOL, start + at_hour * hour, amount, D(rate), D("0.010"), D(mark)),
            )
    data = read_bot_day.fn(fleet, SYMBOL, SYMBOL, start, end)
    # the day's payments (00:00, 08:00, 16:00; not the day before's, not the next day's 00:00):
    # -0.010*60000*0.0001 = -0.06, +0.010*61000*0.0002 = +0.122, -0.010*60500*0.0003 = -0.1815
    assert [p.payment_id for p in data.funding] == ["p1", "p2", "p3"]
    bot_day = summarise_bot(
        SYMBOL, SYMBOL, data.fills, data.equity, data.mids, start, end, None, funding=data.funding
    )
    assert bot_day.funding_usd == D("-0.1195") and bot_day.funding_payments == 3
    # no fill that day, no mid: nothing else moved, so the day's PnL is its funding
    assert bot_day.total_pnl_usd == bot_day.net_pnl_usd == D("-0.1195")
    days = [bot_day, fleet_day([bot_day])]
    assert days[1].funding_usd == D("-0.1195")
    exact, shown = report_rows(day, days, exact=True), report_rows(day, days)
    assert [row["funding_usd"] for row in exact] == ["-0.1195", "-0.1195"]
    assert [row["funding_usd"] for row in shown] == ["-0.12", "-0.12"]
    paths = write_report(day, days, shown, start, tmp_path / "report")
    assert "funding $" in paths["html"].read_text()
    assert "funding_usd" in paths["csv"].read_text().splitlines()[0]
