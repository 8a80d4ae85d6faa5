"""Offline market data for sim mode and backtests: a synthetic market, recorded-file replay, pacing."""

from bots.exchange.sim.market import BUILTIN_START_PRICES, UNINFORMED, RawStep, SimMarket, Step
from bots.exchange.sim.replay import paced, read_recording, write_recording

__all__ = [
    "BUILTIN_START_PRICES",
    "UNINFORMED",
    "RawStep",
    "SimMarket",
    "Step",
    "paced",
    "read_recording",
    "write_recording",
]
