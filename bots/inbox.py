"""`Inbox`: the worker's event queue for its one consumer.

`asyncio.Queue` looks up the running loop on every wait, and CPython's lookup makes a `getpid()` system
call; the consumer waits once per book, on every bot. This is a deque and one waiting future, the loop
looked up once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Inbox"]

T = TypeVar("T")


class Inbox(Generic[T]):
    """Unbounded FIFO for a single consumer (`get`); any number of producers on the loop (`put_nowait`)."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> T:
        while not self._items:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._waiter = self._loop.create_future()
            await self._waiter
        return self._items.popleft()
