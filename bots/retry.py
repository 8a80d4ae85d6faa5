"""Retry exchange calls: exponential backoff with full jitter on transient errors, slow down on 429.

`Rejected` and every non-transient error pass straight through: retrying them would repeat a mistake.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bots.errors import RateLimited, Timeout, TransientExchangeError, Unavailable

__all__ = ["Backoff", "error_kind", "retrying"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry n (0-based): uniform in [0, min(max_s, base_s * 2**n)] (AWS "full jitter")."""

    attempts: int = 5
    base_s: float = 0.05
    max_s: float = 5.0

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.max_s, self.base_s * (2**attempt)))


def error_kind(exc: BaseException) -> str:
    """The `kind` label of `mmfleet_exchange_errors_total` for an exception."""
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, Timeout):
        return "timeout"
    if isinstance(exc, Unavailable):
        return "unavailable"
    return "other"


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    policy: Backoff,
    on_error: Callable[[TransientExchangeError], None],
    rng: random.Random | None = None,
) -> T:
    """Await `call()` until it succeeds or `policy.attempts` transient failures; then re-raise the last.

    A `RateLimited` error with `retry_after_s` waits at least that long: the exchange said so.
    """
    for attempt in range(policy.attempts):
        try:
            return await call()
        except TransientExchangeError as exc:
            on_error(exc)
            if attempt == policy.attempts - 1:
                raise
            rng = rng or random.Random()  # seeded only when a call failed: not on every call
            delay = policy.delay_s(attempt, rng)
            if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
                delay = max(delay, exc.retry_after_s)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")
