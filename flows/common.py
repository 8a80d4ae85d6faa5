"""What every flow shares: finding the fleet file, choosing bots, the retry rule of I/O tasks.

A flow finds its fleet file through its `config` parameter, else the `MMFLEET_CONFIG` environment
variable (`mmfleet flows serve --config FILE` sets both); the ledger and every bot's settings come from
that file, exactly as the bots read it (YAML, then `.env`, then `MMFLEET_*` variables).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from bots.errors import ConfigError, FleetError
from settings import BotSettings, FleetSettings, load_fleet

__all__ = [
    "CONFIG_ENV",
    "FlowError",
    "fleet_path",
    "flow_author",
    "is_transient",
    "load_fleet_config",
    "select_bots",
]

CONFIG_ENV = "MMFLEET_CONFIG"


class FlowError(FleetError):
    """An outcome a retry will not change (a refused rollout, a missing ack): the flow fails with it."""


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """`retry_condition_fn` of the I/O tasks: retry a database or network hiccup, never an mmfleet error
    (a bad config, a refused rollout, a bot that did not answer) nor a bug in our own arguments."""
    error = state.data
    return not isinstance(error, FleetError | ValueError | KeyError | TypeError)


def fleet_path(config: str | None) -> Path:
    """The fleet file: `config`, else $MMFLEET_CONFIG."""
    value = config or os.environ.get(CONFIG_ENV)
    if not value:
        raise FlowError(f"no fleet file: pass the `config` parameter or set ${CONFIG_ENV}")
    return Path(value)


def flow_author(flow_name: str) -> str:
    """Who wrote a ledger row, for the audit trail: the flow and its run's name."""
    return f"prefect:{flow_name}:{flow_run.name or 'local'}"


@task(cache_policy=NO_CACHE)
def load_fleet_config(config: str | None) -> FleetSettings:
    """Read and validate the fleet file (no retries: a config problem is not transient)."""
    path = fleet_path(config)
    try:
        return load_fleet(path)
    except ConfigError as exc:
        raise FlowError(f"{exc}: " + "; ".join(exc.problems)) from None


def select_bots(fleet: FleetSettings, names: Sequence[str] | None) -> list[BotSettings]:
    """The bots named (every bot for None, an empty list or ["*"]), in fleet order; unknown names fail."""
    if not names or list(names) == ["*"]:
        return list(fleet.bots)
    known = {bot.name: bot for bot in fleet.bots}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise FlowError(f"unknown bots {unknown}; known: {', '.join(known)}")
    wanted = set(names)
    return [bot for bot in fleet.bots if bot.name in wanted]
