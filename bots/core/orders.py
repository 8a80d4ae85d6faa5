"""The bookkeeping of one bot's resting orders: what we believe rests, our client order ids, the order log.

No exchange calls and no clock: the core tells this book what happened, with the event's time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Final

from bots.engine.orders import OpenOrder, OrderKeys, order_keys
from bots.engine.types import Side
from bots.exchange.events import Fill, OrderStatus, OrderUpdate

__all__ = ["OrderIds", "RestingOrders", "bot_tag"]

_COUNTER_BITS: Final = 48  # + a 14-bit tag: ids stay below 2**62, a positive int64
_COUNTER_MASK: Final = (1 << _COUNTER_BITS) - 1
_ZERO: Final = Decimal(0)


def bot_tag(name: str) -> int:
    """A 14-bit tag of the bot name carried by every client order id: an order of an earlier life is
    recognisably ours."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:2]) >> 2


class OrderIds:
    """Client order ids: the bot's tag, then a counter from `start` (the worker starts it at its start
    time in microseconds, so ids are unique across restarts; a backtest starts at 0)."""

    def __init__(self, tag: int, start: int) -> None:
        self.tag = tag
        self.seq = start & _COUNTER_MASK

    def next(self) -> str:
        self.seq = (self.seq + 1) & _COUNTER_MASK
        return str(self.tag << _COUNTER_BITS | self.seq)

    def is_ours(self, client_order_id: str) -> bool:
        return client_order_id.isdigit() and int(client_order_id) >> _COUNTER_BITS == self.tag


class RestingOrders:
    """Our resting orders by client order id; with `keep_log`, the order states not yet recorded."""

    def __init__(self, symbol: str, keep_log: bool) -> None:
        self.symbol = symbol
        self.keep_log = keep_log
        self.orders: dict[str, OpenOrder] = {}
        self.cancelling: dict[str, OpenOrder] = {}  # cancel sent, not confirmed: may still rest
        self.states: dict[str, OrderUpdate] = {}  # as last acknowledged (kept only with keep_log)
        self.log: list[OrderUpdate] = []
        self._list: list[OpenOrder] | None = None  # `orders` as the diff takes them; None after a change
        self._keys: OrderKeys | None = None

    def __len__(self) -> int:
        return len(self.orders) + len(self.cancelling)

    def __contains__(self, client_order_id: str) -> bool:
        return client_order_id in self.orders or client_order_id in self.cancelling

    def open_orders(self) -> list[OpenOrder]:
        """The resting orders as `diff_orders` wants them (cached until they change)."""
        listed = self._list
        if listed is None:
            listed = self._list = list(self.orders.values())
            self._keys = order_keys(listed)
        return listed

    def keys(self) -> OrderKeys | None:
        self.open_orders()
        return self._keys

    def sides(self) -> Iterator[Side]:
        """The side of every order that may rest (cancels not yet confirmed included)."""
        yield from (order.side for order in self.orders.values())
        yield from (order.side for order in self.cancelling.values())

    def sent(self, order: OpenOrder, price: Decimal, size: Decimal, ts_ns: int) -> None:
        """Tracked before the call: a timeout may still have placed it, and the next diff cancels it."""
        self.orders[order.client_order_id] = order
        self._list = None
        if self.keep_log:
            self.states[order.client_order_id] = OrderUpdate(
                self.symbol, order.client_order_id, None, order.side, price, size,
                _ZERO, OrderStatus.PENDING, None, ts_ns,
            )  # fmt: skip

    def acknowledged(self, client_order_id: str, update: OrderUpdate) -> None:
        """The exchange's answer to a placement; a final one (filled at once, expired) ends tracking."""
        if self.keep_log:
            self.log.append(update)
            if client_order_id in self.states:
                self.states[client_order_id] = update
        if update.status.is_final:
            self.drop(client_order_id)

    def drop(self, client_order_id: str) -> None:
        """Not resting any more, with nothing to log (rejected, never sent, or gone from the exchange)."""
        if self.orders.pop(client_order_id, None) is not None:
            self._list = None
        self.cancelling.pop(client_order_id, None)
        self.states.pop(client_order_id, None)

    def cancel_sent(self, client_order_id: str) -> None:
        """A cancel is on its way: the order no longer counts for the diff, but may still rest."""
        order = self.orders.pop(client_order_id, None)
        if order is not None:
            self._list = None
            self.cancelling[client_order_id] = order

    def cancel_failed(self, client_order_id: str) -> None:
        """The cancel did not go through: the order rests as before."""
        order = self.cancelling.pop(client_order_id, None)
        if order is not None:
            self._list = None
            self.orders[client_order_id] = order

    def cancelled(self, client_order_id: str, ts_ns: int) -> None:
        """A cancelled order: out of the book we keep, into the order log as CANCELLED."""
        if self.cancelling.pop(client_order_id, None) is None:
            if self.orders.pop(client_order_id, None) is None:
                return
            self._list = None
        state = self.states.pop(client_order_id, None)
        if state is not None:
            self.log.append(replace(state, status=OrderStatus.CANCELLED, reason="client_cancel", ts_ns=ts_ns))

    def fill(self, fill: Fill, lot: Decimal) -> None:
        """A fill of ours: the rest of a partly filled order stays; a fully filled one is logged FILLED."""
        cid = fill.client_order_id
        book = self.orders if cid in self.orders else self.cancelling
        order = book.get(cid)
        if order is None:
            return
        self._list = None
        left = order.size_lots - round(fill.size / lot)
        if left > 0:
            book[cid] = OpenOrder(cid, order.side, order.price_ticks, left)
            return
        del book[cid]
        state = self.states.pop(cid, None)
        if state is not None:
            self.log.append(
                replace(state, status=OrderStatus.FILLED, filled_size=state.size, ts_ns=fill.ts_ns)
            )

    def take_log(self) -> tuple[OrderUpdate, ...]:
        """The order states since the last call, for the ledger's one batch."""
        log, self.log = self.log, []
        return tuple(log)
