"""Smoothed regime probabilities: a regime switch moves gamma/kappa over several records, not in one
jump, and a posterior flickering between 0 and 1 (as a GMM's does) makes few gamma jumps."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.core.blend import blend, smooth
from bots.core.core import BotCore
from bots.core.orders import OrderIds
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import QuoteEngine
from settings.models import BotSettings

NS = 1_000_000_000
TRENDING = {"trending": 1.0, "ranging": 0.0, "volatile": 0.0}  # gamma 2.0, kappa 500 by default
RANGING = {"trending": 0.0, "ranging": 1.0, "volatile": 0.0}  # gamma 0.5, kappa 1500


def core(smoothing_s: float) -> BotCore:
    settings = BotSettings.model_validate(
        {"symbol": "BTC_USDT_Perp", "ml": {"regime_enabled": True, "regime_smoothing_s": smoothing_s}}
    )
    return BotCore(
        settings.core_config(),
        QuoteEngine(settings.engine_config()),
        Portfolio(symbol=settings.symbol, starting_balance=Decimal(10_000)),
        OrderIds(0, 0, 0),
    )


def gammas(bot: BotCore, posteriors: Sequence[dict[str, float] | None]) -> list[float]:
    """The gamma in use after each record, one a second (as the worker's timer records)."""
    out = []
    for second, posterior in enumerate(posteriors, start=1):
        bot.on_timer(second * NS)
        bot.on_regime(posterior)
        out.append(bot.engine.gamma)
    return out


def jumps(series: list[float], size: float) -> int:
    return sum(abs(b - a) > size for a, b in itertools.pairwise(series))


def test_a_regime_switch_moves_gamma_over_several_records_not_in_one_jump() -> None:
    series = gammas(core(60.0), [TRENDING] * 10 + [RANGING] * 300)
    assert series[9] == 2.0  # the first posterior is taken as it is
    after = series[10:]
    steps = [a - b for a, b in itertools.pairwise(series[9:])]
    assert all(0 < step < 0.03 for step in steps[:60])  # down a little each second: 1.5 * (1 - e^(-1/60))
    assert after[59] == pytest.approx(0.5 + 1.5 * math.exp(-1), rel=1e-6)  # 63% of the way in one tau
    assert after[-1] == pytest.approx(0.5, abs=0.02)  # and there after five
    assert jumps(series, 0.1) == 0
    raw = gammas(core(0.0), [TRENDING] * 10 + [RANGING] * 300)
    assert jumps(raw, 0.1) == 1 and raw[10] == 0.5  # unsmoothed: one jump, all the way


def test_a_flickering_posterior_makes_few_gamma_jumps() -> None:
    """15 minutes of a one-hot posterior switching regime every 15 s on average (the issue's 67 jumps)."""
    rng = np.random.default_rng(3)
    regimes, state = [], 0
    for _ in range(900):
        if rng.random() < 1 / 15:
            state = int(rng.integers(0, 3))
        regimes.append(state)
    names = ("trending", "ranging", "volatile")
    posteriors: list[dict[str, float] | None] = [
        {name: float(i == r) for i, name in enumerate(names)} for r in regimes
    ]
    raw, smoothed = gammas(core(0.0), posteriors), gammas(core(60.0), posteriors)
    assert jumps(raw, 0.25) > 30
    assert jumps(smoothed, 0.25) == 0
    assert max(abs(b - a) for a, b in itertools.pairwise(smoothed)) < 0.1
    assert min(smoothed) > 0.5 and max(smoothed) < 3.0  # inside the regimes' range, never at an edge


def test_no_model_means_no_probabilities_and_the_configured_gamma() -> None:
    bot = core(60.0)
    series = gammas(bot, [TRENDING] * 5 + [None] * 3 + [RANGING])
    assert series[:5] == [2.0] * 5
    assert series[5:8] == [1.0] * 3 and bot.probabilities == RANGING  # a model again: afresh
    bot.on_regime(None)
    assert bot.probabilities is None and bot.engine.gamma == 1.0


@given(
    previous=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.floats(0, 1), min_size=1),
    raw=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.floats(0, 1), min_size=1),
    weight=st.floats(0, 1),
)
def test_smoothing_stays_between_the_previous_and_the_raw_posterior(
    previous: dict[str, float], raw: dict[str, float], weight: float
) -> None:
    got = smooth(previous, raw, weight)
    if previous.keys() != raw.keys():
        assert got == raw
        return
    for regime, p in got.items():
        low, high = sorted((previous[regime], raw[regime]))
        assert low - 1e-12 <= p <= high + 1e-12
    assert smooth(previous, raw, 0.0) == previous


def test_an_unusable_posterior_is_not_averaged_in() -> None:
    with_nan = smooth({"a": 0.5, "b": 0.5}, {"a": math.nan, "b": 1.0}, 0.5)
    assert math.isnan(with_nan["a"]) and with_nan["b"] == 1.0
    got = smooth({"a": 0.5, "b": 0.5}, {"a": -1.0, "b": 1.0}, 0.5)
    assert got == {"a": -1.0, "b": 1.0}  # taken as it is: the blend refuses it (configured gamma/kappa)


def test_a_regime_without_a_kappa_keeps_the_bots_own_fitted_or_configured() -> None:
    settings = BotSettings.model_validate(
        {
            "symbol": "BTC_USDT_Perp",
            "strategy": {"kappa": "auto"},
            "ml": {"regime_enabled": True, "regime_params": {"trending": {"gamma": 2.0}}},
        }
    )
    params = settings.core_config().regime_params
    assert params["trending"].kappa is None
    gamma, kappa = blend({"trending": 0.5, "ranging": 0.5}, params, default_gamma=1.0, default_kappa=777.0)
    assert (gamma, kappa) == (1.5, 777.0)  # "ranging" has no params at all: the defaults
