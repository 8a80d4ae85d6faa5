"""What the bot core asks its driver to do: exchange calls and records. No I/O here, only the requests.

The worker performs them through an exchange (and the ledger), a backtest through the fill model with
latency; both report the outcome back as events (`BotCore.on_placed`, `on_rejected`, `on_cancelled`,
`on_fill`). Metrics are not actions: a driver publishes the core's state after each event.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from mypy_extensions import mypyc_attr

from bots.core.markouts import FillMarkout
from bots.engine.types import Side
from bots.exchange.events import FundingPayment, OrderUpdate

__all__ = [
    "Action",
    "Cancel",
    "CancelAll",
    "Place",
    "RecordEnabled",
    "RecordFunding",
    "RecordMarket",
    "RecordMarkouts",
    "RecordOrders",
    "RecordPeak",
    "RecordRisk",
]


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class Place:
    """Send a limit order: price in ticks, size in lots. Post-only for quotes; a close is reduce-only and
    takes liquidity, and what it leaves resting is cancelled when its acknowledgement arrives."""

    client_order_id: str
    side: Side
    price_ticks: int
    size_lots: int
    post_only: bool
    reduce_only: bool

    def __init__(
        self,
        client_order_id: str,
        side: Side,
        price_ticks: int,
        size_lots: int,
        post_only: bool = True,
        reduce_only: bool = False,
    ) -> None:
        self.client_order_id = client_order_id
        self.side = side
        self.price_ticks = price_ticks
        self.size_lots = size_lots
        self.post_only = post_only
        self.reduce_only = reduce_only


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class Cancel:
    """Cancel one of our orders by its client order id."""

    client_order_id: str

    def __init__(self, client_order_id: str) -> None:
        self.client_order_id = client_order_id


@dataclass(frozen=True, slots=True)
class CancelAll:
    """Cancel every order on the symbol (start, stop, shutdown); the driver reports how many went."""


@dataclass(frozen=True, slots=True)
class RecordOrders:
    """Order states since the last record: history, written in one batch."""

    updates: tuple[OrderUpdate, ...]


@dataclass(frozen=True, slots=True)
class RecordRisk:
    """The halts changed (risk trips, another store's orders on the account): persisted so a restart
    keeps a halt."""

    breaker_tripped: bool
    drawdown_tripped: bool
    other_store: str | None = None


@dataclass(frozen=True, slots=True)
class RecordPeak:
    """An operator re-armed the drawdown limit: the stored peak equity becomes this (it otherwise only
    rises), so the drawdown from the old peak cannot trip again after a restart or the next record."""

    peak_equity_usd: Decimal


@dataclass(frozen=True, slots=True)
class RecordEnabled:
    """An operator's start or stop: persisted so a restart keeps it."""

    enabled: bool


@dataclass(frozen=True, slots=True)
class RecordMarket:
    """The once-a-second record: equity and position at `mark` (event time `ts_ns`), and the market
    features of the newest book (`book_ts_ns`), which are also the regime model's input."""

    ts_ns: int
    mark: Decimal
    equity_usd: Decimal
    book_ts_ns: int
    features: dict[str, float] | None


@dataclass(frozen=True, slots=True)
class RecordMarkouts:
    """Fills whose markout horizon passed with this book: into the ledger and the markout metrics."""

    markouts: tuple[FillMarkout, ...]


@dataclass(frozen=True, slots=True)
class RecordFunding:
    """A funding payment was booked into the portfolio: `funding_usd` is the portfolio's funding total
    after it. The worker committed the payment before the core heard of it (like a fill) and publishes
    it; a backtest keeps it for its results."""

    payment: FundingPayment
    funding_usd: Decimal


Action = (
    Place
    | Cancel
    | CancelAll
    | RecordOrders
    | RecordRisk
    | RecordPeak
    | RecordEnabled
    | RecordMarket
    | RecordMarkouts
    | RecordFunding
)
