"""Incremental indicators against straightforward pandas references.

Each reference below is written the textbook way, vectorised over the whole series; the indicator is
fed one bar at a time and must agree to 1e-9 relative wherever the reference is defined, and be nan
(and not `ready`) exactly where it is not.

One exception to "use pandas": `pd.Series.rolling(w).std()` is an online add/remove algorithm that
drifts by up to ~1e-7 relative on prices near 50,000 (and by far more with a window of 2), so the
rolling std of prices is checked against an exact two-pass computation over each window instead.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import statistics
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from bots.engine.indicators import ADX, ATR, RSI, Bollinger, Choppiness, LogReturnVolatility, RollingStd

Array = npt.NDArray[np.float64]
N = 100_000  # the std-based indicators, where precision loss accumulates, see the full series
N_BARS = 30_000  # the Wilder-smoothed ones forget their past; a shorter run keeps the file fast
RTOL = 1e-9


# --------------------------------------------------------------------------- series


def random_walk(n: int = N, seed: int = 1, rel_step: float = 1e-4) -> Array:
    """Gaussian random walk of log price around 50,000 with `rel_step` relative steps."""
    rng = np.random.default_rng(seed)
    return 50_000.0 * np.exp(np.cumsum(rng.normal(0.0, rel_step, n)))


def trend_and_bursts(n: int = N, seed: int = 2) -> Array:
    """Up and down trend episodes and 10x volatility bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    sigma = np.where((t // 5_000) % 3 == 1, 1e-3, 1e-4)
    episode = (t // 7_000) % 4
    drift: Array = np.select([episode == 1, episode == 3], [3e-5, -4e-5], 0.0)
    return 50_000.0 * np.exp(np.cumsum(rng.normal(0.0, 1.0, n) * sigma + drift))


def tick_prices(n: int = N, seed: int = 4) -> Array:
    """Prices on a 0.1 tick grid moving ~1 tick a step: many repeats and flat stretches."""
    return np.round(random_walk(n, seed, rel_step=2e-6) * 10.0) / 10.0


@functools.cache
def price_series(name: str) -> Array:
    makers: dict[str, Callable[[], Array]] = {
        "random_walk": random_walk,
        "trend_bursts": trend_and_bursts,
        "ticks": tick_prices,
    }
    return makers[name]()


@functools.cache
def bars(name: str) -> tuple[Array, Array, Array]:
    """(high, low, close): real OHLC bars, or tick bars with high = low = close."""
    if name != "ohlc":
        close = price_series(name)[:N_BARS]
        return close, close, close
    rng = np.random.default_rng(3)
    close = random_walk(N_BARS, 3)
    open_ = np.concatenate([close[:1], close[:-1]])
    wicks = np.abs(rng.normal(0.0, 5.0, (2, N_BARS)))
    return np.maximum(open_, close) + wicks[0], np.minimum(open_, close) - wicks[1], close


PRICE_SERIES = ["random_walk", "trend_bursts", "ticks"]
BAR_SERIES = [*PRICE_SERIES, "ohlc"]


# --------------------------------------------------------------------------- references


def rolling_std_ref(x: Array, window: int, ddof: int) -> Array:
    """Exact two-pass std of each window (deviations from the window's first value are exact)."""
    out = np.full(len(x), np.nan)
    windows = sliding_window_view(x, window)
    for start in range(0, len(windows), 8_192):  # chunks keep the n x window temporary small
        chunk = windows[start : start + 8_192]
        dev = chunk - chunk[:, :1]
        dev -= dev.mean(axis=1, keepdims=True)
        out[window - 1 + start : window - 1 + start + len(chunk)] = np.sqrt(
            (dev * dev).sum(axis=1) / (window - ddof)
        )
    return out


def log_return_vol_ref(price: Array, window: int) -> Array:
    return pd.Series(np.log(price)).diff().rolling(window).std().to_numpy()


def bollinger_ref(close: Array, window: int, num_std: float) -> tuple[Array, Array, Array]:
    middle = pd.Series(close).rolling(window).mean().to_numpy()
    half = num_std * rolling_std_ref(close, window, ddof=0)
    return middle, middle + half, middle - half


def wilder(values: pd.Series, period: int, first: int) -> pd.Series:
    """Wilder (1978) smoothing: the mean of values[first : first + period] placed at the last of
    them, then avg = (avg * (period - 1) + x) / period, i.e. an EWM with alpha = 1/period."""
    seed_at = first + period - 1
    seeded = pd.Series(np.nan, index=values.index)
    if seed_at < len(values):
        seeded.iloc[seed_at] = values.iloc[first : first + period].mean()
        seeded.iloc[seed_at + 1 :] = values.iloc[seed_at + 1 :]
    return seeded.ewm(alpha=1.0 / period, adjust=False).mean()


def true_range_ref(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    """max(h - l, |h - prev close|, |l - prev close|); the first bar (no prev close) gives h - l."""
    prev = close.shift(1)
    return pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1).max(axis=1)


def rsi_ref(close: Array, period: int) -> Array:
    change = pd.Series(close).diff()
    avg_gain = wilder(change.clip(lower=0.0), period, first=1)
    avg_loss = wilder((-change).clip(lower=0.0), period, first=1)
    # 100 - 100 / (1 + RS) with RS = G / L, written as 100 G / (G + L) to keep its digits near 0
    rsi = 100.0 * avg_gain / (avg_gain + avg_loss)
    rsi = rsi.mask(avg_loss == 0.0, 100.0).mask((avg_loss == 0.0) & (avg_gain == 0.0), 50.0)
    return rsi.to_numpy()


def atr_ref(high: Array, low: Array, close: Array, period: int) -> Array:
    tr = true_range_ref(pd.Series(high), pd.Series(low), pd.Series(close))
    return wilder(tr, period, first=0).to_numpy()


def adx_ref(high: Array, low: Array, close: Array, period: int) -> dict[str, Array]:
    h, lo, c = pd.Series(high), pd.Series(low), pd.Series(close)
    up = h.diff()
    down = -lo.diff()
    plus_dm = up.where((up > down) & (up > 0.0), 0.0)
    minus_dm = down.where((down > up) & (down > 0.0), 0.0)
    tr = wilder(true_range_ref(h, lo, c), period, first=1)
    plus_di = (100.0 * wilder(plus_dm, period, first=1) / tr).mask(tr == 0.0, 0.0)
    minus_di = (100.0 * wilder(minus_dm, period, first=1) / tr).mask(tr == 0.0, 0.0)
    di_sum = plus_di + minus_di
    dx = (100.0 * (plus_di - minus_di).abs() / di_sum).mask(di_sum == 0.0, 0.0)
    adx = wilder(dx, period, first=period)
    return {
        "plus_di": plus_di.to_numpy(),
        "minus_di": minus_di.to_numpy(),
        "dx": dx.to_numpy(),
        "adx": adx.to_numpy(),
    }


def chop_ref(high: Array, low: Array, close: Array, period: int) -> Array:
    h, lo = pd.Series(high), pd.Series(low)
    tr_sum = true_range_ref(h, lo, pd.Series(close)).rolling(period).sum()
    price_range = h.rolling(period).max() - lo.rolling(period).min()
    chop: pd.Series = 100.0 * np.log10(tr_sum / price_range) / np.log10(period)
    return chop.mask(price_range == 0.0).to_numpy()


# --------------------------------------------------------------------------- helpers


def feed(
    update: Callable[..., None], indicator: object, columns: Sequence[Array], attrs: Sequence[str]
) -> tuple[dict[str, Array], npt.NDArray[np.bool_]]:
    """Feed the bars one at a time; return each attribute's history and the `ready` history."""
    get = operator.attrgetter(*attrs, "ready")
    rows = []
    for args in zip(*(col.tolist() for col in columns), strict=True):
        update(*args)
        rows.append(get(indicator))
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(attrs) + 1)
    return {a: table[:, i] for i, a in enumerate(attrs)}, table[:, -1].astype(bool)


def assert_matches(ours: Array, ref: Array, rtol: float = RTOL, atol: float = 0.0) -> None:
    """nan exactly where the reference is nan, and equal to `rtol` everywhere else."""
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg="warm-up (nan) pattern")
    defined = ~np.isnan(ref)
    np.testing.assert_allclose(ours[defined], ref[defined], rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- full-length series


@pytest.mark.parametrize("series", PRICE_SERIES)
@pytest.mark.parametrize("window", [2, 20, 300])
def test_rolling_std(series: str, window: int) -> None:
    x = price_series(series)
    ind = RollingStd(window)
    got, ready = feed(ind.update, ind, [x], ["value", "mean"])
    ref = rolling_std_ref(x, window, ddof=1)
    assert_matches(got["value"], ref)
    assert_matches(got["mean"], pd.Series(x).rolling(window).mean().to_numpy())
    np.testing.assert_array_equal(ready, ~np.isnan(ref))


@pytest.mark.parametrize("series", PRICE_SERIES)
@pytest.mark.parametrize("window", [2, 50])
def test_log_return_volatility(series: str, window: int) -> None:
    x = price_series(series)
    ind = LogReturnVolatility(window)
    got, ready = feed(ind.update, ind, [x], ["value"])
    ref = log_return_vol_ref(x, window)
    np.testing.assert_array_equal(ready, ~np.isnan(ref))
    if window >= 20:
        assert_matches(got["value"], ref)
    # np.log(p).diff() carries ~1e-16 * log(p) absolute error per return, which a window of 2
    # (|r1 - r2| / sqrt 2) turns into large relative errors: compare with accurate returns too.
    accurate = np.concatenate([[np.nan], rolling_std_ref(np.log1p(np.diff(x) / x[:-1]), window, ddof=1)])
    assert_matches(got["value"], accurate)


@pytest.mark.parametrize("series", PRICE_SERIES)
@pytest.mark.parametrize(("window", "num_std"), [(2, 1.0), (20, 2.0)])
def test_bollinger(series: str, window: int, num_std: float) -> None:
    x = price_series(series)
    ind = Bollinger(window, num_std)
    got, ready = feed(ind.update, ind, [x], ["middle", "upper", "lower"])
    middle, upper, lower = bollinger_ref(x, window, num_std)
    assert_matches(got["middle"], middle)
    assert_matches(got["upper"], upper)
    assert_matches(got["lower"], lower)
    np.testing.assert_array_equal(ready, ~np.isnan(middle))


@pytest.mark.parametrize("series", BAR_SERIES)
@pytest.mark.parametrize("period", [2, 14])
def test_rsi(series: str, period: int) -> None:
    close = bars(series)[2]
    ind = RSI(period)
    got, ready = feed(ind.update, ind, [close], ["value"])
    ref = rsi_ref(close, period)
    assert_matches(got["value"], ref)
    np.testing.assert_array_equal(ready, ~np.isnan(ref))
    assert np.all((got["value"][ready] >= 0.0) & (got["value"][ready] <= 100.0))


@pytest.mark.parametrize("series", BAR_SERIES)
@pytest.mark.parametrize("period", [2, 14])
def test_atr(series: str, period: int) -> None:
    high, low, close = bars(series)
    ind = ATR(period)
    got, ready = feed(ind.update, ind, [high, low, close], ["value"])
    ref = atr_ref(high, low, close, period)
    assert_matches(got["value"], ref)
    np.testing.assert_array_equal(ready, ~np.isnan(ref))


@pytest.mark.parametrize("series", BAR_SERIES)
@pytest.mark.parametrize("period", [3, 14])
def test_adx(series: str, period: int) -> None:
    high, low, close = bars(series)
    ind = ADX(period)
    got, ready = feed(ind.update, ind, [high, low, close], ["plus_di", "minus_di", "dx", "adx", "value"])
    ref = adx_ref(high, low, close, period)
    assert_matches(got["plus_di"], ref["plus_di"])
    assert_matches(got["minus_di"], ref["minus_di"])
    # DX = 100 |+DI - -DI| / (+DI + -DI) loses relative digits when +DI ~ -DI (in both
    # implementations), so it is compared on its 0..100 scale; the smoothed ADX is not affected.
    assert_matches(got["dx"], ref["dx"], atol=1e-9)
    assert_matches(got["adx"], ref["adx"])
    np.testing.assert_array_equal(got["value"], got["adx"])
    np.testing.assert_array_equal(ready, ~np.isnan(ref["adx"]))
    assert np.isnan(got["adx"][2 * period - 2]) and not np.isnan(got["adx"][2 * period - 1])


@pytest.mark.parametrize("series", BAR_SERIES)
@pytest.mark.parametrize("period", [2, 14])
def test_choppiness(series: str, period: int) -> None:
    high, low, close = bars(series)
    ind = Choppiness(period)
    got, ready = feed(ind.update, ind, [high, low, close], ["value"])
    ref = chop_ref(high, low, close, period)
    assert_matches(got["value"], ref)
    np.testing.assert_array_equal(ready, ~np.isnan(ref))


def test_flat_ticks_are_handled() -> None:
    """A flat tick market: zero std, ATR 0, RSI 50, DI/DX/ADX 0 and an undefined choppiness."""
    std, bb, rsi, atr, adx, chop = RollingStd(3), Bollinger(3, 2.0), RSI(3), ATR(3), ADX(3), Choppiness(3)
    for _ in range(10):
        std.update(50_000.1)
        bb.update(50_000.1)
        rsi.update(50_000.1)
        for ind in (atr, adx, chop):
            ind.update(50_000.1, 50_000.1, 50_000.1)
    assert (std.value, std.mean) == (0.0, 50_000.1)
    assert (bb.lower, bb.middle, bb.upper) == (50_000.1, 50_000.1, 50_000.1)
    assert (rsi.value, atr.value) == (50.0, 0.0)
    assert (adx.plus_di, adx.minus_di, adx.dx, adx.adx) == (0.0, 0.0, 0.0, 0.0)
    assert np.isnan(chop.value) and not chop.ready


def test_tick_bar_atr_is_the_absolute_change() -> None:
    atr = ATR(2)
    for price in (100.0, 103.0, 101.0):
        atr.update(price, price, price)
    assert atr.value == (1.5 * 1 + 2.0) / 2  # TRs 0, 3, 2: seed mean(0, 3), then Wilder


def test_variance_collapse_after_a_jump_is_exact() -> None:
    """A jump leaving the window would leave pandas-style running sums with ~1e-6 relative error."""
    std = RollingStd(4)
    for x in (1e6, 1e6, 1.0, 1.0, 1.0, 1.0, 1.5, 1.0, 1.0):
        std.update(x)
    assert std.value == pytest.approx(statistics.stdev([1.0, 1.5, 1.0, 1.0]), rel=1e-14)


def test_true_range_sum_after_a_huge_bar_is_exact() -> None:
    """Once a huge true range leaves the window, a running sum keeps its rounding error."""
    chop = Choppiness(3)
    for price in [1e6, 1.0] + [1.0, 1.000001] * 5:
        chop.update(price, price, price)
    # three equal moves of 1e-6 over a range of 1e-6: log10(3) / log10(3)
    assert chop.value == pytest.approx(100.0, rel=1e-12)


@pytest.mark.parametrize(
    "make", [lambda: RollingStd(1), lambda: RSI(1), lambda: ATR(0), lambda: Bollinger(5, 0.0)]
)
def test_bad_parameters_are_rejected(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


# --------------------------------------------------------------------------- properties

tick_lists = st.lists(st.integers(1, 400).map(float), min_size=1, max_size=60)  # repeats, exact sums
wide_lists = st.lists(st.floats(1.0, 1e5), min_size=1, max_size=60)  # large jumps, any digits
price_lists = st.one_of(tick_lists, wide_lists)


def _window_ref(x: Array, window: int, func: Callable[[Array], float]) -> Array:
    """A pandas rolling reference evaluating `func` (exact: statistics uses fractions) per window."""
    return pd.Series(x).rolling(window).apply(func, raw=True).to_numpy(dtype=np.float64)


@settings(max_examples=150, deadline=None)
@given(prices=price_lists, window=st.integers(2, 8))
def test_std_family_matches_reference(prices: list[float], window: int) -> None:
    x = np.array(prices)
    std = RollingStd(window)
    got, _ = feed(std.update, std, [x], ["value", "mean"])
    assert_matches(got["value"], _window_ref(x, window, statistics.stdev))
    assert_matches(got["mean"], _window_ref(x, window, statistics.fmean))

    bb = Bollinger(window, 2.0)
    got, _ = feed(bb.update, bb, [x], ["upper", "lower"])
    mean = _window_ref(x, window, statistics.fmean)
    pstd = _window_ref(x, window, statistics.pstdev)
    assert_matches(got["upper"], mean + 2.0 * pstd)
    assert_matches(got["lower"], mean - 2.0 * pstd)

    vol = LogReturnVolatility(window)
    got, _ = feed(vol.update, vol, [x], ["value"])
    # Each window's stdev summed exactly; pandas' online rolling std (log_return_vol_ref) drifts by
    # ~1e-9 relative once a large jump has left the window. A return from log(p / prev) carries
    # ~1e-16 absolute error: hence the atol.
    returns = np.array([math.nan] + [math.log(b / a) for a, b in itertools.pairwise(prices)])
    assert_matches(got["value"], _window_ref(returns, window, statistics.stdev), atol=1e-14)


@st.composite
def ohlc_lists(draw: st.DrawFn) -> tuple[Array, Array, Array]:
    """Either tick bars (h = l = c) or integer bars with random wicks."""
    close = np.array(draw(price_lists))
    if draw(st.booleans()):
        return close, close, close
    wicks = st.lists(st.integers(0, 30).map(float), min_size=len(close), max_size=len(close))
    return close + np.array(draw(wicks)), close - np.array(draw(wicks)), close


@settings(max_examples=150, deadline=None)
@given(data=ohlc_lists(), period=st.integers(2, 6))
def test_wilder_family_matches_pandas(data: tuple[Array, Array, Array], period: int) -> None:
    high, low, close = data
    # The 0..100 oscillators are compared to 1e-9 absolute as well: near 0 the textbook reference
    # formulas (100 - 100/(1 + RS), |+DI - -DI|, log10 of a ratio ~1) lose their relative digits.
    rsi = RSI(period)
    got, _ = feed(rsi.update, rsi, [close], ["value"])
    assert_matches(got["value"], rsi_ref(close, period), atol=1e-9)

    atr = ATR(period)
    got, _ = feed(atr.update, atr, [high, low, close], ["value"])
    assert_matches(got["value"], atr_ref(high, low, close, period))

    adx = ADX(period)
    got, _ = feed(adx.update, adx, [high, low, close], ["plus_di", "minus_di", "adx"])
    ref = adx_ref(high, low, close, period)
    for name in ("plus_di", "minus_di", "adx"):
        assert_matches(got[name], ref[name], atol=1e-9)

    chop = Choppiness(period)
    got, _ = feed(chop.update, chop, [high, low, close], ["value"])
    assert_matches(got["value"], chop_ref(high, low, close, period), atol=1e-9)
