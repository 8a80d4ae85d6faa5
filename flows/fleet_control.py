"""fleet-control: start, stop, stop_close, restart or shutdown one bot or every bot, through the store's
command table, then wait for each bot's ack and report it (a table artifact, and the flow's result).

A command for every bot is one broadcast row ("*"); each running worker acks it once. A bot that does
not answer within `wait_s` (not running, stuck) fails the flow, naming it: the command stays queued
and a worker that starts later skips a broadcast issued before it started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from bots.store import ALL_BOTS, Ledger
from flows.common import (
    FlowError,
    flow_author,
    is_transient,
    load_fleet_config,
    select_bots,
)
from settings import FleetSettings

__all__ = ["Action", "BotAck", "fleet_control"]

Action = Literal["start", "stop", "stop_close", "restart", "shutdown"]
_POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class BotAck:
    """One bot's answer: `status` is done, failed, or missing (no answer in time)."""

    bot: str
    status: str
    outcome: str


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=is_transient, cache_policy=NO_CACHE)
def enqueue_command(fleet: FleetSettings, target: str, action: Action, author: str) -> int:
    """Queue the command for one bot or "*" in the ledger; returns its id."""
    with Ledger(fleet.ledger_url()) as ledger:
        return ledger.enqueue_command(target, action, author=author)


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=is_transient, cache_policy=NO_CACHE)
def wait_for_command_acks(
    fleet: FleetSettings, command_id: int, bots: list[str], wait_s: float
) -> list[BotAck]:
    """Poll the command's acks until every bot answered or `wait_s` passed; unanswered bots are missing."""
    deadline = time.monotonic() + wait_s
    with Ledger(fleet.ledger_url()) as ledger:
        while True:
            answered = {ack.bot: ack for ack in ledger.command_acks(command_id)}
            if set(bots) <= set(answered) or time.monotonic() >= deadline:
                break
            time.sleep(_POLL_S)
    return [
        BotAck(name, answered[name].status, answered[name].outcome or "")
        if name in answered
        else BotAck(name, "missing", f"no ack within {wait_s:g} s")
        for name in bots
    ]


@task(cache_policy=NO_CACHE)
def ack_table(action: Action, command_id: int, acks: list[BotAck]) -> list[dict[str, str]]:
    """The acks as table rows."""
    return [
        {"command": str(command_id), "action": action, "bot": a.bot, "status": a.status, "outcome": a.outcome}
        for a in acks
    ]


@flow(name="fleet-control", log_prints=False)
def fleet_control(
    action: Action,
    bot: str = ALL_BOTS,
    wait_s: float = 30.0,
    config: str | None = None,
) -> dict[str, str]:
    """Send `action` to `bot` ("*" = every bot of the fleet file), wait for the acks, report them.

    Returns bot -> "status: outcome"; fails when a bot answered `failed` or did not answer in time.
    """
    logger = get_run_logger()
    fleet = load_fleet_config(config)
    names = [b.name for b in select_bots(fleet, None if bot == ALL_BOTS else [bot])]
    command_id = enqueue_command(fleet, bot, action, flow_author("fleet-control"))
    logger.info("command %d: %s -> %s", command_id, action, "every bot" if bot == ALL_BOTS else bot)
    acks = wait_for_command_acks(fleet, command_id, names, wait_s)
    create_table_artifact(
        ack_table(action, command_id, acks),
        key="fleet-control",
        description=f"Acks of command {command_id} ({action} -> {bot})",
    )
    for ack in acks:
        logger.info("%s: %s: %s", ack.bot, ack.status, ack.outcome)
    bad = [a for a in acks if a.status != "done"]
    if bad:
        raise FlowError(
            f"{action} (command {command_id}): " + "; ".join(f"{a.bot} {a.status}: {a.outcome}" for a in bad)
        )
    return {a.bot: f"{a.status}: {a.outcome}" for a in acks}
