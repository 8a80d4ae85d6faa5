"""Record an async source of market-data steps to a file (`mmfleet record`).

`record_source` records any async source of `(BookUpdate, list[Trade])` steps: the file is written by
`write_recording` in a worker thread, fed through a bounded queue, so the event loop keeps serving the
source and memory stays flat.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bots.exchange.sim.market import Step
from bots.exchange.sim.replay import write_recording

__all__ = ["Recorded", "record_source"]

_QUEUE_STEPS = 4096  # steps buffered between the source and the writer thread


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a recording holds: market-data steps and file rows (one per book, one per trade)."""

    steps: int
    rows: int


async def record_source(
    source: AsyncIterable[Step],
    path: str | Path,
    *,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    levels: int = 10,
    stop: asyncio.Event | None = None,
) -> Recorded:
    """Write `source` to `path` (format from the suffix, see `write_recording`) until it ends, after
    `max_steps` steps, after `max_seconds` of wall-clock time, or when `stop` is set; whichever comes
    first. The file is complete and readable in every case; a source error is raised after the steps
    before it are written."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Step | None] = asyncio.Queue(_QUEUE_STEPS)
    counted = 0

    async def produce() -> None:
        nonlocal counted
        if max_steps is not None and max_steps <= 0:
            return
        iterator = aiter(source)
        try:
            async for step in iterator:
                await queue.put(step)
                counted += 1
                if max_steps is not None and counted >= max_steps:
                    return
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()

    async def take() -> list[Step | None]:
        """Everything queued, at least one item (waiting for it)."""
        items = [await queue.get()]
        while not queue.empty():
            items.append(queue.get_nowait())
        return items

    def drain() -> Iterator[Step]:  # runs in the writer thread
        while True:
            for item in asyncio.run_coroutine_threadsafe(take(), loop).result():
                if item is None:
                    return
                yield item

    writer = asyncio.ensure_future(asyncio.to_thread(write_recording, path, drain(), levels=levels))
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
        rows = await writer  # a writer error (e.g. an unwritable path) is raised here
    if not producer.cancelled() and (error := producer.exception()) is not None:
        raise error
    return Recorded(counted, rows)
