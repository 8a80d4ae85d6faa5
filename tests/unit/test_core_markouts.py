"""Markouts: the mid move after each fill, signed for us, due on the books of event time (no clock)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bots.core.actions import RecordMarkouts
from bots.core.core import BotCore
from bots.core.markouts import MARKOUT_HORIZONS_S, Markout, MarkoutTracker
from bots.core.orders import OrderIds
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import QuoteEngine
from bots.engine.types import Side
from bots.exchange.events import BookLevel, BookUpdate, Fill
from settings.models import BotSettings

SYMBOL = "BTC_USDT_Perp"
NS = 1_000_000_000
D = Decimal


def book(ts_s: float, mid: str, *, one_sided: bool = False) -> BookUpdate:
    half = D("0.5")
    bids = () if one_sided else (BookLevel(D(mid) - half, D(1)),)
    return BookUpdate(SYMBOL, round(ts_s * NS), bids, (BookLevel(D(mid) + half, D(1)),))


def fill(ts_s: float, side: Side, size: str = "2", fill_id: str = "f1") -> Fill:
    return Fill(fill_id, SYMBOL, "o1", side, D(100), D(size), D(0), round(ts_s * NS), False)


def test_a_markout_is_the_mid_move_signed_for_us_in_usd_and_bps() -> None:
    against = Markout("b", SYMBOL, "f", Side.BUY, D(2), 0, 1, D(100), D("99.9"))
    assert against.usd == D("-0.2") and against.bps == D(-10)
    seller_wins = Markout("b", SYMBOL, "f", Side.SELL, D(2), 0, 1, D(100), D("99.9"))
    assert seller_wins.usd == D("0.2") and seller_wins.bps == D(10)


def test_each_horizon_is_marked_at_the_mid_in_force_when_it_passed() -> None:
    tracker = MarkoutTracker("b")
    tracker.add(fill(10.0, Side.BUY), D(100))
    assert len(tracker) == len(MARKOUT_HORIZONS_S) and tracker.next_due_ns == 11 * NS
    assert tracker.on_book(book(10.0, "100"), book(10.5, "99")) == []  # 1 s not passed yet
    # 11 s passes between the books at 10.5 s and 11.2 s: the mid in force at 11 s is the 10.5 s book's
    (one,) = tracker.on_book(book(10.5, "99"), book(11.2, "98"))
    assert (one.horizon_s, one.mid_after, one.usd) == (1, D(99), D(-2))
    # a book stamped exactly at 20 s carries the mid at 20 s
    (ten,) = tracker.on_book(book(19.0, "98"), book(20.0, "101"))
    assert (ten.horizon_s, ten.mid_after, ten.bps) == (10, D(101), D(100))
    (sixty,) = tracker.on_book(book(20.0, "101"), book(75.0, "103"))
    assert (sixty.horizon_s, sixty.mid_after) == (60, D(101))
    assert len(tracker) == 0 and tracker.on_book(book(75.0, "103"), book(200.0, "1")) == []


def test_a_horizon_without_a_two_sided_book_waits_for_one_and_a_fill_without_a_mid_is_not_marked() -> None:
    tracker = MarkoutTracker("b", (1,))
    tracker.add(fill(0.0, Side.SELL), None)
    assert len(tracker) == 0
    tracker.add(fill(0.0, Side.SELL), D(100))
    assert tracker.on_book(book(0.5, "100", one_sided=True), book(1.5, "100", one_sided=True)) == []
    (late,) = tracker.on_book(book(1.5, "100", one_sided=True), book(2.0, "101"))
    assert late.mid_after == D(101) and late.usd == D(-2)
    with pytest.raises(ValueError, match="positive"):
        MarkoutTracker("b", (0,))


@settings(max_examples=100, deadline=None)
@given(
    fills=st.lists(st.tuples(st.integers(0, 100), st.sampled_from(list(Side))), min_size=1, max_size=20),
    mids=st.lists(st.integers(90, 110), min_size=1, max_size=200),
)
def test_every_fill_gets_one_markout_per_horizon_once_time_passes_all(
    fills: list[tuple[int, Side]], mids: list[int]
) -> None:
    tracker = MarkoutTracker("b")
    for n, (ts, side) in enumerate(sorted(fills)):
        tracker.add(fill(ts, side, fill_id=f"f{n}"), D(100))
    done: list[Markout] = []
    before = None
    for second, mid in enumerate([*mids, 100]):
        now = book(second * 2.0, str(mid)) if second < len(mids) else book(1_000.0, "100")
        done += tracker.on_book(before, now)
        before = now
    keys = [(m.fill_id, m.horizon_s) for m in done]
    assert sorted(keys) == sorted((f"f{n}", h) for n in range(len(fills)) for h in MARKOUT_HORIZONS_S)
    for m in done:  # each was due when it was recorded: the horizon was never marked early
        assert m.fill_ts_ns + m.horizon_s * NS <= 1_000 * NS


def test_the_core_records_markouts_of_its_fills_on_the_books_after_them() -> None:
    settings_ = BotSettings.model_validate({"symbol": SYMBOL})
    core = BotCore(
        settings_.core_config(),
        QuoteEngine(settings_.engine_config()),
        Portfolio(symbol=SYMBOL, starting_balance=D(10_000)),
        OrderIds(1, 0),
    )
    core.on_book(book(100.0, "50000"), 100 * NS)
    core.on_fill(Fill("x1", SYMBOL, "o1", Side.BUY, D(49_999), D("0.01"), D(0), 100 * NS, False))
    records: list[Markout] = []
    for second in range(101, 162):
        actions = core.on_book(book(second, "49990"), second * NS)
        records += [m for a in actions if isinstance(a, RecordMarkouts) for m in a.markouts]
    assert [(m.horizon_s, m.fill_id, m.mid_at_fill, m.mid_after) for m in records] == [
        (h, "x1", D(50_000), D(49_990)) for h in MARKOUT_HORIZONS_S
    ]
    assert records[0].usd == D("-0.1") and records[0].bps == D(-2) and records[0].bot == settings_.name
