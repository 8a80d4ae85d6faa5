"""The bookkeeping of one bot's resting orders: what we believe rests, our client order ids, the order log.

No exchange calls and no ledger writes here: `BotWorker` makes those and tells this book what happened.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal

from bots.engine.orders import OpenOrder
from bots.engine.types import DesiredOrder, Side
from bots.exchange.base import Fill, OrderRequest, OrderStatus, OrderUpdate

__all__ = ["RestingOrders"]

_COID_COUNTER_BITS = 48  # + a 14-bit tag: ids stay below 2**62, a positive int64
_COID_COUNTER_MASK = (1 << _COID_COUNTER_BITS) - 1


@dataclass(slots=True)
class _Resting:
    order: OpenOrder
    update: OrderUpdate  # as the exchange acknowledged it (or as sent, until it answers)


class RestingOrders:
    """Our resting orders by client order id, the ids we hand out, and the order states not yet flushed."""

    def __init__(self, name: str) -> None:
        self.resting: dict[str, _Resting] = {}
        self._order_log: list[OrderUpdate] = []
        # Client order ids: a 14-bit tag of the bot name, then a microsecond counter from the start time,
        # so ids are unique across restarts and an order of an earlier life is recognisably ours.
        self._coid_tag = int.from_bytes(hashlib.sha256(name.encode()).digest()[:2]) >> 2
        self._coid_seq = time.time_ns() // 1_000 & _COID_COUNTER_MASK

    # ----- client order ids ------------------------------------------------------------------------

    def next_coid(self) -> str:
        self._coid_seq = (self._coid_seq + 1) & _COID_COUNTER_MASK
        return str(self._coid_tag << _COID_COUNTER_BITS | self._coid_seq)

    def is_ours(self, client_order_id: str) -> bool:
        return client_order_id.isdigit() and int(client_order_id) >> _COID_COUNTER_BITS == self._coid_tag

    # ----- what rests ------------------------------------------------------------------------------

    def open_orders(self) -> list[OpenOrder]:
        """The resting orders as `diff_orders` wants them."""
        return [r.order for r in self.resting.values()]

    def sides(self) -> Iterator[Side]:
        return (r.order.side for r in self.resting.values())

    def sent(self, request: OrderRequest, want: DesiredOrder) -> None:
        """Tracked before the call: a timeout may still have placed it, and the next diff cancels it."""
        sent = OrderUpdate(
            request.symbol, request.client_order_id, None, want.side, request.price, request.size,
            Decimal(0), OrderStatus.PENDING, None, time.time_ns(),
        )  # fmt: skip
        self.resting[request.client_order_id] = _Resting(
            OpenOrder(request.client_order_id, want.side, want.price_ticks, want.size_lots), sent
        )

    def acknowledged(self, client_order_id: str, update: OrderUpdate) -> None:
        """The exchange's answer to a placement: logged; kept as the order's state while it rests."""
        self._order_log.append(update)
        if client_order_id in self.resting:
            self.resting[client_order_id].update = update
        if update.status.is_final:
            self.resting.pop(client_order_id, None)

    def drop(self, client_order_id: str) -> None:
        """Not resting any more, with nothing to log (rejected, or gone from the exchange)."""
        self.resting.pop(client_order_id, None)

    def forget(self, client_order_id: str) -> None:
        """A cancelled order: out of the book we keep, into the order log as CANCELLED."""
        resting = self.resting.pop(client_order_id, None)
        if resting is not None:
            self._order_log.append(
                replace(
                    resting.update, status=OrderStatus.CANCELLED, reason="client_cancel", ts_ns=time.time_ns()
                )
            )

    def fill(self, fill: Fill, lot: Decimal) -> None:
        """A fill of ours: the rest of a partly filled order stays; a fully filled one is logged FILLED."""
        resting = self.resting.get(fill.client_order_id)
        if resting is None:
            return
        left = resting.order.size_lots - round(fill.size / lot)
        if left > 0:
            resting.order = replace(resting.order, size_lots=left)
            return
        del self.resting[fill.client_order_id]
        done = resting.update
        self._order_log.append(
            replace(done, status=OrderStatus.FILLED, filled_size=done.size, ts_ns=fill.ts_ns)
        )

    # ----- order log -------------------------------------------------------------------------------

    def take_log(self) -> list[OrderUpdate]:
        """The order states since the last call, for the ledger's one batch."""
        log_, self._order_log = self._order_log, []
        return log_
