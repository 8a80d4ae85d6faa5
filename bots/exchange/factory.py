"""Build the exchange a bot's mode asks for; the only place that knows which class serves which mode."""

from __future__ import annotations

import random
import time

from bots.engine.portfolio import Portfolio
from bots.errors import ConfigError
from bots.exchange.base import Exchange
from bots.exchange.paper import PaperExchange
from bots.exchange.sim.market import SimMarket
from bots.exchange.sim.replay import paced
from settings.models import BotSettings

__all__ = ["BUILTIN_START_PRICES", "make_exchange"]

# Where a fresh sim market starts when the ledger has no recorded mid for the symbol.
BUILTIN_START_PRICES: dict[str, float] = {
    "BTC_USDT_Perp": 65_000.0,
    "ETH_USDT_Perp": 3_200.0,
    "SOL_USDT_Perp": 150.0,
}


def _sim(settings: BotSettings, portfolio: Portfolio, last_mid: float | None) -> PaperExchange:
    sim = settings.sim
    seed = sim.seed if sim.seed is not None else random.SystemRandom().getrandbits(32)
    start = sim.start_price or last_mid or BUILTIN_START_PRICES.get(settings.symbol, 100.0)
    market = SimMarket(
        settings.symbol,
        settings.spec,
        seed=seed,
        s0=start,
        dt_s=sim.book_interval_s,
        sigma=sim.sigma,
        start_ns=time.time_ns(),
        trade_intensity_a=sim.trade_intensity_a,
        trade_decay_k=sim.trade_decay_k,
    )
    exchange = PaperExchange(
        settings.symbol,
        settings.spec,
        paced(market.steps(), speed=sim.speed),
        settings.paper,
        seed=seed,
        fill_id_prefix=f"{settings.name}-{time.time_ns():x}-",  # unique across restarts: the ledger's key
    )
    exchange.portfolio = portfolio  # the ledger's position: reduce-only checks must see it
    return exchange


async def make_exchange(
    settings: BotSettings, portfolio: Portfolio, last_mid: float | None = None
) -> Exchange:
    """The exchange for `settings.exchange.mode`.

    `portfolio` is a copy of the ledger's state for the simulated account (not the worker's own object:
    a paper exchange books its fills into it); `last_mid` lets a restarted sim continue where it was.
    """
    mode = settings.exchange.mode
    if mode == "sim":
        return _sim(settings, portfolio, last_mid)
    raise ConfigError(f"{settings.name}: exchange.mode {mode} is not available in this build yet")
