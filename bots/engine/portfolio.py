"""Position accounting of one symbol in exact decimals: position, cash, FIFO lots, PnL, fees, volume.

Two PnL views are kept side by side because they answer different questions:
- `realized_pnl` uses the average-cost method, as the exchange reports it, so it reconciles with GRVT;
- `grid_profit` matches every reducing quantity against the oldest open lots (FIFO), which is what a
  grid trader means by "profit per closed grid level".
Both agree whenever the position is flat.

Perpetual accounting: `cash` is the wallet balance, `starting_balance + realized_pnl - fees + funding`;
no notional changes hands when a position opens. `equity(mark) = cash + unrealized_pnl(mark)`, which is
the same number as the spot formula `starting_balance - sum(signed notional) - fees + funding +
position * mark`.

Funding is its own component: `funding` is the sum of the funding payments booked (`apply_funding`),
positive when received. Convention (`bots.exchange.events.FundingPayment`): a payment's amount is the
cash it moved into the account, `-position * mark * rate`, so under a positive rate longs pay and
shorts receive. A payment moves only cash: position, lots, entry and the fill PnL stay as they were,
so fills and payments may be replayed in any interleaving to the same numbers (up to the last of
the 38 digits, where cash can round differently).

Pure: no I/O, no clock. Arithmetic runs in a fixed 38-digit decimal context so that a replay from the
ledger gives exactly the numbers the live bot had, whatever the caller's context.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import TYPE_CHECKING, Final, Literal

from mypy_extensions import mypyc_attr

from bots.engine import pickling
from bots.engine.types import Side

if TYPE_CHECKING:
    from bots.exchange.events import Fill, FundingPayment

__all__ = ["FillEffect", "FillKind", "Lot", "Portfolio"]

FillKind = Literal["increase", "reduce", "flip"]

_ZERO: Final = Decimal(0)
_CONTEXT: Final = Context(prec=38, rounding=ROUND_HALF_EVEN)


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class Lot:
    """An open piece of the position: `qty` is signed (+ long, - short), bought or sold at `price`."""

    qty: Decimal
    price: Decimal
    ts_ns: int
    fill_id: str

    def __init__(self, qty: Decimal, price: Decimal, ts_ns: int, fill_id: str) -> None:
        self.qty = qty
        self.price = price
        self.ts_ns = ts_ns
        self.fill_id = fill_id


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class FillEffect:
    """What one fill did. `kind`: "increase" grows |position| (or opens from flat), "reduce" shrinks it
    (down to flat included), "flip" crosses through zero to the other side."""

    kind: FillKind
    realized_pnl: Decimal
    grid_profit: Decimal
    fee: Decimal
    closed_qty: Decimal
    opened_qty: Decimal
    position: Decimal

    def __init__(
        self,
        kind: FillKind,
        realized_pnl: Decimal,
        grid_profit: Decimal,
        fee: Decimal,
        closed_qty: Decimal,
        opened_qty: Decimal,
        position: Decimal,
    ) -> None:
        self.kind = kind
        self.realized_pnl = realized_pnl
        self.grid_profit = grid_profit
        self.fee = fee
        self.closed_qty = closed_qty
        self.opened_qty = opened_qty
        self.position = position


@dataclass(slots=True)
class Portfolio:
    """Accounting state of one symbol; mutate only through `apply`."""

    symbol: str | None = None
    starting_balance: Decimal = _ZERO
    position: Decimal = field(default=_ZERO, init=False)  # signed base quantity
    cash: Decimal = field(default=_ZERO, init=False)  # starting_balance + realized_pnl - fees + funding
    lots: deque[Lot] = field(default_factory=deque, init=False)  # oldest first, all one sign
    avg_entry: Decimal = field(default=_ZERO, init=False)  # 0 when flat
    realized_pnl: Decimal = field(default=_ZERO, init=False)  # average-cost, before fees
    grid_profit: Decimal = field(default=_ZERO, init=False)  # FIFO, before fees
    fees: Decimal = field(default=_ZERO, init=False)  # paid minus rebates received
    volume: Decimal = field(default=_ZERO, init=False)  # traded notional, quote currency
    funding: Decimal = field(default=_ZERO, init=False)  # funding received minus paid, quote currency
    funding_count: int = field(default=0, init=False)
    fill_count: int = field(default=0, init=False)
    last_fill_ts_ns: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # A Portfolio always starts flat: a position only ever comes from fills (see replay()).
        self.cash = self.starting_balance

    @classmethod
    def replay(
        cls,
        fills: Iterable[Fill],
        *,
        starting_balance: Decimal = _ZERO,
        symbol: str | None = None,
        funding: Iterable[FundingPayment] = (),
    ) -> Portfolio:
        """Rebuild the state by applying `fills` in the order they were applied live (ledger order),
        and the funding payments (which move cash alone, so their place among the fills is moot)."""
        portfolio = cls(symbol=symbol, starting_balance=starting_balance)
        for fill in fills:
            portfolio.apply(fill)
        for payment in funding:
            portfolio.apply_funding(payment)
        return portfolio

    @property
    def entry_price(self) -> Decimal | None:
        """Average entry price of the open position (average-cost method); None when flat."""
        return self.avg_entry if self.position != 0 else None

    @property
    def net_pnl(self) -> Decimal:
        """Realized PnL after fees (rebates count as income) and funding."""
        return self.realized_pnl - self.fees + self.funding

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """PnL of the open position at `mark` against the average entry."""
        with localcontext(_CONTEXT):
            return self.position * (mark - self.avg_entry) if self.position != 0 else _ZERO

    def equity(self, mark: Decimal) -> Decimal:
        """Wallet balance plus unrealized PnL at `mark` (see the module docstring for the convention)."""
        with localcontext(_CONTEXT):
            return self.cash + self.unrealized_pnl(mark)

    def apply(self, fill: Fill) -> FillEffect:
        """Book one fill: update lots, average entry, PnL, fees, cash and volume."""
        self._check(fill)
        with localcontext(_CONTEXT):
            signed = fill.size * fill.side.sign
            old = self.position
            new = old + signed
            if old == 0 or (old > 0) == (signed > 0):
                kind: FillKind = "increase"
                closed, opened = _ZERO, fill.size
            elif abs(signed) <= abs(old):
                kind = "reduce"
                closed, opened = fill.size, _ZERO
            else:
                kind = "flip"
                closed, opened = abs(old), abs(new)

            realized = _ZERO
            if closed:
                direction = 1 if old > 0 else -1
                realized = (fill.price - self.avg_entry) * closed * direction
            grid = self._match_lots(closed, fill.price)

            if opened:
                if kind == "increase":
                    self.avg_entry = (self.avg_entry * abs(old) + fill.price * opened) / abs(new)
                else:
                    self.avg_entry = fill.price
                self.lots.append(Lot(opened * fill.side.sign, fill.price, fill.ts_ns, fill.fill_id))
            elif new == 0:
                self.avg_entry = _ZERO

            self.position = new
            self.realized_pnl += realized
            self.grid_profit += grid
            self.fees += fill.fee
            self.cash += realized - fill.fee
            self.volume += fill.price * fill.size
            self.fill_count += 1
            self.last_fill_ts_ns = fill.ts_ns
        return FillEffect(kind, realized, grid, fill.fee, closed, opened, new)

    def apply_funding(self, payment: FundingPayment) -> Decimal:
        """Book one funding payment: its amount (positive received, negative paid) into cash and the
        funding total; returns the amount."""
        if self.symbol is not None and payment.symbol != self.symbol:
            raise ValueError(
                f"funding {payment.payment_id} is for {payment.symbol}, this portfolio is {self.symbol}"
            )
        if not payment.amount.is_finite():
            raise ValueError(f"funding {payment.payment_id}: amount must be finite, got {payment.amount}")
        with localcontext(_CONTEXT):
            self.funding += payment.amount
            self.cash += payment.amount
        self.funding_count += 1
        return payment.amount

    def _match_lots(self, qty: Decimal, price: Decimal) -> Decimal:
        """Consume `qty` from the oldest lots; returns the FIFO profit of what was closed."""
        profit = _ZERO
        remaining = qty
        while remaining > 0:
            lot = self.lots[0]
            take = min(remaining, abs(lot.qty))
            direction = 1 if lot.qty > 0 else -1
            profit += (price - lot.price) * take * direction
            if take == abs(lot.qty):
                self.lots.popleft()
            else:
                self.lots[0] = Lot(lot.qty - take * direction, lot.price, lot.ts_ns, lot.fill_id)
            remaining -= take
        return profit

    def _check(self, fill: Fill) -> None:
        if self.symbol is not None and fill.symbol != self.symbol:
            raise ValueError(f"fill {fill.fill_id} is for {fill.symbol}, this portfolio is {self.symbol}")
        if not (fill.size.is_finite() and fill.size > 0):
            raise ValueError(f"fill {fill.fill_id}: size must be positive, got {fill.size}")
        if not (fill.price.is_finite() and fill.price > 0):
            raise ValueError(f"fill {fill.fill_id}: price must be positive, got {fill.price}")
        if not fill.fee.is_finite():
            raise ValueError(f"fill {fill.fill_id}: fee must be finite, got {fill.fee}")
        if not isinstance(fill.side, Side):
            raise ValueError(f"fill {fill.fill_id}: side must be a Side, got {fill.side!r}")


pickling.register(Lot, FillEffect)
