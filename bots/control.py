"""The worker's side of the control plane: obey queued commands and apply config versions, acking each.

The worker's one consumer runs this between two decisions, so a new config never meets half a
decision and what a `stop` acks is what the exchange did. A config version is a patch of this bot's
settings: validated whole by the settings models, then applied entirely at the next decision, or
rejected with the reason (a field only a restart can change is named: `needs restart: <field>`),
changing nothing. `reload_config` takes the same road: what changed in the fleet file becomes a config
version for this bot, checked and acked like any other, so it is audited and still applied after a
restart. A command whose handler fails is acked too (before the crash, for a bug), so one command can
never crash-loop a bot or a fleet.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from bots.core.actions import Action
from bots.core.core import BotCore
from bots.errors import ConfigError, FleetError, Halted
from bots.store import Ledger
from bots.store.control import ALL_BOTS, Command, ConfigVersion
from bots.store.writer import ControlWork, StoreWriter
from settings.fleet import deep_merge, validation_problems
from settings.models import BotSettings

__all__ = [
    "ControlledBot",
    "WorkerExit",
    "apply_control",
    "merged_settings",
    "newest_applied_settings",
    "restart_fields",
    "settings_patch",
]

log = logging.getLogger("mmfleet.control")


class WorkerExit(StrEnum):
    """Why a worker's run ended."""

    STOPPED = "stopped"  # a signal (SIGTERM, SIGINT) or the loss of the worker lock
    SHUTDOWN = "shutdown"  # the shutdown command: stop and stay down
    RESTART = "restart"  # the restart command: rebuild the exchange connection and run again
    MARKET_ENDED = "market_ended"  # the market-data stream ended (replay ran out or broke)
    ORDERS_LEFT = (
        "orders_left"  # stopped, but orders of ours still rest (the exchange failed past the deadline)
    )


class ControlledBot(Protocol):
    """What the control plane needs of a worker (`bots.worker.BotWorker`)."""

    name: str
    store: StoreWriter
    started_ns: int
    settings: BotSettings
    core: BotCore
    reload_settings: Callable[[], BotSettings] | None

    async def perform(self, actions: Sequence[Action]) -> int | None: ...
    async def close_now(self) -> None: ...
    async def check_other_stores(self) -> None: ...
    def apply_settings(self, settings: BotSettings, version: str) -> None: ...
    def request_stop(self, exit_as: WorkerExit = WorkerExit.STOPPED) -> None: ...


# Fields that define which bot this is; a hot reload may not change them.
_IDENTITY = (("symbol",), ("name",), ("exchange", "mode"), ("exchange", "env"))
# Sections built once at start (the connection, the market process, the instrument's rules).
_AT_START = ("exchange", "sim", "instrument", "store")


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


async def _start(bot: ControlledBot, command: Command) -> str:
    """Enable trading; refused on a halted bot, saying why and what lifts it (a start must not quietly
    re-arm a drawdown limit: that is `reset-risk`'s job, audited as such)."""
    reason = bot.core.halt_reason()
    if reason is not None:
        raise Halted(f"halted: {reason}; `mmfleet ctl reset-risk --bot {bot.name}` lifts the halt")
    await bot.perform(bot.core.start())
    return "trading enabled"


async def _reset_risk(bot: ControlledBot, command: Command) -> str:
    """Lift a halt: risk trips cleared, peak equity re-armed at the equity now, the other-store latch
    lifted after the exchange is looked at again (it latches again at once if their orders still rest)."""
    reason = bot.core.halt_reason()
    await bot.perform(bot.core.reset_risk())
    await bot.check_other_stores()
    still = bot.core.halt_reason()
    if still is not None:
        raise Halted(f"still halted: {still}")
    peak = f"peak equity reset to {bot.core.peak:.2f}"
    lifted = f"halt lifted ({reason}); {peak}" if reason is not None else f"nothing was halted; {peak}"
    return lifted + ("" if bot.core.enabled else "; trading stays stopped until `mmfleet ctl start`")


async def _stop(bot: ControlledBot, command: Command) -> str:
    count = await bot.perform(bot.core.stop())
    return f"stopped; {count or 0} orders cancelled"


async def _stop_close(bot: ControlledBot, command: Command) -> str:
    count = await bot.perform(bot.core.stop(close=True))
    await bot.close_now()
    return f"stopped; {count or 0} orders cancelled; position now {bot.core.portfolio.position}"


def settings_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of `new` that differ from `old`, recursing into mappings: what a config version carries."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        current = old.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            if inner := settings_patch(current, value):
                patch[key] = inner
        elif value != current and not (value is None and isinstance(current, Mapping)):
            patch[key] = value
    return patch


def _apply_version(bot: ControlledBot, version: ConfigVersion) -> str | None:
    """Validate `version` against the running settings and apply it, or reject it; the reason if rejected."""
    number, name = version.version, bot.name
    try:
        bot.apply_settings(merged_settings(bot.settings, version.config), str(number))
    except ConfigError as exc:
        reason = str(exc)
        bot.store.record(lambda ledger: ledger.ack_config(number, name, "rejected", reason), urgent=True)
        log.warning("config rejected", extra={"fields": {"bot": name, "version": number, "reason": reason}})
        return reason
    bot.store.record(lambda ledger: ledger.ack_config(number, name, "applied"), urgent=True)
    return None


async def _reload_config(bot: ControlledBot, command: Command) -> str:
    if bot.reload_settings is None:
        raise ConfigError("this worker was not started from a config file")
    fresh = bot.reload_settings()  # ConfigError when the file no longer validates
    patch = settings_patch(bot.settings.model_dump(mode="json"), fresh.model_dump(mode="json"))
    if not patch:
        return "config reloaded from file: nothing changed"
    author, name = f"reload_config by {command.author}", bot.name
    number = await bot.store.call(lambda ledger: ledger.publish_config(patch, [name], author=author))
    reason = _apply_version(bot, await bot.store.call(lambda ledger: ledger.config_version(number)))
    if reason is not None:
        raise ConfigError(f"config version {number} from the file: {reason}")
    return f"config reloaded from file as version {number}"


async def _restart(bot: ControlledBot, command: Command) -> str:
    bot.request_stop(WorkerExit.RESTART)
    return "restarting"


async def _shutdown(bot: ControlledBot, command: Command) -> str:
    bot.request_stop(WorkerExit.SHUTDOWN)
    return "shutting down"


_HANDLERS: dict[str, Callable[[ControlledBot, Command], Awaitable[str]]] = {
    "start": _start,
    "stop": _stop,
    "stop_close": _stop_close,
    "reload_config": _reload_config,
    "restart": _restart,
    "shutdown": _shutdown,
    "reset_risk": _reset_risk,
}


async def apply_control(bot: ControlledBot, work: ControlWork) -> None:
    """Act on every pending command the store thread read, then on the pending config version."""
    for command in work.commands:
        await _obey(bot, command)
    if work.config is not None:
        _apply_version(bot, work.config)


def newest_applied_settings(ledger: Ledger, bot: str, current: BotSettings) -> tuple[BotSettings, str] | None:
    """At start (on the store thread): the settings of the newest version this bot applied before, to
    run with again. One that no longer validates (the file or the code changed since) is acked rejected
    and the one before it is tried, so a stored config can never keep a bot from starting."""
    while (applied := ledger.applied_config(bot)) is not None:
        try:
            return merged_settings(current, applied.config), str(applied.version)
        except ConfigError as exc:
            ledger.ack_config(applied.version, bot, "rejected", f"no longer valid at start: {exc}")
            log.warning("stored config no longer valid", extra={"fields": {"bot": bot,
                        "version": applied.version}})  # fmt: skip
    return None


def _ack(bot: ControlledBot, command: Command, outcome: str, *, ok: bool) -> None:
    """Queued: committed by the store thread in order, before anything the bot writes later."""
    number, name = command.id, bot.name
    bot.store.record(lambda ledger: ledger.ack_command(number, outcome, bot=name, ok=ok), urgent=True)


async def _obey(bot: ControlledBot, command: Command) -> None:
    if command.bot == ALL_BOTS and command.created_at_ns < bot.started_ns:
        _ack(bot, command, "skipped: issued before this worker started", ok=True)
        return
    try:
        outcome, ok = await _HANDLERS[command.command](bot, command), True
    except ConfigError as exc:
        outcome, ok = f"rejected: {exc}", False
    except Halted as exc:
        outcome, ok = f"refused: {exc}", False
    except FleetError as exc:  # e.g. the exchange refused the close of stop_close
        outcome, ok = f"failed: {exc}", False
    except Exception as exc:
        # A bug: acked first, so that a restarted bot does not run the same command into the same
        # bug again (one broadcast must not crash-loop a whole fleet), then the crash (exit 1).
        _ack(bot, command, f"failed: {type(exc).__name__}", ok=False)
        raise
    _ack(bot, command, outcome, ok=ok)
    log.info(
        "command",
        extra={"fields": {"bot": bot.name, "command": command.command, "author": command.author,
                          "outcome": outcome}},
    )  # fmt: skip
