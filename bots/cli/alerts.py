"""`mmfleet alerts ...`: the Alertmanager webhook receiver that halts bots, and the recorded alerts."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bots.cli.common import fail, load_or_exit, print_tables
from bots.logs import setup_logging
from bots.ops.alerts import DEFAULT_PORT, AlertReceiver, serve
from bots.store import Ledger, StoreError

__all__ = ["alerts_app"]

alerts_app = typer.Typer(
    no_args_is_help=True,
    help="Receive Alertmanager webhooks: record every alert, halt bots on `action: halt`.",
)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Fleet YAML file (for the ledger URL).")]
TOKEN_ENV = "MMFLEET_ALERTS_TOKEN"


@alerts_app.command("receive")
def receive(
    config: ConfigOption,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 in a container).")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of POST /alerts and /healthz.")
    ] = DEFAULT_PORT,
    quiet: Annotated[
        bool, typer.Option(help="No console logs (the JSON log file is always written).")
    ] = False,
) -> None:
    """Serve POST /alerts for Alertmanager (webhook_configs url: http://HOST:PORT/alerts) until Ctrl-C.

    Every alert is recorded in the ledger. A firing alert labelled `action: halt` queues a `stop` for the
    bot in its `bot` label (every bot when it has none), once per firing episode, authored by the alert.
    When $MMFLEET_ALERTS_TOKEN is set, requests need `Authorization: Bearer <token>`.
    """
    fleet = load_or_exit(config)
    setup_logging("alerts", fleet.data_dir, fleet.log_level, console=not quiet)
    token = os.environ.get(TOKEN_ENV) or None
    try:
        ledger = Ledger(fleet.ledger_url())
    except StoreError as exc:
        fail([str(exc)])
    with ledger:
        receiver = AlertReceiver(ledger, known_bots=[bot.name for bot in fleet.bots])
        typer.echo(
            f"mmfleet alerts: POST http://{host}:{port}/alerts"
            + (" (bearer token required)" if token else "")
        )
        try:
            asyncio.run(serve(receiver, host, port, token=token))
        except OSError as exc:
            fail([f"cannot listen on {host}:{port}: {exc.strerror or exc}"])


def _when(ns: int | None) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


@alerts_app.command("list")
def list_alerts(
    config: ConfigOption,
    bot: Annotated[str | None, typer.Option(help="Only this bot's alerts.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
) -> None:
    """The alerts the receiver recorded, newest first, with the stop command each one issued."""
    fleet = load_or_exit(config)
    table = Table(title="mmfleet alerts (ledger)")
    for column in ("received (UTC)", "status", "alert", "bot", "severity", "since", "stop command"):
        table.add_column(column)
    try:
        ledger = Ledger(fleet.ledger_url())
    except StoreError as exc:
        fail([str(exc)])
    with ledger:
        for record in ledger.alerts(bot=bot, limit=limit):
            command = "-"
            if record.command_id is not None:
                queued = ledger.command(record.command_id)
                command = f"#{queued.id} -> {queued.bot}: {queued.status}"
            table.add_row(
                _when(record.received_at_ns),
                record.status,
                record.alertname,
                record.bot or "(fleet)",
                record.labels.get("severity", "-"),
                _when(record.starts_at_ns),
                command,
            )
    print_tables(table)
