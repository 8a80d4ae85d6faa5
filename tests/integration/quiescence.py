"""When a bot worker is at rest, so that a test may judge what rests at the exchange.

`wait_quiescent(worker, book_after_ns=..., fills_at_least=...)` is the one place tests ask this: it
returns once the worker has received a book published at or after `book_after_ns` (its `last_book`),
has booked at least `fills_at_least` fills (live, fills arrive on their own stream, which no book
waits for: a test that counted the exchange's fills passes that count), and then `worker.quiescent()`
returned (its event queue is empty, the consumer finished the exchange calls of every event, that
book's included). It raises `AssertionError` after `timeout_s`: a worker that never settles is a
finding, not a pass.
"""

from __future__ import annotations

import asyncio
import time

from bots.worker import BotWorker

__all__ = ["wait_quiescent"]


async def wait_quiescent(
    worker: BotWorker, *, book_after_ns: int, fills_at_least: int = 0, timeout_s: float = 20.0
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
    while worker.portfolio.fill_count < fills_at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker booked {worker.portfolio.fill_count} of {fills_at_least} fills")
        await asyncio.sleep(0.005)
    try:
        await asyncio.wait_for(worker.quiescent(), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise AssertionError(f"the worker did not come to rest within {timeout_s}s") from None
