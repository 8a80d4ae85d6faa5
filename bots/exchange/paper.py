"""Paper trading: the one fill model shared by paper, sim and backtests.

`PaperFillModel` holds our resting orders against someone else's market data and decides fills:
- cross: a buy fills in full when the best ask drops below its price (sells mirrored): the market moved
  through it; at the order's own price, as a maker;
- trade: a trade at or through an order's price fills it with the trade's own volume, price before
  time as on any venue: the print takes first the size the book shows at better prices, then our
  orders, best price first, then oldest; an order fills with what reaches it, possibly partially (the
  rest stays resting). So a trade never fills more than its size, and a small print far from the
  touch fills nothing behind the visible size it had to take first. We are first at our own level,
  but a print that only equals our price reaches us with probability `touch_fill_probability`;
- touch: when the best opposite price only equals the order's price, it fills in full with that
  probability, drawn per touching event;
- queue model (`queue_model=True`, the default in sim, paper and backtests; replaces the touch
  rules): the order joins the back of the visible size at its level, and a trade reaches it only
  after that queue ahead too. The queue ahead never exceeds the size the book shows at that level
  (cancellations ahead of us), and is 0 when we are alone at a price inside the spread. A book that
  moves through an order still fills it in full (the market traded through it).
Maker fills pay `-maker_rebate_bps` of notional (`Fill.fee` negative = rebate received). Fill ids are
`{prefix}{symbol}-{n}`, deterministic for a run. Fills are returned, never booked here: the caller
feeds each to `Portfolio.apply`, which owns increase/reduce and FIFO grid profit. A non-post-only
order that crosses takes the visible levels and pays `taker_fee_bps`.

The `Exchange` built on this model lives in `bots.exchange.paper_exchange` (`PaperExchange`).
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Final

from mypy_extensions import mypyc_attr

from bots.engine.types import Side
from bots.errors import RejectReason
from bots.exchange.base import BookLevel, BookUpdate, Fill, OrderRequest, OrderStatus, OrderUpdate, Trade
from settings.models import InstrumentSpec, PaperSettings

__all__ = ["PaperFillModel"]

_BUY: Final[Side] = Side.BUY
_SELL: Final[Side] = Side.SELL
_OPEN: Final[OrderStatus] = OrderStatus.OPEN
_REJECTED: Final[OrderStatus] = OrderStatus.REJECTED
_CANCELLED: Final[OrderStatus] = OrderStatus.CANCELLED
_FILLED: Final[OrderStatus] = OrderStatus.FILLED
_ZERO: Final = Decimal(0)
_BPS: Final = Decimal(10_000)
_FINISHED_KEPT: Final = 10_000  # final order states kept so a repeated client_order_id stays idempotent


def _rate(bps: float) -> Decimal:
    """A basis-point figure as an exact Decimal fraction (0.0 stays a plain, unsigned zero)."""
    return Decimal(repr(bps)) / _BPS if bps else _ZERO


@mypyc_attr(acyclic=True)
class _Resting:
    """One of our orders on the book: fill progress and the visible size ahead of it."""

    __slots__ = ("exchange_order_id", "filled", "queue_ahead", "request", "ts_ns")

    def __init__(self, request: OrderRequest, exchange_order_id: str, ts_ns: int) -> None:
        self.request = request
        self.exchange_order_id = exchange_order_id
        self.ts_ns = ts_ns
        self.filled = _ZERO
        self.queue_ahead = _ZERO

    def update(self, status: OrderStatus, reason: str | None, ts_ns: int) -> OrderUpdate:
        r, filled = self.request, self.filled
        oid = self.exchange_order_id
        return OrderUpdate(
            r.symbol, r.client_order_id, oid, r.side, r.price, r.size, filled, status, reason, ts_ns
        )


def _visible_size(levels: tuple[BookLevel, ...], price: Decimal, is_buy: bool) -> Decimal | None:
    """Size the book shows at `price` on one side (best first); 0 in a gap or inside the spread,
    None when `price` is deeper than the levels shown."""
    for level in levels:
        if level.price == price:
            return level.size
        if (level.price < price) if is_buy else (level.price > price):
            return _ZERO
    return None


class PaperFillModel:
    """Resting post-only orders against market data; see the module docstring for the fill rules."""

    def __init__(
        self,
        spec: InstrumentSpec,
        settings: PaperSettings,
        rng: random.Random,
        *,
        fill_id_prefix: str = "",
    ) -> None:
        """Fees come from `settings` (`maker_rebate_bps`, `taker_fee_bps`); `fill_id_prefix` keeps fill
        ids unique across runs that share a ledger."""
        self.spec = spec
        self.rng = rng
        self.book: BookUpdate | None = None  # the latest book seen
        self.immediate_fills: list[Fill] = []  # taker fills made by submit(); the caller drains them
        self._tick, self._lot, self._min = spec.tick_size, spec.lot_size, spec.effective_min_size
        self._p_touch = 0.0
        self._queue = False
        self._maker_fee = self._taker_fee = _ZERO
        self.configure(settings)
        self._prefix = fill_id_prefix
        self._orders: dict[str, _Resting] = {}  # insertion order = time priority
        self._finished: dict[str, OrderUpdate] = {}
        self._fills = self._placed = 0
        self._now_ns = 0
        self._max_buy: Decimal | None = None  # best resting prices, to skip events that touch nothing
        self._min_sell: Decimal | None = None

    def configure(self, settings: PaperSettings) -> None:
        """Fill probabilities, queue model and fees from `settings`; resting orders stay (switched on
        mid-run, the queue model puts the orders already resting at the front of their level)."""
        self._p_touch = settings.touch_fill_probability
        self._queue = settings.queue_model
        self._maker_fee = -_rate(settings.maker_rebate_bps)  # per unit of notional; negative = rebate
        self._taker_fee = _rate(settings.taker_fee_bps)

    # -- orders ----------------------------------------------------------------------------------
    def submit(self, request: OrderRequest, ts_ns: int, book: BookUpdate | None) -> OrderUpdate:
        """Accept a limit order (status OPEN) or refuse it (REJECTED with a reason); idempotent on
        `client_order_id`. A crossing non-post-only order takes the visible levels first."""
        self._now_ns = max(self._now_ns, ts_ns)
        known = self._orders.get(request.client_order_id)
        if known is not None:
            return known.update(_OPEN, None, ts_ns)
        if request.client_order_id in self._finished:
            return self._finished[request.client_order_id]
        self._placed += 1
        order = _Resting(request, f"paper-{self._placed}", ts_ns)
        is_buy = request.side is _BUY
        reason = self._invalid(request)
        opposite = (book.asks if is_buy else book.bids) if book is not None else ()
        crosses = reason is None and bool(opposite)
        crosses = crosses and (
            request.price >= opposite[0].price if is_buy else request.price <= opposite[0].price
        )
        if reason is None and crosses and request.post_only:
            reason = RejectReason.POST_ONLY_WOULD_CROSS
        if reason is not None:
            return self._finish(order.update(_REJECTED, reason, ts_ns))
        self._orders[request.client_order_id] = order
        if crosses:
            self._take(order, opposite, ts_ns)
        if request.client_order_id not in self._orders:  # taken in full
            return self._finished[request.client_order_id]
        if self._queue and book is not None:
            ahead = _visible_size(book.bids if is_buy else book.asks, request.price, is_buy)
            order.queue_ahead = ahead if ahead is not None else _ZERO
        price = request.price
        if is_buy and (self._max_buy is None or price > self._max_buy):
            self._max_buy = price
        elif not is_buy and (self._min_sell is None or price < self._min_sell):
            self._min_sell = price
        return order.update(_OPEN, None, ts_ns)

    def cancel(self, client_order_id: str) -> OrderUpdate | None:
        """Cancel one resting order; None when it is not resting (filled, cancelled or unknown)."""
        order = self._orders.pop(client_order_id, None)
        if order is None:
            return None
        self._removed(order.request)
        return self._finish(order.update(_CANCELLED, "cancelled", self._now_ns))

    def cancel_all(self) -> list[OrderUpdate]:
        """Cancel every resting order; returns their final states."""
        return [update for cid in list(self._orders) if (update := self.cancel(cid)) is not None]

    def open_orders(self) -> list[OrderUpdate]:
        """The resting orders, oldest first."""
        return [order.update(_OPEN, None, self._now_ns) for order in self._orders.values()]

    def order(self, client_order_id: str) -> OrderUpdate | None:
        """The current state of a resting or recently finished order."""
        order = self._orders.get(client_order_id)
        if order is not None:
            return order.update(_OPEN, None, self._now_ns)
        return self._finished.get(client_order_id)

    # -- market events ---------------------------------------------------------------------------
    def on_book(self, book: BookUpdate) -> list[Fill]:
        """Fills caused by a new book: resting orders the book crossed (or touched)."""
        self.book = book
        self._now_ns = book.ts_ns
        fills: list[Fill] = []
        if not self._orders:
            return fills
        if self._queue:
            self._clip_queues(book)
        asks, bids = book.asks, book.bids
        if asks and self._max_buy is not None and asks[0].price <= self._max_buy:
            self._sweep(_BUY, asks[0].price, book.ts_ns, fills, None)
        if bids and self._min_sell is not None and bids[0].price >= self._min_sell:
            self._sweep(_SELL, bids[0].price, book.ts_ns, fills, None)
        return fills

    def on_trade(self, trade: Trade) -> list[Fill]:
        """Fills caused by a public trade: a sell taker hits our bids at or above its price, a buy
        taker lifts our asks at or below it."""
        self._now_ns = max(self._now_ns, trade.ts_ns)
        fills: list[Fill] = []
        if trade.taker_side is _SELL:
            if self._max_buy is not None and trade.price <= self._max_buy:
                self._sweep(_BUY, trade.price, trade.ts_ns, fills, trade.size)
        elif self._min_sell is not None and trade.price >= self._min_sell:
            self._sweep(_SELL, trade.price, trade.ts_ns, fills, trade.size)
        return fills

    # -- internals -------------------------------------------------------------------------------
    def _sweep(
        self, side: Side, price: Decimal, ts_ns: int, fills: list[Fill], volume: Decimal | None
    ) -> None:
        """Fill our `side` orders that the opposite price `price` crossed or touched; `volume` is the
        trade size (None for a book event: the market moved, it brings no volume to share)."""
        is_buy = side is _BUY
        if volume is not None:
            self._consume(is_buy, price, ts_ns, fills, volume)
            return
        for order in list(self._orders.values()):
            request = order.request
            if request.side is not side:
                continue
            crossed = (price < request.price) if is_buy else (price > request.price)
            if crossed or (price == request.price and not self._queue and self.rng.random() < self._p_touch):
                self._fill(order, ts_ns, fills)

    def _consume(self, is_buy: bool, price: Decimal, ts_ns: int, fills: list[Fill], volume: Decimal) -> None:
        """A trade of `volume` printing at `price` takes the book from the touch; each of our orders it
        reached (best price first, then time) gets what is left after the size shown at better prices,
        the queue ahead at its level (queue model) and our orders before it. Without the queue model a
        print that stops at our level reaches us by chance (`touch_fill_probability`)."""
        side = _BUY if is_buy else _SELL
        reached = [
            o
            for o in self._orders.values()
            if o.request.side is side
            and ((price <= o.request.price) if is_buy else (price >= o.request.price))
        ]
        reached.sort(key=lambda o: -o.request.price if is_buy else o.request.price)  # stable: time kept
        book = self.book
        used = _ZERO  # trade volume already given to our orders
        for order in reached:
            limit = order.request.price
            better = book.size_better_than(limit, bids=is_buy) if book is not None else _ZERO
            ahead = order.queue_ahead
            if not self._queue:  # first at our level, if the print reaches us there at all
                if price == limit and self.rng.random() >= self._p_touch:
                    continue
                ahead = _ZERO
            elif price == limit:  # the print stopped at our level: the queue ahead shrinks by what got there
                order.queue_ahead = max(_ZERO, ahead - max(_ZERO, volume - better))
            else:  # the level traded through: nobody is left ahead of us there
                order.queue_ahead = _ZERO
            reach = volume - better - ahead - used
            qty = min(reach, order.request.size - order.filled) // self._lot * self._lot
            if qty > 0:
                self._fill(order, ts_ns, fills, qty)
                used += qty

    def _take(self, order: _Resting, levels: tuple[BookLevel, ...], ts_ns: int) -> None:
        """A crossing non-post-only order trades with the visible levels up to its limit, as a taker."""
        request = order.request
        for level in levels:
            beyond = level.price > request.price if request.side is _BUY else level.price < request.price
            remaining = request.size - order.filled
            if beyond or remaining <= 0:
                break
            qty = min(level.size, remaining) // self._lot * self._lot
            if qty > 0:
                self._fill(order, ts_ns, self.immediate_fills, qty, level.price, taker=True)

    def _fill(
        self,
        order: _Resting,
        ts_ns: int,
        fills: list[Fill],
        qty: Decimal | None = None,
        price: Decimal | None = None,
        *,
        taker: bool = False,
    ) -> None:
        """Record a fill of `qty` (all that remains by default) at `price` (the order's by default)."""
        request = order.request
        qty = request.size - order.filled if qty is None else qty
        price = request.price if price is None else price
        self._fills += 1
        fee = price * qty * (self._taker_fee if taker else self._maker_fee)
        fill_id = f"{self._prefix}{request.symbol}-{self._fills}"
        cid = request.client_order_id
        fills.append(Fill(fill_id, request.symbol, cid, request.side, price, qty, fee, ts_ns, taker))
        order.filled += qty
        if order.filled >= request.size:
            del self._orders[request.client_order_id]
            self._finish(order.update(_FILLED, None, ts_ns))
            self._removed(request)

    def _invalid(self, request: OrderRequest) -> RejectReason | None:
        """Why the exchange would refuse this order's price or size, or None."""
        if not (request.price.is_finite() and request.price > 0):
            return RejectReason.PRICE_NOT_POSITIVE
        if not (request.size.is_finite() and request.size > 0):
            return RejectReason.SIZE_NOT_POSITIVE
        if request.price % self._tick:
            return RejectReason.PRICE_OFF_TICK
        if request.size % self._lot:
            return RejectReason.SIZE_OFF_LOT
        if request.size < self._min:
            return RejectReason.SIZE_BELOW_MIN
        return None

    def _clip_queues(self, book: BookUpdate) -> None:
        for order in self._orders.values():
            if order.queue_ahead > 0:
                is_buy = order.request.side is _BUY
                shown = _visible_size(book.bids if is_buy else book.asks, order.request.price, is_buy)
                if shown is not None and shown < order.queue_ahead:
                    order.queue_ahead = shown

    def _removed(self, request: OrderRequest) -> None:
        """Keep the best resting prices right after an order leaves (a rescan only when it was best)."""
        side = request.side
        if request.price == (self._max_buy if side is _BUY else self._min_sell):
            prices = [o.request.price for o in self._orders.values() if o.request.side is side]
            if side is _BUY:
                self._max_buy = max(prices) if prices else None
            else:
                self._min_sell = min(prices) if prices else None

    def _finish(self, update: OrderUpdate) -> OrderUpdate:
        if len(self._finished) >= _FINISHED_KEPT:
            del self._finished[next(iter(self._finished))]
        self._finished[update.client_order_id] = update
        return update
