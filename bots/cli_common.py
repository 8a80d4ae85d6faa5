"""What every `mmfleet` sub-command shares: config errors as one line each and exit code 2."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import typer

from bots.errors import ConfigError
from settings import FleetSettings, load_fleet

__all__ = ["fail", "load_or_exit"]


def fail(problems: Iterable[str], code: int = ConfigError.exit_code) -> NoReturn:
    """Print one line per problem on stderr and exit with `code` (2: configuration), never a traceback."""
    for line in problems:
        typer.echo(line, err=True)
    raise typer.Exit(code=code)


def load_or_exit(path: Path) -> FleetSettings:
    """The fleet file with env and .env applied, or exit 2 naming each bad field."""
    try:
        return load_fleet(path)
    except ConfigError as exc:
        fail(exc.problems)
    except Exception as exc:  # a bug, but a config check must still answer in one line
        fail([f"{path}: unexpected {type(exc).__name__} while loading: {exc}"])
