"""Record an async source of market data to a file (`mmfleet record`).

`record_source` records any async source of `(BookUpdate, list[Trade])` steps and funding samples: the
file is written by `write_recording` in a worker thread, fed through a bounded queue, so the event loop
keeps serving the source and memory stays flat.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bots.exchange.events import FundingRate
from bots.exchange.sim.market import Step
from bots.exchange.sim.replay import write_recording
from settings.models import BUILTIN_INSTRUMENTS, InstrumentSpec

__all__ = ["Recorded", "record_source"]

_QUEUE_STEPS = 4096  # steps buffered between the source and the writer thread


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a recording holds: market-data steps (a book and the trades since the previous one), the
    trades among them, and funding samples."""

    steps: int
    trades: int
    funding: int

    def add(self, item: Step | FundingRate) -> Recorded:
        """The counts with `item` recorded too."""
        if isinstance(item, FundingRate):
            return Recorded(self.steps, self.trades, self.funding + 1)
        return Recorded(self.steps + 1, self.trades + len(item[1]), self.funding)


async def record_source(
    source: AsyncIterable[Step | FundingRate],
    path: str | Path,
    *,
    instruments: Mapping[str, InstrumentSpec] = BUILTIN_INSTRUMENTS,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    levels: int = 10,
    stop: asyncio.Event | None = None,
    progress: Callable[[Recorded], None] | None = None,
) -> Recorded:
    """Write `source` to `path` (format from the suffix, see `write_recording`; `instruments` gives the
    symbols' ticks and lots) until it ends, after `max_steps` steps, after `max_seconds` of wall-clock
    time, or when `stop` is set; whichever comes first. `progress` is called with the counts after each
    item. The file is complete and readable in every case; a source error is raised after the steps
    before it are written."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Step | FundingRate | None] = asyncio.Queue(_QUEUE_STEPS)
    counted = Recorded(0, 0, 0)

    async def produce() -> None:
        nonlocal counted
        if max_steps is not None and max_steps <= 0:
            return
        iterator = aiter(source)
        try:
            async for item in iterator:
                await queue.put(item)
                counted = counted.add(item)
                if progress is not None:
                    progress(counted)
                if max_steps is not None and counted.steps >= max_steps:
                    return
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()

    async def take() -> list[Step | FundingRate | None]:
        """Everything queued, at least one item (waiting for it)."""
        items = [await queue.get()]
        while not queue.empty():
            items.append(queue.get_nowait())
        return items

    def drain() -> Iterator[Step | FundingRate]:  # runs in the writer thread
        while True:
            for item in asyncio.run_coroutine_threadsafe(take(), loop).result():
                if item is None:
                    return
                yield item

    writer = asyncio.ensure_future(
        asyncio.to_thread(write_recording, path, drain(), levels=levels, instruments=instruments)
    )
    producer = asyncio.create_task(produce(), name="record-source")
    waits: set[asyncio.Future[Any]] = {producer, writer}
    stopper = asyncio.create_task(stop.wait()) if stop is not None else None
    if stopper is not None:
        waits.add(stopper)
    try:
        await asyncio.wait(waits, timeout=max_seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (producer, stopper):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(producer, *([stopper] if stopper else []), return_exceptions=True)
        end = asyncio.create_task(queue.put(None))  # the writer closes the file after the queued steps
        await asyncio.wait({end, writer}, return_when=asyncio.FIRST_COMPLETED)
        end.cancel()
        await writer  # a writer error (e.g. an unwritable path) is raised here
    if not producer.cancelled() and (error := producer.exception()) is not None:
        raise error
    return counted
