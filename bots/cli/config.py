"""`mmfleet config ...`: validate a fleet file and document the configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bots.cli.common import fail, load_or_exit
from bots.errors import ConfigError
from settings.fleet import format_effective_config
from settings.reference import render_reference, write_reference

__all__ = ["config_app"]

config_app = typer.Typer(no_args_is_help=True, help="Check the fleet configuration and print its reference.")


@config_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The YAML fleet file.", show_default=False)],
) -> None:
    """Load FILE with env and .env overrides applied; print every bot's effective config (secrets masked)."""
    fleet = load_or_exit(file)
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
        fail(exc.problems)
    typer.echo(f"{write}: {'updated' if changed else 'already up to date'}")
