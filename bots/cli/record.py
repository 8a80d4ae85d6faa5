"""`mmfleet record`: write a bot's market-data stream to a recording file, for replay and backtests.

The stream is the one the bot itself would trade on (`bots.exchange.factory.market_source`: the sim
market, generated or a replay, or the venue's public data in paper mode), written by
`bots.exchange.sim.recorder.record_source`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from bots.cli.common import fail, load_or_exit
from bots.errors import ConfigError
from bots.exchange.factory import market_source
from bots.exchange.sim.recorder import Recorded, record_source
from settings import bot_settings
from settings.fleet import validation_problems
from settings.models import BotSettings

__all__ = ["record"]

RECORDING_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


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
