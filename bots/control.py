"""The worker's side of the control plane: obey queued commands and apply config versions, acking each.

The worker's one consumer runs this between two decisions, so a new config never meets half a
decision and what a `stop` acks is what the exchange did. A config version is a patch of this bot's
settings: validated whole by the settings models, then applied entirely at the next decision, or
rejected with the reason (a field only a restart can change is named: `needs restart: <field>`),
changing nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from bots.core.actions import Action
from bots.core.core import BotCore
from bots.errors import ConfigError
from bots.store import Ledger
from bots.store.control import ALL_BOTS, Command
from settings.fleet import deep_merge, validation_problems
from settings.models import BotSettings

__all__ = ["ControlledBot", "WorkerExit", "apply_control", "merged_settings", "restart_fields"]

log = logging.getLogger("mmfleet.control")


class WorkerExit(StrEnum):
    """Why a worker's run ended."""

    STOPPED = "stopped"  # a signal or the shutdown command: exit 0
    RESTART = "restart"  # the restart command: rebuild the exchange connection and run again


class ControlledBot(Protocol):
    """What the control plane needs of a worker (`bots.worker.BotWorker`)."""

    name: str
    ledger: Ledger
    started_ns: int
    settings: BotSettings
    core: BotCore
    reload_settings: Callable[[], BotSettings] | None

    async def perform(self, actions: Sequence[Action]) -> int | None: ...
    async def close_now(self) -> None: ...
    def apply_settings(self, settings: BotSettings, version: str) -> None: ...
    def request_stop(self, exit_as: WorkerExit = WorkerExit.STOPPED) -> None: ...


# Fields that define which bot this is; a hot reload may not change them.
_IDENTITY = (("symbol",), ("name",), ("exchange", "mode"), ("exchange", "env"))
# Sections built once at start (the connection, the market process, the instrument's rules).
_AT_START = ("exchange", "sim", "instrument")


def merged_settings(current: BotSettings, patch: Mapping[str, Any]) -> BotSettings:
    """`current` with `patch` deep-merged over it, validated; ConfigError names every bad field."""
    merged = deep_merge(current.model_dump(mode="json"), patch)
    try:
        settings = BotSettings.model_validate(merged)
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise ConfigError("; ".join(problems), problems) from None
    for path in _IDENTITY:
        old: Any = current
        new: Any = settings
        for part in path:
            old, new = getattr(old, part), getattr(new, part)
        if old != new:
            raise ConfigError(f"{'.'.join(path)} cannot change without a restart (got {new!r})")
    return settings


def _changed(old: Any, new: Any, prefix: str) -> list[str]:
    """Dotted names of the leaf fields that differ between two dumps."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [f for key in sorted(old.keys() | new.keys())
                for f in _changed(old.get(key), new.get(key), f"{prefix}.{key}")]  # fmt: skip
    return [prefix] if old != new else []


def restart_fields(old: BotSettings, new: BotSettings, *, fills_here: bool) -> list[str]:
    """The changed fields a running bot cannot apply: the sections built at start, the starting
    balance (the ledger's cash already counts from it), and `paper.*` where no fill model runs here
    (live mode). `strategy.*`, `risk.*`, `ml.*` and the fill model's `paper.*` apply at once."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    fields = [f for section in _AT_START for f in _changed(before[section], after[section], section)]
    paper = _changed(before["paper"], after["paper"], "paper")
    fields += [f for f in paper if not fills_here or f == "paper.starting_balance_usd"]
    return fields


async def _start(bot: ControlledBot) -> str:
    await bot.perform(bot.core.start())
    return "trading enabled"


async def _stop(bot: ControlledBot) -> str:
    count = await bot.perform(bot.core.stop())
    return f"stopped; {count or 0} orders cancelled"


async def _stop_close(bot: ControlledBot) -> str:
    count = await bot.perform(bot.core.stop(close=True))
    await bot.close_now()
    return f"stopped; {count or 0} orders cancelled; position now {bot.core.portfolio.position}"


async def _reload_config(bot: ControlledBot) -> str:
    if bot.reload_settings is None:
        raise ConfigError("this worker was not started from a config file")
    bot.apply_settings(bot.reload_settings(), "file")
    return "config reloaded from file"


async def _restart(bot: ControlledBot) -> str:
    bot.request_stop(WorkerExit.RESTART)
    return "restarting"


async def _shutdown(bot: ControlledBot) -> str:
    bot.request_stop()
    return "shutting down"


_HANDLERS: dict[str, Callable[[ControlledBot], Awaitable[str]]] = {
    "start": _start,
    "stop": _stop,
    "stop_close": _stop_close,
    "reload_config": _reload_config,
    "restart": _restart,
    "shutdown": _shutdown,
}


async def apply_control(bot: ControlledBot) -> None:
    """Act on every pending command, then on a pending config version."""
    ledger = bot.ledger
    for command in ledger.pending_commands(bot.name):
        await _obey(bot, command)
    version = ledger.pending_config(bot.name)
    if version is None:
        return
    try:
        bot.apply_settings(merged_settings(bot.settings, version.config), str(version.version))
    except ConfigError as exc:
        ledger.ack_config(version.version, bot.name, "rejected", str(exc))
        log.warning(
            "config rejected",
            extra={"fields": {"bot": bot.name, "version": version.version, "reason": str(exc)}},
        )
        return
    ledger.ack_config(version.version, bot.name, "applied")


async def _obey(bot: ControlledBot, command: Command) -> None:
    ledger = bot.ledger
    if command.bot == ALL_BOTS and command.created_at_ns < bot.started_ns:
        ledger.ack_command(command.id, "skipped: issued before this worker started", bot=bot.name)
        return
    try:
        outcome, ok = await _HANDLERS[command.command](bot), True
    except ConfigError as exc:
        outcome, ok = f"rejected: {exc}", False
    ledger.ack_command(command.id, outcome, bot=bot.name, ok=ok)
    log.info(
        "command",
        extra={"fields": {"bot": bot.name, "command": command.command, "author": command.author,
                          "outcome": outcome}},
    )  # fmt: skip
