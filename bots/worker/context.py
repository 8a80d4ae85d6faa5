"""What every part of a worker knows of it: which bot, on which symbol and exchange, its metrics, its
current core and settings (read through: the worker replaces both), and how it acts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bots.core.actions import Action
from bots.core.core import BotCore
from bots.exchange.base import Exchange
from bots.metrics import BotMetrics
from settings.models import BotSettings

__all__ = ["BotContext"]


@dataclass(frozen=True, slots=True)
class BotContext:
    """Handed to each of the worker's parts at its construction."""

    name: str
    symbol: str
    exchange: Exchange
    metrics: BotMetrics
    core: Callable[[], BotCore]
    settings: Callable[[], BotSettings]
    perform: Callable[[Sequence[Action]], Awaitable[int | None]]  # the core's actions, one after the other
