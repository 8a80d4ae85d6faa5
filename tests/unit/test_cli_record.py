"""`mmfleet record` and `record_source`: a bot's market data to a recording that reads back."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bots.cli import app
from bots.exchange.base import BookLevel, BookUpdate
from bots.exchange.sim import SimMarket, Step, paced, read_recording, write_recording
from bots.exchange.sim.recorder import Recorded, record_source
from settings.models import BUILTIN_INSTRUMENTS

SYMBOL = "ETH_USDT_Perp"
SPEC = BUILTIN_INSTRUMENTS[SYMBOL]

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MMFLEET_* variables from the caller's shell, and a fresh cwd so no stray .env is read."""
    for name in list(os.environ):
        if name.upper().startswith("MMFLEET_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fleet_file(tmp_path: Path, sim: str = "seed: 7\n      speed: 1000") -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        f"defaults:\n  sim:\n      {sim}\nbots:\n  - symbol: BTC_USDT_Perp\n  - symbol: {SYMBOL}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_record_writes_the_sim_market_of_the_bot(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / "out" / f"eth{suffix}"
    config = fleet_file(tmp_path)
    args = ["record", "--symbol", SYMBOL, "--out", str(out), "--config", str(config), "--steps", "300"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    steps = list(read_recording(out))
    assert len(steps) == 300
    trades = sum(len(trades) for _, trades in steps)
    assert result.stdout.strip() == f"{out}: 300 steps, {trades} trades, 0 funding samples of {SYMBOL}"
    assert {book.symbol for book, _ in steps} == {SYMBOL}
    assert all(book.bids and book.asks and book.bids[0].price < book.asks[0].price for book, _ in steps)
    assert all(p % SPEC.tick_size == 0 for book, _ in steps for p in (book.bids[0].price, book.asks[0].price))
    assert sum(len(trades) for _, trades in steps) > 0
    stamps = [book.ts_ns for book, _ in steps]
    assert stamps == sorted(stamps) and stamps[1] - stamps[0] == 100_000_000  # sim.book_interval_s

    again = tmp_path / f"again{suffix}"
    assert runner.invoke(app, [*args[:4], str(again), *args[5:]]).exit_code == 0
    first, second = list(read_recording(again)), steps  # seeded: the same market, at another time
    assert [(b.bids, b.asks) for b, _ in first] == [(b.bids, b.asks) for b, _ in second]


def test_record_stops_after_seconds_without_a_config(tmp_path: Path) -> None:
    out = tmp_path / "sol.csv.gz"
    result = runner.invoke(
        app, ["record", "--symbol", "SOL_USDT_Perp", "--out", str(out), "--seconds", "0.35"]
    )
    assert result.exit_code == 0, result.output
    steps = list(read_recording(out))
    assert 1 <= len(steps) <= 6  # real time: a book every 0.1 s
    assert {book.symbol for book, _ in steps} == {"SOL_USDT_Perp"}


def test_record_replays_a_replay_file(tmp_path: Path) -> None:
    source = tmp_path / "source.csv"
    assert runner.invoke(app, ["record", "--symbol", SYMBOL, "--out", str(source), "--config",
                               str(fleet_file(tmp_path)), "--steps", "50"]).exit_code == 0  # fmt: skip
    config = fleet_file(tmp_path, f"speed: 1000\n      replay_file: {source}")
    out = tmp_path / "copy.csv"
    result = runner.invoke(app, ["record", "--symbol", SYMBOL, "--out", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output  # the replay ends: so does the recording
    original, copy = list(read_recording(source)), list(read_recording(out))

    def untimed(steps: list[Step]) -> list[object]:  # the replay is moved to start now
        return [
            (b.bids, b.asks, [(t.price, t.size, t.taker_side, t.trade_id) for t in ts]) for b, ts in steps
        ]

    assert untimed(copy) == untimed(original)
    assert copy[-1][0].ts_ns - copy[0][0].ts_ns == original[-1][0].ts_ns - original[0][0].ts_ns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbol", "NOPE_USDT_Perp", "--out", "x.csv"], "no built-in tick/lot for NOPE_USDT_Perp"),
        (["--symbol", SYMBOL, "--out", "x.json"], "a recording ends in .parquet, .pq, .csv"),
        (["--symbol", "DOGE_USDT_Perp", "--out", "x.csv", "--config", "fleet.yaml"], "no such bot"),
    ],
)
def test_record_refuses_bad_input_with_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    fleet_file(tmp_path)
    result = runner.invoke(app, ["record", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "x.csv").exists()


# -- record_source: any async source -------------------------------------------------------------
def market(count: int | None = None) -> AsyncIterator[Step]:
    return paced(SimMarket(SYMBOL, SPEC, seed=3, s0=3_000.0, trade_intensity_a=20.0).steps(count))


def test_record_source_writes_everything_from_any_async_source(tmp_path: Path) -> None:
    expected = list(SimMarket(SYMBOL, SPEC, seed=3, s0=3_000.0, trade_intensity_a=20.0).steps(2_000))

    async def source() -> AsyncIterator[Step]:  # not paced(): any async iterable of steps will do
        for step in expected:
            yield step
            if len(step[1]) > 2:
                await asyncio.sleep(0)

    out = tmp_path / "all.parquet"
    done = asyncio.run(record_source(source(), out))
    assert done == Recorded(2_000, sum(len(trades) for _, trades in expected), 0)
    assert list(read_recording(out)) == expected


def test_record_source_limits(tmp_path: Path) -> None:
    async def main() -> tuple[Recorded, Recorded]:
        by_steps = await record_source(market(), tmp_path / "a.csv", max_steps=123)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, stop.set)
        slow = paced(SimMarket(SYMBOL, SPEC, seed=3, s0=3_000.0).steps(), speed=1.0)
        by_stop = await record_source(slow, tmp_path / "b.csv", stop=stop)
        return by_steps, by_stop

    by_steps, by_stop = asyncio.run(main())
    assert by_steps.steps == 123 == len(list(read_recording(tmp_path / "a.csv")))
    assert by_stop.steps == len(list(read_recording(tmp_path / "b.csv"))) <= 2


def test_record_source_keeps_what_came_before_a_source_error(tmp_path: Path) -> None:
    async def broken() -> AsyncIterator[Step]:
        async for step in market(40):
            yield step
        raise OSError("feed lost")

    out = tmp_path / "partial.csv"
    with pytest.raises(OSError, match="feed lost"):
        asyncio.run(record_source(broken(), out))
    assert len(list(read_recording(out))) == 40


def test_record_source_raises_a_writer_error_without_hanging(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        asyncio.run(record_source(market(), tmp_path / "missing-dir" / "x.csv"))


def test_a_price_off_the_bots_tick_stops_the_recording_with_exit_2_keeping_what_came_before(
    tmp_path: Path,
) -> None:
    steps = list(SimMarket(SYMBOL, SPEC, seed=3, s0=3_000.0).steps(30))
    book = steps[-1][0]
    odd = BookUpdate(SYMBOL, book.ts_ns + 1, (BookLevel(Decimal("3000.005"), SPEC.lot_size),), book.asks)
    source = tmp_path / "hand.csv"
    write_recording(source, [*steps, (odd, [])])
    config = fleet_file(tmp_path, f"speed: 1000\n      replay_file: {source}")
    out = tmp_path / "out.parquet"
    result = runner.invoke(app, ["record", "--symbol", SYMBOL, "--out", str(out), "--config", str(config)])
    assert result.exit_code == 2
    assert "price 3000.005 is not a whole number of 0.01" in result.stderr
    assert len(list(read_recording(out))) == 30
