"""When a bot worker is at rest, so that a test may judge what rests at the exchange.

`wait_quiescent(worker, book_after_ns=...)` is the one place tests ask this; its contract:

- returns once the worker has taken in a book published at or after `book_after_ns` (its `last_book`)
  AND has finished every exchange call that book (or anything else) caused;
- a worker with `async quiescent()` (the single-consumer worker) is asked: that returns when its event
  queue is empty, the consumer has finished the current event's exchange calls and it has handled the
  newest book it received. Only the arrival of the book is waited for here first;
- otherwise (today's worker: several tasks, no such method) it is approximated: the book has arrived
  and no call on the worker's exchange has been in flight for `settle_s` (longer than a retry's backoff
  and than the gap between a book's arrival and its first call, which is none). `meter_calls` must have
  wrapped the worker's exchange before the worker started;
- raises `AssertionError` after `timeout_s` (a worker that never settles is a finding, not a pass).
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["CallMeter", "meter_calls", "wait_quiescent"]

# The Exchange protocol's calls and GrvtExchange's extras (nested calls count once each).
_CALLS = (
    "instrument", "book", "place_order", "cancel_order", "cancel_all", "open_orders", "position",
    "position_detail", "balance", "fills_since", "reconcile", "cancel_exchange_order",
)  # fmt: skip


class CallMeter:
    """Exchange calls in flight, and when the last one ended (monotonic seconds)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.idle_since = time.monotonic()

    def idle_for(self) -> float:
        return 0.0 if self.in_flight else time.monotonic() - self.idle_since

    def wrap(self, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(call)
        async def metered(*args: Any, **kwargs: Any) -> Any:
            self.in_flight += 1  # before the first suspension: a caller never looks idle in between
            try:
                return await call(*args, **kwargs)
            finally:
                self.in_flight -= 1
                self.idle_since = time.monotonic()

        return metered


_METERS: weakref.WeakKeyDictionary[Any, CallMeter] = weakref.WeakKeyDictionary()


def meter_calls(exchange: Any) -> CallMeter:
    """Count `exchange`'s calls in flight (its async methods replaced on the instance)."""
    meter = CallMeter()
    for name in _CALLS:
        method = getattr(exchange, name, None)
        if method is not None:
            setattr(exchange, name, meter.wrap(method))
    _METERS[exchange] = meter
    return meter


async def wait_quiescent(
    worker: Any, *, book_after_ns: int, settle_s: float = 0.15, timeout_s: float = 20.0
) -> None:
    """See the module docstring."""
    deadline = time.monotonic() + timeout_s

    def book_seen() -> bool:
        book = worker.last_book
        return book is not None and book.ts_ns >= book_after_ns

    while not book_seen():
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker never received a book published after {book_after_ns}")
        await asyncio.sleep(0.005)
    quiescent = getattr(worker, "quiescent", None)
    if quiescent is not None:
        await asyncio.wait_for(quiescent(), max(0.0, deadline - time.monotonic()))
        return
    meter = _METERS.get(worker.exchange)
    if meter is None:
        raise AssertionError("wait_quiescent needs meter_calls(exchange) on a worker without quiescent()")
    while meter.idle_for() < settle_s:
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker's exchange calls never settled for {settle_s}s")
        await asyncio.sleep(0.005)
