"""Build the exchange a bot's mode and venue ask for; the only place that knows which class serves which
mode on which venue.

`market_source` is the market-data stream a bot's mode trades on, as async `(BookUpdate, list[Trade])`
steps; `make_exchange` wraps it in the exchange the worker talks to; `market_records` is the same stream
with the venue's funding rate, which `mmfleet record` writes to a file.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

from bots.engine.portfolio import Portfolio
from bots.errors import ConfigError
from bots.exchange.base import Exchange
from bots.exchange.events import FundingRate
from bots.exchange.paper_exchange import PaperExchange
from bots.exchange.sim.funding import FundingClock, FundingParams, FundingProcess
from bots.exchange.sim.market import BUILTIN_START_PRICES, SimMarket, Step
from bots.exchange.sim.replay import paced, read_recording
from settings.models import BotSettings

__all__ = ["make_exchange", "market_records", "market_source"]


def _sim_seed(settings: BotSettings) -> int:
    seed = settings.sim.seed
    return seed if seed is not None else random.SystemRandom().getrandbits(32)


def _retimed(steps: Iterable[Step]) -> Iterator[Step]:
    """Recorded steps moved in time so that the first one happens now: the bot judges staleness
    against its clock, so a replayed hour from last week must look live (like the generated sim).
    The best levels a reader precomputed (`top_book`) carry the old time: `top()` makes them anew."""
    offset: int | None = None
    for book, trades in steps:
        if offset is None:
            offset = time.time_ns() - book.ts_ns
        yield (
            dataclasses.replace(book, ts_ns=book.ts_ns + offset, top_book=None),
            [dataclasses.replace(trade, ts_ns=trade.ts_ns + offset) for trade in trades],
        )


def _replay_steps(settings: BotSettings, path: Path) -> Iterator[Step]:
    problem = f"{settings.name}: sim.replay_file {path}"
    if not path.is_file():
        raise ConfigError(f"{problem}: no such file")
    try:
        steps = read_recording(path, symbol=settings.symbol)
        first = next(steps, None)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"{problem}: not a readable recording ({exc})") from exc
    if first is None:
        raise ConfigError(f"{problem}: no market data for {settings.symbol}")
    return _retimed(itertools.chain([first], steps))


def _sim_steps(settings: BotSettings, seed: int, last_mid: float | None) -> Iterator[Step]:
    sim = settings.sim
    if sim.replay_file is not None:
        return _replay_steps(settings, sim.replay_file)
    start = sim.start_price or last_mid or BUILTIN_START_PRICES.get(settings.symbol, 100.0)
    return _generated_steps(settings, seed, start)


def _generated_steps(settings: BotSettings, seed: int, start: float) -> Iterator[Step]:
    """The generated market, its clock started when its first step is taken, not when it is built: a
    bot that takes longer than `risk.max_book_age_s` to start (a fleet starting on two cores) would
    otherwise see every book it ever gets as stale, and never quote."""
    sim = settings.sim
    market = SimMarket.of(settings.symbol, settings.spec, sim, seed=seed, s0=start, start_ns=time.time_ns())
    yield from market.steps()


def market_source(
    settings: BotSettings, last_mid: float | None = None, *, seed: int | None = None
) -> AsyncIterator[Step]:
    """The market data a bot with `settings` trades on, paced like the bot sees it.

    sim: the generated market (seeded by `seed`, else `sim.seed`, else at random; starting at
    `sim.start_price`, else `last_mid`, else a built-in price), or the replay of `sim.replay_file`
    moved to start now; either at `sim.speed`. paper: the venue's public book and trades (on grvt
    `GrvtMarketData`, at `exchange.base_url` when set). Raises ConfigError for a mode without a source
    (live trades on the exchange's own streams).
    """
    mode = settings.exchange.mode
    if mode == "sim":
        steps = _sim_steps(settings, _sim_seed(settings) if seed is None else seed, last_mid)
        return paced(steps, speed=settings.sim.speed)
    if mode == "paper" and settings.exchange.venue == "grvt":
        from bots.venues.grvt.data import GrvtMarketData  # noqa: PLC0415 - the SDK loads only when used

        return GrvtMarketData.from_settings(settings).steps()
    raise ConfigError(
        f"{settings.name}: exchange.mode {mode} on venue {settings.exchange.venue} has no market-data source"
    )


def market_records(settings: BotSettings) -> AsyncIterator[Step | FundingRate]:
    """What `mmfleet record` writes: `market_source(settings)`, with the funding rate where the source
    has one (paper on grvt: the ticker's; the sim market has none)."""
    if settings.exchange.mode == "paper" and settings.exchange.venue == "grvt":
        from bots.venues.grvt.data import GrvtMarketData  # noqa: PLC0415 - the SDK loads only when used

        return GrvtMarketData.from_settings(settings).records()
    return market_source(settings)


def _venue_funding(settings: BotSettings) -> FundingClock | None:
    """Paper mode's funding: the rates the venue settles, applied to the paper position."""
    if settings.exchange.venue != "grvt":
        return None
    from bots.venues.grvt.funding import GrvtFundingClock  # noqa: PLC0415 - the SDK loads only when used

    return GrvtFundingClock(settings.symbol, env=settings.exchange.env, base_url=settings.exchange.base_url)


def _sim(settings: BotSettings, portfolio: Portfolio, last_mid: float | None) -> PaperExchange:
    seed = _sim_seed(settings)
    return PaperExchange(
        settings.symbol,
        settings.spec,
        market_source(settings, last_mid, seed=seed),
        settings.paper,
        seed=seed,
        fill_id_prefix=f"{settings.name}-{time.time_ns():x}-",  # unique across restarts: the ledger's key
        portfolio=portfolio,  # the ledger's position: reduce-only checks must see it
        funding=FundingProcess(
            FundingParams.from_settings(settings.sim.funding), seed=seed, start_ns=time.time_ns()
        ),  # settles the funding times after its start only: a restart never settles one twice
    )


async def make_exchange(
    settings: BotSettings, portfolio: Portfolio, last_mid: float | None = None
) -> Exchange:
    """The exchange for `settings.exchange.mode`: sim and paper are a `PaperExchange` (local fills) on
    the sim market or on the venue's public data; live is the venue's exchange, on grvt a `GrvtExchange`
    (credentials resolved here, a missing one is a ConfigError).

    Live checks its credentials with GRVT here: a refusal is a ConfigError naming their variables or files.
    `portfolio` is a copy of the ledger's state for the simulated account (not the worker's own object:
    a paper exchange books its fills into it; live ignores it: the exchange holds the position);
    `last_mid` lets a restarted sim continue where it was.
    """
    mode = settings.exchange.mode
    if mode == "sim":
        return _sim(settings, portfolio, last_mid)
    if mode == "paper":  # the venue's public data, local fills: no order leaves the process
        return PaperExchange(
            settings.symbol,
            settings.spec,
            market_source(settings, last_mid),
            settings.paper,
            seed=_sim_seed(settings),
            fill_id_prefix=f"{settings.name}-{time.time_ns():x}-",
            portfolio=portfolio,
            funding=_venue_funding(settings),
        )
    if mode == "live" and settings.exchange.venue == "grvt":
        from bots.venues.grvt.execution import GrvtExchange  # noqa: PLC0415 - the SDK loads only when used

        exchange = GrvtExchange(settings)  # credentials from settings.exchange.credentials
        try:
            await exchange.verify_credentials()  # refused credentials: ConfigError before any order
        except BaseException:
            await exchange.close()
            raise
        return exchange
    raise ConfigError(
        f"{settings.name}: exchange.mode {mode} on venue {settings.exchange.venue} is not available"
    )
