"""Perpetual funding: the sign convention on hand-computed payments, the portfolio's funding component,
the core's funding events, the funding skew, the sim's rate process and funding in backtests."""

from __future__ import annotations

import math
import statistics
from decimal import Context, Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.core.actions import RecordFunding
from bots.core.core import BotCore
from bots.core.orders import OrderIds
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import Inventory, QuoteEngine
from bots.engine.types import Book, Side
from bots.exchange.events import Fill, FundingPayment, FundingRate, funding_amount
from bots.exchange.sim.funding import FundingParams, FundingProcess, Settlement
from bots.venues.grvt.funding import GrvtFundingClock
from bots.venues.grvt.server.config import GrvtSimConfig
from ml.backtest import BacktestConfig, SyntheticMarket, run_backtest
from settings.models import BotSettings

SYMBOL = "BTC_USDT_Perp"
D = Decimal
NS = 1_000_000_000
HOUR_NS = 3600 * NS


def fill(side: Side, size: str, price: str, n: int = 0, fee: str = "0") -> Fill:
    return Fill(f"f{n}", SYMBOL, f"c{n}", side, D(price), D(size), D(fee), n, False)


def payment(amount: str, n: int = 0) -> FundingPayment:
    return FundingPayment(f"p{n}", SYMBOL, n, D(amount))


def bot(**sections: dict[str, Any]) -> BotSettings:
    return BotSettings.model_validate({"symbol": SYMBOL, **sections})


# quotes that fill in the informed sim market within minutes (the default floor rests too far out)
TRADING = {"spread_pct": 0.0001, "kappa": 20_000.0, "grid_layers": 3, "grid_spacing_pct": 0.0002}


# -- the sign convention, by hand ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("position", "mark", "rate", "amount"),
    [
        # long 0.5 BTC at 60,000 under +0.01% per interval: notional 30,000, pays 3.00
        ("0.5", "60000", "0.0001", "-3.0000"),
        # short 2 ETH at 3,000 under +0.02%: notional 6,000, receives 1.20
        ("-2", "3000", "0.0002", "1.2000"),
        # a negative rate: shorts pay longs. Long 1 at 100 under -0.05% receives 0.05
        ("1", "100", "-0.0005", "0.0500"),
        ("-1", "100", "-0.0005", "-0.0500"),
        ("0", "65000", "0.0003", "0"),
    ],
)
def test_longs_pay_shorts_when_the_rate_is_positive(position: str, mark: str, rate: str, amount: str) -> None:
    assert funding_amount(D(position), D(mark), D(rate)) == D(amount)


def test_a_funding_payment_moves_cash_equity_and_net_pnl_and_nothing_else() -> None:
    portfolio = Portfolio(SYMBOL, D(10_000))
    portfolio.apply(fill(Side.BUY, "0.5", "60000", 1, fee="-3"))  # a maker fill, 3 USD rebate
    before = (portfolio.position, portfolio.avg_entry, list(portfolio.lots), portfolio.realized_pnl)
    # long 0.5 at mark 61,000 under 0.01%: pays 0.5 * 61,000 * 0.0001 = 3.05
    amount = portfolio.apply_funding(payment("-3.05", 2))
    assert amount == D("-3.05")
    assert (portfolio.position, portfolio.avg_entry, list(portfolio.lots), portfolio.realized_pnl) == before
    assert portfolio.funding == D("-3.05")
    assert portfolio.cash == D("10000") + D(3) - D("3.05")  # starting + rebate - funding paid
    # equity at 61,000: cash + 0.5 * (61,000 - 60,000) = 9,999.95 + 500
    assert portfolio.equity(D(61_000)) == D("10499.95")
    assert portfolio.net_pnl == D(3) - D("3.05")
    portfolio.apply_funding(payment("1.25", 3))  # the rate turned negative: a long receives
    assert (portfolio.funding, portfolio.funding_count) == (D("-1.80"), 2)


def test_a_payment_for_another_symbol_or_not_finite_is_refused() -> None:
    portfolio = Portfolio(SYMBOL, D(0))
    with pytest.raises(ValueError, match="ETH_USDT_Perp"):
        portfolio.apply_funding(FundingPayment("p", "ETH_USDT_Perp", 0, D(1)))
    with pytest.raises(ValueError, match="finite"):
        portfolio.apply_funding(payment("NaN"))
    assert (portfolio.cash, portfolio.funding) == (D(0), D(0))


fills_st = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(1, 50).map(lambda n: D(n) / 100),
        st.integers(50_000, 70_000).map(D),
    ),
    max_size=12,
)
amounts_st = st.lists(st.integers(-10_000, 10_000).map(lambda n: D(n) / 100), max_size=8)


@given(fills_st, amounts_st, st.randoms(use_true_random=False))
def test_fills_and_payments_replay_to_the_same_numbers_in_any_interleaving(
    fills: list[tuple[Side, Decimal, Decimal]], amounts: list[Decimal], rng: Any
) -> None:
    events: list[Fill | FundingPayment] = [fill(s, str(q), str(p), n) for n, (s, q, p) in enumerate(fills)]
    events += [FundingPayment(f"p{n}", SYMBOL, n, a) for n, a in enumerate(amounts)]
    rng.shuffle(events)
    live = Portfolio(SYMBOL, D(1000))
    for event in events:
        if isinstance(event, Fill):
            live.apply(event)
        else:
            live.apply_funding(event)
    replayed = Portfolio.replay(
        [e for e in events if isinstance(e, Fill)],
        starting_balance=D(1000),
        symbol=SYMBOL,
        funding=[e for e in events if isinstance(e, FundingPayment)],
    )
    assert (replayed.funding, replayed.position, replayed.realized_pnl) == (
        live.funding,
        live.position,
        live.realized_pnl,
    )
    tiny = D("1e-30")  # cash keeps 38 digits: the order of additions may round its last one
    assert abs(replayed.cash - live.cash) < tiny
    assert live.funding == sum(amounts, D(0))
    with localcontext(Context(prec=38)):  # the portfolio's own precision
        assert abs(live.cash - (D(1000) + live.realized_pnl - live.fees + live.funding)) < tiny


# -- the core: a funding event in, state updated, a record out -------------------------------------
def core_of(settings: BotSettings) -> BotCore:
    portfolio = Portfolio(SYMBOL, settings.paper.starting_balance_usd)
    engine = QuoteEngine(settings.engine_config())
    return BotCore(settings.core_config(), engine, portfolio, OrderIds(0, 1, 0))


def test_the_core_books_a_payment_and_says_so() -> None:
    core = core_of(bot())
    core.on_fill(fill(Side.SELL, "0.1", "60000"))
    # short 0.1 at 60,000 under +0.01%: receives 0.1 * 60,000 * 0.0001 = 0.60
    received = FundingPayment("p1", SYMBOL, 5, D("0.6"), D("0.0001"), D("-0.1"), D(60_000))
    assert core.on_funding(received) == [RecordFunding(received, D("0.6"))]
    assert core.portfolio.funding == D("0.6")
    assert core.cash == float(D(10_000) + D("0.6"))  # the per-event mirror sees it


def _center(engine: QuoteEngine, rate_per_interval: float) -> float:
    """The quote centre of a flat book after the volatility warm-up, under a funding rate."""
    engine.funding_rate_per_s = rate_per_interval / 28_800
    decision = None
    for i in range(40):
        book = Book(i * NS, 59_999.0, 1.0, 60_001.0, 1.0)
        decision = engine.on_book(book, Inventory(equity_usd=10_000, peak_equity_usd=10_000), i * NS)
    assert decision is not None
    return decision.reservation_price


def test_the_funding_skew_leans_against_the_side_that_pays_and_is_off_by_default() -> None:
    off = bot()
    assert off.strategy.funding_skew_horizon_s == 0
    assert _center(QuoteEngine(off.engine_config()), 0.001) == _center(QuoteEngine(off.engine_config()), 0.0)
    on = bot(strategy={"funding_skew_horizon_s": 28_800})
    neutral = _center(QuoteEngine(on.engine_config()), 0.0)
    # +0.1% per 8 h over an 8 h horizon: the reservation price moves down by 0.1% of mid (60 USD)
    assert _center(QuoteEngine(on.engine_config()), 0.001) == pytest.approx(neutral - 60.0, abs=1e-6)
    assert _center(QuoteEngine(on.engine_config()), -0.001) == pytest.approx(neutral + 60.0, abs=1e-6)


def test_the_core_passes_the_rate_to_the_engine_and_a_reconfigured_engine_keeps_it() -> None:
    settings = bot(strategy={"funding_skew_horizon_s": 3600})
    core = core_of(settings)
    core.on_funding_rate(FundingRate(SYMBOL, 0, D("0.0002"), 28_800.0))
    assert core.engine.funding_rate_per_s == pytest.approx(0.0002 / 28_800)
    core.reconfigure(settings.core_config(), core.engine.reconfigured(settings.engine_config()))
    assert core.engine.funding_rate_per_s == pytest.approx(0.0002 / 28_800)


# -- the rate process -------------------------------------------------------------------------------
def test_settlements_fall_on_multiples_of_the_interval_at_the_rate_in_force() -> None:
    start = 1_704_067_200 * NS + 5 * NS  # 5 s after 00:00 UTC
    params = FundingParams(interval_s=8 * 3600, std=0.0, start=0.0003)
    process = FundingProcess(params, seed=1, start_ns=start)
    assert process.advance(start + 7 * HOUR_NS) == []
    due = process.advance(start + 17 * HOUR_NS)
    assert [s.ts_ns - 1_704_067_200 * NS for s in due] == [8 * HOUR_NS, 16 * HOUR_NS]
    # no noise: the rate decays to the mean with a one-day half-life, once a minute from 00:01
    assert float(due[0].rate) == pytest.approx(0.0001 + 0.0002 * 0.5 ** (8 * 3600 / 86_400), abs=1e-12)
    assert process.next_funding_ns == 1_704_067_200 * NS + 24 * HOUR_NS


def test_the_rate_is_seeded_and_reverts_to_its_mean_with_its_stationary_spread() -> None:
    params = FundingParams(interval_s=3600, mean=0.0001, std=0.0002, half_life_s=3600)

    def rates(seed: int) -> list[float]:
        process = FundingProcess(params, seed=seed, start_ns=0)
        return [float(s.rate) for s in process.advance(3_000 * HOUR_NS)]

    path = rates(7)
    assert path == rates(7)
    assert path != rates(8)
    assert statistics.fmean(path) == pytest.approx(0.0001, abs=0.00002)
    assert statistics.stdev(path) == pytest.approx(0.0002, rel=0.05)
    assert min(path) < 0 < max(path)  # a negative rate happens: shorts then pay


def test_the_rate_path_does_not_depend_on_how_often_it_is_asked() -> None:
    params = FundingParams(interval_s=600, std=0.0003, half_life_s=3600)
    seldom, often = FundingProcess(params, seed=3, start_ns=7), FundingProcess(params, seed=3, start_ns=7)
    settled = seldom.advance(6 * HOUR_NS)
    asked = [s for t in [*range(0, 6 * HOUR_NS, 7 * NS), 6 * HOUR_NS] for s in often.advance(t)]
    assert asked == settled and len(settled) == 36
    assert (seldom.rate, seldom.ts_ns) == (often.rate, often.ts_ns) == (seldom.rate, 6 * HOUR_NS)


def test_bad_process_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        FundingParams(interval_s=0)
    with pytest.raises(ValueError, match="finite"):
        FundingParams(mean=math.nan)
    with pytest.raises(ValueError, match=r"funding_params: .*interval_s"):
        GrvtSimConfig(funding_params={"interval_s": -1})
    with pytest.raises(ValueError, match=r"funding_params: .*bogus"):
        GrvtSimConfig(funding_params={"bogus": 1})


# -- backtests --------------------------------------------------------------------------------------
def test_a_backtest_settles_funding_on_its_position_and_counts_it_in_pnl() -> None:
    settings = bot(sim={"funding": {"interval_s": 30, "rate_mean": 0.001, "rate_std": 0}}, strategy=TRADING)
    result = run_backtest(settings, SyntheticMarket(seconds=600, seed=2), BacktestConfig(seed=2))
    assert result.funding, "the bot held a position at some funding time"
    assert len(result.funding) == result.stats.funding_payments
    for p in result.funding:
        assert p.position is not None and p.mark is not None and p.rate == D("0.001")
        assert p.amount == -p.position * p.mark * p.rate  # longs pay, shorts receive
        assert (p.amount < 0) == (p.position > 0)
        assert p.ts_ns % (30 * NS) == 0
    total = sum((p.amount for p in result.funding), D(0))
    assert result.breakdown.funding == total
    assert result.stats.funding_usd == float(total)
    assert result.breakdown.total == result.total_pnl  # funding is one of the components


def test_funding_changes_the_pnl_of_the_same_fills_by_exactly_the_payments() -> None:
    base = {"interval_s": 30, "rate_std": 0}
    paid = run_backtest(
        bot(sim={"funding": base | {"rate_mean": 0.001}}, strategy=TRADING),
        SyntheticMarket(seconds=300, seed=4),
    )
    free = run_backtest(
        bot(sim={"funding": base | {"rate_mean": 0.0}}, strategy=TRADING),
        SyntheticMarket(seconds=300, seed=4),
    )
    assert [f.fill_id for f in paid.fills] == [f.fill_id for f in free.fills]  # skew off: same quotes
    assert free.breakdown.funding == 0
    assert paid.total_pnl - free.total_pnl == paid.breakdown.funding != 0


@pytest.mark.parametrize("seed", [0, 1])
def test_with_the_skew_on_a_positive_rate_leans_the_inventory_short_and_funding_is_received(
    seed: int,
) -> None:
    funding = {"interval_s": 300, "rate_mean": 0.0005, "rate_std": 0}  # +0.05% per 5 min: longs pay

    def run(horizon_s: float) -> tuple[float, Decimal]:
        settings = bot(sim={"funding": funding}, strategy={"funding_skew_horizon_s": horizon_s})
        result = run_backtest(settings, SyntheticMarket(seconds=1800, seed=seed), BacktestConfig(seed=seed))
        return float((result.curve.position * result.curve.mid).mean()), result.breakdown.funding

    (held_off, funding_off), (held_on, funding_on) = run(0.0), run(600.0)
    assert held_on < min(0.0, held_off)  # short on average, and shorter than without the skew
    assert funding_on > max(D(0), funding_off)  # the shorts receive what the longs pay


def test_paper_funding_settles_each_rate_grvt_settles_after_it_started_once() -> None:
    clock = GrvtFundingClock(SYMBOL)

    def row(hour: int, rate: str, mark: str) -> dict[str, Any]:
        return {"instrument": SYMBOL, "funding_rate": rate, "funding_time": str(hour * HOUR_NS),
                "mark_price": mark, "funding_rate_8_h_avg": rate}  # fmt: skip

    clock.on_rates([row(8, "0.01", "60000"), row(0, "0.02", "59000")])  # history before the start
    assert clock.advance(100 * HOUR_NS) == [] and clock.decimal_rate() == D("0.0001")
    clock.on_rates([row(16, "-0.005", "61000"), row(8, "0.01", "60000")])  # one new, one seen
    assert clock.advance(15 * HOUR_NS) == []  # the paper market is not there yet
    assert clock.advance(16 * HOUR_NS) == [Settlement(16 * HOUR_NS, D("-0.00005"), D(61_000))]
    assert clock.advance(17 * HOUR_NS) == []  # once
    assert (clock.decimal_rate(), clock.ts_ns) == (D("-0.00005"), 16 * HOUR_NS)
