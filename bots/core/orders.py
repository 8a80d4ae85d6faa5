"""The bookkeeping of one bot's resting orders: what we believe rests, our client order ids, the order log.

No exchange calls and no clock: the core tells this book what happened, with the event's time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Final, NamedTuple

from bots.engine.orders import OpenOrder, OrderKeys, order_keys
from bots.engine.types import Side
from bots.exchange.events import Fill, OrderStatus, OrderUpdate

__all__ = ["OrderIds", "Owner", "RestingOrders", "bot_tag", "owner_of", "store_tag"]

# A client order id is a uint64 in the range GRVT asks API clients to use, [2**63, 2**64) (its UI picks
# ids below 2**63): the top bit, the store's 16-bit id, the bot's 8-bit tag, a 39-bit counter.
_API_BIT: Final = 1 << 63
_STORE_BITS: Final = 16
_BOT_BITS: Final = 8
_COUNTER_BITS: Final = 39  # milliseconds since _EPOCH_MS: the counter wraps in 2042
_EPOCH_MS: Final = 1_735_689_600_000  # 2025-01-01 UTC
_COUNTER_MASK: Final = (1 << _COUNTER_BITS) - 1
_BOT_MASK: Final = (1 << _BOT_BITS) - 1
_STORE_MASK: Final = (1 << _STORE_BITS) - 1
_ZERO: Final = Decimal(0)


def bot_tag(name: str) -> int:
    """The 8-bit tag of the bot name in every client order id: within one store (whose lease lets one
    bot trade an account's symbol at a time) an order of an earlier life, or of a renamed bot, is told
    apart."""
    return hashlib.sha256(name.encode()).digest()[0]


def store_tag(store_id: int) -> int:
    """The 16 bits of a store's random id that its client order ids carry."""
    return store_id & _STORE_MASK


class Owner(NamedTuple):
    """Who placed an order, read off its client order id: the store's tag and the bot's."""

    store: int
    bot: int


def owner_of(client_order_id: str) -> Owner | None:
    """The store and bot of an mmfleet client order id; None for any other id (GRVT's UI, by hand)."""
    if not (client_order_id.isascii() and client_order_id.isdigit()):  # "²".isdigit(), and int() refuses it
        return None
    value = int(client_order_id)
    if not _API_BIT <= value < 1 << 64:
        return None
    rest = value >> _COUNTER_BITS
    return Owner((rest >> _BOT_BITS) & _STORE_MASK, rest & _BOT_MASK)


class OrderIds:
    """Client order ids of one bot of one store: the owner's bits, then a counter from `start`.

    Unique across restarts: the worker starts the counter at the wall-clock time in milliseconds since
    2025 (and past the previous core's last id in the same process: `resuming`), so a new life's ids
    lie beyond every id of an earlier life that placed fewer orders than milliseconds passed between
    the two starts (1,000 orders a second sustained, far beyond any venue's rate limit). A backtest
    starts at 0.
    """

    def __init__(self, store: int, bot: int, start: int) -> None:
        self.owner = Owner(store_tag(store), bot & _BOT_MASK)
        self._prefix = (_API_BIT | self.owner.store << (_BOT_BITS + _COUNTER_BITS)
                        | self.owner.bot << _COUNTER_BITS)  # fmt: skip
        self.seq = start & _COUNTER_MASK

    @classmethod
    def resuming(cls, store: int, bot: int, now_ms: int, previous: OrderIds | None) -> OrderIds:
        """A new life's ids: from the wall clock `now_ms`, and past `previous`'s last id (the core this
        one replaces in the same process), whichever is later."""
        start = (now_ms - _EPOCH_MS) & _COUNTER_MASK
        if previous is not None:
            start = max(start, previous.seq + 1)
        return cls(store, bot, start)

    def next(self) -> str:
        self.seq = (self.seq + 1) & _COUNTER_MASK
        return str(self._prefix | self.seq)

    def is_ours(self, client_order_id: str) -> bool:
        """Placed by this bot of this store (in any life)."""
        return owner_of(client_order_id) == self.owner

    def is_other_stores(self, client_order_id: str) -> bool:
        """Placed by an mmfleet bot of another store (another data directory or database), or by any
        other program that picks its ids where GRVT asks API clients to: either way, another trader on
        this account."""
        owner = owner_of(client_order_id)
        return owner is not None and owner.store != self.owner.store


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
