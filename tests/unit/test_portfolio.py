"""Portfolio accounting on hand-computed sequences, plus invariants under random fills."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.engine.portfolio import FillKind, Portfolio
from bots.engine.types import Side
from bots.exchange.base import Fill

SYMBOL = "BTC_USDT_Perp"
D = Decimal
_ids = itertools.count()


def fill(side: Side, size: str | Decimal, price: str | Decimal, fee: str | Decimal = "0") -> Fill:
    n = next(_ids)
    return Fill(
        fill_id=f"f{n}",
        symbol=SYMBOL,
        client_order_id=f"c{n}",
        side=side,
        price=D(price),
        size=D(size),
        fee=D(fee),
        ts_ns=n,
        is_taker=False,
    )


BUY, SELL = Side.BUY, Side.SELL

# Each step applies after all the previous ones. Columns: side, size, price, then the expected
# kind, realized PnL (average cost) and grid profit (FIFO) of this fill, and the position, average
# entry and open lots (qty, price) after it.
SEQUENCE: list[tuple[Side, str, str, FillKind, str, str, str, str | None, list[tuple[str, str]]]] = [
    # open long
    (BUY, "2", "100", "increase", "0", "0", "2", "100", [("2", "100")]),
    # add: average entry (2*100 + 106) / 3 = 102
    (BUY, "1", "106", "increase", "0", "0", "3", "102", [("2", "100"), ("1", "106")]),
    # partial close: avg (110-102)*1 = 8; FIFO takes 1 from the 100 lot: 10
    (SELL, "1", "110", "reduce", "8", "10", "2", "102", [("1", "100"), ("1", "106")]),
    # full close: avg (104-102)*2 = 4; FIFO (104-100) + (104-106) = 2
    (SELL, "2", "104", "reduce", "4", "2", "0", None, []),
    # reopen long
    (BUY, "1", "100", "increase", "0", "0", "1", "100", [("1", "100")]),
    # flip to short: closes 1 (3 profit), opens a 2 short lot at 103
    (SELL, "3", "103", "flip", "3", "3", "-2", "103", [("-2", "103")]),
    # add to the short: entry (2*103 + 106) / 3 = 104
    (SELL, "1", "106", "increase", "0", "0", "-3", "104", [("-2", "103"), ("-1", "106")]),
    # short cover, partial: avg (104-101)*2 = 6; FIFO (103-101)*2 = 4
    (BUY, "2", "101", "reduce", "6", "4", "-1", "104", [("-1", "106")]),
    # short cover, full: avg (104-100) = 4; FIFO (106-100) = 6
    (BUY, "1", "100", "reduce", "4", "6", "0", None, []),
]


@pytest.mark.parametrize("step", range(len(SEQUENCE)), ids=lambda i: f"step{i}")
def test_hand_computed_sequence(step: int) -> None:
    portfolio = Portfolio(symbol=SYMBOL, starting_balance=D(1000))
    for side, size, price, *_ in SEQUENCE[:step]:
        portfolio.apply(fill(side, size, price))
    side, size, price, kind, realized, grid, position, entry, lots = SEQUENCE[step]
    before_realized, before_grid = portfolio.realized_pnl, portfolio.grid_profit

    effect = portfolio.apply(fill(side, size, price))

    assert effect.kind == kind
    assert effect.realized_pnl == D(realized)
    assert effect.grid_profit == D(grid)
    assert effect.position == portfolio.position == D(position)
    assert portfolio.entry_price == (None if entry is None else D(entry))
    assert [(lot.qty, lot.price) for lot in portfolio.lots] == [(D(q), D(p)) for q, p in lots]
    assert portfolio.realized_pnl == before_realized + D(realized)
    assert portfolio.grid_profit == before_grid + D(grid)


def test_whole_sequence_totals() -> None:
    portfolio = Portfolio.replay(
        [fill(side, size, price) for side, size, price, *_ in SEQUENCE],
        starting_balance=D(1000),
        symbol=SYMBOL,
    )
    # Flat at the end: both methods agree with the sum of cash flows (25).
    assert portfolio.position == 0
    assert portfolio.realized_pnl == portfolio.grid_profit == D(25)
    assert portfolio.cash == D(1025)
    assert portfolio.equity(D(12345)) == D(1025)
    assert portfolio.volume == D(200 + 106 + 110 + 208 + 100 + 309 + 106 + 202 + 100)
    assert portfolio.fill_count == len(SEQUENCE)


def test_flip_effect_quantities() -> None:
    portfolio = Portfolio(symbol=SYMBOL)
    portfolio.apply(fill(BUY, "1", "100"))
    flip = fill(SELL, "3", "103")
    effect = portfolio.apply(flip)
    assert (effect.closed_qty, effect.opened_qty) == (D(1), D(2))
    assert portfolio.lots[0].fill_id == flip.fill_id


def test_fees_and_rebates_move_cash_not_pnl() -> None:
    portfolio = Portfolio(symbol=SYMBOL, starting_balance=D(1000))
    maker = portfolio.apply(fill(BUY, "1", "100", fee="-0.01"))  # 1 bp rebate on 100
    taker = portfolio.apply(fill(SELL, "1", "101", fee="0.0505"))  # 5 bp fee on 101
    assert (maker.fee, taker.fee) == (D("-0.01"), D("0.0505"))
    assert portfolio.fees == D("0.0405")
    assert portfolio.realized_pnl == D(1)
    assert portfolio.net_pnl == D("0.9595")
    assert portfolio.cash == D("1000.9595")


def test_unrealized_and_equity() -> None:
    portfolio = Portfolio(symbol=SYMBOL, starting_balance=D(500))
    portfolio.apply(fill(SELL, "2", "50", fee="-0.01"))
    assert portfolio.unrealized_pnl(D(45)) == D(10)
    assert portfolio.equity(D(45)) == D("510.01")
    # The spot formula gives the same number: starting - signed notional - fees + position * mark.
    assert portfolio.equity(D(45)) == D(500) + D(100) + D("0.01") + D(-2) * D(45)
    assert Portfolio(symbol=SYMBOL).unrealized_pnl(D(45)) == 0


def test_rejects_bad_fills() -> None:
    portfolio = Portfolio(symbol=SYMBOL)
    with pytest.raises(ValueError, match="size"):
        portfolio.apply(fill(BUY, "0", "100"))
    with pytest.raises(ValueError, match="price"):
        portfolio.apply(fill(BUY, "1", "-1"))
    other = Fill("x", "ETH_USDT_Perp", "c", BUY, D(1), D(1), D(0), 0, False)
    with pytest.raises(ValueError, match="ETH_USDT_Perp"):
        portfolio.apply(other)


fills_strategy = st.lists(
    st.tuples(
        st.sampled_from([BUY, SELL]),
        st.integers(min_value=1, max_value=50),  # lots of 0.001
        st.integers(min_value=9000, max_value=11000),  # ticks of 0.1
        st.integers(min_value=-5, max_value=20),  # fee in 0.001 steps
    ),
    max_size=60,
)


def to_fills(raw: list[tuple[Side, int, int, int]]) -> list[Fill]:
    return [
        fill(side, D(lots).scaleb(-3), D(ticks).scaleb(-1), D(fee).scaleb(-3))
        for side, lots, ticks, fee in raw
    ]


@given(fills_strategy)
def test_position_is_sum_of_signed_fills(raw: list[tuple[Side, int, int, int]]) -> None:
    fills = to_fills(raw)
    portfolio = Portfolio.replay(fills, starting_balance=D(1000), symbol=SYMBOL)

    assert portfolio.position == sum((f.size * f.side.sign for f in fills), D(0))
    assert sum((lot.qty for lot in portfolio.lots), D(0)) == portfolio.position
    assert all((lot.qty > 0) == (portfolio.position > 0) for lot in portfolio.lots)
    assert portfolio.fees == sum((f.fee for f in fills), D(0))
    # Both PnL methods plus the open position's value at any mark equal the total cash flow.
    mark = D("1000.3")
    cash_flow = sum((-f.side.sign * f.price * f.size for f in fills), D(0))
    total = cash_flow + portfolio.position * mark
    assert abs(portfolio.realized_pnl + portfolio.unrealized_pnl(mark) - total) < D("1e-20")
    fifo_open = sum(((mark - lot.price) * lot.qty for lot in portfolio.lots), D(0))
    assert portfolio.grid_profit + fifo_open == total
    assert abs(portfolio.equity(mark) - (D(1000) + total - portfolio.fees)) < D("1e-20")
