"""Regime filters (one indicator each, turned into a Signal) and the signal latch; pure, no I/O.

A filter is a `RegimeFilter` subclass with a `name`, listed in `FILTERS`, so adding one is a class
plus one entry. `RegimeTracker` feeds tick bars (h = l = c = price) to the filter
chosen by `RegimeConfig.trend_strategy` and latches its signals until RSI or a flat position
releases them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar, Final

from bots.engine import pickling
from bots.engine.config import FilterConfig, RegimeConfig
from bots.engine.indicators import ADX, ATR, RSI, Bollinger, Choppiness
from bots.engine.types import Signal

__all__ = [
    "FILTERS",
    "ADXFilter",
    "ATRFilter",
    "BollingerFilter",
    "ChopFilter",
    "RSIFilter",
    "RegimeFilter",
    "RegimeTracker",
    "RegimeView",
    "next_latch",
]

_NEUTRAL: Final[Signal] = Signal.NEUTRAL
_BUY: Final[Signal] = Signal.BUY
_SELL: Final[Signal] = Signal.SELL


class RegimeFilter:
    """One indicator turned into a signal; NEUTRAL until its indicator has warmed up.

    A base class rather than a Protocol: compiled (mypyc), the tracker then calls `update` through a
    native method table on every book event instead of a generic Python method call.
    """

    name: ClassVar[str]

    def __init__(self, params: FilterConfig) -> None:
        """Build the filter's indicator from `params`."""

    def update(self, high: float, low: float, close: float) -> Signal:
        raise NotImplementedError


class BollingerFilter(RegimeFilter):
    """Mean reversion: a close at or below the lower band is BUY, at or above the upper is SELL.

    Zero-width bands (a flat window) give NEUTRAL: the close then sits on both bands.
    """

    name: ClassVar[str] = "bollinger"

    def __init__(self, params: FilterConfig) -> None:
        self._bands = Bollinger(params.bollinger_window, params.bollinger_num_std)

    def update(self, high: float, low: float, close: float) -> Signal:
        bands = self._bands
        bands.update(close)
        lower = bands.lower
        upper = bands.upper
        if not lower < upper:  # not ready (nan) or zero width
            return _NEUTRAL
        if close <= lower:
            return _BUY
        if close >= upper:
            return _SELL
        return _NEUTRAL


class RSIFilter(RegimeFilter):
    """Oversold (RSI < rsi_oversold) is BUY, overbought (RSI > rsi_overbought) is SELL."""

    name: ClassVar[str] = "rsi"

    def __init__(self, params: FilterConfig) -> None:
        self._rsi = RSI(params.rsi_period)
        self._oversold = params.rsi_oversold
        self._overbought = params.rsi_overbought

    def update(self, high: float, low: float, close: float) -> Signal:
        rsi = self._rsi
        rsi.update(close)
        value = rsi.value  # nan before ready: both comparisons are False
        if value < self._oversold:
            return _BUY
        if value > self._overbought:
            return _SELL
        return _NEUTRAL


class ADXFilter(RegimeFilter):
    """Trend following: ADX > adx_threshold gives the side of the larger DI (a tie is NEUTRAL)."""

    name: ClassVar[str] = "adx"

    def __init__(self, params: FilterConfig) -> None:
        self._adx = ADX(params.adx_period)
        self._threshold = params.adx_threshold

    def update(self, high: float, low: float, close: float) -> Signal:
        adx = self._adx
        adx.update(high, low, close)
        if not adx.adx > self._threshold:  # also False while adx is nan
            return _NEUTRAL
        if adx.plus_di > adx.minus_di:
            return _BUY
        if adx.minus_di > adx.plus_di:
            return _SELL
        return _NEUTRAL


class ATRFilter(RegimeFilter):
    """Breakout: a close-to-close move beyond atr_breakout_mult * ATR(previous bar).

    The ATR of the previous bar is used so the breakout bar does not widen its own threshold. After
    a perfectly flat stretch (ATR = 0) any move is a breakout.
    """

    name: ClassVar[str] = "atr"

    def __init__(self, params: FilterConfig) -> None:
        self._atr = ATR(params.atr_period)
        self._mult = params.atr_breakout_mult
        self._prev_close = float("nan")

    def update(self, high: float, low: float, close: float) -> Signal:
        atr = self._atr
        threshold = self._mult * atr.value  # previous bar's ATR, nan before ready
        move = close - self._prev_close
        self._prev_close = close
        atr.update(high, low, close)
        if move > threshold:
            return _BUY
        if move < -threshold:
            return _SELL
        return _NEUTRAL


class ChopFilter(RegimeFilter):
    """Choppiness below chop_trend_threshold means trending: signal the way the close moved over
    the last `chop_period` bars (close vs the close `chop_period` bars ago); otherwise NEUTRAL."""

    name: ClassVar[str] = "chop"

    def __init__(self, params: FilterConfig) -> None:
        self._chop = Choppiness(params.chop_period)
        self._period = params.chop_period
        self._threshold = params.chop_trend_threshold
        self._closes: deque[float] = deque(maxlen=params.chop_period + 1)

    def update(self, high: float, low: float, close: float) -> Signal:
        chop = self._chop
        chop.update(high, low, close)
        closes = self._closes
        closes.append(close)
        # nan (not ready / flat range) compares False; need `period` bars of history behind close
        if not chop.value < self._threshold or len(closes) <= self._period:
            return _NEUTRAL
        then = closes[0]
        if close > then:
            return _BUY
        if close < then:
            return _SELL
        return _NEUTRAL


def _by_name(*filters: type[RegimeFilter]) -> dict[str, type[RegimeFilter]]:
    names = [cls.name for cls in filters]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate regime filter names in {names}")
    return dict(zip(names, filters, strict=True))


# What `trend_strategy` may name: a new filter is a RegimeFilter subclass plus its entry here.
FILTERS: Final = _by_name(BollingerFilter, RSIFilter, ADXFilter, ATRFilter, ChopFilter)


def next_latch(
    latched: Signal,
    raw: Signal,
    rsi: float,
    position_is_flat: bool,
    release_rsi_buy: float,
    release_rsi_sell: float,
) -> Signal:
    """The latched signal after one update (NEUTRAL = no latch).

    A non-neutral raw signal sets or switches the latch. Otherwise the latch persists until a BUY
    latch sees rsi > release_rsi_buy, a SELL latch sees rsi < release_rsi_sell, or the position is
    flat. A nan RSI (not warmed up) never releases.
    """
    if raw is not _NEUTRAL:
        return raw
    if latched is _NEUTRAL or position_is_flat:
        return _NEUTRAL
    if latched is _BUY:
        return _NEUTRAL if rsi > release_rsi_buy else latched
    return _NEUTRAL if rsi < release_rsi_sell else latched


@dataclass(frozen=True, slots=True)
class RegimeView:
    """What the regime says after one tick: the filter's raw signal, the latched (effective) one
    the quoting uses, and the RSI that drives the latch release (nan while warming up)."""

    raw: Signal
    latched: Signal
    rsi: float


class RegimeTracker:
    """The configured filter plus the latch, fed one tick (h = l = c = price) per book event."""

    __slots__ = ("_filter", "_latched", "_release_buy", "_release_sell", "_rsi")

    def __init__(self, config: RegimeConfig) -> None:
        self._filter: RegimeFilter = FILTERS[config.trend_strategy](config.filters)
        self._rsi = RSI(config.filters.rsi_period)
        self._release_buy = config.latch_release_rsi_buy
        self._release_sell = config.latch_release_rsi_sell
        self._latched = _NEUTRAL

    @property
    def latched(self) -> Signal:
        return self._latched

    def update(self, price: float, position_is_flat: bool) -> RegimeView:
        raw, latched = self.step(price, position_is_flat)
        return RegimeView(raw, latched, self._rsi.value)

    def step(self, price: float, position_is_flat: bool) -> tuple[Signal, Signal]:
        """`update` without building the view: (raw, latched). The engine's per-event path."""
        raw = self._filter.update(price, price, price)
        rsi = self._rsi
        rsi.update(price)
        latched = next_latch(
            self._latched, raw, rsi.value, position_is_flat, self._release_buy, self._release_sell
        )
        self._latched = latched
        return raw, latched


pickling.register(RegimeView)
