"""Reconciliation: make the bot's view agree with the exchange's after a start or a reconnect.

The exchange is the source of truth for what rests on the book and for the position; the ledger is the
source of truth for what the bot did. `reconcile()` reads the exchange (fills since the ledger's
cursor, position, open orders) and says where the two differ:

- fills the ledger has not seen yet (`fills`, `cursor`: record them like `fills_since` results);
- resting orders the bot has no record of (`unknown_orders`): logged, and cancelled when asked
  (`ExchangeSettings.cancel_unknown_orders`), e.g. orders of an earlier life or placed by hand;
- orders the bot believes resting that are gone (`missing_client_order_ids`): filled or cancelled
  meanwhile, drop them;
- the exchange's position (`position`): after the fills are applied, a ledger position that still
  differs (fills older than the exchange's history, trades made by hand) is closed by
  `adjustment_fill()`, a synthetic fill that brings the ledger to the exchange's position.

It works on any `Exchange` and is shared by the venues: `GrvtExchange.reconcile` calls it with its own
position details and a cancel by exchange order id, and flags when it is needed
(`Reconciling.needs_reconcile`). An exchange that reconciles says so in its `capabilities`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from bots.engine.types import Side
from bots.exchange.base import Exchange, Fill, OrderUpdate

__all__ = ["ReconcileReport", "Reconciling", "reconcile"]

log = logging.getLogger("mmfleet.reconcile")

PositionDetail = tuple[Decimal, Decimal | None, Decimal | None]  # size, entry price, mark price


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What the exchange says at `ts_ns`, against what the bot knows."""

    symbol: str
    ts_ns: int
    open_orders: tuple[OrderUpdate, ...]
    unknown_orders: tuple[OrderUpdate, ...]  # resting, not in the bot's known ids
    cancelled_unknown: tuple[str, ...]  # client order ids of unknown orders cancelled here
    missing_client_order_ids: tuple[str, ...]  # known to the bot, no longer resting
    position: Decimal  # signed, base currency, after `fills`
    entry_price: Decimal | None
    mark_price: Decimal | None
    fills: tuple[Fill, ...]  # since the cursor passed in, oldest first
    cursor: str | None  # the cursor after `fills`

    def position_gap(self, ledger_position: Decimal) -> Decimal:
        """Exchange position minus the ledger's (after the ledger booked `fills`); 0 when they agree."""
        return self.position - ledger_position

    def adjustment_fill(self, ledger_position: Decimal, *, fill_id_prefix: str = "reconcile") -> Fill | None:
        """A synthetic, fee-free fill that moves a ledger at `ledger_position` to the exchange's position;
        None when they agree or no price is known. Priced at the exchange's entry price when it opens
        or adds to the exchange's position (so the ledger's entry matches), else at the mark price."""
        gap = self.position_gap(ledger_position)
        if gap == 0:
            return None
        adds = self.position != 0 and (gap > 0) == (self.position > 0)
        price = (self.entry_price if adds else None) or self.mark_price or self.entry_price
        if price is None or price <= 0:
            return None
        return Fill(
            fill_id=f"{fill_id_prefix}-{self.symbol}-{self.ts_ns}",
            symbol=self.symbol,
            client_order_id="",
            side=Side.BUY if gap > 0 else Side.SELL,
            price=price,
            size=abs(gap),
            fee=Decimal(0),
            ts_ns=self.ts_ns,
            is_taker=False,
        )


class Reconciling(Protocol):
    """An exchange that knows when the bot should reconcile (start, reconnect, a call that may have
    happened) and how."""

    @property
    def needs_reconcile(self) -> bool: ...

    async def reconcile(
        self,
        known_client_order_ids: Collection[str] = (),
        cursor: str | None = None,
        *,
        spare: Callable[[str], bool] | None = None,
    ) -> ReconcileReport: ...


async def reconcile(
    exchange: Exchange,
    symbol: str,
    known_client_order_ids: Collection[str],
    cursor: str | None,
    *,
    cancel_unknown: bool = False,
    position_detail: Callable[[str], Awaitable[PositionDetail]] | None = None,
    cancel: Callable[[OrderUpdate], Awaitable[None]] | None = None,
    spare: Callable[[str], bool] | None = None,
    max_rounds: int = 3,
) -> ReconcileReport:
    """Read fills since `cursor`, the position and the open orders of `symbol`; report differences.

    The position is read between two fill reads that agree (up to `max_rounds` tries), so it includes
    exactly the fills returned. Unknown orders are cancelled with `cancel` (default: by client order
    id) only when `cancel_unknown`, and never one whose client order id `spare` accepts (another
    store's: its bot would lose its orders to ours).
    """

    async def detail() -> PositionDetail:
        if position_detail is not None:
            return await position_detail(symbol)
        return await exchange.position(symbol), None, None

    fills, cursor = await exchange.fills_since(symbol, cursor)
    all_fills = list(fills)
    for _ in range(max_rounds):
        size, entry, mark = await detail()
        more, cursor = await exchange.fills_since(symbol, cursor)
        if not more:
            break
        all_fills += more
    ts_ns = time.time_ns()
    resting = await exchange.open_orders(symbol)
    known = set(known_client_order_ids)
    unknown = [o for o in resting if o.client_order_id not in known]
    on_book = {o.client_order_id for o in resting}
    cancelled: list[str] = []
    for order in unknown:
        fields = {"symbol": symbol, "client_order_id": order.client_order_id, "side": order.side.value,
                  "price": str(order.price), "size": str(order.remaining_size)}  # fmt: skip
        log.warning("resting order unknown to the bot", extra={"fields": fields})
        if cancel_unknown and not (spare is not None and spare(order.client_order_id)):
            await (
                cancel(order) if cancel is not None else exchange.cancel_order(symbol, order.client_order_id)
            )
            cancelled.append(order.client_order_id)
    return ReconcileReport(
        symbol=symbol,
        ts_ns=ts_ns,
        open_orders=tuple(resting),
        unknown_orders=tuple(unknown),
        cancelled_unknown=tuple(cancelled),
        missing_client_order_ids=tuple(sorted(known - on_book)),
        position=size,
        entry_price=entry,
        mark_price=mark,
        fills=tuple(all_fills),
        cursor=cursor,
    )
