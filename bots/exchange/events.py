"""The values that cross the exchange boundary: books, trades, orders, fills, funding.

Prices, sizes, balances and fees are `Decimal`, never float: the exchange speaks exact decimal strings
and the ledger stores them exactly. Floats appear only when a book is handed to the model
(`BookUpdate.top`). A module of its own, with no protocol in it, so mypyc can compile it: books, levels
and trades are built on every market event, orders and fills on most cycles. As in `bots.engine.types`,
those write their constructor out (compiled, where a dataclass's generated one is not) and are not
frozen at run time: treat them as immutable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from mypy_extensions import mypyc_attr

from bots.engine import pickling
from bots.engine.types import Book, Side

__all__ = [
    "BookLevel",
    "BookUpdate",
    "Fill",
    "FundingPayment",
    "FundingRate",
    "InstrumentInfo",
    "OrderRequest",
    "OrderStatus",
    "OrderUpdate",
    "Trade",
    "funding_amount",
]

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class InstrumentInfo:
    """Trading rules of one instrument: every order price is a multiple of `tick_size`, every size a
    multiple of `lot_size` and at least `min_size`."""

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_size: Decimal


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class BookLevel:
    """One price level of the order book."""

    price: Decimal
    size: Decimal

    def __init__(self, price: Decimal, size: Decimal) -> None:
        self.price = price
        self.size = size


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class BookUpdate:
    """A full snapshot of the book's top levels at `ts_ns` (exchange time, nanoseconds).

    `bids` are best (highest) first, `asks` best (lowest) first; either side may be empty. A source
    that knows the best levels as exact floats already (the sim market: ticks times an int ratio) may
    pass them as `top_book`, which `top()` then returns instead of converting the Decimals.
    """

    symbol: str
    ts_ns: int
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    top_book: Book | None = field(default=None, compare=False, repr=False)

    def __init__(
        self,
        symbol: str,
        ts_ns: int,
        bids: tuple[BookLevel, ...],
        asks: tuple[BookLevel, ...],
        top_book: Book | None = None,
    ) -> None:
        self.symbol = symbol
        self.ts_ns = ts_ns
        self.bids = bids
        self.asks = asks
        self.top_book = top_book

    def top(self) -> Book:
        """The best bid and ask as floats for the model; an empty side becomes NaN (not quotable)."""
        if self.top_book is not None:
            return self.top_book
        nan = math.nan
        bid = self.bids[0] if self.bids else None
        ask = self.asks[0] if self.asks else None
        return Book(
            ts_ns=self.ts_ns,
            bid_price=float(bid.price) if bid else nan,
            bid_size=float(bid.size) if bid else nan,
            ask_price=float(ask.price) if ask else nan,
            ask_size=float(ask.size) if ask else nan,
        )

    def size_better_than(self, price: Decimal, *, bids: bool) -> Decimal:
        """The size shown on one side at prices better than `price` (bids: above it; asks: below it):
        what a print takes from the book before it reaches an order resting at `price`."""
        levels = self.bids if bids else self.asks
        return sum((lv.size for lv in levels if (lv.price > price if bids else lv.price < price)), _ZERO)


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class Trade:
    """A public trade on the instrument; `taker_side` is the aggressor's side."""

    symbol: str
    ts_ns: int
    price: Decimal
    size: Decimal
    taker_side: Side
    trade_id: str

    def __init__(
        self, symbol: str, ts_ns: int, price: Decimal, size: Decimal, taker_side: Side, trade_id: str
    ) -> None:
        self.symbol = symbol
        self.ts_ns = ts_ns
        self.price = price
        self.size = size
        self.taker_side = taker_side
        self.trade_id = trade_id


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class OrderRequest:
    """A limit order to place. Post-only by default: a market maker never wants to take."""

    symbol: str
    side: Side
    price: Decimal
    size: Decimal
    client_order_id: str
    post_only: bool = True
    reduce_only: bool = False

    def __init__(
        self,
        symbol: str,
        side: Side,
        price: Decimal,
        size: Decimal,
        client_order_id: str,
        post_only: bool = True,
        reduce_only: bool = False,
    ) -> None:
        self.symbol = symbol
        self.side = side
        self.price = price
        self.size = size
        self.client_order_id = client_order_id
        self.post_only = post_only
        self.reduce_only = reduce_only


class OrderStatus(StrEnum):
    """Lifecycle of an order; FILLED, CANCELLED and REJECTED are final."""

    PENDING = "pending"
    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class OrderUpdate:
    """The exchange's view of one order; `reason` explains a rejection or cancellation."""

    symbol: str
    client_order_id: str
    exchange_order_id: str | None
    side: Side
    price: Decimal
    size: Decimal
    filled_size: Decimal
    status: OrderStatus
    reason: str | None
    ts_ns: int

    def __init__(
        self,
        symbol: str,
        client_order_id: str,
        exchange_order_id: str | None,
        side: Side,
        price: Decimal,
        size: Decimal,
        filled_size: Decimal,
        status: OrderStatus,
        reason: str | None,
        ts_ns: int,
    ) -> None:
        self.symbol = symbol
        self.client_order_id = client_order_id
        self.exchange_order_id = exchange_order_id
        self.side = side
        self.price = price
        self.size = size
        self.filled_size = filled_size
        self.status = status
        self.reason = reason
        self.ts_ns = ts_ns

    @property
    def remaining_size(self) -> Decimal:
        return self.size - self.filled_size


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class Fill:
    """One execution of one of our orders. `fee` is what we paid: negative means a rebate received.

    `fill_id` is unique per account and is the ledger's idempotency key.
    """

    fill_id: str
    symbol: str
    client_order_id: str
    side: Side
    price: Decimal
    size: Decimal
    fee: Decimal
    ts_ns: int
    is_taker: bool

    def __init__(
        self,
        fill_id: str,
        symbol: str,
        client_order_id: str,
        side: Side,
        price: Decimal,
        size: Decimal,
        fee: Decimal,
        ts_ns: int,
        is_taker: bool,
    ) -> None:
        self.fill_id = fill_id
        self.symbol = symbol
        self.client_order_id = client_order_id
        self.side = side
        self.price = price
        self.size = size
        self.fee = fee
        self.ts_ns = ts_ns
        self.is_taker = is_taker

    @property
    def notional(self) -> Decimal:
        return self.price * self.size


@dataclass(frozen=True, slots=True)
class FundingRate:
    """A perpetual's funding rate: `rate` is the fraction of the position's notional paid per funding
    interval (`interval_s`), at `ts_ns`. Sign convention (GRVT's, every venue's): a positive rate means
    longs pay shorts, a negative one shorts pay longs."""

    symbol: str
    ts_ns: int
    rate: Decimal
    interval_s: float

    @property
    def rate_per_s(self) -> float:
        """The rate as a fraction of notional per second (what a holding-time cost multiplies)."""
        return float(self.rate) / self.interval_s


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """One funding settlement on our position. `amount` is the cash it moved into the account in quote
    currency (USD): negative when we paid, positive when we received, so a long position of `q` at
    mark `m` under rate `r` gets `amount = -q * m * r` (a long pays when r > 0, a short receives).
    `payment_id` is unique per account and the ledger's idempotency key; `rate`, `position` and `mark`
    are what the payment was computed from, None where the venue does not say (GRVT reports the
    amount only)."""

    payment_id: str
    symbol: str
    ts_ns: int
    amount: Decimal
    rate: Decimal | None = None
    position: Decimal | None = None
    mark: Decimal | None = None

    @classmethod
    def settled(
        cls, payment_id: str, symbol: str, ts_ns: int, position: Decimal, mark: Decimal, rate: Decimal
    ) -> FundingPayment:
        """The payment a settlement at `rate` makes on `position` at `mark` (`funding_amount`)."""
        return cls(payment_id, symbol, ts_ns, funding_amount(position, mark, rate), rate, position, mark)


def funding_amount(position: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """The cash a funding settlement moves into an account holding `position` (signed base units) at
    `mark` under `rate` (per interval): `-position * mark * rate`; longs pay shorts when `rate > 0`."""
    return -(position * mark * rate)


pickling.register(
    InstrumentInfo, BookLevel, BookUpdate, Trade, OrderRequest, OrderUpdate, Fill, FundingRate, FundingPayment
)
