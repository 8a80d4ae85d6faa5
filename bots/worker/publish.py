"""What a worker shows of its core: the newest decision and the open orders on its metrics, the bot's
state as a scrape reads it, and a log line when the spread floor starts or stops deciding the spread."""

from __future__ import annotations

import logging
import math

from bots.engine.quoter import QuoteDecision
from bots.metrics import CycleState
from bots.worker.context import BotContext

__all__ = ["Publisher"]

log = logging.getLogger("mmfleet.worker")


class Publisher:
    """One worker's metrics and floor log."""

    def __init__(self, bot: BotContext) -> None:
        self.bot = bot
        self._floor_binds = False  # the spread floor decided the last published spread (logged on change)

    def decision(self) -> None:
        """The core's newest decision and open orders."""
        decision = self.bot.core().last_decision
        if decision is not None:
            self.bot.metrics.publish_decision(decision)
            self._log_floor(decision)
        self.orders()

    def orders(self) -> None:
        self.bot.metrics.publish_open_orders(self.bot.core().orders.sides())

    def cycle_state(self) -> CycleState:
        """The bot's state as a scrape reads it (on the HTTP thread: attribute reads only)."""
        core = self.bot.core()
        engine = core.engine
        return CycleState(
            inventory=core.inventory,
            portfolio=core.portfolio,
            gamma=engine.gamma,
            kappa=engine.kappa,
            breaker_tripped=engine.risk_state.breaker_tripped,
            enabled=core.enabled and core.other_store is None,
            tick=float(self.bot.settings().spec.tick_size),
            intensity_a=engine.intensity_a,
            intensity_fitted=core.fitted is not None,
        )

    def _log_floor(self, decision: QuoteDecision) -> None:
        """A log line when the spread floor starts or stops deciding the spread."""
        if math.isnan(decision.model_spread_pct) or decision.floor_binds == self._floor_binds:
            return
        self._floor_binds = decision.floor_binds
        fields = {
            "bot": self.bot.name,
            "model_spread_pct": round(decision.model_spread_pct, 8),
            "spread_pct": self.bot.settings().strategy.spread_pct,
            "gamma": decision.gamma,
            "kappa": decision.kappa,
        }
        if self._floor_binds:
            log.info("spread floor binds: the model's spread is below spread_pct", extra={"fields": fields})
        else:
            log.info("spread floor released: the model's spread decides", extra={"fields": fields})
