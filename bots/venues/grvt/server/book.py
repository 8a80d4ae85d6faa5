"""The local exchange's order book of one instrument: our clients' orders in price-time priority on top
of the synthetic market (`SimMarket`), and the matching rules.

The synthetic book is liquidity the server does not own: it is regenerated every step, so it is read,
never consumed. The rules are the paper fill model's queue model (`bots.exchange.paper`, the default in
sim, paper and backtests), so a strategy tested live against this server meets the fills it met there:

- An incoming order that crosses takes, best price first, the synthetic levels and the resting orders
  of other sub-accounts (synthetic size first at an equal price: it was there before); it pays the
  taker fee, the resting orders it hits are makers. Meeting a resting order of its own sub-account
  stops it (self-trade protection: what is left is cancelled).
- A resting order joins the back of its level: `queue_ahead` is the synthetic size shown at its price
  when it arrives (0 inside the spread), clipped when the book later shows less.
- A market trade at or through resting orders (a sell at or below bids, a buy at or above asks) fills
  them with its own volume only: it takes first the synthetic size shown at better prices, then the
  resting orders best price first, then oldest; at the level where it stops, the queue ahead of an
  order too. So a trade never fills more than its size. A synthetic book that moves through a resting
  order (best ask at or below a bid) fills it in full. These fills are at the order's price, as a
  maker.
- `fraction` (the partial-fill fault) caps each such market fill at that share of what is left, at
  least one lot.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bots.engine.types import Side
from bots.exchange.base import BookLevel, BookUpdate, Trade
from bots.venues.grvt.server.wire import ZERO

__all__ = ["BookOrder", "InstrumentBook", "Match"]

ACTIVE = ("PENDING", "OPEN")


@dataclass(slots=True, eq=False)
class BookOrder:
    """One client order and its state; `price` is None for a market order."""

    order_id: str
    sub_account_id: str
    client_order_id: str
    instrument: str
    is_buy: bool
    price: Decimal | None
    size: Decimal
    time_in_force: str
    post_only: bool
    reduce_only: bool
    signature: dict[str, Any]
    create_time_ns: int
    expiration_ns: int
    seq: int = 0
    traded: Decimal = ZERO
    notional: Decimal = ZERO  # sum of price * size over fills, for the average fill price
    status: str = "PENDING"
    reject_reason: str = "UNSPECIFIED"
    update_time_ns: int = 0
    queue_ahead: Decimal = ZERO
    signer: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def remaining(self) -> Decimal:
        return self.size - self.traded if self.status in ACTIVE else ZERO

    @property
    def avg_fill_price(self) -> Decimal:
        return self.notional / self.traded if self.traded else ZERO

    def finish(self, status: str, reason: str, now_ns: int) -> None:
        self.status, self.reject_reason, self.update_time_ns = status, reason, now_ns


@dataclass(frozen=True, slots=True)
class Match:
    """One fill of one of our orders: against the market (`counter` None) or another client order."""

    order: BookOrder
    price: Decimal
    size: Decimal
    is_taker: bool
    trade_id: str
    counter: BookOrder | None = None


def _bid_key(order: BookOrder) -> tuple[Decimal, int]:
    assert order.price is not None
    return -order.price, order.seq


def _ask_key(order: BookOrder) -> tuple[Decimal, int]:
    assert order.price is not None
    return order.price, order.seq


def _shown(levels: tuple[BookLevel, ...], price: Decimal, is_buy: bool) -> Decimal | None:
    """Synthetic size at `price` on one side (best first): 0 in a gap or inside the spread, None when
    deeper than the levels shown."""
    for level in levels:
        if level.price == price:
            return level.size
        if (level.price < price) if is_buy else (level.price > price):
            return ZERO
    return None


class InstrumentBook:
    """Resting client orders of one instrument and the matching rules of the module docstring."""

    def __init__(self, instrument: str, lot_size: Decimal, next_trade_id: Callable[[], str]) -> None:
        self.instrument = instrument
        self._lot = lot_size
        self._next_trade_id = next_trade_id
        self._bids: list[BookOrder] = []  # best first, then oldest first
        self._asks: list[BookOrder] = []
        self._seq = 0

    def resting(self) -> Iterator[BookOrder]:
        yield from self._bids
        yield from self._asks

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    # -- placing and removing ---------------------------------------------------------------------
    def rest(self, order: BookOrder, market: BookUpdate | None) -> None:
        """Put a limit order on the book (status OPEN) behind the synthetic size at its price."""
        assert order.price is not None
        self._seq += 1
        order.seq = self._seq
        order.status = "OPEN"
        if market is not None:
            shown = _shown(market.bids if order.is_buy else market.asks, order.price, order.is_buy)
            order.queue_ahead = shown if shown is not None else ZERO
        if order.is_buy:
            insort(self._bids, order, key=_bid_key)
        else:
            insort(self._asks, order, key=_ask_key)

    def remove(self, order: BookOrder) -> bool:
        side = self._bids if order.is_buy else self._asks
        for i, resting in enumerate(side):
            if resting is order:
                del side[i]
                return True
        return False

    def expire(self, now_ns: int) -> list[BookOrder]:
        """Remove (status CANCELLED, reason EXPIRED) the orders whose signature expired."""
        gone = [o for o in self.resting() if o.expiration_ns <= now_ns]
        for order in gone:
            self.remove(order)
            order.finish("CANCELLED", "EXPIRED", now_ns)
        return gone

    # -- an incoming order ------------------------------------------------------------------------
    def crosses(self, order: BookOrder, market: BookUpdate | None) -> bool:
        """Whether the order would trade at once (a market order always does)."""
        if order.price is None:
            return True
        synthetic = (market.asks if order.is_buy else market.bids) if market is not None else ()
        resting = self._asks if order.is_buy else self._bids
        tops = (synthetic[0].price if synthetic else None, resting[0].price if resting else None)
        best = [p for p in tops if p is not None]
        if not best:
            return False
        top = min(best) if order.is_buy else max(best)
        return order.price >= top if order.is_buy else order.price <= top

    def take(
        self, order: BookOrder, market: BookUpdate | None, now_ns: int, *, dry_run: bool = False
    ) -> tuple[list[Match], Decimal, bool]:
        """Trade an incoming order against the opposite side up to its limit. Returns the matches (both
        sides of each), the size it could take and whether it met its own sub-account's order (then it
        stops there). `dry_run` only measures (for fill-or-kill)."""
        synthetic = list((market.asks if order.is_buy else market.bids) if market is not None else ())
        resting = self._asks if order.is_buy else self._bids
        left = order.size - order.traded
        taken, matches, i, j = ZERO, [], 0, 0
        trade_id = self._next_trade_id() if not dry_run else ""
        n = 0
        while left > 0:
            synth = synthetic[i] if i < len(synthetic) else None
            rest = resting[j] if j < len(resting) else None
            if synth is None and rest is None:
                break
            use_synth = rest is None or (
                synth is not None
                and rest.price is not None
                and (synth.price <= rest.price if order.is_buy else synth.price >= rest.price)
            )
            price = synth.price if use_synth and synth is not None else rest.price if rest else None
            assert price is not None
            if order.price is not None and (price > order.price if order.is_buy else price < order.price):
                break
            if use_synth:
                assert synth is not None
                qty = min(left, synth.size) // self._lot * self._lot
                i += 1
                if qty <= 0:
                    continue
                if not dry_run:
                    n += 1
                    matches.append(self._fill(order, price, qty, True, f"{trade_id}-{n}", now_ns))
            else:
                assert rest is not None
                if rest.sub_account_id == order.sub_account_id:
                    return matches, taken, True
                qty = min(left, rest.remaining)
                if dry_run:
                    j += 1
                else:
                    n += 1
                    matches.append(self._fill(order, price, qty, True, f"{trade_id}-{n}", now_ns, rest))
                    n += 1
                    matches.append(self._fill(rest, price, qty, False, f"{trade_id}-{n}", now_ns, order))
                    if rest.remaining <= 0:
                        del resting[j]
                    else:
                        j += 1
            left -= qty
            taken += qty
        return matches, taken, False

    # -- market events ----------------------------------------------------------------------------
    def on_trade(
        self, trade: Trade, market: BookUpdate | None, trade_id: str, fraction: float | None, now_ns: int
    ) -> list[Match]:
        """Fills of resting orders a market trade reached with its own volume (see module docstring):
        `market` is the synthetic book whose size at better prices the print took first."""
        hits_bids = trade.taker_side is Side.SELL
        matches: list[Match] = []
        used = ZERO  # trade volume already given to resting orders
        for order in self._bids if hits_bids else self._asks:  # best price first, then oldest
            price = order.price
            assert price is not None
            if (price < trade.price) if hits_bids else (price > trade.price):
                break
            better = market.size_better_than(price, bids=hits_bids) if market is not None else ZERO
            ahead = order.queue_ahead
            # the print stopped at this level: the queue ahead shrinks by what got there
            if price == trade.price:
                order.queue_ahead = max(ZERO, ahead - max(ZERO, trade.size - better))
            else:  # the level traded through: nobody is left ahead there
                ahead = order.queue_ahead = ZERO
            qty = min(trade.size - better - ahead - used, order.remaining) // self._lot * self._lot
            if qty > 0:
                match = self._market_fill(order, qty, fraction, trade_id, len(matches), now_ns)
                matches.append(match)
                used += match.size
        self._drop_filled()
        return matches

    def on_book(self, market: BookUpdate, fraction: float | None, now_ns: int) -> list[Match]:
        """Clip queues to the sizes shown, then fill resting orders the book moved through."""
        matches: list[Match] = []
        for order in self.resting():
            if order.queue_ahead > 0:
                assert order.price is not None
                shown = _shown(market.bids if order.is_buy else market.asks, order.price, order.is_buy)
                if shown is not None and shown < order.queue_ahead:
                    order.queue_ahead = shown
        for is_buy, side, opposite in ((True, self._bids, market.asks), (False, self._asks, market.bids)):
            if not opposite or not side:
                continue
            best = opposite[0].price
            crossed = [
                o for o in side if o.price is not None and (o.price >= best if is_buy else o.price <= best)
            ]
            if crossed:
                trade_id = self._next_trade_id()
                for order in crossed:
                    matches.append(
                        self._market_fill(order, order.remaining, fraction, trade_id, len(matches), now_ns)
                    )
        self._drop_filled()
        return matches

    def levels(
        self, market: BookUpdate | None, depth: int
    ) -> tuple[list[tuple[Decimal, Decimal, int]], list[tuple[Decimal, Decimal, int]]]:
        """The visible book, synthetic and client orders together: (price, size, orders) best first."""
        sides: list[list[tuple[Decimal, Decimal, int]]] = []
        for is_buy, synthetic, ours in (
            (True, market.bids if market else (), self._bids),
            (False, market.asks if market else (), self._asks),
        ):
            merged: dict[Decimal, list[Any]] = {lvl.price: [lvl.size, 1] for lvl in synthetic}
            for order in ours:
                assert order.price is not None
                entry = merged.setdefault(order.price, [ZERO, 0])
                entry[0] += order.remaining
                entry[1] += 1
            prices = sorted(merged, reverse=is_buy)[:depth]
            sides.append([(p, merged[p][0], merged[p][1]) for p in prices])
        return sides[0], sides[1]

    # -- internals --------------------------------------------------------------------------------
    def _market_fill(
        self, order: BookOrder, qty: Decimal, fraction: float | None, trade_id: str, n: int, now_ns: int
    ) -> Match:
        if fraction is not None:
            part = (order.remaining * Decimal(repr(fraction))) // self._lot * self._lot
            qty = min(qty, max(part, self._lot), order.remaining)
        assert order.price is not None
        return self._fill(order, order.price, qty, False, f"{trade_id}-{n + 1}", now_ns)

    def _fill(
        self,
        order: BookOrder,
        price: Decimal,
        qty: Decimal,
        is_taker: bool,
        trade_id: str,
        now_ns: int,
        counter: BookOrder | None = None,
    ) -> Match:
        order.traded += qty
        order.notional += price * qty
        order.update_time_ns = now_ns
        if order.traded >= order.size:
            order.status = "FILLED"
        return Match(order, price, qty, is_taker, trade_id, counter)

    def _drop_filled(self) -> None:
        self._bids = [o for o in self._bids if o.status == "OPEN"]
        self._asks = [o for o in self._asks if o.status == "OPEN"]
