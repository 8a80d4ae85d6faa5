"""`mmfleet backtest run|as-paper`: backtests through the bot's engine, and the A-S (2008) Monte Carlo.

The worker process imports `bots.cli`, so this module imports nothing heavy at the top: `ml.backtest`
(numpy), `ml.report` (matplotlib) and rich load inside the commands that use them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from bots.cli.common import fail, load_or_exit, print_tables
from bots.errors import ConfigError

if TYPE_CHECKING:
    from ml.backtest import BacktestConfig, BacktestResult, MarketSource
    from ml.sweep import SweepRow
    from settings.models import BotSettings

__all__ = ["backtest_app"]

backtest_app = typer.Typer(
    no_args_is_help=True, help="Backtest a bot on recorded or synthetic data; the A-S paper's Monte Carlo."
)

_DEFAULT_SYMBOL = "BTC_USDT_Perp"


def _first_symbol(path: Path) -> str | None:
    from bots.exchange.sim import read_recording  # noqa: PLC0415

    first = next(read_recording(path), None)
    return first[0].symbol if first is not None else None


def _has_symbol(path: Path, symbol: str) -> bool:
    from bots.exchange.sim import read_recording  # noqa: PLC0415

    try:
        return next(read_recording(path, symbol=symbol), None) is not None
    except (OSError, ValueError, KeyError) as exc:
        fail([f"{path}: not a readable recording ({exc})"])


def _settings(config: Path | None, bot: str | None, symbol: str | None, file: Path | None) -> BotSettings:
    from settings import bot_settings  # noqa: PLC0415
    from settings.fleet import validation_problems  # noqa: PLC0415
    from settings.models import BotSettings  # noqa: PLC0415

    if config is not None:
        fleet = load_or_exit(config)
        name = bot or symbol
        if name is None:
            if len(fleet.bots) != 1:
                fail([f"{config}: {len(fleet.bots)} bots; choose one with --bot"])
            name = fleet.bots[0].name
        try:
            return bot_settings(fleet, name)
        except ConfigError as exc:
            fail(exc.problems)
    if bot is not None:
        fail(["--bot needs --config"])
    if symbol is None and file is not None:
        try:
            symbol = _first_symbol(file)
        except (OSError, ValueError, KeyError) as exc:
            fail([f"{file}: not a readable recording ({exc})"])
    try:
        return BotSettings(symbol=symbol or _DEFAULT_SYMBOL)
    except ValidationError as exc:
        fail(validation_problems(exc))


def _print_result(result: BacktestResult) -> None:
    from rich.table import Table  # noqa: PLC0415

    stats = result.stats
    table = Table(title=f"Backtest of {result.settings.name}", show_header=False)
    breakdown = result.breakdown
    rows = [
        ("events / seconds", f"{stats.events:,} / {stats.seconds:,.1f}"),
        ("total PnL (USD)", f"{result.total_pnl:.2f}"),
        ("  spread capture", f"{breakdown.spread_capture:.2f}"),
        ("  inventory PnL", f"{breakdown.inventory_pnl:.2f}"),
        ("  maker rebates", f"{breakdown.rebates:.2f}"),
        ("  taker fees", f"{-breakdown.taker_fees:.2f}"),
        ("  funding", f"{breakdown.funding:.2f} ({stats.funding_payments} payments)"),
        ("markout-adjusted PnL (USD)", f"{stats.markout_pnl_usd:.2f}"),
        ("Sharpe (annualised)", f"{stats.sharpe:.2f}"),
        ("max drawdown", f"{stats.max_drawdown_usd:.2f} USD ({stats.max_drawdown_pct:.3%})"),
        (
            "markouts 1 s / 10 s / 60 s (bps)",
            f"{stats.markout_1s_bps:.2f} / {stats.markout_10s_bps:.2f} / {stats.markout_60s_bps:.2f}",
        ),
        ("fills / orders / fill rate", f"{stats.fills:,} / {stats.orders_placed:,} / {stats.fill_rate:.1%}"),
        ("volume (USD)", f"{stats.volume_usd:,.0f}"),
        ("final position", f"{stats.final_position:g}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    print_tables(table)


def _print_sweep(rows: list[SweepRow]) -> None:
    from rich.table import Table  # noqa: PLC0415

    names = list(rows[0].params) if rows else []
    table = Table(title="Sweep")
    columns = ["PnL USD", "markout PnL USD", "markout 1s bps", "markout 60s bps", "Sharpe", "max DD USD"]
    for name in [*names, *columns, "fill rate", "fills"]:
        table.add_column(name, justify="right")
    for row in sorted(rows, key=lambda r: r.stats.total_pnl_usd, reverse=True):
        s = row.stats
        table.add_row(
            *(f"{row.params[n]:g}" for n in names),
            f"{s.total_pnl_usd:.2f}",
            f"{s.markout_pnl_usd:.2f}",
            f"{s.markout_1s_bps:.2f}",
            f"{s.markout_60s_bps:.2f}",
            f"{s.sharpe:.2f}",
            f"{s.max_drawdown_usd:.2f}",
            f"{s.fill_rate:.1%}",
            f"{s.fills:,}",
        )
    print_tables(table)


@backtest_app.command("run")
def run(
    axes: Annotated[
        list[str] | None,
        typer.Argument(help="More sweep axes after --sweep, e.g. `--sweep gamma=0.5,1 kappa=500,1000`."),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Recording to replay (.csv, .csv.gz, .parquet, .pq).")
    ] = None,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="Replay the bot's sim market (the default without --file).")
    ] = False,
    seconds: Annotated[float, typer.Option("--seconds", min=0, help="Synthetic market length.")] = 600.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic market and touch fills.")] = 0,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Fleet YAML file.")] = None,
    bot: Annotated[str | None, typer.Option("--bot", help="Bot (name or symbol) of the fleet.")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", help="Symbol without --config.")] = None,
    latency_ms: Annotated[float, typer.Option("--latency-ms", min=0, help="Order-entry latency.")] = 0.0,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory for the HTML report (or sweep.csv).")
    ] = None,
    sweep: Annotated[
        list[str] | None, typer.Option("--sweep", help="Grid axis name=v1,v2 (gamma, kappa, spread_pct...).")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Sweep processes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Replay a market through the bot's engine and paper fill model; or sweep a parameter grid."""
    from ml.backtest import BacktestConfig, RecordedMarket, SyntheticMarket  # noqa: PLC0415

    if file is not None and synthetic:
        fail(["choose --file or --synthetic, not both"])
    if axes and not sweep:
        fail([f"unexpected arguments {' '.join(axes)}: sweep axes follow --sweep"])
    if file is not None and not file.is_file():
        fail([f"{file}: no such file"])
    settings = _settings(config, bot, symbol, file)
    if file is not None and not _has_symbol(file, settings.symbol):
        fail([f"{file}: no market data for {settings.symbol}"])
    market = RecordedMarket(file) if file is not None else SyntheticMarket(seconds, seed)
    run_config = BacktestConfig(latency_ms=latency_ms, seed=seed)
    try:
        if sweep:
            _run_sweep(settings, market, run_config, [*sweep, *(axes or [])], out, workers, as_json, progress)
            return
        _run_one(settings, market, run_config, out, as_json, progress)
    except (OSError, ValueError, KeyError) as exc:
        fail([f"backtest: {exc}"])


def _run_one(
    settings: BotSettings,
    market: MarketSource,
    run_config: BacktestConfig,
    out: Path | None,
    as_json: bool,
    progress: bool,
) -> None:
    from ml.backtest import run_backtest  # noqa: PLC0415

    result = run_backtest(settings, market, run_config, progress=progress and not as_json)
    if as_json:
        from ml.report import summary  # noqa: PLC0415

        typer.echo(json.dumps(summary(result)))
    else:
        _print_result(result)
    if out is not None:
        from ml.report import write_report  # noqa: PLC0415

        typer.echo(f"report: {write_report(result, out)}", err=as_json)


def _run_sweep(
    settings: BotSettings,
    market: MarketSource,
    run_config: BacktestConfig,
    axes: list[str],
    out: Path | None,
    workers: int | None,
    as_json: bool,
    progress: bool,
) -> None:
    from ml.report import write_sweep_csv  # noqa: PLC0415
    from ml.sweep import parse_grid, sweep  # noqa: PLC0415

    grid = parse_grid(axes)
    try:
        rows = sweep(settings, market, grid, run_config, workers=workers, progress=progress and not as_json)
    except ValidationError as exc:
        from settings.fleet import validation_problems  # noqa: PLC0415

        fail([f"sweep: {line}" for line in validation_problems(exc)])
    if as_json:
        typer.echo(json.dumps([{"params": r.params, "stats": r.stats.as_dict()} for r in rows]))
    else:
        _print_sweep(rows)
    path = write_sweep_csv(rows, (out or Path("backtest-out")) / "sweep.csv")
    typer.echo(f"sweep: {path}", err=as_json)


@backtest_app.command("as-paper")
def as_paper(
    gamma: Annotated[float, typer.Option("--gamma", min=0, help="Risk aversion.")] = 0.1,
    k: Annotated[float, typer.Option("--k", min=0, help="Intensity decay with depth.")] = 1.5,
    intensity_a: Annotated[float, typer.Option("--A", min=0, help="Intensity at zero depth.")] = 140.0,
    sigma: Annotated[float, typer.Option("--sigma", min=0, help="Mid volatility per unit time.")] = 2.0,
    horizon: Annotated[float, typer.Option("--T", min=0, help="Horizon.")] = 1.0,
    dt: Annotated[float, typer.Option("--dt", min=0, help="Time step.")] = 0.005,
    s0: Annotated[float, typer.Option("--s0", help="Initial mid.")] = 100.0,
    paths: Annotated[int, typer.Option("--paths", min=1, help="Simulated paths.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG file for the profit histograms.")] = None,
) -> None:
    """The Monte Carlo of Avellaneda and Stoikov (2008): inventory vs symmetric strategy."""
    from ml.as_paper import PaperParams, simulate  # noqa: PLC0415

    try:
        params = PaperParams(
            gamma=gamma, k=k, A=intensity_a, sigma=sigma, T=horizon, dt=dt, s0=s0, paths=paths, seed=seed
        )
    except ValueError as exc:
        fail([f"as-paper: {exc}"])
    result = simulate(params)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
    else:
        from rich.table import Table  # noqa: PLC0415

        table = Table(title=f"Avellaneda-Stoikov Monte Carlo, gamma={gamma}, {paths} paths")
        for name in ("Strategy", "Average spread", "Profit", "Std(Profit)", "Final q", "Std(Final q)"):
            table.add_column(name, justify="right")
        for name, outcome in (("Inventory", result.inventory), ("Symmetric", result.symmetric)):
            s = outcome.summary()
            table.add_row(
                name,
                *(
                    f"{s[key]:.2f}"
                    for key in ("spread", "profit_mean", "profit_std", "final_q_mean", "final_q_std")
                ),
            )
        print_tables(table)
    if plot is not None:
        from ml.report import plot_profit_histograms  # noqa: PLC0415

        plot.parent.mkdir(parents=True, exist_ok=True)
        typer.echo(f"plot: {plot_profit_histograms(result, plot)}", err=as_json)
