"""The loop's side of fill durability: fills handed to the store thread, applied once committed.

A fill counts only after its commit. The loop hands each batch over (with the exchange cursor after
it) and goes on; the batches come back in the order they were handed, each with the fills that were
new to the ledger, and only those are applied. `unconfirmed` is the backlog the worker bounds.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from bots.exchange.base import Fill
from bots.store.writer import StoreWriter

__all__ = ["FillHandover"]


class FillHandover:
    """Handed batches in order; `on_committed` is called (on the loop) whenever one is answered."""

    def __init__(self, writer: StoreWriter, on_committed: Callable[[], None]) -> None:
        self._writer = writer
        self._on_committed = on_committed
        self._handed: deque[tuple[asyncio.Future[list[Fill]], int]] = deque()
        self.unconfirmed = 0  # fills handed over and not answered yet

    def hand(self, fills: Sequence[Fill], cursor: str | None) -> None:
        future = self._writer.commit_fills(fills, cursor)
        future.add_done_callback(lambda _: self._on_committed())
        self._handed.append((future, len(fills)))
        self.unconfirmed += len(fills)

    def committed(self) -> list[Fill]:
        """The new fills of the leading answered batches, in order (apply them now). A batch the store
        refused raises its error here: a fill that cannot be recorded stops the bot, as it always has."""
        new: list[Fill] = []
        handed = self._handed
        while handed and handed[0][0].done():
            future, count = handed.popleft()
            self.unconfirmed -= count
            new.extend(future.result())
        return new

    @property
    def waiting(self) -> bool:
        """Whether a handed batch is not applied yet (answered or not)."""
        return bool(self._handed)

    async def answered(self, timeout_s: float | None = None) -> None:
        """Wait (at most `timeout_s`) until every batch handed so far is answered; `committed()`
        applies them."""
        pending = [future for future, _ in self._handed if not future.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    async def settle(self) -> list[Fill]:
        """Wait until every handed batch is answered, then `committed()`."""
        while self._handed:
            await asyncio.wait([future for future, _ in self._handed])
            if all(future.done() for future, _ in self._handed):
                break
        return self.committed()
