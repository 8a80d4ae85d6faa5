"""The `mmfleet` command: a thin shell that registers sub-apps, one module per command group (parse,
call, print); the work lives in library functions."""

from __future__ import annotations

import typer

from bots.cli.alerts import alerts_app
from bots.cli.backtest import backtest_app
from bots.cli.config import config_app
from bots.cli.ctl import ctl_app
from bots.cli.flows import flows_app, stack_app
from bots.cli.k8s import k8s_app
from bots.cli.record import convert_recording, record
from bots.cli.run import bot_app, fleet_app
from bots.cli.sim import sim_app

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
app.add_typer(flows_app, name="flows")
app.add_typer(stack_app, name="stack")
app.add_typer(alerts_app, name="alerts")
app.add_typer(backtest_app, name="backtest")
app.add_typer(sim_app, name="sim")
app.add_typer(k8s_app, name="k8s")
app.command("record")(record)
app.command("convert-recording")(convert_recording)
