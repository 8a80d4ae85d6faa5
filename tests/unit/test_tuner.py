"""The adaptive tuner: bounded proposals, accepted only when a backtest of the window improves."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bots.core.markouts import FillMarkout
from bots.engine.types import Side
from bots.exchange.base import Fill
from ml.backtest import SyntheticMarket, run_backtest
from ml.tuner import (
    GammaKappa,
    TradeStats,
    backtest_evaluator,
    propose,
    score_stats,
    stats_from_backtest,
    trade_stats,
    tune,
)
from settings.models import BotSettings, TunerSettings

NAN = math.nan


def stats(fill_rate: float = 0.2, markout_bps: float = 0.5, pnl_per_risk: float = 0.01) -> TradeStats:
    return TradeStats(100, 500, markout_bps, 10.0, 1000.0, pnl_per_risk, fill_rate)


def bot(gamma: float = 1.0, kappa: float = 1000.0) -> BotSettings:
    return BotSettings.model_validate(
        {"symbol": "BTC_USDT_Perp", "strategy": {"gamma": gamma, "kappa": kappa}}
    )


figure = st.one_of(st.floats(-1e6, 1e6), st.just(NAN))
positive = st.floats(1e-6, 1e6)


@st.composite
def tuner_settings(draw: st.DrawFn) -> TunerSettings:
    gamma = sorted(draw(st.lists(st.floats(1e-3, 1e3), min_size=2, max_size=2, unique=True)))
    kappa = sorted(draw(st.lists(st.floats(1.0, 1e6), min_size=2, max_size=2, unique=True)))
    return TunerSettings(
        gamma_step_pct=draw(st.floats(1e-3, 1.0)),
        kappa_step_pct=draw(st.floats(1e-3, 1.0)),
        gamma_min=gamma[0],
        gamma_max=gamma[1],
        kappa_min=kappa[0],
        kappa_max=kappa[1],
    )


@settings(max_examples=300, deadline=None)
@given(
    bounds=tuner_settings(),
    gamma=positive,
    kappa=positive,
    fill_rate=figure,
    markout_bps=figure,
    pnl_per_risk=figure,
    measured=st.one_of(st.none(), positive, st.just(NAN), st.just(-1.0)),
)
def test_proposals_respect_range_and_step_limits(
    bounds: TunerSettings,
    gamma: float,
    kappa: float,
    fill_rate: float,
    markout_bps: float,
    pnl_per_risk: float,
    measured: float | None,
) -> None:
    figures = stats(fill_rate, markout_bps, pnl_per_risk)
    proposed, _ = propose(GammaKappa(gamma, kappa), figures, bounds, measured_kappa=measured)
    assert bounds.gamma_min <= proposed.gamma <= bounds.gamma_max
    assert bounds.kappa_min <= proposed.kappa <= bounds.kappa_max
    if bounds.gamma_min <= gamma <= bounds.gamma_max:
        assert abs(proposed.gamma - gamma) <= bounds.gamma_step_pct * gamma * (1 + 1e-12)
    if bounds.kappa_min <= kappa <= bounds.kappa_max:
        assert abs(proposed.kappa - kappa) <= bounds.kappa_step_pct * kappa * (1 + 1e-12)


@pytest.mark.parametrize(
    ("figures", "gamma", "kappa"),
    [
        (stats(fill_rate=0.01), 1.0, 1100.0),  # too few fills: tighter
        (stats(fill_rate=0.8, markout_bps=-2.0), 1.0, 900.0),  # adverse selection: wider
        (stats(fill_rate=0.8), 1.0, 1000.0),  # many fills, but the mid does not move through them
        (stats(pnl_per_risk=-0.05), 1.1, 1000.0),  # inventory loses: more aversion
        (stats(markout_bps=3.0), 0.9, 1000.0),  # inventory pays, fills earn after 10 s: less aversion
        (stats(), 1.0, 1000.0),  # within targets
        (stats(fill_rate=NAN, markout_bps=NAN, pnl_per_risk=NAN), 1.0, 1000.0),  # nothing measured
    ],
)
def test_proposal_directions(figures: TradeStats, gamma: float, kappa: float) -> None:
    proposed, _ = propose(GammaKappa(1.0, 1000.0), figures, TunerSettings())
    assert proposed == GammaKappa(pytest.approx(gamma), pytest.approx(kappa))  # type: ignore[arg-type]


@pytest.mark.parametrize(("measured", "kappa"), [(5000.0, 1100.0), (1050.0, 1050.0), (500.0, 900.0)])
def test_a_measured_kappa_is_approached_but_never_passed(measured: float, kappa: float) -> None:
    proposed, why = propose(
        GammaKappa(1.0, 1000.0), stats(fill_rate=0.9), TunerSettings(), measured_kappa=measured
    )
    assert proposed.kappa == pytest.approx(kappa) and "measured kappa" in why


def test_rejected_when_the_backtest_does_not_improve() -> None:
    scored: list[GammaKappa] = []

    def worse(params: GammaKappa) -> float:
        scored.append(params)
        return 10.0 if params == GammaKappa(1.0, 1000.0) else 10.0 - 1e-9

    decision = tune(bot(), stats(fill_rate=0.01), worse)
    assert not decision.accepted and decision.chosen == decision.current == GammaKappa(1.0, 1000.0)
    assert decision.proposed == GammaKappa(1.0, pytest.approx(1100.0))  # type: ignore[arg-type]
    assert "rejected" in decision.reason and "kappa up" in decision.reason
    assert len(scored) == 2
    equal = tune(bot(), stats(fill_rate=0.01), lambda params: 5.0)
    assert not equal.accepted and "a tie" in equal.reason  # a tie is not an improvement, and says so


def test_accepted_when_the_backtest_improves() -> None:
    decision = tune(bot(), stats(pnl_per_risk=-1.0), lambda params: params.gamma)
    assert decision.accepted and decision.chosen == decision.proposed
    assert decision.chosen.gamma == pytest.approx(1.1) and decision.chosen.kappa == 1000.0
    assert decision.proposed_score is not None and decision.current_score is not None
    assert decision.proposed_score > decision.current_score and "accepted" in decision.reason


def test_no_proposal_runs_no_backtest() -> None:
    def never(params: GammaKappa) -> float:
        raise AssertionError("evaluated")

    decision = tune(bot(), stats(), never)
    assert not decision.accepted and decision.proposed is None and "no change" in decision.reason


def test_the_decision_follows_a_real_backtest_of_the_window() -> None:
    settings_ = bot(gamma=2.0)
    window = SyntheticMarket(seconds=120, seed=9)
    decision = tune(settings_, stats(pnl_per_risk=-1.0), window)
    assert decision.proposed == GammaKappa(pytest.approx(2.2), 1000.0)  # type: ignore[arg-type]
    evaluate = backtest_evaluator(settings_, window)
    assert decision.current_score == evaluate(decision.current)
    assert decision.proposed is not None and decision.proposed_score == evaluate(decision.proposed)
    assert decision.accepted == (decision.proposed_score > decision.current_score)


def test_trade_stats_from_fills_and_their_markouts() -> None:
    def fill(n: int, side: Side, price: str, fee: str = "0") -> Fill:
        return Fill(
            f"f{n}", "BTC_USDT_Perp", f"o{n}", side, Decimal(price), Decimal(1), Decimal(fee), n, False
        )

    fills = [
        fill(1, Side.BUY, "100"),
        fill(2, Side.SELL, "101"),  # closes +1
        fill(3, Side.SELL, "101"),
        fill(4, Side.BUY, "102"),  # closes -1
        fill(5, Side.BUY, "100", fee="-0.5"),  # rebate
    ]

    def markout(f: Fill, horizon_s: float, usd: float) -> FillMarkout:
        bps = usd / float(f.price * f.size) * 1e4
        return FillMarkout("b", f.symbol, f.fill_id, f.side, f.price, f.size, f.ts_ns, horizon_s, bps, usd)

    # 10 s later the mid had gone 0.5 against the first two fills and 0.2 for the third; 1 s is not read
    markouts = [
        markout(fills[0], 10.0, -0.5),
        markout(fills[1], 10.0, -0.5),
        markout(fills[2], 10.0, 0.2),
        markout(fills[0], 1.0, 5.0),
    ]
    figures = trade_stats(fills, orders_placed=10, markouts=markouts, mark=Decimal("99"))
    assert figures.markout_bps == pytest.approx(-0.8 / 302 * 1e4) and figures.fill_rate == 0.5
    assert figures.pnl_usd == pytest.approx(1 - 1 + 0.5 - 1)  # realized, rebate, 1 long at 99
    assert figures.pnl_per_risk == pytest.approx(figures.pnl_usd / figures.mean_abs_position_usd)
    assert math.isnan(trade_stats(fills, orders_placed=10).markout_bps)  # none recorded: not measured
    empty = trade_stats([], orders_placed=0)
    assert math.isnan(empty.markout_bps) and math.isnan(empty.fill_rate) and math.isnan(empty.pnl_per_risk)


def test_a_backtest_gives_the_tuner_its_markouts_and_the_score_is_markout_pnl_less_inventory_risk() -> None:
    quoting = BotSettings.model_validate(  # quotes a tick or two from the mid: they fill in any sim market
        {"symbol": "BTC_USDT_Perp", "strategy": {"spread_pct": 0.0001, "kappa": 20_000.0}}
    )
    result = run_backtest(quoting, SyntheticMarket(seconds=120, seed=3))
    assert result.fills
    figures = stats_from_backtest(result)
    assert figures.markout_bps == pytest.approx(result.stats.markout_10s_bps)
    assert score_stats(result.stats) == result.stats.markout_pnl_usd - result.stats.inventory_risk_usd
    # the markout PnL marks each fill 60 s on (the final mid when the run ends first): with every fill
    # within 60 s of the end it is the total PnL; the inventory risk is what holding the inventory risked
    short = run_backtest(quoting, SyntheticMarket(seconds=50, seed=3)).stats
    assert short.markout_pnl_usd == pytest.approx(short.total_pnl_usd)
    assert result.stats.inventory_risk_usd > 0
