"""tune-parameters: the adaptive gamma/kappa tuner (`ml.tuner`) for every bot that enables it
(`ml.tuner.enabled`); an accepted proposal becomes a config version through the rollout-config flow
(a one-bot rollout, canary-watched, rolled back if it hurts).

Per bot: the fills, their markouts and the orders of the last `lookback_hours` from the ledger give the
trade figures (markout, PnL per unit of inventory, fill rate); the tuner proposes one bounded step and
accepts it only if a backtest of `backtest_s` seconds of the bot's sim market (seeded: the same market
for both candidates) scores it strictly better than the current values (markout-adjusted PnL less
inventory risk, `ml.tuner.score_stats`). The bot's current values are its
fleet-file settings with its applied config version merged over them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from bots.control import merged_settings
from bots.core.markouts import FillMarkout
from bots.exchange.base import Fill
from bots.store import Ledger
from flows.canary import DEFAULT_GUARD, CanaryGuard
from flows.common import FlowError, is_transient, load_fleet_config, select_bots
from flows.rollout import rollout_config
from ml.backtest import SyntheticMarket
from ml.tuner import TradeStats, TuneDecision, trade_stats, tune
from settings import BotSettings, FleetSettings

__all__ = ["TradingWindow", "tune_parameters"]

_NS_PER_HOUR = 3_600_000_000_000


@dataclass(frozen=True, slots=True)
class TradingWindow:
    """A bot's recent trading from the ledger, and the config version it applied last."""

    fills: list[Fill]
    markouts: list[FillMarkout]
    orders_placed: int
    mark: Decimal | None
    applied_config: dict[str, Any]


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=is_transient, cache_policy=NO_CACHE)
def read_trading_window(fleet: FleetSettings, bot: str, symbol: str, since_ns: int) -> TradingWindow:
    """Fills since `since_ns` and their markouts, orders whose latest state is in the window, last mark,
    applied config."""
    with Ledger(fleet.ledger_url()) as ledger:
        fills = ledger.fills(bot, since_ts_ns=since_ns, symbol=symbol)
        markouts = ledger.markouts(bot, since_ts_ns=since_ns, symbol=symbol)
        orders = sum(1 for o in ledger.latest_orders(bot) if o.ts_ns >= since_ns and o.symbol == symbol)
        snapshot = ledger.latest_position_snapshot(bot) or {}
        applied = ledger.applied_config(bot)
    mark = snapshot.get("mark")
    return TradingWindow(fills, markouts, orders, mark, {} if applied is None else dict(applied.config))


@task(cache_policy=NO_CACHE)
def window_stats(window: TradingWindow) -> TradeStats:
    """The tuner's figures of the window."""
    return trade_stats(
        window.fills, orders_placed=window.orders_placed, markouts=window.markouts, mark=window.mark
    )


@task(cache_policy=NO_CACHE)
def run_tuner(settings: BotSettings, stats: TradeStats, backtest_s: float, seed: int) -> TuneDecision:
    """Propose a step and keep it only if the backtest agrees."""
    return tune(settings, stats, SyntheticMarket(seconds=backtest_s, seed=seed))


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _markdown(decisions: dict[str, TuneDecision], skipped: list[str], rollouts: dict[str, str]) -> str:
    lines = ["# tune-parameters", "", "| bot | gamma | kappa | decision | rollout |", "|---|---|---|---|---|"]
    for name, d in decisions.items():
        gamma = f"{d.current.gamma:g} -> {d.chosen.gamma:g}" if d.accepted else f"{d.current.gamma:g}"
        kappa = f"{d.current.kappa:g} -> {d.chosen.kappa:g}" if d.accepted else f"{d.current.kappa:g}"
        lines.append(f"| {name} | {gamma} | {kappa} | {d.reason} | {rollouts.get(name, '-')} |")
    if skipped:
        lines += ["", f"Tuner disabled (ml.tuner.enabled: false): {', '.join(skipped)}."]
    return "\n".join(lines) + "\n"


@flow(name="tune-parameters")
def tune_parameters(
    bots: list[str] | None = None,
    lookback_hours: float = 1.0,
    backtest_s: float = 600.0,
    seed: int = 0,
    apply: bool = True,
    guard: CanaryGuard = DEFAULT_GUARD,
    config: str | None = None,
) -> dict[str, str]:
    """Tune every enabled bot; roll accepted proposals out (unless `apply` is false).

    Returns bot -> the decision's reason (and the rollout's outcome).
    """
    logger = get_run_logger()
    fleet = load_fleet_config(config)
    since_ns = time.time_ns() - round(lookback_hours * _NS_PER_HOUR)
    decisions: dict[str, TuneDecision] = {}
    skipped: list[str] = []
    for bot in select_bots(fleet, bots):
        if not bot.ml.tuner.enabled:
            skipped.append(bot.name)
            continue
        window = read_trading_window(fleet, bot.name, bot.symbol, since_ns)
        settings = merged_settings(bot, window.applied_config)
        decisions[bot.name] = run_tuner(settings, window_stats(window), backtest_s, seed)
        logger.info("%s: %s", bot.name, decisions[bot.name].reason)
    rollouts: dict[str, str] = {}
    failed: list[str] = []
    for name, decision in decisions.items():
        if not (decision.accepted and apply):
            continue
        chosen, current = decision.chosen, decision.current
        tuned = {"gamma": _round(chosen.gamma)}
        if chosen.kappa != current.kappa:  # never a number over `kappa: auto` (the tuner holds it)
            tuned["kappa"] = _round(chosen.kappa)
        patch = {"strategy": tuned}
        state = rollout_config(
            patch=patch, bots=[name], canary=name, guard=guard, config=config, return_state=True
        )
        if state.is_failed():
            rollouts[name] = f"failed: {state.message}"
            failed.append(f"{name}: {state.message}")
        else:
            rollouts[name] = f"applied as version {state.result()[name]}"
    create_markdown_artifact(_markdown(decisions, skipped, rollouts), key="tune-parameters")
    if failed:
        raise FlowError("tuned parameters not rolled out: " + "; ".join(failed))
    return {
        name: d.reason + (f"; {rollouts[name]}" if name in rollouts else "") for name, d in decisions.items()
    }
