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
from bots.store import StoreError
from bots.store.db import check_database
from settings import FleetSettings, load_fleet
from settings.fleet import check_data_dir

__all__ = ["fail", "load_or_exit", "print_tables", "table_console"]

_UNBOUNDED = 100_000


def fail(problems: Iterable[str], code: int = ConfigError.exit_code) -> NoReturn:
    """Print one line per problem on stderr and exit with `code` (2: configuration), never a traceback."""
    for line in problems:
        typer.echo(line, err=True)
    raise typer.Exit(code=code)


def load_or_exit(
    path: Path, *, check_host: bool = True, store_down_code: int = ConfigError.exit_code
) -> FleetSettings:
    """The fleet file with env and .env applied, or exit 2 naming each bad field.

    With `check_host` (every command that runs the fleet here), this host must be able to run it too:
    data_dir writable (exit 2) and the ledger usable: a bad URL exits 2, an unreachable database
    `store_down_code` (a supervised bot exits 3, the supervisor retries); the password is masked.
    Commands for a fleet that runs elsewhere (`k8s render`, `flows deploy`) skip it.
    """
    try:
        fleet = load_fleet(path)
    except ConfigError as exc:
        fail(exc.problems)
    except Exception as exc:  # a bug, but a config check must still answer in one line (no text: secrets)
        fail([f"{path}: unexpected {type(exc).__name__} while loading"])
    if check_host:
        field = "database_url" if fleet.database_url is not None else "data_dir"
        try:
            check_data_dir(fleet.data_dir)
        except ConfigError as exc:
            fail([str(exc)])
        try:
            check_database(fleet.ledger_url())
        except ConfigError as exc:
            fail([f"{field}: {exc}"])
        except StoreError as exc:
            fail([f"{field}: {exc}"], code=store_down_code)
    return fleet


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
