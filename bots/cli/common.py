"""What every `mmfleet` sub-command shares: config errors as one line each and exit code 2, and a
console that never cuts a table."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, NoReturn

import typer
from rich.console import Console, RenderableType
from rich.measure import Measurement

from bots.errors import ConfigError
from settings import FleetSettings, load_fleet

__all__ = ["fail", "load_or_exit", "print_tables", "table_console"]

_UNBOUNDED = 100_000


def fail(problems: Iterable[str]) -> NoReturn:
    """Print one line per problem on stderr and exit 2 (configuration error), never a traceback."""
    for line in problems:
        typer.echo(line, err=True)
    raise typer.Exit(code=ConfigError.exit_code)


def load_or_exit(path: Path) -> FleetSettings:
    """The fleet file with env and .env applied, or exit 2 naming each bad field."""
    try:
        return load_fleet(path)
    except ConfigError as exc:
        fail(exc.problems)
    except Exception as exc:  # a bug, but a config check must still answer in one line
        fail([f"{path}: unexpected {type(exc).__name__} while loading: {exc}"])


def table_console(*renderables: RenderableType, file: IO[str] | None = None) -> Console:
    """The terminal's width when there is one, else $COLUMNS, else as wide as the widest of
    `renderables` needs: piped or under a process manager, a table is never cut at rich's 80."""
    console = Console(file=file)
    if console.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return console
    options = console.options.update_width(_UNBOUNDED)
    width = max((Measurement.get(console, options, r).maximum for r in renderables), default=80)
    return Console(file=file, width=max(width, 1))


def print_tables(*renderables: RenderableType) -> None:
    """Print `renderables` on stdout at `table_console`'s width."""
    console = table_console(*renderables)
    for renderable in renderables:
        console.print(renderable)
