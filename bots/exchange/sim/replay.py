"""Recorded market data: write steps (and funding samples) to a file, read them back, pace them.

Two formats, chosen by the suffix:

- `.parquet`, `.pq`: the replay format (`bots.exchange.sim.replay_columns`): integer ticks and lots in
  columns, funding included; what `mmfleet record` writes and a backtest reads, a few microseconds per
  snapshot.
- `.csv`, `.csv.gz`: text (`bots.exchange.sim.replay_text`): decimal strings, one row per event, for
  people and other tools; about ten times slower to replay. Parquet files in that layout, written by
  earlier versions, still replay as they are; `mmfleet convert-recording` rewrites any recording in
  the replay format.

pandas is never imported here, so the worker can record and replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

from bots.exchange.events import FundingRate
from bots.exchange.sim.market import Step
from bots.exchange.sim.replay_columns import ColumnsWriter, is_columns
from bots.exchange.sim.replay_columns_read import read_columns, read_columns_funding
from bots.exchange.sim.replay_text import columns, read_text, write_text
from settings.models import BUILTIN_INSTRUMENTS, InstrumentSpec

if TYPE_CHECKING:  # pyarrow (~25 MB) loads where a Parquet file is opened: a sim bot never needs it
    import pyarrow.parquet as pq

__all__ = [
    "RECORDING_SUFFIXES",
    "columns",
    "paced",
    "read_funding",
    "read_recording",
    "read_records",
    "write_recording",
]

RECORDING_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")
_NS_PER_S = 1_000_000_000


def _is_parquet(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return True
    if name.endswith((".csv", ".csv.gz")):
        return False
    raise ValueError(f"{path}: unknown recording format; use {', '.join(RECORDING_SUFFIXES)}")


def write_recording(
    path: str | Path,
    steps: Iterable[Step | FundingRate],
    *,
    levels: int = 10,
    instruments: Mapping[str, InstrumentSpec] = BUILTIN_INSTRUMENTS,
) -> int:
    """Write `steps` to `path` (format from the suffix), keeping the top `levels` levels per side.

    `instruments` gives each symbol's tick and lot (the replay format stores whole ticks and lots: a
    price off the tick is a ValueError, never rounded). Returns the events written (books, trades and,
    in the replay format, funding samples). Streams: memory stays bounded for any number of steps.
    """
    path = Path(path)
    if not _is_parquet(path):
        return write_text(path, steps, levels=levels)
    with ColumnsWriter(path, instruments, levels=levels) as writer:
        return writer.write(steps)


def _parquet(path: Path) -> pq.ParquetFile | None:
    """The open Parquet file of a recording, None for a text one."""
    if not _is_parquet(path):
        return None
    import pyarrow as pa  # noqa: PLC0415 - loaded only to open a Parquet file
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        return pq.ParquetFile(path)
    except pa.ArrowInvalid as exc:  # not Parquet, or cut short: pyarrow does not name the file
        raise ValueError(f"{path}: not a readable Parquet recording ({exc})") from None


def read_recording(path: str | Path, *, symbol: str | None = None) -> Iterator[Step]:
    """Replay a recording as `(BookUpdate, list[Trade])` steps, lazily; only `symbol`'s when set.

    A file that is not a recording, or a corrupt cell, raises ValueError naming the file."""
    path = Path(path)
    parquet = _parquet(path)
    if parquet is not None and is_columns(parquet):
        return cast(Iterator[Step], read_columns(path, parquet, symbol=symbol))  # no funding asked
    return read_text(path, parquet, symbol=symbol)


def read_records(path: str | Path, *, symbol: str | None = None) -> Iterator[Step | FundingRate]:
    """The steps of a recording with its funding samples, each sample before the step stored with it."""
    path = Path(path)
    parquet = _parquet(path)
    if parquet is not None and is_columns(parquet):
        return read_columns(path, parquet, symbol=symbol, funding=True)
    return read_text(path, parquet, symbol=symbol)


def read_funding(path: str | Path, *, symbol: str | None = None) -> list[FundingRate]:
    """The funding samples of a recording, in the order received (none in a text recording)."""
    path = Path(path)
    parquet = _parquet(path)
    if parquet is None or not is_columns(parquet):
        return []
    return read_columns_funding(path, parquet, symbol=symbol)


async def paced(steps: Iterable[Step], *, speed: float | None = None) -> AsyncIterator[Step]:
    """Steps (a `SimMarket`, a recording) as an async market-data source: as fast as possible when
    `speed` is None (yielding to other tasks between steps), else at `speed` times exchange time."""
    loop = asyncio.get_running_loop()
    origin: tuple[float, int] | None = None
    for step in steps:
        delay = 0.0
        if speed is not None:
            if origin is None:
                origin = (loop.time(), step[0].ts_ns)
            delay = origin[0] + (step[0].ts_ns - origin[1]) / _NS_PER_S / speed - loop.time()
        await asyncio.sleep(max(delay, 0.0))
        yield step
