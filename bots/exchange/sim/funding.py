"""A perpetual's funding rate for the sim: a mean-reverting (Ornstein-Uhlenbeck) rate, settled on the
open position at fixed funding times.

- rate: `dr = theta * (mean - r) dt + sigma dW`, a fraction of notional per funding interval. It moves
  on a fixed grid of market time (every `RATE_STEP_S`, or every interval when that is shorter) with the
  exact OU transition `r' = mean + (r - mean) e^(-theta dt) + std * sqrt(1 - e^(-2 theta dt)) Z`, where
  `std` is the stationary standard deviation (`sigma = std * sqrt(2 theta)`) and `theta = ln 2 /
  half_life_s`, and holds between grid points: the path does not depend on how often it is asked.
- settlement: at every multiple of `interval_s` since the epoch (00:00, 08:00, 16:00 UTC for 8 h, as
  on GRVT), the rate in force is applied: an account holding `q` at mark `m` receives `-q * m * r`
  (`bots.exchange.events.funding_amount`): longs pay shorts when the rate is positive.

Deterministic for a seed. Used by the sim and paper exchange (`PaperExchange`), the backtest loop and
the local GRVT server, each applying the settlements to the positions it holds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Protocol

from settings.models import SimFundingSettings

__all__ = ["RATE_STEP_S", "FundingClock", "FundingParams", "FundingProcess", "Settlement"]

_NS_PER_S: Final = 1_000_000_000
_RATE_DECIMALS: Final = Decimal("1e-12")  # a rate kept to 1e-12 (GRVT reports percentage points to 1e-8)
RATE_STEP_S: Final = 60.0  # market seconds between two moves of the rate


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingParams:
    """The rate process: long-run mean and stationary standard deviation (fractions of notional per
    interval), the half-life of a deviation from the mean, the interval between settlements, and the
    starting rate (the mean when None)."""

    interval_s: float = 28_800.0
    mean: float = 0.0001
    std: float = 0.0001
    half_life_s: float = 86_400.0
    start: float | None = None

    @classmethod
    def from_settings(cls, funding: SimFundingSettings) -> FundingParams:
        """The process of a bot's `sim.funding` settings."""
        return cls(
            interval_s=funding.interval_s,
            mean=funding.rate_mean,
            std=funding.rate_std,
            half_life_s=funding.half_life_s,
            start=funding.start_rate,
        )

    def __post_init__(self) -> None:
        if not (self.interval_s > 0 and self.std >= 0 and self.half_life_s > 0):
            raise ValueError("need interval_s > 0, std >= 0 and half_life_s > 0")
        if not all(math.isfinite(v) for v in (self.mean, self.std, self.start or 0.0)):
            raise ValueError("funding mean, std and start must be finite")


@dataclass(frozen=True, slots=True)
class Settlement:
    """A funding time passed: `rate` (per interval) applies to the positions held then, at `mark`
    when the venue says which (else the book's mid at that time)."""

    ts_ns: int
    rate: Decimal
    mark: Decimal | None = None


class FundingClock(Protocol):
    """What settles funding on a simulated position (`PaperExchange`): the sim's `FundingProcess`, or a
    venue's settled rates in paper mode (`bots.venues.grvt.funding.GrvtFundingClock`)."""

    @property
    def interval_s(self) -> float: ...

    @property
    def ts_ns(self) -> int:
        """When the current rate took effect."""
        ...

    def advance(self, ts_ns: int) -> list[Settlement]:
        """The settlements due by market time `ts_ns`, oldest first, each once."""
        ...

    def decimal_rate(self) -> Decimal:
        """The current rate per interval."""
        ...

    async def run(self) -> None:
        """Whatever the clock must do in the background (read a venue); returns when there is nothing."""
        ...


class FundingProcess:
    """The rate of one instrument; `advance(ts_ns)` moves it to `ts_ns` and returns the settlements due
    on the way (funding times after the previous call, up to and including `ts_ns`)."""

    def __init__(self, params: FundingParams, *, seed: int, start_ns: int) -> None:
        self.params = params
        self._rng = random.Random(seed)
        step_s = min(RATE_STEP_S, params.interval_s)
        self._step_ns = round(step_s * _NS_PER_S)
        decay = math.exp(-math.log(2.0) / params.half_life_s * step_s)
        self._decay = decay
        self._shock = params.std * math.sqrt(1.0 - decay * decay)
        self._interval_ns = round(params.interval_s * _NS_PER_S)
        self.rate = params.mean if params.start is None else params.start  # float, per interval
        self.ts_ns = start_ns  # the time the rate last moved (its start before the first move)
        self._next_step_ns = (start_ns // self._step_ns + 1) * self._step_ns
        self._next_ns = (start_ns // self._interval_ns + 1) * self._interval_ns

    @property
    def interval_s(self) -> float:
        return self.params.interval_s

    @property
    def next_funding_ns(self) -> int:
        """The next funding time."""
        return self._next_ns

    def advance(self, ts_ns: int) -> list[Settlement]:
        """Move to `ts_ns`; the settlements whose time passed (each at the rate in force then: the
        rate's moves at or before a funding time come first)."""
        due: list[Settlement] = []
        while self._next_step_ns <= ts_ns or self._next_ns <= ts_ns:
            if self._next_step_ns <= self._next_ns:
                mean = self.params.mean
                self.rate = mean + (self.rate - mean) * self._decay + self._shock * self._rng.gauss(0.0, 1.0)
                self.ts_ns = self._next_step_ns
                self._next_step_ns += self._step_ns
            else:
                due.append(Settlement(self._next_ns, self.decimal_rate()))
                self._next_ns += self._interval_ns
        return due

    def decimal_rate(self) -> Decimal:
        """The current rate as an exact decimal (12 places)."""
        return Decimal(repr(self.rate)).quantize(_RATE_DECIMALS)

    async def run(self) -> None:
        """Nothing to do in the background: the process is local and moves with `advance`."""
