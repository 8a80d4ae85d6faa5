"""Parameter sweeps: one backtest per point of a grid over strategy parameters, in parallel processes.

`sweep(settings, market, {"gamma": [0.5, 1, 2], "kappa": [500, 1000]})` runs every combination on the
same market with the same seed, in a `ProcessPoolExecutor` of spawned processes (no state of the
caller leaks in), and returns one `SweepRow` per point in grid order; `ml.report.write_sweep_csv`
writes them. Any strategy field may be an axis (aliases: spread -> spread_pct, layers -> grid_layers);
every point is validated like a config file before any run starts.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from ml.backtest import BacktestConfig, MarketSource, run_backtest
from ml.progress import progress_bar
from ml.results import SweepRow
from settings.models import BotSettings, StrategySettings

__all__ = ["SweepRow", "parse_grid", "sweep", "with_params"]

_ALIASES = {"spread": "spread_pct", "layers": "grid_layers"}


def with_params(settings: BotSettings, params: Mapping[str, float]) -> BotSettings:
    """`settings` with strategy fields replaced, validated like a config file; raises ValueError
    (pydantic's ValidationError is one) for an unknown field or a value out of range."""
    strategy = settings.strategy.model_dump()
    for name, value in params.items():
        key = _ALIASES.get(name, name)
        if key not in StrategySettings.model_fields:
            raise ValueError(f"{name}: not a strategy parameter")
        strategy[key] = value
    data = settings.model_dump()
    data["strategy"] = strategy
    return BotSettings.model_validate(data)


def parse_grid(axes: Sequence[str]) -> dict[str, list[float]]:
    """`["gamma=0.5,1,2", "kappa=500,1000"]` -> `{"gamma": [0.5, 1.0, 2.0], "kappa": [500.0, 1000.0]}`."""
    grid: dict[str, list[float]] = {}
    for axis in axes:
        name, sep, values = axis.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise ValueError(f"{axis!r}: a sweep axis is name=v1,v2,...")
        try:
            grid[_ALIASES.get(name, name)] = [float(v) for v in values.split(",") if v.strip()]
        except ValueError as exc:
            raise ValueError(f"{axis!r}: values must be numbers") from exc
    return grid


def _grid_points(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def _sweep_job(
    settings: BotSettings, market: MarketSource, config: BacktestConfig, params: dict[str, float]
) -> SweepRow:
    return SweepRow(params, run_backtest(with_params(settings, params), market, config).stats)


def sweep(
    settings: BotSettings,
    market: MarketSource,
    grid: Mapping[str, Sequence[float]],
    config: BacktestConfig | None = None,
    *,
    workers: int | None = None,
    progress: bool = False,
) -> list[SweepRow]:
    """A backtest per point of `grid` (every combination) in `workers` processes; rows in grid order."""
    config = config or BacktestConfig()
    points = _grid_points(grid)
    for params in points:
        with_params(settings, params)
    rows: list[SweepRow | None] = [None] * len(points)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_sweep_job, settings, market, config, p): i for i, p in enumerate(points)}
        bar = progress_bar("sweep", len(points)) if progress else None
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                rows[futures[future]] = future.result()
                if bar is not None:
                    bar(done)
        finally:
            if bar is not None:
                bar(-len(points))
    return [row for row in rows if row is not None]
