"""What every `mmfleet` sub-command shares: config errors as one line each and exit code 2."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import typer

from bots.errors import ConfigError
from bots.store import StoreError
from bots.store.db import check_database
from settings import FleetSettings, load_fleet

__all__ = ["fail", "load_or_exit"]


def fail(problems: Iterable[str], code: int = ConfigError.exit_code) -> NoReturn:
    """Print one line per problem on stderr and exit with `code` (2: configuration), never a traceback."""
    for line in problems:
        typer.echo(line, err=True)
    raise typer.Exit(code=code)


def load_or_exit(
    path: Path, *, check_store: bool = True, store_down_code: int = ConfigError.exit_code
) -> FleetSettings:
    """The fleet file with env and .env applied, or exit 2 naming each bad field.

    With `check_store`, the ledger must be usable too: a bad URL exits 2, an unreachable database
    `store_down_code` (a supervised bot exits 3, the supervisor retries); the password is masked.
    """
    try:
        fleet = load_fleet(path)
    except ConfigError as exc:
        fail(exc.problems)
    except Exception as exc:  # a bug, but a config check must still answer in one line (no text: secrets)
        fail([f"{path}: unexpected {type(exc).__name__} while loading"])
    if check_store:
        field = "database_url" if fleet.database_url is not None else "data_dir"
        try:
            check_database(fleet.ledger_url())
        except ConfigError as exc:
            fail([f"{field}: {exc}"])
        except StoreError as exc:
            fail([f"{field}: {exc}"], code=store_down_code)
    return fleet
