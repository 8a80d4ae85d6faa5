"""`mmfleet config ...`: validate a fleet file and document the configuration."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from bots.errors import ConfigError
from settings.fleet import format_effective_config, load_fleet
from settings.reference import render_reference, write_reference

__all__ = ["config_app"]

config_app = typer.Typer(no_args_is_help=True, help="Check the fleet configuration and print its reference.")


def _fail(problems: Iterable[str]) -> NoReturn:
    """Print one line per problem on stderr and exit 2 (configuration error), never a traceback."""
    for line in problems:
        typer.echo(line, err=True)
    raise typer.Exit(code=ConfigError.exit_code)


@config_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The YAML fleet file.", show_default=False)],
) -> None:
    """Load FILE with env and .env overrides applied; print every bot's effective config (secrets masked)."""
    try:
        fleet = load_fleet(file)
    except ConfigError as exc:
        _fail(exc.problems)
    except Exception as exc:  # a bug, but a config check must still answer in one line
        _fail([f"{file}: unexpected {type(exc).__name__} while loading: {exc}"])
    typer.echo(format_effective_config(fleet), nl=False)


@config_app.command("reference")
def reference(
    write: Annotated[
        Path | None,
        typer.Option("--write", help="Refresh the reference section of this Markdown file in place."),
    ] = None,
) -> None:
    """Print the Markdown configuration reference generated from the models."""
    if write is None:
        typer.echo(render_reference())
        return
    try:
        changed = write_reference(write)
    except ConfigError as exc:
        _fail(exc.problems)
    typer.echo(f"{write}: {'updated' if changed else 'already up to date'}")
