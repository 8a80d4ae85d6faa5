"""Reading the replay format (`bots.exchange.sim.replay_columns`): a batch of rows decoded by pyarrow
into int64 lists at once, each (price ticks, size lots) pair mapped to one cached `BookLevel` (like
the sim market's price ladder), so a snapshot costs a few look-ups; a corrupt file is a ValueError
naming it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

import bots.exchange.sim.replay_columns as fmt
from bots.engine.types import Book, Side
from bots.exchange.base import BookLevel, BookUpdate, Trade
from bots.exchange.events import FundingRate
from bots.exchange.sim.market import Step

if TYPE_CHECKING:  # the caller opens the Parquet file: pyarrow (~25 MB) loads only then, never in a sim bot
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = ["read_columns", "read_columns_funding"]

_CACHE_LIMIT: Final = 200_000  # cached levels/prices per symbol before the cache starts over
_BUY, _SELL = Side.BUY, Side.SELL


class _Values(dict[int, Decimal]):
    """ints -> `unit * int`, made on a miss. A dict subclass so that a hit is `dict.__getitem__` in C;
    starts over past `_CACHE_LIMIT` entries, so memory stays bounded over any file."""

    def __init__(self, unit: Decimal) -> None:
        super().__init__()
        self.unit = unit

    def __missing__(self, key: int) -> Decimal:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        value = self[key] = self.unit * key
        return value


class _Levels(dict[int, BookLevel]):
    """`ticks << shift | lots` -> its `BookLevel`, made on a miss (like `_Values`). The shift is 32 (keys
    computed in int64 by numpy) until a book needs more bits, then 53 (keys computed in Python)."""

    def __init__(self, prices: _Values, sizes: _Values) -> None:
        super().__init__()
        self.prices, self.sizes = prices, sizes
        self.shift, self._mask = 32, (1 << 32) - 1

    def widen(self) -> None:
        """Keys of up to 2^53 ticks and lots from now on (the cache starts over)."""
        self.clear()
        self.shift, self._mask = 53, (1 << 53) - 1

    def __missing__(self, key: int) -> BookLevel:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        value = self[key] = BookLevel(self.prices[key >> self.shift], self.sizes[key & self._mask])
        return value


class _Units:
    """One symbol's tick and lot, and its caches of prices, sizes and levels."""

    def __init__(self, tick: Decimal, lot: Decimal) -> None:
        self.tick, self.lot = tick, lot
        # The best levels as floats, exactly float(Decimal) (an int ratio divides correctly rounded).
        self.tick_ratio, self.lot_ratio = tick.as_integer_ratio(), lot.as_integer_ratio()
        self.prices, self.sizes = _Values(tick), _Values(lot)
        self.levels = _Levels(self.prices, self.sizes)


def _metadata(path: Path, parquet: pq.ParquetFile) -> tuple[int, dict[str, _Units]]:
    metadata = parquet.schema_arrow.metadata or {}
    if metadata.get(fmt.KEY_VERSION) != fmt.VERSION:
        found = metadata.get(fmt.KEY_VERSION)
        raise ValueError(f"{path}: replay format {found!r}, this version reads {fmt.VERSION!r}")
    try:
        levels = int(metadata[fmt.KEY_LEVELS])
        units = {
            str(symbol): _Units(Decimal(unit["tick_size"]), Decimal(unit["lot_size"]))
            for symbol, unit in json.loads(metadata[fmt.KEY_INSTRUMENTS]).items()
        }
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise ValueError(f"{path}: unreadable replay metadata ({exc})") from None
    bad = [s for s, u in units.items() if not all(x.is_finite() and x > 0 for x in (u.tick, u.lot))]
    if not 1 <= levels <= 255 or bad:
        raise ValueError(f"{path}: replay metadata: levels {levels}, bad tick/lot for {bad}")
    missing = (set(fmt.STEP_COLUMNS) | set(fmt.FUNDING_COLUMNS)) - set(parquet.schema_arrow.names)
    if missing:
        raise ValueError(f"{path}: not a recording, missing columns {sorted(missing)}")
    return levels, units


Ints = np.ndarray[Any, np.dtype[np.int64]]


def _ints(path: Path, array: pa.Array, name: str, limit: int = fmt.MAX_INT) -> Ints:
    """A column (flattened when it holds lists) as int64s in [0, limit), else ValueError."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already: the file is open

    nested = pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type)
    values = array.flatten() if nested else array
    ints: Ints = values.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if ints.size and not (ints.min() >= 0 and ints.max() < limit):
        raise ValueError(f"{path}: column {name} holds a value outside [0, {limit})")
    return ints


def _keys(levels: _Levels, px: Ints, sz: Ints) -> list[int]:
    """The cache keys of (ticks, lots) pairs: in numpy while they fit 31 and 32 bits (every market
    we know), else in Python with the cache widened."""
    if levels.shift == 32 and (not px.size or (px.max() < 2**31 and sz.max() < 2**32)):
        keys: list[int] = ((px << 32) | sz).tolist()
        return keys
    if levels.shift == 32:
        levels.widen()
    return [(p << 53) | s for p, s in zip(px.tolist(), sz.tolist(), strict=True)]


def _floats(ints: Ints, ratio: tuple[int, int]) -> list[float]:
    """`ints * num / den` as floats, correctly rounded (the float of the exact decimal)."""
    num, den = ratio
    if ints.size and (int(ints.max()) * num >= fmt.MAX_INT or den >= fmt.MAX_INT):
        return [value * num / den for value in ints.tolist()]  # exact ints: Python divides correctly rounded
    result: list[float] = ((ints * num).astype(np.float64) / den).tolist()
    return result


def _symbols(path: Path, array: pa.Array, units: Mapping[str, _Units]) -> tuple[list[str], list[int]]:
    import pyarrow as pa  # noqa: PLC0415 - loaded already: the file is open

    encoded = array if pa.types.is_dictionary(array.type) else array.dictionary_encode()
    names = [str(name) for name in encoded.dictionary.to_pylist()]
    unknown = [name for name in names if name not in units]
    if unknown:
        raise ValueError(f"{path}: no tick/lot in the metadata for {unknown}")
    return names, encoded.indices.to_numpy(zero_copy_only=False).tolist()


def read_columns(
    path: Path, parquet: pq.ParquetFile, *, symbol: str | None = None, funding: bool = False
) -> Iterator[Step | FundingRate]:
    """The steps of a recording in this format, lazily; only `symbol`'s when set; with `funding`, each
    funding sample just before the step it is stored with. A corrupt file (a null cell, a negative or
    oversized tick, an unknown symbol) raises ValueError naming it."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already: the file is open

    levels, units = _metadata(path, parquet)
    names = [*fmt.STEP_COLUMNS, *(fmt.FUNDING_COLUMNS if funding else ())]
    batches = parquet.iter_batches(batch_size=fmt.BATCH_ROWS, columns=names)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:  # a damaged page: pyarrow does not name the file
            raise ValueError(f"{path}: unreadable recording ({exc})") from None
        if batch is None:
            return
        yield from _batch_steps(path, batch, levels, units, symbol)


def _batch_steps(
    path: Path, batch: pa.RecordBatch, levels: int, units: Mapping[str, _Units], symbol: str | None
) -> Iterator[Step | FundingRate]:
    """A batch's steps: its rows of one symbol at a time (a file of one symbol is one run)."""
    for name in fmt.STEP_COLUMNS:
        if batch.column(name).null_count:
            raise ValueError(f"{path}: column {name} has empty cells")
    names, sym_index = _symbols(path, batch.column("symbol"), units)
    if symbol is not None:
        if symbol not in names:
            return iter(())
        rows = batch if len(names) == 1 else batch.filter(np.asarray(sym_index) == names.index(symbol))
        return _symbol_steps(path, rows, levels, symbol, units[symbol])
    changes = [0, *(i for i in range(1, len(sym_index)) if sym_index[i] != sym_index[i - 1]), len(sym_index)]
    runs = ((start, stop, names[sym_index[start]]) for start, stop in itertools.pairwise(changes))
    return itertools.chain.from_iterable(
        _symbol_steps(path, batch.slice(start, stop - start), levels, name, units[name])
        for start, stop, name in runs
    )


def _symbol_steps(
    path: Path, batch: pa.RecordBatch, levels: int, name: str, unit: _Units
) -> Iterator[Step | FundingRate]:
    """The steps of rows of one symbol: the columns decoded at once, then a few look-ups per row."""
    col = dict(zip(batch.schema.names, batch.columns, strict=True))
    bid_n, ask_n = (col[f"{side}_levels"].to_numpy(zero_copy_only=False) for side in ("bid", "ask"))
    if bid_n.size and max(bid_n.max(), ask_n.max()) > levels:
        raise ValueError(f"{path}: a book with more than the file's {levels} levels")
    sides: list[list[BookLevel]] = []  # every slot of the batch's books, in one pass through the cache
    tops: list[list[float]] = []
    for side in ("bid", "ask"):
        px, sz = _ints(path, col[f"{side}_px"], f"{side}_px"), _ints(path, col[f"{side}_sz"], f"{side}_sz")
        sides.append(list(map(unit.levels.__getitem__, _keys(unit.levels, px, sz))))
        tops += [_floats(px[::levels], unit.tick_ratio), _floats(sz[::levels], unit.lot_ratio)]
    offsets = col["trade_ts_ns"].offsets.to_numpy()
    for other in ("trade_px", "trade_sz", "trade_buy", "trade_id"):
        if not np.array_equal(col[other].offsets.to_numpy(), offsets):
            raise ValueError(f"{path}: trade columns of different lengths")
    starts = (offsets - offsets[0]).tolist()
    t_ts = _ints(path, col["trade_ts_ns"], "trade_ts_ns", 2**63).tolist()
    t_px = _ints(path, col["trade_px"], "trade_px").tolist()
    t_sz = _ints(path, col["trade_sz"], "trade_sz").tolist()
    t_buy, t_id = col["trade_buy"].flatten().to_pylist(), col["trade_id"].flatten().to_pylist()
    if None in t_buy or None in t_id:
        raise ValueError(f"{path}: a trade with an empty cell")
    stamps = _ints(path, col["ts_ns"], "ts_ns", 2**63).tolist()
    funding = _funding_rows(path, col, name) if "funding_ts_ns" in col else []
    price, size = unit.prices.__getitem__, unit.sizes.__getitem__
    bid_levels, ask_levels = sides
    bid_px, bid_sz, ask_px, ask_sz = tops
    for row, (stamp, nb, na) in enumerate(zip(stamps, bid_n.tolist(), ask_n.tolist(), strict=True)):
        if funding and (sample := funding[row]) is not None:
            yield sample
        at = row * levels
        bids = tuple(bid_levels[at : at + nb])
        asks = tuple(ask_levels[at : at + na])
        top = Book(stamp, bid_px[row], bid_sz[row], ask_px[row], ask_sz[row]) if nb and na else None
        book = BookUpdate(name, stamp, bids, asks, top)
        first, last = starts[row], starts[row + 1]
        if first == last:
            yield book, []
        else:
            yield (
                book,
                [
                    Trade(name, t_ts[k], price(t_px[k]), size(t_sz[k]), _BUY if t_buy[k] else _SELL, t_id[k])
                    for k in range(first, last)
                ],
            )


def _funding_rows(path: Path, col: Mapping[str, pa.Array], name: str) -> list[FundingRate | None]:
    """The funding rate stored with each row (of one symbol) of a batch: None for most."""
    samples: list[FundingRate | None] = []
    cells = (col[name].to_pylist() for name in fmt.FUNDING_COLUMNS)
    for stamp, rate, interval_s in zip(*cells, strict=True):
        if stamp is None and rate is None and interval_s is None:
            samples.append(None)
            continue
        try:
            value = Decimal(rate)
        except (ArithmeticError, TypeError, ValueError):
            raise ValueError(f"{path}: funding rate {str(rate)[:40]!r} is not a number") from None
        if stamp is None or not value.is_finite() or not (interval_s is not None and interval_s > 0):
            raise ValueError(
                f"{path}: funding rate ({stamp}, {str(rate)[:40]!r}, {interval_s}) is incomplete"
            )
        samples.append(FundingRate(name, stamp, value, interval_s))
    return samples


def read_columns_funding(
    path: Path, parquet: pq.ParquetFile, *, symbol: str | None = None
) -> list[FundingRate]:
    """The funding samples of a recording in this format, in the order received; only `symbol`'s when
    set. Reads only the funding columns."""
    _, units = _metadata(path, parquet)
    found: list[FundingRate] = []
    for batch in parquet.iter_batches(batch_size=fmt.BATCH_ROWS, columns=["symbol", *fmt.FUNDING_COLUMNS]):
        names, sym_index = _symbols(path, batch.column("symbol"), units)
        col = {name: batch.column(name) for name in fmt.FUNDING_COLUMNS}
        for s, sample in zip(sym_index, _funding_rows(path, col, ""), strict=True):
            if sample is not None and (symbol is None or names[s] == symbol):
                found.append(FundingRate(names[s], sample.ts_ns, sample.rate, sample.interval_s))
    return found
