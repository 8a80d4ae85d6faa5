"""The replay format (integer ticks and lots in Parquet columns): what is written reads back exactly,
funding included; a price off its tick or a corrupt file is a ValueError naming it; recordings in the
old decimal-string layout still replay, and `mmfleet convert-recording` rewrites them."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bots.cli import app
from bots.engine.types import Side
from bots.exchange.base import BookLevel, BookUpdate, Trade
from bots.exchange.events import FundingRate
from bots.exchange.factory import market_source
from bots.exchange.sim import SimMarket, Step, read_recording, replay_columns, write_recording
from bots.exchange.sim.replay import read_funding, read_records
from bots.exchange.sim.replay_text import columns, write_text
from settings.models import BUILTIN_INSTRUMENTS, BotSettings

BTC, ETH = "BTC_USDT_Perp", "ETH_USDT_Perp"
LEVELS = 4
runner = CliRunner()


# -- what is written reads back --------------------------------------------------------------------
def side(symbol: str) -> st.SearchStrategy[tuple[BookLevel, ...]]:
    spec = BUILTIN_INSTRUMENTS[symbol]
    level = st.builds(
        lambda ticks, lots: BookLevel(spec.tick_size * ticks, spec.lot_size * lots),
        st.integers(0, 2**53 - 1) | st.integers(0, 99),  # a few ticks, and more than 2^32 lots
        st.integers(0, 2**53 - 1) | st.integers(0, 99),
    )
    return st.lists(level, max_size=LEVELS + 2).map(tuple)


def trade(symbol: str) -> st.SearchStrategy[Trade]:
    spec = BUILTIN_INSTRUMENTS[symbol]
    return st.builds(
        lambda ts, ticks, lots, taker, trade_id: Trade(
            symbol, ts, spec.tick_size * ticks, spec.lot_size * lots, taker, trade_id
        ),
        st.integers(0, 2**63 - 1),
        st.integers(0, 2**53 - 1),
        st.integers(0, 2**53 - 1),
        st.sampled_from(Side),
        st.text(max_size=8),
    )


@st.composite
def items(draw: st.DrawFn) -> list[Step | FundingRate]:
    """Steps of two symbols, any depth (deeper than the file keeps too), any trades, funding samples
    in between; the timestamps are arbitrary (the format keeps whatever it is given)."""
    found: list[Step | FundingRate] = []
    for _ in range(draw(st.integers(0, 25))):
        symbol = draw(st.sampled_from([BTC, ETH]))
        if draw(st.integers(0, 3)) == 0:
            rate = draw(st.decimals(-1, 1, allow_nan=False, allow_infinity=False, places=12))
            interval_s = draw(st.sampled_from([3_600.0, 28_800.0, 0.25]))
            found.append(FundingRate(symbol, draw(st.integers(0, 2**63 - 1)), rate, interval_s))
            continue
        book = BookUpdate(symbol, draw(st.integers(0, 2**63 - 1)), draw(side(symbol)), draw(side(symbol)))
        found.append((book, draw(st.lists(trade(symbol), max_size=3))))
    return found


def expected(written: list[Step | FundingRate], symbol: str | None = None) -> list[Step | FundingRate]:
    """What a reader gets back: books cut to the file's depth, a funding sample just before the next
    step of its symbol (the last one of a symbol after its last step is not kept)."""
    pending: dict[str, FundingRate] = {}
    found: list[Step | FundingRate] = []
    for item in written:
        if isinstance(item, FundingRate):
            pending[item.symbol] = item
            continue
        book, trades = item
        sample = pending.pop(book.symbol, None)
        if symbol is not None and book.symbol != symbol:
            continue
        if sample is not None:
            found.append(sample)
        cut = BookUpdate(book.symbol, book.ts_ns, book.bids[:LEVELS], book.asks[:LEVELS])
        found.append((cut, trades))
    return found


@settings(max_examples=60, deadline=None)
@given(written=items())
def test_what_is_written_reads_back_exactly_in_any_batch(
    tmp_path_factory: pytest.TempPathFactory, written: list[Step | FundingRate]
) -> None:
    path = tmp_path_factory.mktemp("rec") / "rec.parquet"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(replay_columns, "BATCH_ROWS", 3)  # batch edges everywhere
        events = write_recording(path, written, levels=LEVELS)
        back = list(read_records(path))
        assert back == expected(written)
        assert events == sum(1 + len(x[1]) if isinstance(x, tuple) else 1 for x in back)
        for symbol in (BTC, ETH):
            assert list(read_records(path, symbol=symbol)) == expected(written, symbol)
            steps = list(read_recording(path, symbol=symbol))
            assert steps == [x for x in expected(written, symbol) if isinstance(x, tuple)]
            funding = [x for x in expected(written, symbol) if isinstance(x, FundingRate)]
            assert read_funding(path, symbol=symbol) == funding
    for item in back:  # the best levels as floats: exactly what the Decimals give
        if isinstance(item, tuple):
            book = item[0]
            plain = BookUpdate(book.symbol, book.ts_ns, book.bids, book.asks).top()
            assert book.top() == plain or not (book.bids and book.asks)


def test_a_sim_market_round_trips_with_the_sim_markets_own_floats(tmp_path: Path) -> None:
    steps = list(
        SimMarket(BTC, BUILTIN_INSTRUMENTS[BTC], seed=4, s0=65_000.0, trade_intensity_a=20).steps(3_000)
    )
    path = tmp_path / "sim.parquet"
    write_recording(path, steps)
    back = list(read_recording(path))
    assert back == steps
    assert [book.top() for book, _ in back] == [book.top() for book, _ in steps]
    assert read_funding(path) == []


# -- bad input -------------------------------------------------------------------------------------
def test_a_price_off_its_tick_is_refused_naming_it_never_rounded(tmp_path: Path) -> None:
    book = BookUpdate(BTC, 1, (BookLevel(Decimal("65000.05"), Decimal("0.001")),), ())
    with pytest.raises(ValueError, match=r"price 65000\.05 is not a whole number of 0\.1"):
        write_recording(tmp_path / "x.parquet", [(book, [])])
    with pytest.raises(ValueError, match="no tick/lot for DOGE_USDT_Perp"):
        write_recording(tmp_path / "y.parquet", [(BookUpdate("DOGE_USDT_Perp", 1, (), ()), [])])


def rewritten(tmp_path: Path, column: str, values: pa.Array | None = None, **metadata: bytes) -> Path:
    """A good recording with one column replaced or its metadata changed."""
    good = tmp_path / "good.parquet"
    write_recording(good, SimMarket(BTC, BUILTIN_INSTRUMENTS[BTC], seed=1, s0=65_000.0).steps(30))
    table = pq.read_table(good)
    if values is not None:
        index = table.schema.get_field_index(column)
        table = table.set_column(index, table.schema.field(index).with_nullable(True), values)
    if metadata:
        table = table.replace_schema_metadata(
            {**table.schema.metadata, **{k.encode(): v for k, v in metadata.items()}}
        )
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(
    ("column", "cells", "metadata", "message"),
    [
        ("bid_px", [[-1, 0, 0, 0, 0, 0, 0, 0, 0, 0]] * 30, {}, "bid_px holds a value outside"),
        ("ask_sz", [None] * 30, {}, "column ask_sz has empty cells"),
        ("bid_levels", [11] * 30, {}, "more than the file's 10 levels"),
        ("trade_px", [[2**60]] * 30, {}, "trade"),
        ("ts_ns", None, {"mmfleet.replay": b"9"}, "replay format b'9'"),
        ("ts_ns", None, {"mmfleet.instruments": b'{"BTC_USDT_Perp": {"tick_size": "0"}}'}, "metadata"),
        ("ts_ns", None, {"mmfleet.instruments": b"{}"}, "no tick/lot in the metadata"),
    ],
)
def test_a_corrupt_recording_is_a_value_error_naming_the_file(
    tmp_path: Path, column: str, cells: list[object] | None, metadata: dict[str, bytes], message: str
) -> None:
    field_type = pq.read_schema(rewritten(tmp_path, column)).field(column).type
    values = None if cells is None else pa.array(cells, field_type if column != "trade_px" else None)
    path = rewritten(tmp_path, column, values, **metadata)
    with pytest.raises(ValueError, match=f"^{path}: .*{message}"):
        list(read_recording(path))


# -- recordings of earlier versions ----------------------------------------------------------------
def old_parquet(tmp_path: Path, steps: list[Step]) -> Path:
    """A recording as earlier versions wrote Parquet: one row per event, decimal strings."""
    text = tmp_path / "old.csv"
    write_text(text, steps)
    types = {name: pa.int64() if name == "ts_ns" else pa.string() for name in columns()}
    table = pa_csv.read_csv(
        text, convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True)
    )
    path = tmp_path / "old.parquet"
    pq.write_table(table, path, compression="zstd")
    return path


def test_old_recordings_still_replay_and_convert_to_the_replay_format(tmp_path: Path) -> None:
    steps = list(
        SimMarket(ETH, BUILTIN_INSTRUMENTS[ETH], seed=2, s0=3_000.0, trade_intensity_a=20).steps(500)
    )
    old = old_parquet(tmp_path, steps)
    assert list(read_recording(old)) == steps
    new = tmp_path / "new.parquet"
    result = runner.invoke(app, ["convert-recording", str(old), str(new)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{new}: {500 + sum(len(t) for _, t in steps)} events from {old}"
    assert replay_columns.is_columns(pq.ParquetFile(new))
    assert list(read_recording(new)) == steps
    again = runner.invoke(app, ["convert-recording", str(old), str(new)])
    assert again.exit_code == 2 and f"{new}: exists" in again.stderr  # nothing overwritten


def test_a_conversion_off_the_tick_fails_naming_it_and_leaves_no_file(tmp_path: Path) -> None:
    book = BookUpdate(BTC, 1, (BookLevel(Decimal("65000.05"), Decimal("0.001")),), ())
    text = tmp_path / "hand.csv"
    write_recording(text, [(book, [])])
    dest = tmp_path / "hand.parquet"
    result = runner.invoke(app, ["convert-recording", str(text), str(dest)])
    assert result.exit_code == 2
    assert "65000.05 is not a whole number of 0.1" in result.stderr
    assert not dest.exists()
    config = tmp_path / "fleet.yaml"  # a fleet's own tick size makes it convertible
    config.write_text(f"bots:\n  - symbol: {BTC}\n    instrument: {{tick_size: 0.01, lot_size: 0.001}}\n")
    result = runner.invoke(app, ["convert-recording", str(text), str(dest), "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert list(read_recording(dest)) == [(book, [])]


def test_a_recording_stopped_by_an_off_tick_price_keeps_every_step_before_it(tmp_path: Path) -> None:
    good = list(SimMarket(BTC, BUILTIN_INSTRUMENTS[BTC], seed=5, s0=65_000.0, trade_intensity_a=20).steps(40))
    book = BookUpdate(BTC, 2, (BookLevel(Decimal("65000.1"), Decimal("0.001")),), ())
    off = Trade(BTC, 2, Decimal("65000.05"), Decimal("0.001"), Side.BUY, "off")
    path = tmp_path / "stopped.parquet"
    with pytest.raises(ValueError, match=r"trade price 65000\.05"):
        write_recording(path, [*good, (book, [off]), *good])
    assert list(read_recording(path)) == good


def test_a_truncated_or_damaged_file_is_a_value_error_naming_it(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    write_recording(good, SimMarket(BTC, BUILTIN_INSTRUMENTS[BTC], seed=1, s0=65_000.0).steps(3_000))
    data = good.read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"^{cut}: not a readable Parquet recording"):
        list(read_recording(cut))
    damaged = tmp_path / "damaged.parquet"
    middle = len(data) // 3
    damaged.write_bytes(data[:middle] + bytes(4_096) + data[middle + 4_096 :])
    with pytest.raises(ValueError, match=f"^{damaged}: "):
        list(read_recording(damaged))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_replay_in_sim_mode_looks_live_to_the_engine(tmp_path: Path, suffix: str) -> None:
    """The engine judges staleness by the best levels' time (`top().ts_ns`): a replay moved to now
    must move those too, not only the book's own time."""
    path = tmp_path / f"old{suffix}"
    write_recording(path, SimMarket(BTC, BUILTIN_INSTRUMENTS[BTC], seed=1, s0=65_000.0).steps(20))
    settings = BotSettings.model_validate({"symbol": BTC, "sim": {"replay_file": str(path), "speed": 1000}})

    async def first_books() -> list[BookUpdate]:
        source = market_source(settings)
        return [(await anext(source))[0] for _ in range(5)]

    before = time.time_ns()
    books = asyncio.run(first_books())
    assert all(book.top().ts_ns == book.ts_ns >= before for book in books)
