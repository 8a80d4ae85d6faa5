"""Recording real data: `mmfleet record` of a paper bot against the local GRVT exchange, through the
market-data feed paper mode trades on (the real grvt-pysdk over real sockets), into the replay format;
then a backtest over the file.

What the exchange published is known exactly: its books are those of a seeded sim market (rebuilt
here from the same seed and parameters) and it keeps its recent public trades, so the recording is
checked against them level by level and trade by trade.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bots.cli import app
from bots.engine.types import Side
from bots.exchange.sim import SimMarket, read_recording
from bots.exchange.sim.replay import read_funding
from bots.venues.grvt.server.app import GrvtSimConfig, GrvtSimServerThread
from bots.venues.grvt.server.instruments import ticker_payload
from ml.backtest import BacktestConfig, RecordedMarket, run_backtest
from settings.models import BUILTIN_INSTRUMENTS, BotSettings
from tests.integration.test_grvt_adapter import _localhost_only  # noqa: F401 - autouse: nothing leaves 127.0.0.1

SYMBOL = "BTC_USDT_Perp"
STEPS = 60
CONFIG = GrvtSimConfig(
    seed=11, step_interval_s=0.05, market_params={"trade_intensity_a": 20.0, "trade_decay_k": 400.0}
)

runner = CliRunner()


@pytest.fixture(scope="module")
def exchange() -> Iterator[GrvtSimServerThread]:
    with GrvtSimServerThread(CONFIG) as server:
        yield server


def published_books(count: int) -> list[tuple[object, object]]:
    """The books the exchange's market goes through: the same seeded sim market (nothing rests on the
    exchange in this test, so its public book is the market's)."""
    market = SimMarket(
        SYMBOL,
        BUILTIN_INSTRUMENTS[SYMBOL],
        seed=CONFIG.seed + CONFIG.instruments.index(SYMBOL),
        s0=CONFIG.start_prices[SYMBOL],
        dt_s=CONFIG.dt_s,
        **dict(CONFIG.market_params),
    )
    return [(book.bids, book.asks) for book, _ in market.steps(count)]


def funding_rate(exchange: GrvtSimServerThread) -> Decimal:
    """The rate the exchange's ticker quotes now, as a fraction per interval."""
    ticker = exchange.call(
        lambda: ticker_payload(exchange.server.exchange.instruments[SYMBOL], 0, mini=False)
    )
    return Decimal(ticker["funding_rate_8h_curr"]) / 100


def fleet_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(f"bots:\n  - symbol: {SYMBOL}\n    exchange:\n      mode: paper\n      base_url: {url}\n")
    return path


def test_a_paper_bot_records_the_venues_books_trades_and_funding_and_a_backtest_replays_them(
    exchange: GrvtSimServerThread, tmp_path: Path
) -> None:
    config, out = fleet_file(tmp_path, exchange.url), tmp_path / "grvt.parquet"
    args = ["record", "--symbol", SYMBOL, "--out", str(out), "-c", str(config), "--steps", str(STEPS)]
    rate_before = funding_rate(exchange)
    result = runner.invoke(app, [*args, "--progress"])
    assert result.exit_code == 0, result.output
    steps = list(read_recording(out))
    trades = [trade for _, step_trades in steps for trade in step_trades]
    funding = read_funding(out)
    assert result.stdout.strip() == (
        f"{out}: {STEPS} steps, {len(trades)} trades, {len(funding)} funding samples of {SYMBOL}"
    )
    assert f"{STEPS:,} steps" in result.stderr  # the progress line

    # Books: every recorded book is one the exchange published, in the order it published them.
    published = published_books(2_000)
    at = 0
    for book, _ in steps:
        at = published.index((book.bids, book.asks), at) + 1  # ValueError: a book it never showed
    stamps = [book.ts_ns for book, _ in steps]
    assert stamps == sorted(stamps)

    # Trades: each one the exchange printed, exactly (price, size, side), none twice.
    printed = exchange.call(lambda: list(exchange.server.exchange.instruments[SYMBOL].trades))
    by_id = {row["trade_id"]: row for row in printed}
    assert trades and len({t.trade_id for t in trades}) == len(trades)
    for trade in trades:
        row = by_id[trade.trade_id]
        assert (trade.price, trade.size) == (Decimal(row["price"]), Decimal(row["size"]))
        assert trade.taker_side is (Side.BUY if row["is_taker_buyer"] else Side.SELL)

    # Funding: the ticker's rate (percentage points per 8 h) as a fraction, recorded when it changes.
    # The exchange's rate moves at most once a minute: the rates of a few seconds are among the one
    # before and the one after the recording.
    assert funding and all(sample.symbol == SYMBOL and sample.interval_s == 28_800 for sample in funding)
    assert all(a.rate != b.rate for a, b in itertools.pairwise(funding))
    assert {sample.rate for sample in funding} <= {rate_before, funding_rate(exchange)}

    # The file replays in a backtest, through the CLI and the library alike, and as text too.
    backtest = ["backtest", "run", "--file", str(out), "-c", str(config), "--json", "--no-progress"]
    replayed = runner.invoke(app, backtest)
    assert replayed.exit_code == 0, replayed.output
    stats = json.loads(replayed.stdout)["stats"]
    assert stats["events"] == STEPS
    text = tmp_path / "grvt.csv"
    assert runner.invoke(app, ["convert-recording", str(out), str(text)]).exit_code == 0
    settings = BotSettings(symbol=SYMBOL)
    from_columns = run_backtest(settings, RecordedMarket(out), BacktestConfig(seed=3))
    from_text = run_backtest(settings, RecordedMarket(text), BacktestConfig(seed=3))
    assert from_columns.stats.as_dict() == from_text.stats.as_dict()
    assert from_columns.stats.events == STEPS
    assert from_columns.total_pnl == from_text.total_pnl
