"""`mmfleet bot run` and `mmfleet fleet up|down|status`: start one worker or the whole fleet."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from bots.cli.common import fail, load_or_exit, print_tables
from bots.errors import ConfigError
from bots.logs import setup_logging
from bots.ops.dashboard import Sample, fleet_table, scrape_fleet
from bots.ops.supervisor import ChildStatus, Supervisor, fleet_dir, read_status
from bots.runner import BotProcess, run_bot
from bots.store import Ledger, StoreError
from settings import bot_settings

__all__ = ["bot_app", "fleet_app"]

bot_app = typer.Typer(no_args_is_help=True, help="Run one bot worker.")
fleet_app = typer.Typer(no_args_is_help=True, help="Run every bot of a fleet file as supervised processes.")

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Fleet YAML file.")]
LiveFlag = Annotated[
    bool, typer.Option("--i-understand-live-trading", help="Required, with mode: live, to trade real money.")
]


@bot_app.command("run")
def bot_run(
    config: ConfigOption,
    bot: Annotated[str | None, typer.Option(help="Bot name (or symbol) in the fleet file.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol, when it names one bot.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Port for /metrics, /healthz, /readyz.")] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface to bind the metrics port to.")] = "127.0.0.1",
    quiet: Annotated[
        bool, typer.Option(help="No console logs (the JSON log file is always written).")
    ] = False,
    live: LiveFlag = False,
) -> None:
    """Run one bot until SIGTERM/SIGINT or a shutdown command; the exit code says why it ended
    (bots/exitcodes.py: 0 shutdown, 2 config or lock, 3 store unreachable, 143 SIGTERM, ...)."""
    target = bot or symbol
    if target is None:
        fail(["give --bot or --symbol"])
    fleet = load_or_exit(config, store_down_code=StoreError.exit_code)
    try:
        settings = bot_settings(fleet, target)
        setup_logging(settings.name, fleet.data_dir, fleet.log_level, console=not quiet)
        code = run_bot(BotProcess(config, target, metrics_port, metrics_host, allow_live=live))
    except ConfigError as exc:
        fail(list(exc.problems))
    except StoreError as exc:
        fail([f"{settings.name}: {exc}"], code=exc.exit_code)
    raise typer.Exit(code)


@fleet_app.command("up")
def fleet_up(
    config: ConfigOption,
    live: LiveFlag = False,
    table: Annotated[bool, typer.Option(help="Show a live-updating table of the fleet.")] = True,
    max_crashes: Annotated[
        int, typer.Option(min=1, help="Crashes within the window that mark a bot failed.")
    ] = 5,
    crash_window_s: Annotated[float, typer.Option(min=1, help="Window for --max-crashes, seconds.")] = 300.0,
) -> None:
    """Start every bot, restart crashed ones with backoff, stop them all on Ctrl-C."""
    fleet = load_or_exit(config)
    live_bots = [b.name for b in fleet.bots if b.exchange.mode == "live"]
    if live_bots and not live:
        fail([f"{', '.join(live_bots)}: mode live needs --i-understand-live-trading"])
    setup_logging("supervisor", fleet.data_dir, fleet.log_level, console=not table)
    try:  # the ledger created or upgraded here, once: no bot then loads Alembic for it (~10 MB each)
        Ledger(fleet.ledger_url()).close()
    except StoreError as exc:
        fail([f"ledger: {exc}"], code=exc.exit_code)
    extra = ("--i-understand-live-trading",) if live else ()
    supervisor = Supervisor(
        config, fleet, max_crashes=max_crashes, crash_window_s=crash_window_s, extra_args=extra
    )
    console = Console(soft_wrap=True)  # a long path stays on its line, in a terminal or a log
    console.print(
        f"mmfleet: {len(fleet.bots)} bots from {config}; data in {fleet.data_dir}/; Ctrl-C stops all."
    )
    console.print(f"Prometheus targets: {fleet_dir(fleet) / 'targets.json'}")
    for status in supervisor.statuses():
        console.print(f"  {status.name}: http://127.0.0.1:{status.port}/metrics")
    asyncio.run(_up(supervisor, console, table))
    console.print("fleet stopped; no orders left open.")


async def _up(supervisor: Supervisor, console: Console, table: bool) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, supervisor.request_stop)
    run = asyncio.create_task(supervisor.run())
    rows: dict[str, Sample | None] = {}
    if table and console.is_terminal:
        with Live(console=console, refresh_per_second=2, transient=False) as view:
            while not run.done():
                rows = await scrape_fleet(supervisor.statuses())
                view.update(fleet_table(supervisor.statuses(), rows))
                await asyncio.wait([run], timeout=1.0)
    elif table:  # piped or under a process manager: no live view, the last table in full at the end
        while not run.done():
            rows = await scrape_fleet(supervisor.statuses())
            await asyncio.wait([run], timeout=1.0)
        print_tables(fleet_table(supervisor.statuses(), rows))  # final states, last figures seen
    await run


@fleet_app.command("status")
def fleet_status(config: ConfigOption) -> None:
    """Each worker's process state, restarts and last error, plus its live figures when reachable."""
    fleet = load_or_exit(config, check_host=False)
    status = read_status(fleet)
    if status is None:
        fail([f"no fleet status under {fleet_dir(fleet)}: is `mmfleet fleet up` running?"])
    children = [ChildStatus(**row) for row in status["bots"]]
    rows = asyncio.run(scrape_fleet(children))
    print_tables(fleet_table(children, rows))


@fleet_app.command("down")
def fleet_down(
    config: ConfigOption,
    timeout_s: Annotated[float, typer.Option(help="Seconds to wait for a clean stop.")] = 60.0,
) -> None:
    """Ask the running supervisor to stop every worker cleanly, and wait for it."""
    fleet = load_or_exit(config, check_host=False)
    pid_file = fleet_dir(fleet) / "supervisor.pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        fail(["no running supervisor for this fleet"])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_file.exists():  # removed by the supervisor once every worker has stopped
            typer.echo("fleet stopped")
            return
        time.sleep(0.2)
    fail([f"supervisor {pid} still running after {timeout_s:.0f}s"])
