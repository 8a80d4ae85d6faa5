"""The worker's side of the control plane: obey queued commands and apply config versions, acking each.

Runs between two quote cycles (one asyncio task), so a new config never meets half a cycle. A config
version is a patch of this bot's settings: it is validated whole by the settings models and either
applied entirely or rejected with the reason, changing nothing. `reload_config` takes the same road:
what changed in the fleet file becomes a config version for this bot, checked and acked like any
other, so it is audited and still applied after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bots.errors import ConfigError, FleetError
from bots.store.control import ALL_BOTS, Command, ConfigVersion
from settings.fleet import deep_merge, validation_problems
from settings.models import BotSettings

if TYPE_CHECKING:
    from bots.worker import BotWorker

__all__ = ["WorkerExit", "merged_settings", "poll_control", "restore_applied_config", "settings_patch"]

log = logging.getLogger("mmfleet.control")


class WorkerExit(StrEnum):
    """Why a worker's run ended."""

    STOPPED = "stopped"  # a signal (SIGTERM, SIGINT) or the loss of the worker lock
    SHUTDOWN = "shutdown"  # the shutdown command: stop and stay down
    RESTART = "restart"  # the restart command: rebuild the exchange connection and run again
    MARKET_ENDED = "market_ended"  # the market-data stream ended (replay ran out or broke)


# Fields that define which bot this is; a hot reload may not change them.
_IDENTITY = (("symbol",), ("name",), ("exchange", "mode"), ("exchange", "env"))


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


async def _start(worker: BotWorker, command: Command) -> str:
    worker.set_enabled(True)
    return "trading enabled"


async def _stop(worker: BotWorker, command: Command) -> str:
    worker.set_enabled(False)
    count = len(worker.resting)
    await worker.cancel_everything()
    return f"stopped; {count} orders cancelled"


async def _stop_close(worker: BotWorker, command: Command) -> str:
    outcome = await _stop(worker, command)
    if worker.last_book is not None:
        await worker.close_position(worker.last_book)
    return f"{outcome}; position now {worker.portfolio.position}"


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


def _apply_version(worker: BotWorker, version: ConfigVersion) -> str | None:
    """Validate `version` against the running settings and apply it, or reject it; the reason if rejected."""
    try:
        settings = merged_settings(worker.settings, version.config)
    except ConfigError as exc:
        worker.ledger.ack_config(version.version, worker.name, "rejected", str(exc))
        log.warning("config rejected", extra={"fields": {"bot": worker.name, "version": version.version}})
        return str(exc)
    worker.apply_settings(settings, str(version.version))
    worker.ledger.ack_config(version.version, worker.name, "applied")
    return None


async def _reload_config(worker: BotWorker, command: Command) -> str:
    if worker.reload_settings is None:
        raise ConfigError("this worker was not started from a config file")
    fresh = worker.reload_settings()  # ConfigError when the file no longer validates
    patch = settings_patch(worker.settings.model_dump(mode="json"), fresh.model_dump(mode="json"))
    if not patch:
        return "config reloaded from file: nothing changed"
    author = f"reload_config by {command.author}"
    number = worker.ledger.publish_config(patch, [worker.name], author=author)
    reason = _apply_version(worker, worker.ledger.config_version(number))
    if reason is not None:
        raise ConfigError(f"config version {number} from the file: {reason}")
    return f"config reloaded from file as version {number}"


async def _restart(worker: BotWorker, command: Command) -> str:
    worker.request_stop(WorkerExit.RESTART)
    return "restarting"


async def _shutdown(worker: BotWorker, command: Command) -> str:
    worker.request_stop(WorkerExit.SHUTDOWN)
    return "shutting down"


_HANDLERS: dict[str, Callable[[BotWorker, Command], Awaitable[str]]] = {
    "start": _start,
    "stop": _stop,
    "stop_close": _stop_close,
    "reload_config": _reload_config,
    "restart": _restart,
    "shutdown": _shutdown,
}


async def poll_control(worker: BotWorker) -> None:
    """Act on every pending command, then on a pending config version."""
    ledger = worker.ledger
    for command in ledger.pending_commands(worker.name):
        if command.bot == ALL_BOTS and command.created_at_ns < worker.started_ns:
            ledger.ack_command(command.id, "skipped: issued before this worker started", bot=worker.name)
            continue
        try:
            outcome, ok = await _HANDLERS[command.command](worker, command), True
        except ConfigError as exc:
            outcome, ok = f"rejected: {exc}", False
        except FleetError as exc:  # e.g. the exchange refused the close of stop_close
            outcome, ok = f"failed: {exc}", False
        except Exception as exc:
            # A bug: acked first, so that a restarted bot does not run the same command into the same
            # bug again (one broadcast must not crash-loop a whole fleet), then the crash (exit 1).
            ledger.ack_command(command.id, f"failed: {type(exc).__name__}", bot=worker.name, ok=False)
            raise
        ledger.ack_command(command.id, outcome, bot=worker.name, ok=ok)
        log.info(
            "command",
            extra={"fields": {"bot": worker.name, "command": command.command, "author": command.author,
                              "outcome": outcome}},
        )  # fmt: skip
    version = ledger.pending_config(worker.name)
    if version is not None:
        _apply_version(worker, version)


def restore_applied_config(worker: BotWorker) -> None:
    """At start: run with the newest version this bot applied before. One that no longer validates
    (the file or the code changed since) is acked rejected and the one before it is tried, so a stored
    config can never keep a bot from starting."""
    ledger = worker.ledger
    while (applied := ledger.applied_config(worker.name)) is not None:
        try:
            settings = merged_settings(worker.settings, applied.config)
        except ConfigError as exc:
            ledger.ack_config(applied.version, worker.name, "rejected", f"no longer valid at start: {exc}")
            log.warning("stored config no longer valid", extra={"fields": {"bot": worker.name,
                        "version": applied.version}})  # fmt: skip
            continue
        worker.apply_settings(settings, str(applied.version))
        return
