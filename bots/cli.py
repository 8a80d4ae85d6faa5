"""The `mmfleet` command: a thin shell that registers sub-apps; the work lives in library functions."""

from __future__ import annotations

import typer

from bots.cli_config import config_app
from bots.cli_ctl import ctl_app
from bots.cli_record import record
from bots.cli_run import bot_app, fleet_app

__all__ = ["app"]

# Locals are never shown in a crash report: they may hold credentials.
app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Run and manage a fleet of Avellaneda-Stoikov market-making bots on GRVT.",
)
app.add_typer(config_app, name="config")
app.add_typer(bot_app, name="bot")
app.add_typer(fleet_app, name="fleet")
app.add_typer(ctl_app, name="ctl")
app.command("record")(record)

if __name__ == "__main__":
    app()
