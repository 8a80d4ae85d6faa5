"""Invariants of the whole quoting engine, over random settings, books, positions and price paths."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from bots.engine.quoter import Inventory, QuoteDecision, QuoteEngine
from bots.engine.types import Book, Side, TradingState
from settings.models import BotSettings

NS = 1_000_000_000
TICK = 0.1
LOT = 0.001


@st.composite
def bot_settings(draw: st.DrawFn) -> BotSettings:
    order_size = draw(st.floats(60.0, 2_000.0))
    return BotSettings.model_validate(
        {
            "symbol": "BTC_USDT_Perp",
            "strategy": {
                "model": draw(st.sampled_from(["avellaneda", "glft"])),
                "gamma": draw(st.floats(0.01, 50.0)),
                "kappa": draw(st.floats(1.0, 1e5)),
                "spread_pct": draw(st.floats(1e-5, 0.05)),
                "grid_layers": draw(st.integers(1, 12)),
                "grid_spacing_pct": draw(st.floats(1e-5, 0.01)),
                "order_size_usd": order_size,
                "trend_strategy": draw(st.sampled_from(["bollinger", "rsi", "adx", "atr", "chop"])),
                "volatility_window_ticks": draw(st.integers(2, 30)),
                "entry_anchor_mode": draw(st.booleans()),
            },
            "risk": {
                "max_position_usd": draw(st.floats(order_size, 50_000.0)),
                "inventory_skew_factor": draw(st.floats(0.0, 5.0)),
                "max_loss_usd": 1e9,
            },
        }
    )


@st.composite
def paths(draw: st.DrawFn) -> list[tuple[float, int]]:
    """Mid prices (on the half tick) and book spreads in ticks: a random walk around 50,000."""
    steps = draw(st.lists(st.integers(-40, 40), min_size=1, max_size=60))
    spreads = draw(st.lists(st.integers(1, 30), min_size=len(steps), max_size=len(steps)))
    out: list[tuple[float, int]] = []
    bid = 500_000
    for step, spread in zip(steps, spreads, strict=True):
        bid = max(1_000, bid + step)
        out.append((bid * TICK, spread))
    return out


def _run(engine: QuoteEngine, path: list[tuple[float, int]], inventory: Inventory) -> list[QuoteDecision]:
    decisions = []
    for i, (bid, spread) in enumerate(path):
        book = Book(ts_ns=i * NS, bid_price=bid, bid_size=1.0, ask_price=bid + spread * TICK, ask_size=1.0)
        decisions.append(engine.on_book(book, inventory, now_ns=i * NS))
    return decisions


@settings(max_examples=150, deadline=None)
@given(
    config=bot_settings(),
    path=paths(),
    position_frac=st.floats(-1.5, 1.5),
    entry_offset=st.floats(-0.05, 0.05),
)
def test_quotes_never_cross_stay_on_tick_and_within_the_limit(
    config: BotSettings, path: list[tuple[float, int]], position_frac: float, entry_offset: float
) -> None:
    engine = QuoteEngine(config.engine_config())
    last_bid, last_spread = path[-1]
    mid = last_bid + last_spread * TICK / 2
    max_lots = math.floor(config.risk.max_position_usd / mid / LOT + 1e-9)
    position_lots = round(position_frac * max_lots)
    inventory = Inventory(
        position_base=position_lots * LOT,
        entry_price=mid * (1 + entry_offset),
        equity_usd=10_000.0,
        peak_equity_usd=10_000.0,
    )
    decision = _run(engine, path, inventory)[-1]
    best_bid = round(last_bid / TICK)
    best_ask = best_bid + last_spread
    bids = [o for o in decision.orders if o.side is Side.BUY]
    asks = [o for o in decision.orders if o.side is Side.SELL]
    for order in decision.orders:
        assert isinstance(order.price_ticks, int) and order.price_ticks > 0
        assert isinstance(order.size_lots, int) and order.size_lots > 0
    if bids and asks:
        assert max(o.price_ticks for o in bids) < min(o.price_ticks for o in asks)
    assert all(o.price_ticks < best_ask for o in bids)  # post-only: never at or through the ask
    assert all(o.price_ticks > best_bid for o in asks)
    worst_long = position_lots + sum(o.size_lots for o in bids)
    worst_short = position_lots - sum(o.size_lots for o in asks)
    assert worst_long <= max(max_lots, position_lots)
    assert worst_short >= min(-max_lots, position_lots)
    if abs(position_lots * LOT * mid) >= config.risk.max_position_usd:
        assert decision.state is not TradingState.ACTIVE
        # beyond the limit only reducing orders, and never enough to flip
        assert abs(worst_long) <= abs(position_lots) and abs(worst_short) <= abs(position_lots)


@settings(max_examples=100, deadline=None)
@given(config=bot_settings(), path=paths(), lots=st.integers(1, 50))
def test_long_inventory_lowers_and_short_raises_the_reservation_price(
    config: BotSettings, path: list[tuple[float, int]], lots: int
) -> None:
    flat, long, short = (
        _run(QuoteEngine(config.engine_config()), path, Inventory(position_base=p))[-1]
        for p in (0.0, lots * LOT, -lots * LOT)
    )
    if flat.sigma > 0:
        assert long.reservation_price < flat.reservation_price < short.reservation_price
    else:  # without volatility the A-S shift is zero; GLFT's too
        assert long.reservation_price == flat.reservation_price == short.reservation_price


@settings(max_examples=60, deadline=None)
@given(config=bot_settings(), path=paths(), position_lots=st.integers(-20, 20))
def test_engine_is_deterministic_for_an_event_sequence(
    config: BotSettings, path: list[tuple[float, int]], position_lots: int
) -> None:
    inventory = Inventory(position_base=position_lots * LOT, entry_price=50_000.0)
    assert _run(QuoteEngine(config.engine_config()), path, inventory) == _run(
        QuoteEngine(config.engine_config()), path, inventory
    )


@settings(max_examples=40, deadline=None)
@given(config=bot_settings(), path=paths(), position_lots=st.integers(-20, 20))
def test_deciding_again_on_the_same_book_moves_no_indicator(
    config: BotSettings, path: list[tuple[float, int]], position_lots: int
) -> None:
    """A timer's requote on a quiet market meets the book it already decided on: the same decision,
    the same sigma and signals after it, as if it had not happened."""
    inventory = Inventory(position_base=position_lots * LOT, entry_price=50_000.0)
    once, twice = QuoteEngine(config.engine_config()), QuoteEngine(config.engine_config())
    for i, (bid, spread) in enumerate(path):
        book = Book(ts_ns=i * NS, bid_price=bid, bid_size=1.0, ask_price=bid + spread * TICK, ask_size=1.0)
        decision = once.on_book(book, inventory, now_ns=i * NS)
        assert twice.on_book(book, inventory, now_ns=i * NS) == decision
        assert twice.on_book(book, inventory, now_ns=i * NS + NS // 2) == decision  # the timer, later
        assert (math.isnan(once.sigma()) and math.isnan(twice.sigma())) or once.sigma() == twice.sigma()


def test_bad_books_give_no_quotes() -> None:
    engine = QuoteEngine(BotSettings(symbol="BTC_USDT_Perp").engine_config())
    inventory = Inventory()
    good = Book(ts_ns=0, bid_price=50_000.0, bid_size=1.0, ask_price=50_000.1, ask_size=1.0)
    assert engine.on_book(good, inventory, now_ns=0).orders
    for bad in (
        Book(0, 50_000.2, 1.0, 50_000.1, 1.0),  # crossed
        Book(0, 50_000.0, 1.0, 50_000.0, 1.0),  # locked
        Book(0, math.nan, 1.0, 50_000.1, 1.0),
        Book(0, 50_000.0, 0.0, 50_000.1, 1.0),  # empty side
        Book(0, 50_000.0, 1.0, math.inf, 1.0),
    ):
        decision = engine.on_book(bad, inventory, now_ns=0)
        assert decision.orders == ()
        assert decision.reasons
    stale = engine.on_book(good, inventory, now_ns=6 * NS)  # default max_book_age_s = 5
    assert stale.orders == ()
    assert "stale" in stale.reasons[0]


def test_drawdown_breach_halts_and_asks_to_close() -> None:
    engine = QuoteEngine(BotSettings(symbol="BTC_USDT_Perp").engine_config())
    book = Book(ts_ns=0, bid_price=50_000.0, bid_size=1.0, ask_price=50_000.1, ask_size=1.0)
    inventory = Inventory(
        position_base=0.05, entry_price=52_000.0, equity_usd=9_000.0, peak_equity_usd=10_000.0
    )
    decision = engine.on_book(book, inventory, now_ns=0)
    assert decision.state is TradingState.HALTED
    assert decision.close_position
    assert decision.orders == ()
