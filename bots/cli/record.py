"""`mmfleet record` and `mmfleet convert-recording`: a bot's market data to a recording file, for
replay and backtests.

The stream is the one the bot itself would trade on (`bots.exchange.factory.market_records`: the sim
market, generated or a replay, or the venue's public data in paper mode, with its funding rate),
written by `bots.exchange.sim.recorder.record_source`, with a progress line on a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from bots.cli.common import fail, load_or_exit
from bots.errors import ConfigError
from bots.exchange.factory import market_records
from bots.exchange.sim.recorder import Recorded, record_source
from bots.exchange.sim.replay import RECORDING_SUFFIXES, read_records, write_recording
from settings import bot_settings
from settings.fleet import validation_problems
from settings.models import BUILTIN_INSTRUMENTS, BotSettings, InstrumentSpec

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["convert_recording", "record"]

_TEXT_SUFFIXES = (".csv", ".csv.gz")
_REFRESH_S = 0.25


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


def _check_suffix(path: Path) -> None:
    if not path.name.lower().endswith(RECORDING_SUFFIXES):
        fail([f"{path}: a recording ends in {', '.join(RECORDING_SUFFIXES)}"])


class _Display:
    """A rich progress line on stderr: steps, trades and funding samples recorded, elapsed time, and
    the bar towards --steps or --seconds when one is given."""

    def __init__(self, symbol: str, steps: int | None, seconds: float | None) -> None:
        from rich.console import Console  # noqa: PLC0415 - only when a display is wanted
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

        self._by_time = steps is None and seconds is not None
        total = float(steps) if steps is not None else seconds
        goal = "Ctrl-C stops" if total is None else f"of {steps:,} steps" if steps else f"of {seconds:g} s"
        self._start = time.monotonic()
        self._counts = Recorded(0, 0, 0)
        self.progress: Progress = Progress(
            TextColumn(f"recording {symbol}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TextColumn(goal),
            console=Console(stderr=True),
        )
        self._task: TaskID = self.progress.add_task("record", total=total, counts=self._text())
        self.progress.start()

    def _text(self) -> str:
        c = self._counts
        return f"{c.steps:,} steps, {c.trades:,} trades, {c.funding:,} funding"

    def update(self, counts: Recorded) -> None:
        self._counts = counts
        if not self._by_time:
            self.progress.update(self._task, completed=counts.steps, counts=self._text())

    async def tick(self) -> None:
        """Moves the time bar and the counts while no event arrives."""
        while True:
            completed = time.monotonic() - self._start if self._by_time else self._counts.steps
            self.progress.update(self._task, completed=completed, counts=self._text())
            await asyncio.sleep(_REFRESH_S)

    def stop(self) -> None:
        self.progress.update(self._task, counts=self._text())
        self.progress.stop()


async def _record(
    settings: BotSettings, out: Path, steps: int | None, seconds: float | None, show: bool
) -> Recorded:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not main thread/OS
            loop.add_signal_handler(sig, stop.set)
    display = _Display(settings.symbol, steps, seconds) if show else None
    ticker = asyncio.create_task(display.tick()) if display is not None else None
    try:
        return await record_source(
            market_records(settings),
            out,
            instruments={settings.symbol: settings.spec},
            max_steps=steps,
            max_seconds=seconds,
            stop=stop,
            progress=display.update if display is not None else None,
        )
    finally:
        if ticker is not None and display is not None:
            ticker.cancel()
            display.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


def record(
    symbol: Annotated[str, typer.Option("--symbol", help="Symbol (or bot name) whose market to record.")],
    out: Annotated[
        Path,
        typer.Option("--out", help="Recording to write: .parquet or .pq (the replay format), .csv, .csv.gz."),
    ],
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
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress on stderr; default: when it is a terminal."),
    ] = None,
) -> None:
    """Record the market data a bot would trade on (book snapshots, trades, funding) to --out.

    The bot's settings (defaults without --config) pick it: in sim mode the synthetic market (or its
    replay) paced at `sim.speed`, in paper mode the venue's public book, trades and funding rate.
    Without --steps or --seconds it records until Ctrl-C; the file is complete either way. Funding is
    kept in the replay format (.parquet) only.
    """
    _check_suffix(out)
    settings = _settings(symbol, config)
    show = sys.stderr.isatty() if progress is None else progress
    if steps is None and seconds is None and not show:
        typer.echo(f"recording {settings.symbol} to {out}; Ctrl-C stops", err=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        done = asyncio.run(_record(settings, out, steps, seconds, show))
    except ConfigError as exc:
        fail(exc.problems)
    except OSError as exc:
        fail([f"{out}: {exc}"])
    except ValueError as exc:  # a price off the bot's tick: the file keeps every step before it
        fail([f"recording stopped: {exc}", f"{out}: kept the steps before it"])
    if done.funding and out.name.lower().endswith(_TEXT_SUFFIXES):
        typer.echo(f"{out}: {done.funding} funding samples not kept (text format); use .parquet", err=True)
    counts = f"{done.steps} steps, {done.trades} trades, {done.funding} funding samples"
    typer.echo(f"{out}: {counts} of {settings.symbol}")


def _instruments(config: Path | None) -> dict[str, InstrumentSpec]:
    """The built-in instruments, and the fleet's bots' where a fleet file is given."""
    instruments = dict(BUILTIN_INSTRUMENTS)
    if config is not None:
        fleet = load_or_exit(config, check_host=False)
        instruments |= {bot.symbol: bot.instrument for bot in fleet.bots if bot.instrument is not None}
    return instruments


def convert_recording(
    source: Annotated[Path, typer.Argument(help="Recording to read (any format, old ones too).")],
    dest: Annotated[Path, typer.Argument(help="Recording to write: .parquet (the replay format) or .csv.")],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Fleet YAML file: its bots' tick and lot sizes."),
    ] = None,
) -> None:
    """Rewrite a recording in another format: a text or older recording into the replay format
    (.parquet: integer ticks and lots, several times faster to replay), or the other way round.

    The ticks and lots are the built-in instruments' or, with --config, the fleet's; a price off its
    tick stops the conversion naming it. DEST must not exist.
    """
    _check_suffix(source)
    _check_suffix(dest)
    if not source.is_file():
        fail([f"{source}: no such file"])
    if dest.exists():
        fail([f"{dest}: exists; choose another name or remove it"])
    instruments = _instruments(config)
    try:
        events = write_recording(dest, read_records(source), instruments=instruments)
    except (ValueError, OSError) as exc:
        dest.unlink(missing_ok=True)
        fail([f"{source}: not converted: {exc}"])
    typer.echo(f"{dest}: {events} events from {source}")
