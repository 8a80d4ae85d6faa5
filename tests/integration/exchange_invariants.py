"""What one bot has resting at the local GRVT exchange, read on the exchange's side, and the rules it
must keep whenever the bot is at rest (`violations`).

The view is taken on the server's loop (`GrvtSimServerThread.call(lambda: exchange_view(...))`), so it
is one consistent instant of the exchange: our resting orders with their remaining size, everyone
else's best prices (synthetic levels and other sub-accounts' orders), our position and its average
entry price. Nothing here asks the worker what it believes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from bots.engine.types import Side
from bots.venues.grvt.server.book import BookOrder
from bots.venues.grvt.server.exchange import SimExchange
from settings.models import BotSettings

__all__ = [
    "ExchangeView",
    "Limits",
    "PublishedTop",
    "RestingOrder",
    "exchange_view",
    "published_top",
    "violations",
]

_EPS = 1e-9  # the engine's guard on float division before floor/ceil (bots.engine.quoting)


@dataclass(frozen=True, slots=True)
class RestingOrder:
    client_order_id: str
    side: Side
    price: Decimal
    remaining: Decimal
    post_only: bool


@dataclass(frozen=True, slots=True)
class ExchangeView:
    """One bot's side of the exchange at one instant."""

    ours: tuple[RestingOrder, ...]
    market_bid: Decimal | None  # best bid of everyone else: synthetic levels and other accounts
    market_ask: Decimal | None
    position: Decimal  # signed, base units
    entry_price: Decimal  # average entry; 0 when flat
    refused: tuple[RestingOrder, ...]  # our orders the exchange refused as crossing (FAIL_POST_ONLY)
    refused_at_ns: tuple[int, ...]  # when each of them arrived


@dataclass(frozen=True, slots=True)
class PublishedTop:
    """The best bid and ask of a book the exchange published (client orders included), and when."""

    ts_ns: int
    bid: Decimal
    ask: Decimal
    rest: bool = True  # the last book of a move: the worker came to rest on it


@dataclass(frozen=True, slots=True)
class Limits:
    """The settings the rules depend on, and the mid that values the position."""

    tick: Decimal
    lot: Decimal
    max_orders_per_side: int  # grid layers, plus the boost orders when signal boost is on
    max_position_usd: float
    entry_anchor: bool
    loss_tolerance: float  # the test runs with equal neutral and signal tolerances
    mid: Decimal  # of the newest book the exchange published: what the bot must have quoted on

    @classmethod
    def of(cls, settings: BotSettings, mid: Decimal) -> Limits:
        strategy = settings.strategy
        tolerance = strategy.loss_tolerance_neutral_pct
        if strategy.loss_tolerance_signal_pct != tolerance:
            raise ValueError("an exchange-side anchor check needs equal neutral and signal loss tolerances")
        boosts = len(strategy.boost_offsets_pct) if strategy.signal_boost else 0
        return cls(
            tick=settings.spec.tick_size,
            lot=settings.spec.lot_size,
            max_orders_per_side=strategy.grid_layers + boosts,
            max_position_usd=settings.risk.max_position_usd,
            entry_anchor=strategy.entry_anchor_mode,
            loss_tolerance=tolerance,
            mid=mid,
        )


def published_top(exchange: SimExchange, instrument: str, ts_ns: int, *, rest: bool = True) -> PublishedTop:
    """The top of the book the exchange publishes now (synthetic levels and client orders)."""
    inst = exchange.instruments[instrument]
    bids, asks = inst.book.levels(inst.last, 1)
    return PublishedTop(ts_ns, bids[0][0], asks[0][0], rest)


def exchange_view(exchange: SimExchange, sub_account_id: str, instrument: str) -> ExchangeView:
    """Run on the server's loop (see the module docstring)."""
    inst = exchange.instruments[instrument]
    ours: list[RestingOrder] = []
    other_bids: list[Decimal] = []
    other_asks: list[Decimal] = []
    for order in inst.book.resting():
        assert order.price is not None
        if order.sub_account_id == sub_account_id:
            ours.append(_resting(order))
        else:
            (other_bids if order.is_buy else other_asks).append(order.price)
    market = inst.last
    if market is not None:
        other_bids += [market.bids[0].price] if market.bids else []
        other_asks += [market.asks[0].price] if market.asks else []
    account = exchange.accounts.sub_accounts.get(sub_account_id)
    held = account.positions.get(instrument) if account is not None else None
    finished = account.finished.values() if account is not None else ()
    refused = [o for o in finished if o.reject_reason == "FAIL_POST_ONLY" and o.instrument == instrument]
    return ExchangeView(
        ours=tuple(ours),
        market_bid=max(other_bids, default=None),
        market_ask=min(other_asks, default=None),
        position=held.size if held is not None else Decimal(0),
        entry_price=held.entry_price if held is not None else Decimal(0),
        refused=tuple(_resting(o) for o in refused),
        refused_at_ns=tuple(o.create_time_ns for o in refused),
    )


def _resting(order: BookOrder) -> RestingOrder:
    assert order.price is not None
    side = Side.BUY if order.is_buy else Side.SELL
    return RestingOrder(order.client_order_id, side, order.price, order.remaining, order.post_only)


def violations(view: ExchangeView, limits: Limits, published: Sequence[PublishedTop]) -> list[str]:
    """Every rule the resting orders break, in words (empty: all kept). `published`: the tops of the
    books the exchange published so far, oldest first (the market moves only at those)."""
    found: list[str] = []
    bids = [o for o in view.ours if o.side is Side.BUY]
    asks = [o for o in view.ours if o.side is Side.SELL]
    # 1. No order of ours crosses or locks the book: our best bid below every ask resting at the
    #    exchange (ours and everyone else's), our best ask above every bid.
    if bids and asks and max(o.price for o in bids) >= min(o.price for o in asks):
        found.append(
            f"our bid {max(o.price for o in bids)} crosses/locks our ask {min(o.price for o in asks)}"
        )
    # 2. Post-only, behind the touch: every resting order is post-only and strictly on its own side of
    #    everyone else's best price (a bid below their best ask, an ask above their best bid); and no
    #    order of ours that the exchange refused as crossing crossed the book it was priced on.
    found += [f"{o.side.value} {o.price} rests without post-only" for o in view.ours if not o.post_only]
    found += _mispriced(view, published)
    if view.market_ask is not None:
        found += [f"bid {o.price} at/through the touch (ask {view.market_ask})" for o in bids
                  if o.price >= view.market_ask]  # fmt: skip
    if view.market_bid is not None:
        found += [f"ask {o.price} at/through the touch (bid {view.market_bid})" for o in asks
                  if o.price <= view.market_bid]  # fmt: skip
    # 3. No two resting orders share side and price.
    for (side, price), n in Counter((o.side, o.price) for o in view.ours).items():
        if n > 1:
            found.append(f"{n} {side.value} orders at {price}")
    # 4. No more orders per side than the grid plus the boost.
    for side, orders in ((Side.BUY, bids), (Side.SELL, asks)):
        if len(orders) > limits.max_orders_per_side:
            found.append(f"{len(orders)} {side.value} orders rest; the grid plus boost allow "
                         f"{limits.max_orders_per_side}")  # fmt: skip
    # 5. Position plus same-side resting size within max_position_usd at the mid (a side may also
    #    rest nothing at all, when the position alone is beyond the limit).
    for sign, orders, name in ((1, bids, "long"), (-1, asks, "short")):
        resting = sum((o.remaining for o in orders), Decimal(0))
        exposure = (sign * view.position + resting) * limits.mid
        if resting and float(exposure) > limits.max_position_usd * (1 + _EPS):
            found.append(f"{name} exposure {exposure:.2f} USD (position {view.position} + resting "
                         f"{resting}) beyond max_position_usd {limits.max_position_usd}")  # fmt: skip
    found += _anchor_violations(view, limits, bids, asks)
    return found


def _mispriced(view: ExchangeView, published: Sequence[PublishedTop]) -> list[str]:
    """Refusals (FAIL_POST_ONLY) are fine when the market moved under an order on its way; an order
    crossing the book it was priced on is a pricing error. The tests move the market only once the
    worker is at rest, so an order was priced on the newest book published before it arrived or, when a
    cycle the worker began on its own (a timer) was on its way across a move, on the one before; a move
    of several steps publishes a book per step, and a fill notice mid-move starts a decision on the
    newest book received, so those count too (from the book the worker rested on before the move, on):
    it is flagged when it crossed or locked them all."""
    found = []
    for order, at_ns in zip(view.refused, view.refused_at_ns, strict=True):
        before = [top for top in published if top.ts_ns < at_ns]
        rests = [i for i, top in enumerate(before) if top.rest]
        candidates = before[rests[-2] :] if len(rests) >= 2 else before
        if candidates and all(
            order.price >= top.ask if order.side is Side.BUY else order.price <= top.bid for top in candidates
        ):
            found.append(f"{order.side.value} {order.price} refused as crossing the book it was priced on "
                         f"({candidates})")  # fmt: skip
    return found


def _anchor_violations(
    view: ExchangeView, limits: Limits, bids: list[RestingOrder], asks: list[RestingOrder]
) -> list[str]:
    """6. Entry anchor (bots.engine.quoting.entry_anchor), for every resting order: long, no bid above
    the entry and no ask below entry * (1 - tolerance); short, mirrored. On the tick as the engine
    rounds it."""
    lots = round(view.position / limits.lot)
    if not limits.entry_anchor or lots == 0 or not view.entry_price > 0:
        return []
    entry, tick, tolerance = float(view.entry_price), float(limits.tick), limits.loss_tolerance
    if lots > 0:
        max_bid = math.floor(entry / tick + _EPS)
        min_ask = math.ceil(entry * (1 - tolerance) / tick - _EPS)
    else:
        max_bid = math.floor(entry * (1 + tolerance) / tick + _EPS)
        min_ask = math.ceil(entry / tick - _EPS)
    found = [f"bid {o.price} above the entry anchor {max_bid * limits.tick} (position {view.position} "
             f"at {view.entry_price})" for o in bids if o.price / limits.tick > max_bid]  # fmt: skip
    found += [f"ask {o.price} below the entry anchor {min_ask * limits.tick} (position {view.position} "
              f"at {view.entry_price})" for o in asks if o.price / limits.tick < min_ask]  # fmt: skip
    return found
