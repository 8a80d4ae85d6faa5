"""The replay format: recorded market data in Parquet as integer ticks and lots, one row per step;
its writer here, its reader in `bots.exchange.sim.replay_columns_read`.

Why integers in columns: a backtest reads hundreds of thousands of snapshots, and turning 40 decimal
strings per snapshot into `Decimal`s cost about 20-30 us, most of a file backtest. Integers decode a
batch at a time and map to cached levels, a few microseconds a snapshot.

Columns, one row per step (a book snapshot and the trades printed since the previous step), in time
order (`levels` is the file's book depth, 10 by default):

    ts_ns              int64                   exchange time of the book, ns since the epoch
    symbol             dictionary<string>      instrument, e.g. BTC_USDT_Perp
    bid_levels         uint8                   levels on the bid side (<= levels); the same for asks
    bid_px, bid_sz     fixed_size_list<int64>  bid prices in ticks, sizes in lots, best first; 0 past
    ask_px, ask_sz       [levels]              bid_levels
    trade_ts_ns        list<int64>             the step's trades: time, price in ticks, size in lots,
    trade_px, trade_sz list<int64>             whether the taker bought (lifted the asks) and the
    trade_buy          list<bool>              exchange's trade id
    trade_id           list<string>
    funding_ts_ns      int64, nullable         a funding rate received since the previous step of the
    funding_rate       string, nullable        symbol (sparse: only when it changed): the fraction of
    funding_interval_s float64, nullable       notional per interval (exact decimal), the interval

The schema's metadata says what the integers mean: `mmfleet.replay` (the format version, "2"),
`mmfleet.levels`, and `mmfleet.instruments` (JSON: each symbol's `tick_size` and `lot_size` as exact
decimal strings): a price is `ticks * tick_size`, a size `lots * lot_size`. Another stream (a mark price,
open interest) is a pair of nullable columns more, like funding.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from bots.engine.types import Side
from bots.exchange.base import BookUpdate, Trade
from bots.exchange.events import FundingRate
from bots.exchange.sim.market import Step
from settings.models import InstrumentSpec

if TYPE_CHECKING:  # pyarrow (~25 MB) loads when a file is written: a sim bot never needs it
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = [
    "BATCH_ROWS",
    "FUNDING_COLUMNS",
    "KEY_INSTRUMENTS",
    "KEY_LEVELS",
    "KEY_VERSION",
    "MAX_INT",
    "STEP_COLUMNS",
    "VERSION",
    "ColumnsWriter",
    "is_columns",
]

VERSION: Final = b"2"
KEY_VERSION, KEY_LEVELS, KEY_INSTRUMENTS = b"mmfleet.replay", b"mmfleet.levels", b"mmfleet.instruments"
BATCH_ROWS: Final = 16_384  # rows per batch written and read
MAX_INT: Final = 2**53  # ticks and lots beyond this are no market anyone recorded: a corrupt file
_BUY = Side.BUY
STEP_COLUMNS: Final = (
    "ts_ns", "symbol", "bid_levels", "ask_levels", "bid_px", "bid_sz", "ask_px", "ask_sz",
    "trade_ts_ns", "trade_px", "trade_sz", "trade_buy", "trade_id",
)  # fmt: skip
FUNDING_COLUMNS: Final = ("funding_ts_ns", "funding_rate", "funding_interval_s")


def _schema(levels: int, instruments: Mapping[str, InstrumentSpec]) -> pa.Schema:
    import pyarrow as pa  # noqa: PLC0415 - loaded only to write a Parquet file

    ticks = pa.list_(pa.int64(), levels)
    units = {s: {"tick_size": str(i.tick_size), "lot_size": str(i.lot_size)} for s, i in instruments.items()}
    metadata = {
        KEY_VERSION: VERSION,
        KEY_LEVELS: str(levels).encode(),
        KEY_INSTRUMENTS: json.dumps(units, sort_keys=True).encode(),
    }
    fields = [
        pa.field("ts_ns", pa.int64(), nullable=False),
        pa.field("symbol", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("bid_levels", pa.uint8(), nullable=False),
        pa.field("ask_levels", pa.uint8(), nullable=False),
        *(pa.field(name, ticks, nullable=False) for name in ("bid_px", "bid_sz", "ask_px", "ask_sz")),
        pa.field("trade_ts_ns", pa.list_(pa.int64()), nullable=False),
        pa.field("trade_px", pa.list_(pa.int64()), nullable=False),
        pa.field("trade_sz", pa.list_(pa.int64()), nullable=False),
        pa.field("trade_buy", pa.list_(pa.bool_()), nullable=False),
        pa.field("trade_id", pa.list_(pa.string()), nullable=False),
        pa.field("funding_ts_ns", pa.int64()),
        pa.field("funding_rate", pa.string()),
        pa.field("funding_interval_s", pa.float64()),
    ]
    return pa.schema(fields, metadata=metadata)


# -- writing ------------------------------------------------------------------------------------------
class ColumnsWriter:
    """Writes steps (and funding samples) to a Parquet file of the replay format, a batch at a time.

    A funding sample is stored with the next step of its symbol (one after the last step is dropped:
    a recording ends with a book). Prices and sizes must be whole ticks and lots of the symbol's
    `instruments` entry, else ValueError naming the value (nothing is rounded).
    """

    def __init__(self, path: Path, instruments: Mapping[str, InstrumentSpec], *, levels: int = 10) -> None:
        if not 1 <= levels <= 255:
            raise ValueError(f"levels {levels}: a recording keeps 1 to 255 levels per side")
        self.path, self.levels = path, levels
        self._units = {s: (i.tick_size, i.lot_size) for s, i in instruments.items()}
        import pyarrow.parquet as pq  # noqa: PLC0415 - loaded only to write a Parquet file

        self._schema = _schema(levels, instruments)
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")
        self._pending: dict[str, FundingRate] = {}
        self._cols: dict[str, list[Any]] = {name: [] for name in self._schema.names}
        self._trade_offsets = [0]
        self._rows = 0
        self.events = 0  # books, trades and funding samples written

    def write(self, items: Iterable[Step | FundingRate]) -> int:
        """Add `items`; returns the events (books, trades, funding samples) written so far."""
        for item in items:
            if isinstance(item, FundingRate):
                self._pending[item.symbol] = item
            else:
                self._add(*item)
        return self.events

    def _ticks(self, value: Decimal, unit: Decimal, what: str) -> int:
        whole, rest = divmod(value, unit)
        if rest or not 0 <= whole < MAX_INT:
            raise ValueError(f"{self.path}: {what} {value} is not a whole number of {unit} in [0, 2^53)")
        return int(whole)

    def _add(self, book: BookUpdate, trades: list[Trade]) -> None:
        """One row; a value off its tick or lot raises before anything of the row is kept, so the file
        closes with every step before it."""
        symbol, levels = book.symbol, self.levels
        units = self._units.get(symbol)
        if units is None:
            raise ValueError(f"{self.path}: no tick/lot for {symbol}; pass its instrument spec")
        tick, lot = units
        sides = [(book.bids[:levels]), (book.asks[:levels])]
        px = [[self._ticks(lv.price, tick, "price") for lv in shown] for shown in sides]
        sz = [[self._ticks(lv.size, lot, "size") for lv in shown] for shown in sides]
        trade_px = [self._ticks(t.price, tick, "trade price") for t in trades]
        trade_sz = [self._ticks(t.size, lot, "trade size") for t in trades]
        cols = self._cols
        cols["ts_ns"].append(book.ts_ns)
        cols["symbol"].append(symbol)
        for i, side in enumerate(("bid", "ask")):
            pad = [0] * (levels - len(sides[i]))
            cols[f"{side}_levels"].append(len(sides[i]))
            cols[f"{side}_px"] += px[i] + pad
            cols[f"{side}_sz"] += sz[i] + pad
        cols["trade_ts_ns"] += [t.ts_ns for t in trades]
        cols["trade_px"] += trade_px
        cols["trade_sz"] += trade_sz
        cols["trade_buy"] += [t.taker_side is _BUY for t in trades]
        cols["trade_id"] += [t.trade_id for t in trades]
        self._trade_offsets.append(self._trade_offsets[-1] + len(trades))
        funding = self._pending.pop(symbol, None)
        cols["funding_ts_ns"].append(funding.ts_ns if funding else None)
        cols["funding_rate"].append(format(funding.rate, "f") if funding else None)
        cols["funding_interval_s"].append(funding.interval_s if funding else None)
        self._rows += 1
        self.events += 1 + len(trades) + (funding is not None)
        if self._rows >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        import pyarrow as pa  # noqa: PLC0415 - loaded only to write a Parquet file

        cols, schema = self._cols, self._schema
        offsets = pa.array(self._trade_offsets, pa.int32())
        arrays: list[pa.Array] = []
        for field in schema:
            name, values = field.name, cols[field.name]
            if name == "symbol":
                arrays.append(pa.array(values, pa.string()).dictionary_encode())
            elif pa.types.is_fixed_size_list(field.type):
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values, pa.int64()), self.levels))
            elif pa.types.is_list(field.type):
                arrays.append(pa.ListArray.from_arrays(offsets, pa.array(values, field.type.value_type)))
            else:
                arrays.append(pa.array(values, field.type))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        for values in cols.values():
            values.clear()
        self._trade_offsets, self._rows = [0], 0

    def close(self) -> int:
        """Write what is buffered and close the file; returns the events written."""
        try:
            self._flush()
        finally:
            self._writer.close()
        return self.events

    def __enter__(self) -> ColumnsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_columns(parquet: pq.ParquetFile) -> bool:
    """Whether an open Parquet file is in this format (else an older recording)."""
    metadata = parquet.schema_arrow.metadata or {}
    return KEY_VERSION in metadata
