"""The paper fill model: rejections, cross and touch fills, the queue model, fees and fill ids."""

from __future__ import annotations

import itertools
import math
import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bots.engine.portfolio import Portfolio
from bots.engine.types import Side
from bots.exchange.base import BookLevel, BookUpdate, Fill, OrderRequest, OrderStatus, Trade
from bots.exchange.paper import PaperFillModel
from settings.models import BUILTIN_INSTRUMENTS, InstrumentSpec, PaperSettings

SYMBOL = "BTC_USDT_Perp"
SPEC = BUILTIN_INSTRUMENTS[SYMBOL]  # tick 0.1, lot 0.001
D = Decimal
BUY, SELL = Side.BUY, Side.SELL
_ids = itertools.count()


def model(
    touch: float = 0.0,
    queue: bool = False,
    rebate_bps: float = 1.0,
    seed: int = 1,
    spec: InstrumentSpec = SPEC,
) -> PaperFillModel:
    paper = PaperSettings(touch_fill_probability=touch, queue_model=queue, maker_rebate_bps=rebate_bps)
    return PaperFillModel(spec, paper, random.Random(seed))


def book(bid: str, ask: str, bid_size: str = "1", ask_size: str = "1", ts_ns: int = 1) -> BookUpdate:
    """Three levels a tick apart on each side, the given sizes on every level."""
    tick = SPEC.tick_size
    bids = tuple(BookLevel(D(bid) - i * tick, D(bid_size)) for i in range(3))
    asks = tuple(BookLevel(D(ask) + i * tick, D(ask_size)) for i in range(3))
    return BookUpdate(SYMBOL, ts_ns, bids, asks)


def order(side: Side, price: str, size: str = "0.01", post_only: bool = True) -> OrderRequest:
    return OrderRequest(SYMBOL, side, D(price), D(size), f"c{next(_ids)}", post_only=post_only)


def trade(taker: Side, price: str, size: str = "0.001", ts_ns: int = 2) -> Trade:
    return Trade(SYMBOL, ts_ns, D(price), D(size), taker, f"t{next(_ids)}")


BOOK = book("100.0", "100.2")


# -- acceptance and rejection -----------------------------------------------------------------------
def test_resting_order_is_open() -> None:
    m = model()
    update = m.submit(order(BUY, "100.0"), 5, BOOK)
    assert update.status is OrderStatus.OPEN and update.reason is None
    assert update.filled_size == 0 and update.ts_ns == 5 and update.exchange_order_id
    assert [o.client_order_id for o in m.open_orders()] == [update.client_order_id]


@pytest.mark.parametrize(
    ("side", "price", "size", "reason"),
    [
        (BUY, "100.2", "0.01", "post_only_would_cross"),  # at the best ask
        (BUY, "100.5", "0.01", "post_only_would_cross"),  # through it
        (SELL, "100.0", "0.01", "post_only_would_cross"),  # at the best bid
        (BUY, "100.05", "0.01", "price_off_tick"),
        (BUY, "100.0", "0.0105", "size_off_lot"),
        (BUY, "0", "0.01", "price_not_positive"),
        (BUY, "-100.0", "0.01", "price_not_positive"),
        (BUY, "NaN", "0.01", "price_not_positive"),
        (BUY, "100.0", "0", "size_not_positive"),
    ],
)
def test_rejections_are_named(side: Side, price: str, size: str, reason: str) -> None:
    m = model()
    update = m.submit(order(side, price, size), 1, BOOK)
    assert (update.status, update.reason) == (OrderStatus.REJECTED, reason)
    assert m.open_orders() == []


def test_size_below_minimum_is_rejected() -> None:
    spec = InstrumentSpec(tick_size=D("0.1"), lot_size=D("0.001"), min_size=D("0.01"))
    m = model(spec=spec)
    assert m.submit(order(BUY, "100.0", "0.005"), 1, BOOK).reason == "size_below_min"
    assert m.submit(order(BUY, "100.0", "0.01"), 1, BOOK).status is OrderStatus.OPEN


def test_submit_is_idempotent_on_client_order_id() -> None:
    m = model()
    request = order(BUY, "100.0")
    first = m.submit(request, 1, BOOK)
    assert m.submit(request, 2, BOOK).exchange_order_id == first.exchange_order_id
    assert len(m.open_orders()) == 1
    rejected = order(BUY, "100.2")
    assert m.submit(rejected, 1, BOOK).status is OrderStatus.REJECTED
    assert m.submit(rejected, 2, BOOK).status is OrderStatus.REJECTED


def test_cancel_and_cancel_all() -> None:
    m = model()
    a, b, c = (m.submit(order(BUY, p), 1, BOOK).client_order_id for p in ("99.0", "99.5", "99.9"))
    cancelled = m.cancel(a)
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELLED
    assert m.cancel(a) is None and m.cancel("unknown") is None
    assert {u.client_order_id for u in m.cancel_all()} == {b, c}
    assert m.open_orders() == []
    assert m.on_book(book("101.0", "101.1")) == []  # nothing resting: nothing fills


# -- cross fills ------------------------------------------------------------------------------------
def test_book_crossing_a_bid_fills_it_in_full_at_its_price() -> None:
    m = model()
    cid = m.submit(order(BUY, "100.0", "0.01"), 1, BOOK).client_order_id
    assert m.on_book(book("99.8", "100.1")) == []  # ask above our bid: nothing
    (fill,) = m.on_book(book("99.7", "99.9", ts_ns=9))  # best ask below our bid: crossed
    assert (fill.client_order_id, fill.side, fill.price, fill.size) == (cid, BUY, D("100.0"), D("0.01"))
    assert fill.ts_ns == 9 and not fill.is_taker
    assert m.open_orders() == []
    final = m.order(cid)
    assert final is not None and final.status is OrderStatus.FILLED and final.filled_size == D("0.01")


def test_book_crossing_an_ask_fills_it() -> None:
    m = model()
    m.submit(order(SELL, "100.2"), 1, BOOK)
    (fill,) = m.on_book(book("100.3", "100.4"))
    assert (fill.side, fill.price) == (SELL, D("100.2"))


@pytest.mark.parametrize(
    ("taker", "price", "fills"),
    [
        (SELL, "99.9", 1),  # a sell prints below our bid: crossed
        (SELL, "100.1", 0),  # prints above it: not reached
        (BUY, "99.9", 0),  # a buy taker never hits our bid
    ],
)
def test_trade_through_a_bid_fills_it(taker: Side, price: str, fills: int) -> None:
    m = model()
    m.submit(order(BUY, "100.0", "0.05"), 1, BOOK)
    result = m.on_trade(trade(taker, price, size="0.001"))
    assert len(result) == fills
    if fills:
        assert result[0].size == D("0.001")  # never more than the trade's size


def test_trade_through_an_ask_fills_it() -> None:
    m = model()
    m.submit(order(SELL, "100.2"), 1, BOOK)
    assert m.on_trade(trade(SELL, "100.3")) == []
    assert len(m.on_trade(trade(BUY, "100.3"))) == 1


# -- touch fills ------------------------------------------------------------------------------------
@pytest.mark.parametrize("probability", [0.1, 0.5])
@pytest.mark.parametrize("via", ["book", "trade"])
def test_touch_fill_rate_converges_to_the_probability(probability: float, via: str) -> None:
    m = model(touch=probability, seed=42)
    trials = 20_000
    filled = 0
    touch_book = book("99.9", "100.0")  # best ask equals our bid
    for _ in range(trials):
        cid = m.submit(order(BUY, "100.0"), 1, BOOK).client_order_id
        fills = m.on_book(touch_book) if via == "book" else m.on_trade(trade(SELL, "100.0"))
        filled += len(fills)
        m.cancel(cid)
    standard_error = math.sqrt(probability * (1 - probability) / trials)
    assert abs(filled / trials - probability) < 3 * standard_error


@pytest.mark.parametrize(("probability", "expected"), [(0.0, 0), (1.0, 200)])
def test_touch_probability_bounds(probability: float, expected: int) -> None:
    m = model(touch=probability)
    filled = 0
    for _ in range(200):
        cid = m.submit(order(SELL, "100.2"), 1, BOOK).client_order_id
        filled += len(m.on_book(book("100.2", "100.3")))  # best bid equals our ask
        m.cancel(cid)
    assert filled == expected


# -- queue model ------------------------------------------------------------------------------------
def test_queue_model_fills_only_after_the_queue_ahead_trades() -> None:
    m = model(queue=True, touch=1.0)  # touch probability is not used by the queue model
    visible = book("100.0", "100.2", bid_size="0.005")  # 5 lots ahead of us at 100.0
    cid = m.submit(order(BUY, "100.0", "0.004"), 1, visible).client_order_id
    assert m.on_book(book("100.0", "100.1", bid_size="0.005")) == []  # the queue holds
    assert m.on_trade(trade(SELL, "100.0", "0.003")) == []  # 2 lots still ahead
    (partial,) = m.on_trade(trade(SELL, "100.0", "0.003"))  # 2 consume the queue, 1 reaches us
    assert partial.size == D("0.001") and partial.price == D("100.0")
    (resting,) = m.open_orders()
    assert resting.client_order_id == cid and resting.filled_size == D("0.001")
    assert resting.remaining_size == D("0.003") and resting.status is OrderStatus.OPEN
    (second,) = m.on_trade(trade(SELL, "100.0", "0.002"))
    assert second.size == D("0.002")
    (last,) = m.on_trade(trade(SELL, "100.0", "0.010"))
    assert last.size == D("0.001")  # never more than what remains
    assert m.open_orders() == []
    final = m.order(cid)
    assert final is not None and final.status is OrderStatus.FILLED


def test_queue_model_a_print_through_our_price_fills_only_what_reaches_us() -> None:
    """A trade consumes the book from the touch: a print below our bid fills it only with what is left
    after the visible size at better prices and the queue ahead at our level, never in full by itself."""
    m = model(queue=True)
    visible = book("100.1", "100.3", bid_size="0.002")  # 2 lots at 100.1, 2 at 100.0 (ahead of us), ...
    assert m.on_book(visible) == []
    m.submit(order(BUY, "100.0", "0.004"), 1, visible)
    assert m.on_trade(trade(SELL, "99.9", "0.004")) == []  # took the 4 lots ahead of us
    (fill,) = m.on_trade(trade(SELL, "99.9", "0.007"))  # the level traded through: 2 + 0 ahead now
    assert fill.size == D("0.004") and fill.price == D("100.0")


def test_queue_model_a_book_through_our_price_fills_in_full() -> None:
    m = model(queue=True)
    m.submit(order(BUY, "100.0", "0.004"), 1, book("100.0", "100.2", bid_size="5"))
    (fill,) = m.on_book(book("99.8", "99.9"))
    assert fill.size == D("0.004")


def test_queue_shrinks_to_the_size_the_book_shows() -> None:
    m = model(queue=True)
    m.submit(order(BUY, "100.0", "0.004"), 1, book("100.0", "100.2", bid_size="0.010"))
    m.on_book(book("100.0", "100.2", bid_size="0.001"))  # 9 lots ahead cancelled
    (fill,) = m.on_trade(trade(SELL, "100.0", "0.003"))
    assert fill.size == D("0.002")


def test_queue_model_touch_alone_does_not_fill() -> None:
    m = model(queue=True, touch=1.0)
    m.submit(order(BUY, "100.0", "0.002"), 1, book("100.0", "100.2", bid_size="0.005"))
    assert m.on_book(book("99.9", "100.0")) == []  # the ask touches: no fill, and nobody left ahead
    (fill,) = m.on_trade(trade(SELL, "100.0", "0.001"))
    assert fill.size == D("0.001")


def test_queue_is_empty_inside_the_spread() -> None:
    m = model(queue=True)
    m.submit(order(BUY, "100.1", "0.002"), 1, BOOK)  # better than the best bid: alone at 100.1
    (fill,) = m.on_trade(trade(SELL, "100.1", "0.001"))
    assert fill.size == D("0.001")


def test_queue_volume_is_shared_between_our_orders_at_one_level() -> None:
    m = model(queue=True)
    first = m.submit(order(BUY, "100.1", "0.002"), 1, BOOK).client_order_id
    second = m.submit(order(BUY, "100.1", "0.002"), 1, BOOK).client_order_id
    fills = m.on_trade(trade(SELL, "100.1", "0.003"))
    assert [(f.client_order_id, f.size) for f in fills] == [(first, D("0.002")), (second, D("0.001"))]


# -- fees, ids, taker orders ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rebate_bps", "fee"), [(1.0, "-0.00100000"), (2.5, "-0.00250000"), (-1.0, "0.00100")]
)
def test_maker_fee_is_the_rebate_on_notional(rebate_bps: float, fee: str) -> None:
    m = model(rebate_bps=rebate_bps)
    m.submit(order(BUY, "100.0", "0.1"), 1, BOOK)  # notional 10
    (fill,) = m.on_trade(trade(SELL, "99.0", "0.1"))
    assert fill.fee == D(fee)  # negative: rebate received


def test_zero_rebate_is_a_plain_zero_fee() -> None:
    m = model(rebate_bps=0.0)
    m.submit(order(BUY, "100.0"), 1, BOOK)
    (fill,) = m.on_trade(trade(SELL, "99.0"))
    assert fill.fee == 0 and not fill.fee.is_signed()


def test_fill_ids_are_deterministic_and_prefixed() -> None:
    plain = model()
    prefixed = PaperFillModel(
        SPEC, PaperSettings(queue_model=False), random.Random(1), fill_id_prefix="run7:"
    )
    for m in (plain, prefixed):
        for price in ("100.0", "99.9"):
            m.submit(order(BUY, price), 1, BOOK)
    assert [f.fill_id for f in plain.on_trade(trade(SELL, "99.0", "0.02"))] == [f"{SYMBOL}-1", f"{SYMBOL}-2"]
    assert [f.fill_id for f in prefixed.on_trade(trade(SELL, "99.0", "0.02"))] == [
        f"run7:{SYMBOL}-1",
        f"run7:{SYMBOL}-2",
    ]


def test_crossing_taker_order_takes_the_visible_levels_then_rests() -> None:
    m = PaperFillModel(SPEC, PaperSettings(taker_fee_bps=7.5), random.Random(1))
    asks = book("100.0", "100.2", ask_size="0.002")  # 100.2, 100.3, 100.4, 0.002 each
    update = m.submit(order(BUY, "100.3", "0.005", post_only=False), 3, asks)
    assert update.status is OrderStatus.OPEN and update.filled_size == D("0.004")
    taken = m.immediate_fills
    assert [(f.price, f.size, f.is_taker) for f in taken] == [
        (D("100.2"), D("0.002"), True),
        (D("100.3"), D("0.002"), True),
    ]
    assert taken[0].fee == D("100.2") * D("0.002") * D("0.00075")
    assert m.open_orders()[0].remaining_size == D("0.001")


def test_fills_feed_the_portfolio() -> None:
    m = model()
    portfolio = Portfolio(symbol=SYMBOL, starting_balance=D(1000))
    m.submit(order(BUY, "100.0", "0.01"), 1, BOOK)
    m.submit(order(SELL, "100.5", "0.01"), 1, BOOK)
    for fill in [*m.on_trade(trade(SELL, "99.9", "0.01")), *m.on_trade(trade(BUY, "100.6", "0.01"))]:
        portfolio.apply(fill)
    assert portfolio.position == 0
    assert portfolio.grid_profit == D("0.005")  # (100.5 - 100.0) * 0.01
    assert portfolio.fees == -(D("100.0") + D("100.5")) * D("0.01") * D("0.0001")


# -- invariants under random event sequences --------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    queue=st.booleans(),
    touch=st.sampled_from([0.0, 0.3, 1.0]),
    events=st.lists(
        st.tuples(
            st.sampled_from(["book", "buy", "sell", "place_bid", "place_ask", "cancel"]), st.integers(-5, 5)
        ),
        max_size=60,
    ),
)
def test_fills_respect_price_and_size(queue: bool, touch: float, events: list[tuple[str, int]]) -> None:
    m = model(touch=touch, queue=queue)
    current = BOOK
    placed: dict[str, OrderRequest] = {}
    fills: list[Fill] = []
    tick = SPEC.tick_size
    for kind, offset in events:
        if kind == "book":
            bid = D("100.0") + offset * tick
            current = book(
                str(bid), str(bid + tick * (1 + abs(offset) % 3)), bid_size="0.003", ask_size="0.002"
            )
            fills += m.on_book(current)
        elif kind in ("buy", "sell"):
            side = BUY if kind == "buy" else SELL
            fills += m.on_trade(trade(side, str(D("100.1") + offset * tick), "0.002"))
        elif kind == "cancel" and placed:
            m.cancel(sorted(placed)[abs(offset) % len(placed)])
        elif kind.startswith("place"):
            best = current.bids[0].price if kind == "place_bid" else current.asks[0].price
            side = BUY if kind == "place_bid" else SELL
            request = order(side, str(best - side.sign * abs(offset) * tick), "0.003")
            if m.submit(request, 1, current).status is OrderStatus.OPEN:
                placed[request.client_order_id] = request
    for cid, request in placed.items():
        mine = [f for f in fills if f.client_order_id == cid]
        assert sum((f.size for f in mine), D(0)) <= request.size
        assert all(f.price == request.price and f.size > 0 and f.size % SPEC.lot_size == 0 for f in mine)
        assert all(f.fee == -(f.price * f.size * D("0.0001")) for f in mine)
        state = m.order(cid)
        assert state is not None and state.filled_size == sum((f.size for f in mine), D(0))
    assert len({f.fill_id for f in fills}) == len(fills)


@settings(max_examples=80, deadline=None)
@given(
    queue=st.booleans(),
    touch=st.sampled_from([0.0, 0.5, 1.0]),
    level_lots=st.lists(st.integers(1, 20), min_size=6, max_size=6),
    orders=st.lists(st.tuples(st.booleans(), st.integers(-1, 8), st.integers(1, 6)), max_size=8),
    trades=st.lists(st.tuples(st.booleans(), st.integers(-1, 10), st.integers(1, 30)), max_size=12),
)
def test_a_trade_fills_at_most_its_size_and_better_prices_first(
    queue: bool,
    touch: float,
    level_lots: list[int],
    orders: list[tuple[bool, int, int]],
    trades: list[tuple[bool, int, int]],
) -> None:
    """Price before time, in either fill model: the fills one trade causes never add up to more than its
    size, and each comes only after the size the book shows at better prices than the order (a 2-lot
    print 30 bp from the mid once filled a 9-lot grid in full, and a bot in sim mode made 8x its money)."""
    m = model(touch=touch, queue=queue)
    tick, lot = SPEC.tick_size, SPEC.lot_size
    bids = tuple(BookLevel(D("100.0") - i * tick, n * lot) for i, n in enumerate(level_lots[:3]))
    asks = tuple(BookLevel(D("100.2") + i * tick, n * lot) for i, n in enumerate(level_lots[3:]))
    shown = BookUpdate(SYMBOL, 1, bids, asks)
    m.on_book(shown)
    for is_buy, ticks_behind, lots in orders:  # -1: inside the spread; past 2: deeper than the book shows
        side = BUY if is_buy else SELL
        touch_price = bids[0].price if is_buy else asks[0].price
        m.submit(order(side, str(touch_price - side.sign * ticks_behind * tick), str(lots * lot)), 1, shown)
    for taker_buys, ticks_through, lots in trades:
        hit = asks if taker_buys else bids  # the side the taker trades against: our orders on it
        printed = trade(
            BUY if taker_buys else SELL,
            str(hit[0].price + (1 if taker_buys else -1) * ticks_through * tick),
            str(lots * lot),
        )
        taken = D(0)
        for fill in m.on_trade(printed):
            taken += fill.size
            better = sum(
                (
                    lv.size
                    for lv in hit
                    if (lv.price > fill.price if fill.side is BUY else lv.price < fill.price)
                ),
                D(0),
            )
            assert better + taken <= printed.size, (fill, printed, better, taken)
            assert fill.side.sign * (fill.price - printed.price) >= 0  # at our limit, never past the print
