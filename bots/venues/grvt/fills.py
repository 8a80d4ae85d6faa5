"""Our fills of one symbol on GRVT, each delivered once per process, from the private stream or the REST
fill history; and the cursor the ledger keeps so that a restart misses none.

Why a module of its own: the rule of which source serves is the one subtle part of taking fills.
The stream serves a read that goes on from the cursor the previous read returned, when it can be
trusted: a history read joined it on the current trade-data
connection (its subscriptions acknowledged as the read began), no fill message since was unreadable,
no reconciliation is under way (the position a reconciliation reads must include exactly the fills it
returns, which only the history promises), and no order of ours took liquidity since the last read (its
caller wants those fills at once; the stream may still be on its way). Otherwise the history is read,
every page, and joined with whatever the stream brought meanwhile, by fill id.

The cursor is `grvt1:<newest event time ns>:<fill ids at that time>`. History queries start
`overlap_ns` before it, so a fill that reaches the history late is still delivered (once per process;
after a restart such a fill may come again, and the ledger drops it by fill id). None, or a cursor
another mode wrote, reads the whole history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bots.exchange.base import Fill
from bots.venues.grvt.account import _AccountFeed
from bots.venues.grvt.parse import PAGE_LIMIT, decode_cursor, encode_cursor, every_page, parse_fill

__all__ = ["FetchPage", "_FillSource"]


FetchPage = Callable[[int | None, int, dict[str, str]], Awaitable[Any]]
"""One fill-history request: (start time ns or None, page size, {"cursor": page} or {}) -> the reply."""


class _FillSource:
    """Which source serves the next read, and what was delivered (see the module docstring)."""

    def __init__(self, symbol: str, overlap_ns: int) -> None:
        self.symbol = symbol
        self.overlap_ns = overlap_ns
        self.reconciling = False  # every read of a reconciliation is a history read
        self.taken = False  # an order of ours took liquidity: its fills are due before the stream's
        self._synced_connection = 0  # the trade-data connection a history read last joined the stream on
        self._cursor: str | None = None  # the cursor the last read returned: the stream goes on from it
        self._read = False  # a read has returned (`_cursor` is its cursor)
        self._delivered: dict[str, int] = {}  # fill id -> event time, within the overlap window

    def streamed(self, account: _AccountFeed) -> bool:
        """True when a read from the cursor the last one returned serves the stream's fills (no REST
        call)."""
        return (
            not (self.reconciling or self.taken or account.gap)
            and account.live
            and self._synced_connection == account.connections
        )

    async def read(
        self, account: _AccountFeed, cursor: str | None, fetch_page: FetchPage
    ) -> tuple[list[Fill], str | None]:
        """Our fills after `cursor`, oldest first, and the cursor after them."""
        if self._read and cursor == self._cursor and self.streamed(account):
            return self._new(account.take(), cursor)
        connection, live = account.connections, account.live  # before the read: the stream goes on from here
        account.history_read()
        self.taken = False
        last_ns, _ = decode_cursor(cursor)
        start_ns = max(1, last_ns - self.overlap_ns) if last_ns else None
        rows = await every_page(
            "fill_history", lambda page: fetch_page(start_ns, PAGE_LIMIT, {"cursor": page} if page else {})
        )
        if live:
            self._synced_connection = connection
        return self._new([*map(parse_fill, rows), *account.take()], cursor)

    def _new(self, fills: Iterable[Fill], cursor: str | None) -> tuple[list[Fill], str | None]:
        """The fills of our symbol not delivered yet (by fill id, and by the cursor), oldest first, and
        the cursor after them."""
        last_ns, last_ids = decode_cursor(cursor)
        unique = {f.fill_id: f for f in fills if f.symbol == self.symbol}
        ordered = sorted(unique.values(), key=lambda f: (f.ts_ns, f.fill_id))
        new = [
            f for f in ordered
            if f.ts_ns > last_ns
            or (f.fill_id not in last_ids and (f.ts_ns == last_ns or f.fill_id not in self._delivered))
        ]  # fmt: skip
        self._read = True
        if not new:
            self._cursor = cursor
            return [], cursor
        for fill in new:
            self._delivered[fill.fill_id] = fill.ts_ns
        newest = max(last_ns, new[-1].ts_ns)
        self._delivered = {k: ts for k, ts in self._delivered.items() if ts >= newest - self.overlap_ns}
        at_newest = {f.fill_id for f in ordered if f.ts_ns == newest} | (
            last_ids if newest == last_ns else set()
        )
        self._cursor = encode_cursor(newest, at_newest)
        return new, self._cursor
