"""The core's markouts: each fill marked on the books after it, in event time, as the batch form says."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bots.core.actions import Action, RecordMarkouts
from bots.core.core import BotCore
from bots.core.markouts import FillMarkout
from bots.core.orders import OrderIds
from bots.engine.markouts import MARKOUT_HORIZONS_S, markouts_at
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import QuoteEngine
from bots.engine.types import Side
from bots.exchange.events import BookLevel, BookUpdate, Fill
from settings.models import BotSettings

SYMBOL = "BTC_USDT_Perp"
NS = 1_000_000_000
D = Decimal


def book(ts_ns: int, mid: int, *, one_sided: bool = False) -> BookUpdate:
    bids = () if one_sided else (BookLevel(D(mid) - D("0.5"), D(1)),)
    return BookUpdate(SYMBOL, ts_ns, bids, (BookLevel(D(mid) + D("0.5"), D(1)),))


def core(*, record_markouts: bool = True) -> BotCore:
    settings_ = BotSettings.model_validate({"symbol": SYMBOL})
    config = dataclasses.replace(settings_.core_config(), record_markouts=record_markouts)
    portfolio = Portfolio(symbol=SYMBOL, starting_balance=D(1_000_000))
    return BotCore(config, QuoteEngine(settings_.engine_config()), portfolio, OrderIds(1, 0, 0))


def fill(n: int, ts_ns: int, side: Side, price: int) -> Fill:
    return Fill(f"f{n}", SYMBOL, f"o{n}", side, D(price), D("0.01"), D(0), ts_ns, False)


def recorded(actions: Sequence[Action]) -> list[FillMarkout]:
    return [m for a in actions if isinstance(a, RecordMarkouts) for m in a.markouts]


def test_a_fill_is_marked_at_the_mid_in_force_at_each_horizon_against_its_price() -> None:
    bot = core()
    bot.on_book(book(100 * NS, 50_000), 0)
    bot.on_fill(fill(1, 100 * NS, Side.BUY, 49_999))
    bot.markouts.add(fill(1, 100 * NS, Side.BUY, 49_999), 100 * NS, 50_000.0)  # heard twice: marked once
    got: list[FillMarkout] = []
    for ts_ns, mid in [(100_500_000_000, 49_995), (101_200_000_000, 49_990), (110 * NS, 49_980)]:
        got += recorded(bot.on_book(book(ts_ns, mid), 0))
    # 1 s passed between the books at 100.5 s and 101.2 s: the 100.5 s mid; 10 s: the book at exactly 110 s
    assert [m.horizon_s for m in got] == [1.0, 10.0]
    assert [m.usd for m in got] == pytest.approx([-0.04, -0.19])
    assert got[0].bps == pytest.approx(-4 / 49_999 * 1e4)
    assert (got[0].bot, got[0].fill_id, got[0].side, got[0].price) == (
        bot.config.name,
        "f1",
        Side.BUY,
        D(49_999),
    )
    # a one-sided book has no mid: the 60 s markout waits for a mid after 160 s to know the one in force
    got += recorded(bot.on_book(book(170 * NS, 50_100, one_sided=True), 0))
    assert len(got) == 2 and bot.markouts.pending
    (sixty,) = recorded(bot.on_book(book(171 * NS, 50_010), 0))
    assert sixty.horizon_s == 60.0 and sixty.usd == pytest.approx(-0.19) and not bot.markouts.pending


def test_a_core_that_leaves_markouts_to_its_driver_records_none() -> None:
    bot = core(record_markouts=False)
    bot.on_book(book(0, 100), 0)
    bot.on_fill(fill(1, 0, Side.SELL, 101))
    assert not bot.markouts.pending
    assert recorded(bot.on_book(book(100 * NS, 90), 0)) == []


@settings(max_examples=60, deadline=None)
@given(
    moves=st.lists(st.tuples(st.integers(1, 3_000), st.integers(-3, 3)), min_size=2, max_size=150),
    fills=st.lists(st.tuples(st.integers(0, 149), st.sampled_from(list(Side))), max_size=15),
)
def test_the_core_agrees_with_the_batch_form_backtests_use(
    moves: list[tuple[int, int]], fills: list[tuple[int, Side]]
) -> None:
    """Fills heard of on the book after them, as the worker does: the markouts the core records are
    those `markouts_at` gives on the series of mids it saw (those past the series' end excepted)."""
    bot = core()
    ts_ns, mid, mids = 0, 1_000, []
    got: list[FillMarkout] = []
    at_step = dict(fills)
    made: list[Fill] = []
    for step, (gap_ms, change) in enumerate(moves):
        ts_ns, mid = ts_ns + gap_ms * 1_000_000, mid + change
        got += recorded(bot.on_book(book(ts_ns, mid), 0))
        mids.append((ts_ns, float(mid)))
        if step in at_step:
            made.append(fill(step, ts_ns, at_step[step], mid - at_step[step].sign))
            bot.on_fill(made[-1])
    table = markouts_at(
        [f.ts_ns for f in made],
        [f.side.sign for f in made],
        [float(f.price) for f in made],
        [float(f.size) for f in made],
        [t for t, _ in mids],
        [m for _, m in mids],
    )
    expected = {
        (f.fill_id, h): table.usd[i][j]
        for i, h in enumerate(MARKOUT_HORIZONS_S)
        for j, f in enumerate(made)
        if f.ts_ns + h * NS <= mids[-1][0]
    }
    assert {(m.fill_id, m.horizon_s): m.usd for m in got} == pytest.approx(expected)
