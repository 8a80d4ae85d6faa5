"""`mmfleet ctl ...`: commands to bots through the store, and the fleet's state as the ledger has it."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bots.cli.common import fail, load_or_exit, print_tables
from bots.exitcodes import ACK_TIMEOUT, COMMAND_REFUSED
from bots.store import Ledger
from bots.store.control import ALL_BOTS, default_author
from bots.worker import ENABLED_KEY, RISK_KEY

__all__ = ["ACK_TIMEOUT", "COMMAND_REFUSED", "ctl_app"]

ctl_app = typer.Typer(no_args_is_help=True, help="Send commands to bots and show their state.")

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Fleet YAML file.")]
BotOption = Annotated[str | None, typer.Option("--bot", help="Bot name; omit with --all.")]
AllOption = Annotated[bool, typer.Option("--all", help="Every bot of the fleet.")]
WaitOption = Annotated[
    float,
    typer.Option(
        help=f"Seconds to wait for acks (0: don't wait); a missing ack exits {ACK_TIMEOUT}, a refused or"
        f" failed one {COMMAND_REFUSED}."
    ),
]


def _send(config: Path, command: str, bot: str | None, all_bots: bool, wait_s: float) -> None:
    fleet = load_or_exit(config)
    names = [b.name for b in fleet.bots]
    if all_bots == (bot is not None):
        fail(["give exactly one of --bot NAME or --all"])
    if bot is not None and bot not in names:
        fail([f"--bot: no bot named {bot!r}; known: {', '.join(names)}"])
    with Ledger(fleet.ledger_url()) as ledger:
        author = f"cli {default_author()}"  # the audit trail: who sent it, from where
        command_id = ledger.enqueue_command(ALL_BOTS if all_bots else str(bot), command, author=author)
        typer.echo(f"command {command_id}: {command} -> {'all bots' if all_bots else bot}")
        expected = set(names) if all_bots else {str(bot)}
        deadline = time.monotonic() + wait_s
        acked: dict[str, str] = {}
        refused: list[str] = []
        while wait_s > 0:
            acks = ledger.command_acks(command_id)
            acked = {ack.bot: f"{ack.status}: {ack.outcome}" for ack in acks}
            refused = sorted(ack.bot for ack in acks if ack.status == "failed")
            if set(acked) == expected or time.monotonic() >= deadline:
                break  # the last read is after the deadline: an ack just in time counts
            time.sleep(0.2)
        for name in sorted(expected):
            typer.echo(f"  {name}: {acked.get(name, 'no ack yet')}")
    if wait_s > 0 and (missing := sorted(expected - set(acked))):
        typer.echo(
            f"no ack within {wait_s:g} s from {', '.join(missing)} (command {command_id} stays queued)",
            err=True,
        )
        raise typer.Exit(code=ACK_TIMEOUT)
    if refused:
        typer.echo(f"{command} refused or failed by {', '.join(refused)} (see the ack above)", err=True)
        raise typer.Exit(code=COMMAND_REFUSED)


def _command(name: str, doc: str) -> None:
    def run(
        config: ConfigOption, bot: BotOption = None, all_bots: AllOption = False, wait: WaitOption = 10.0
    ) -> None:
        _send(config, name, bot, all_bots, wait)

    run.__doc__ = doc
    ctl_app.command(name.replace("_", "-"))(run)


for _name, _doc in (
    (
        "start",
        "Resume trading; relaunches a shut-down bot under a running supervisor. Refused on a halted bot"
        " (drawdown, breaker, another store on its account): `reset-risk` lifts a halt.",
    ),
    ("stop", "Stop quoting and cancel every order; the position stays."),
    ("stop_close", "Stop quoting, cancel every order and close the position."),
    ("reload_config", "Reload the fleet file and apply it without a restart."),
    ("restart", "Restart the worker's exchange connection and state."),
    ("shutdown", "Stop the worker process cleanly."),
    (
        "reset_risk",
        "Lift a halt (drawdown, circuit breaker, another store's orders): trips cleared, the peak equity"
        " re-armed at the equity now; audited with its author. A stopped bot stays stopped.",
    ),
):
    _command(_name, _doc)


@ctl_app.command("status")
def status(config: ConfigOption) -> None:
    """Every bot as the ledger has it: position, equity, PnL, state, config version, last command ack."""
    fleet = load_or_exit(config)
    table = Table(title="mmfleet bots (ledger)")
    for column in (
        "bot",
        "mode",
        "position",
        "equity $",
        "realized $",
        "grid $",
        "state",
        "config",
        "last ack",
    ):
        table.add_column(column, justify="left" if column in ("bot", "last ack") else "right")
    with Ledger(fleet.ledger_url()) as ledger:
        recent = ledger.recent_commands(200)
        for bot in fleet.bots:
            mark = (ledger.latest_position_snapshot(bot.name) or {}).get("mark")
            portfolio = ledger.restore_portfolio(bot.name, bot.symbol, bot.paper.starting_balance_usd)
            enabled = ledger.get_state(bot.name, ENABLED_KEY, True)
            risk = ledger.get_state(bot.name, RISK_KEY, {})
            tripped = not isinstance(risk, dict) or any(risk.values())
            state = "halted" if tripped else ("trading" if enabled else "stopped")
            applied = ledger.applied_config(bot.name)
            last = next((c for c in recent if c.bot in (bot.name, ALL_BOTS) and c.outcome), None)
            table.add_row(
                bot.name,
                bot.exchange.mode,
                str(portfolio.position),
                f"{portfolio.equity(Decimal(str(mark))):.2f}" if mark is not None else "-",
                f"{portfolio.realized_pnl:.2f}",
                f"{portfolio.grid_profit:.2f}",
                state,
                str(applied.version) if applied else "file",
                f"{last.command}: {last.outcome}" if last else "-",
            )
    print_tables(table)
