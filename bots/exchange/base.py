"""The `Exchange` protocol every mode implements (live on a venue, paper, sim); its value types live in
`bots.exchange.events` and are re-exported here. What an exchange can do beyond the protocol is
declared as data (`Capabilities`), so the worker reads a flag instead of probing types.

Errors: every method may raise the `bots.errors` family. `TransientExchangeError` (`Unavailable`,
`Timeout`, `RateLimited` with `retry_after_s`) is worth a retry with backoff; `Rejected(reason)` is a
final answer for that request (post-only would cross, size below minimum, unknown order...); any other
`ExchangeError(status, message)` is unexpected and should trip the worker's error handling.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from bots.exchange.events import (
    BookLevel,
    BookUpdate,
    Fill,
    FundingPayment,
    FundingRate,
    InstrumentInfo,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Trade,
)

__all__ = [
    "BookLevel",
    "BookUpdate",
    "Capabilities",
    "Exchange",
    "Fill",
    "FundingPayment",
    "FundingRate",
    "FundingSource",
    "InstrumentInfo",
    "MarketListener",
    "MarketPush",
    "OrderEvents",
    "OrderRequest",
    "OrderStatus",
    "OrderUpdate",
    "Trade",
]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an exchange does beyond the protocol, declared by each implementation."""

    reconciles: bool  # has `needs_reconcile` and `reconcile()` (`bots.exchange.reconcile.Reconciling`)
    local_fills: bool  # fills come from a fill model in this process: `reconfigure_fills(paper)`
    order_events: bool = False  # streams order states and fill notices: `OrderEvents`
    funding: bool = False  # reports perpetual funding: `FundingSource`
    pushes_market: bool = False  # calls a `MarketListener` from its own pump: `MarketPush`


class OrderEvents(Protocol):
    """An exchange that pushes what becomes of our orders (a venue's private streams)."""

    def stream_order_events(self, symbol: str) -> AsyncIterator[OrderUpdate | Fill]:
        """Our orders' states as they change, and a notice per fill (fills are taken, and counted,
        through `fills_since`, which keeps the cursor), until closed."""
        ...


class MarketListener(Protocol):
    """Who takes market data as plain calls (the worker): no task, queue or async generator between
    the source and it, where each of those costs a bot CPU on every book."""

    def book_arrived(self, book: BookUpdate) -> None: ...

    def trades_arrived(self, trades: Sequence[Trade]) -> None: ...


class MarketPush(Protocol):
    """An exchange whose market data comes from a pump in this process (paper and sim): it calls the
    listener itself instead of handing each book through `stream_books`."""

    async def listen_market(self, symbol: str, listener: MarketListener) -> None:
        """Call `listener` with every book and every step's trades until the market ends (returns)."""
        ...


@runtime_checkable
class Exchange(Protocol):
    """What a bot worker needs from an exchange. Live, paper and sim modes implement it alike, so the
    worker cannot tell them apart beyond what `capabilities` declares."""

    @property
    def capabilities(self) -> Capabilities:
        """What this exchange can do beyond the protocol."""
        ...

    async def instrument(self, symbol: str) -> InstrumentInfo:
        """Tick, lot and minimum size of `symbol`."""
        ...

    async def book(self, symbol: str) -> BookUpdate:
        """A snapshot of the current book."""
        ...

    def stream_books(self, symbol: str) -> AsyncIterator[BookUpdate]:
        """Book snapshots as they change, until closed; a reconnect is the implementation's job."""
        ...

    def stream_trades(self, symbol: str) -> AsyncIterator[Trade]:
        """Public trades as they happen, until closed."""
        ...

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        """Place a limit order; raises `Rejected` when the exchange refuses it (e.g. post-only would
        cross). Placing a `client_order_id` twice must not create two orders."""
        ...

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        """Cancel one order by our id; cancelling an order that is already gone is not an error."""
        ...

    async def cancel_all(self, symbol: str) -> int:
        """Cancel every open order on `symbol`; returns how many were cancelled."""
        ...

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:
        """Orders resting on the book now (the source of truth after a restart)."""
        ...

    async def position(self, symbol: str) -> Decimal:
        """Signed position in base currency: positive long, negative short."""
        ...

    async def balance(self) -> Decimal:
        """Account balance in quote currency (USD), excluding unrealized PnL."""
        ...

    async def fills_since(self, symbol: str, cursor: str | None) -> tuple[list[Fill], str | None]:
        """Our fills after `cursor` (from the start when None), oldest first, and the cursor to pass
        next time; the ledger keeps that cursor so a restart misses no fill."""
        ...

    async def close(self) -> None:
        """Release connections and stop streams; idempotent."""
        ...


@runtime_checkable
class FundingSource(Protocol):
    """An exchange that reports perpetual funding (`Capabilities.funding`): the rate, and the payments
    settled on our position (amount positive when received: `FundingPayment`)."""

    async def funding_rate(self, symbol: str) -> FundingRate | None:
        """The current funding rate of `symbol`; None when the venue has none yet."""
        ...

    async def funding_since(self, symbol: str, cursor: str | None) -> tuple[list[FundingPayment], str | None]:
        """Our funding payments after `cursor` (from the start when None), oldest first, and the cursor
        to pass next time; the ledger keeps it beside the fill cursor."""
        ...
