"""Recordings as text: one CSV row per event with decimal strings (and the Parquet files of that
layout that earlier versions wrote). Readable by any tool and editable by hand, but slow to replay
(every price a `Decimal` parsed from a string): `mmfleet record convert` turns one into the replay
format (`bots.exchange.sim.replay_columns`). Earlier recordings keep replaying as they are: recorded
real markets cannot be recorded again.

A step is a `book` row followed by the `trade` rows that came after it, up to the next `book` row
(trade rows before the first book are skipped). Columns (N = `levels`, 10 by default; level 0 is the
best price):

    ts_ns            int     exchange time of the event, nanoseconds since the epoch
    kind             str     "book" or "trade"
    symbol           str     instrument, e.g. BTC_USDT_Perp
    bid_px_0..N-1    decimal bid prices, best first (book rows; empty past the book's depth)
    bid_sz_0..N-1    decimal bid sizes, base currency
    ask_px_0..N-1    decimal ask prices, best first
    ask_sz_0..N-1    decimal ask sizes
    price            decimal trade price (trade rows)
    size             decimal trade size, base currency
    side             str     "buy" or "sell": the taker's side
    trade_id         str     the exchange's trade id

Decimals are plain strings (exact), empty cells empty strings (nulls in the old Parquet files).
Funding samples are not kept in this layout.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from bots.engine.types import Side
from bots.exchange.base import BookLevel, BookUpdate, Trade
from bots.exchange.events import FundingRate
from bots.exchange.sim.market import Step

if TYPE_CHECKING:  # the caller opens a Parquet file: a bot replaying none never loads pyarrow
    import pyarrow.parquet as pq

__all__ = ["columns", "read_text", "write_text"]

Row = list[str | int | None]

_BATCH_ROWS = 65_536
_CACHE_LIMIT = 200_000
_MAX_NUMBER = Decimal(10) ** 20  # what the ledger's NUMERIC(38, 18) holds


def columns(levels: int = 10) -> list[str]:
    """The column names of a text recording with `levels` book levels per side."""
    names = ["ts_ns", "kind", "symbol"]
    for side in ("bid", "ask"):
        names += [f"{side}_px_{i}" for i in range(levels)] + [f"{side}_sz_{i}" for i in range(levels)]
    return [*names, "price", "size", "side", "trade_id"]


def _open_text(path: Path, mode: str) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return cast(IO[str], gzip.open(path, mode + "t", newline="", encoding="utf-8"))
    return path.open(mode, newline="", encoding="utf-8")


# -- writing ------------------------------------------------------------------------------------------
def _rows(steps: Iterable[Step | FundingRate], levels: int) -> Iterator[Row]:
    blank: Row = [None] * (2 * levels)
    for item in steps:
        if isinstance(item, FundingRate):
            continue
        book, trades = item
        row: Row = [book.ts_ns, "book", book.symbol]
        for side in (book.bids, book.asks):
            shown = side[:levels]
            pad = blank[: levels - len(shown)]
            row += [format(level.price, "f") for level in shown] + pad
            row += [format(level.size, "f") for level in shown] + pad
        yield [*row, None, None, None, None]
        for trade in trades:
            yield [
                trade.ts_ns,
                "trade",
                trade.symbol,
                *blank,
                *blank,
                format(trade.price, "f"),
                format(trade.size, "f"),
                trade.taker_side.value,
                trade.trade_id,
            ]


def write_text(path: Path, steps: Iterable[Step | FundingRate], *, levels: int = 10) -> int:
    """Write `steps` as CSV (gzipped for `.gz`), the top `levels` levels per side; funding samples are
    skipped. Returns the rows written. Streams: memory stays bounded for any number of steps."""
    count = 0
    with _open_text(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns(levels))
        for row in _rows(steps, levels):
            writer.writerow(["" if value is None else value for value in row])
            count += 1
    return count


# -- reading ------------------------------------------------------------------------------------------
def _raw_rows(path: Path, parquet: pq.ParquetFile | None) -> tuple[list[str], Iterator[list[Any]]]:
    """Header and rows (lists of cells) of a text recording (or an old Parquet one), read lazily."""
    if parquet is None:

        def csv_rows() -> Iterator[list[Any]]:
            with _open_text(path, "r") as handle:
                reader = csv.reader(handle)
                next(reader, None)
                yield from reader

        with _open_text(path, "r") as handle:
            header = next(csv.reader(handle), [])
        return header, csv_rows()
    header = list(parquet.schema_arrow.names)

    def parquet_rows() -> Iterator[list[Any]]:
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
            cols = batch.to_pydict()
            yield from map(list, zip(*(cols[name] for name in header), strict=True))

    return header, parquet_rows()


def _number(path: Path, text: object) -> Decimal:
    """A price or size cell: a finite, non-negative decimal, else ValueError (a corrupt recording)."""
    try:
        value = Decimal(cast(str, text))
    except (ArithmeticError, TypeError, ValueError):
        raise ValueError(f"{path}: {str(text)[:40]!r} is not a number") from None
    if not value.is_finite() or not 0 <= value < _MAX_NUMBER:
        raise ValueError(f"{path}: {str(text)[:40]!r} is not a number in [0, 1e20)")
    return value


def read_text(
    path: Path, parquet: pq.ParquetFile | None = None, *, symbol: str | None = None
) -> Iterator[Step]:
    """Replay a CSV recording (or an old Parquet one, open as `parquet`) as steps, lazily; only
    `symbol`'s rows when set."""
    header, rows = _raw_rows(path, parquet)
    index = {name: i for i, name in enumerate(header)}
    missing = {"ts_ns", "kind", "symbol", "price", "size", "side", "trade_id"} - index.keys()
    if missing:
        raise ValueError(f"{path}: not a recording, missing columns {sorted(missing)}")
    levels = sum(1 for name in header if name.startswith("bid_px_"))
    sides = [
        [(index[f"{side}_px_{i}"], index[f"{side}_sz_{i}"]) for i in range(levels)] for side in ("bid", "ask")
    ]
    i_ts, i_kind, i_sym = index["ts_ns"], index["kind"], index["symbol"]
    i_px, i_sz, i_side, i_id = index["price"], index["size"], index["side"], index["trade_id"]
    decimals: dict[str, Decimal] = {}
    book_levels: dict[tuple[str, str], BookLevel] = {}

    def dec(text: str) -> Decimal:
        value = decimals.get(text)
        if value is None:
            if len(decimals) >= _CACHE_LIMIT:
                decimals.clear()
            value = decimals[text] = _number(path, text)
        return value

    def level(px: str, sz: str) -> BookLevel:
        key = (px, sz)
        found = book_levels.get(key)
        if found is None:
            if len(book_levels) >= _CACHE_LIMIT:
                book_levels.clear()
            found = book_levels[key] = BookLevel(dec(px), dec(sz))
        return found

    book: BookUpdate | None = None
    trades: list[Trade] = []
    for row in rows:
        if symbol is not None and row[i_sym] != symbol:
            continue
        kind = row[i_kind]
        if kind == "book":
            if book is not None:
                yield book, trades
            bids, asks = (
                tuple(level(row[p], row[s]) for p, s in pairs if row[p] not in ("", None)) for pairs in sides
            )
            book, trades = BookUpdate(row[i_sym], int(row[i_ts]), bids, asks), []
        elif kind == "trade":
            if book is not None:
                trades.append(
                    Trade(
                        row[i_sym],
                        int(row[i_ts]),
                        dec(row[i_px]),
                        dec(row[i_sz]),
                        Side(row[i_side]),
                        row[i_id],
                    )
                )
        else:
            raise ValueError(f"{path}: unknown row kind {kind!r}")
    if book is not None:
        yield book, trades
