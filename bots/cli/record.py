"""`mmfleet record`: write a bot's market-data stream to a recording file, for replay and backtests.

The stream is the one the bot itself would trade on (`bots.exchange.factory.market_source`): today the
sim market (generated, or a replay), later GRVT public data in paper mode. `record_source` records any
async source of `(BookUpdate, list[Trade])` steps: the file is written by `write_recording` in a worker
thread, fed through a bounded queue, so the event loop keeps serving the source and memory stays flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from bots.cli.common import fail, load_or_exit
from bots.errors import ConfigError
from bots.exchange.factory import market_source
from bots.exchange.sim.market import Step
from bots.exchange.sim.replay import write_recording
from settings import bot_settings
from settings.fleet import validation_problems
from settings.models import BotSettings

__all__ = ["Recorded", "record", "record_source"]

RECORDING_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
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


def _settings(symbol: str, config: Path | None) -> BotSettings:
    if config is None:
        try:
            return BotSettings(symbol=symbol)
        except ValidationError as exc:
            fail([f"--symbol {symbol}: {line.removeprefix('fleet: ')}" for line in validation_problems(exc)])
    fleet = load_or_exit(config)
    try:
        return bot_settings(fleet, symbol)
    except ConfigError as exc:
        fail(exc.problems)


async def _record(settings: BotSettings, out: Path, steps: int | None, seconds: float | None) -> Recorded:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not main thread/OS
            loop.add_signal_handler(sig, stop.set)
    try:
        source = market_source(settings)
        return await record_source(source, out, max_steps=steps, max_seconds=seconds, stop=stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


def record(
    symbol: Annotated[str, typer.Option("--symbol", help="Symbol (or bot name) whose market to record.")],
    out: Annotated[Path, typer.Option("--out", help="Recording to write: .csv, .csv.gz, .parquet or .pq.")],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Fleet YAML file; the bot's settings pick the source."),
    ] = None,
    seconds: Annotated[
        float | None, typer.Option("--seconds", min=0, help="Stop after this many wall-clock seconds.")
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", min=1, help="Stop after this many book updates.")
    ] = None,
) -> None:
    """Record the market data a bot would trade on (book snapshots and trades) to --out.

    The bot's settings (defaults without --config) pick it: in sim mode the synthetic market (or its
    replay) paced at `sim.speed`, in paper mode the venue's public book and trades. Without --steps or
    --seconds it records until Ctrl-C; the file is complete either way.
    """
    if not out.name.lower().endswith(RECORDING_SUFFIXES):
        fail([f"{out}: a recording ends in {', '.join(RECORDING_SUFFIXES)}"])
    settings = _settings(symbol, config)
    if steps is None and seconds is None:
        typer.echo(f"recording {settings.symbol} to {out}; Ctrl-C stops", err=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        done = asyncio.run(_record(settings, out, steps, seconds))
    except ConfigError as exc:
        fail(exc.problems)
    except OSError as exc:
        fail([f"{out}: {exc}"])
    typer.echo(f"{out}: {done.steps} steps, {done.rows} rows of {settings.symbol}")
