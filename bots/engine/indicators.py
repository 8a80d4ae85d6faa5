"""Incremental technical indicators: O(1) amortized per update, pure Python floats.

Every indicator is fed one bar at a time and exposes `ready` plus value attributes that are
`math.nan` until warm-up is complete. Tick data has only a price; callers pass
`high = low = close = price`, which every indicator handles (the true range is then |change|).

Inputs must be finite (prices positive); the hot path does not validate them.

Precision. Rolling second moments of prices near 50,000 lose almost every digit to cancellation
in the textbook `sum(x^2) - sum(x)^2/n`, and pandas' own add/remove Welford (`rolling().std()`)
drifts by ~1e-7 relative on such data (far more with a window of 2). `_WindowMoments` keeps sums
of deviations from an anchor near the data (`x - anchor` is exact by Sterbenz's lemma for prices)
and rebuilds them exactly (`math.fsum`, anchor = window mean) whenever its error bound
`ops_since_rebuild * peak(s2) * eps` could exceed ~1.5e-11 of the current `m2`. The bound grows
only when the mean drifts from the anchor or the variance collapses (a burst leaves the window):
on a random walk a rebuild of `window` values comes every 3 to 15 window lengths of updates, and
a collapse by 2**16 can repeat only a few times before it needs a new burst, which takes `window`
updates to leave again, so rebuilds stay O(1) amortized. Rolling sums of non-negative true
ranges (Choppiness) use the same rule.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

__all__ = ["ADX", "ATR", "RSI", "Bollinger", "Choppiness", "LogReturnVolatility", "RollingStd"]

_NAN: Final = math.nan
# Rebuild when ops_since_rebuild * peak_sum > _REBUILD_RATIO * current_value: the accumulated
# rounding error (<= ~ops * eps * peak) then stays below ~2**16 * 2.2e-16 = 1.5e-11 relative.
_REBUILD_RATIO: Final = 65536.0


def _check_window(window: int, name: str = "window") -> None:
    if window < 2:
        raise ValueError(f"{name} must be at least 2, got {window}")


class _WindowMoments:
    """Mean and sum of squared deviations (m2) of the last `window` values, numerically stable.

    s1 = sum(x - anchor), s2 = sum((x - anchor)^2), m2 = s2 - s1^2/n, mean = anchor + s1/n.
    A window of identical values gives m2 = 0 and mean = x exactly (as pandas does).
    """

    __slots__ = ("_anchor", "_buf", "_last", "_mean", "_ops", "_peak", "_run", "_s1", "_s2", "_window")

    def __init__(self, window: int) -> None:
        _check_window(window)
        self._window = window
        self._buf: deque[float] = deque(maxlen=window)
        self._anchor = 0.0
        self._s1 = 0.0
        self._s2 = 0.0
        self._peak = 0.0
        self._ops = 0
        self._run = 0
        self._last = _NAN
        self._mean = _NAN

    @property
    def ready(self) -> bool:
        """True once the window is full."""
        return len(self._buf) == self._window

    def _push(self, x: float) -> float:
        """Add `x` (dropping the oldest value once full); return m2 and set `_mean`."""
        buf = self._buf
        if not buf:
            self._anchor = x
        anchor = self._anchor
        d = x - anchor
        if len(buf) == self._window:
            old = buf[0] - anchor
            self._s1 += d - old
            self._s2 += d * d - old * old
        else:
            self._s1 += d
            self._s2 += d * d
        buf.append(x)
        if x == self._last:
            self._run += 1
        else:
            self._last = x
            self._run = 1
        n = len(buf)
        if self._run >= n:  # every value in the window is x: exact answer, no rounding
            self._mean = x
            return 0.0
        s1 = self._s1
        s2 = self._s2
        peak = self._peak
        if s2 > peak:
            self._peak = peak = s2
        self._ops += 1
        m2 = s2 - s1 * s1 / n
        if self._ops * peak > _REBUILD_RATIO * m2:
            return self._rebuild()
        self._mean = anchor + s1 / n
        return m2 if m2 > 0.0 else 0.0

    def _rebuild(self) -> float:
        """Re-anchor at the window mean and recompute the sums exactly: O(window), rarely."""
        buf = self._buf
        n = len(buf)
        anchor = math.fsum(buf) / n
        devs = [x - anchor for x in buf]
        s1 = math.fsum(devs)
        s2 = math.fsum([d * d for d in devs])
        self._anchor = anchor
        self._s1 = s1
        self._s2 = s2
        self._peak = s2
        self._ops = 0
        self._mean = anchor + s1 / n
        m2 = s2 - s1 * s1 / n
        return m2 if m2 > 0.0 else 0.0


class RollingStd(_WindowMoments):
    """Sample std (ddof=1) and mean of the last `window` values.

    Same definition as `pd.Series.rolling(window).std()` / `.mean()`, computed more accurately than
    pandas' online algorithm (see the module docstring).
    """

    __slots__ = ("mean", "value")

    def __init__(self, window: int) -> None:
        super().__init__(window)
        self.value = _NAN
        self.mean = _NAN

    def update(self, x: float) -> None:
        m2 = self._push(x)
        if len(self._buf) == self._window:
            self.value = math.sqrt(m2 / (self._window - 1))
            self.mean = self._mean


class LogReturnVolatility(_WindowMoments):
    """Sample std (ddof=1) of the last `window` log returns: sigma per tick.

    Returns are `log1p((p - prev) / prev)`: `p - prev` is exact, so each return is accurate to a
    few ulps, better than `log(p) - log(prev)` (which pandas' reference uses) for tiny moves.
    """

    __slots__ = ("_prev", "value")

    def __init__(self, window: int) -> None:
        super().__init__(window)
        self._prev = 0.0  # prices are positive: 0 means no previous price yet
        self.value = _NAN

    def update(self, price: float) -> None:
        prev = self._prev
        self._prev = price
        if prev == 0.0:  # first price: no return yet
            return
        m2 = self._push(math.log1p((price - prev) / prev))
        if len(self._buf) == self._window:
            self.value = math.sqrt(m2 / (self._window - 1))


class Bollinger(_WindowMoments):
    """Bollinger bands (J. Bollinger, 1980s): rolling mean +- num_std * rolling std.

    The std is the population std (ddof=0), as in Bollinger's definition, so the bands match
    `mean +- k * close.rolling(w).std(ddof=0)`.
    """

    __slots__ = ("_num_std", "lower", "middle", "upper")

    def __init__(self, window: int, num_std: float) -> None:
        super().__init__(window)
        if not num_std > 0:
            raise ValueError(f"num_std must be positive, got {num_std}")
        self._num_std = num_std
        self.middle = _NAN
        self.upper = _NAN
        self.lower = _NAN

    def update(self, close: float) -> None:
        m2 = self._push(close)
        if len(self._buf) == self._window:
            mid = self._mean
            half = self._num_std * math.sqrt(m2 / self._window)
            self.middle = mid
            self.upper = mid + half
            self.lower = mid - half


class RSI:
    """Wilder's (1978) Relative Strength Index on closes, in [0, 100].

    avg_gain/avg_loss start as the simple mean of the first `period` changes, then follow Wilder
    smoothing avg = (avg * (period - 1) + x) / period. RSI = 100 * avg_gain / (avg_gain + avg_loss)
    (= 100 - 100 / (1 + RS), without the cancellation near 0); 100 when avg_loss is 0, 50 when both are.
    Ready after `period + 1` closes.
    """

    __slots__ = ("_avg_gain", "_avg_loss", "_count", "_period", "_pm1", "_prev", "value")

    def __init__(self, period: int) -> None:
        _check_window(period, "period")
        self._period = period
        self._pm1 = float(period - 1)
        self._prev = _NAN
        self._count = -1  # changes seen, capped at period; -1 until the first close
        self._avg_gain = 0.0  # running sums during the seed, Wilder averages after
        self._avg_loss = 0.0
        self.value = _NAN

    @property
    def ready(self) -> bool:
        return self._count == self._period

    def update(self, close: float) -> None:
        change = close - self._prev
        self._prev = close
        gain = change if change > 0.0 else 0.0
        loss = -change if change < 0.0 else 0.0
        period = self._period
        if self._count == period:
            # Wilder (1978) smoothing: avg_t = (avg_{t-1} * (n - 1) + x_t) / n
            ag = (self._avg_gain * self._pm1 + gain) / period
            al = (self._avg_loss * self._pm1 + loss) / period
            self._avg_gain = ag
            self._avg_loss = al
            if al == 0.0:
                self.value = 50.0 if ag == 0.0 else 100.0
            else:
                self.value = 100.0 * ag / (ag + al)
        else:
            self._seed(gain, loss)

    def _seed(self, gain: float, loss: float) -> None:
        """Warm-up: sum the first `period` changes, then average them (Wilder's seed)."""
        self._count += 1
        if self._count == 0:  # first close: the change against nan is not a change
            return
        self._avg_gain += gain
        self._avg_loss += loss
        if self._count == self._period:
            ag = self._avg_gain = self._avg_gain / self._period
            al = self._avg_loss = self._avg_loss / self._period
            if al == 0.0:
                self.value = 50.0 if ag == 0.0 else 100.0
            else:
                self.value = 100.0 * ag / (ag + al)


def _true_range(high: float, low: float, prev_close: float) -> float:
    """Wilder's TR = max(h - l, |h - pc|, |l - pc|) = max(h, pc) - min(l, pc) for low <= high."""
    return (high if high > prev_close else prev_close) - (low if low < prev_close else prev_close)


class ATR:
    """Wilder's (1978) Average True Range.

    TR = max(high - low, |high - prev_close|, |low - prev_close|), the first bar's TR = high - low.
    ATR starts as the simple mean of the first `period` TRs (ready after `period` bars), then
    ATR = (ATR * (period - 1) + TR) / period. For tick bars (h = l = c), TR = |change|.
    """

    __slots__ = ("_count", "_period", "_pm1", "_prev_close", "_sum", "value")

    def __init__(self, period: int) -> None:
        _check_window(period, "period")
        self._period = period
        self._pm1 = float(period - 1)
        self._prev_close = _NAN
        self._count = 0
        self._sum = 0.0
        self.value = _NAN

    @property
    def ready(self) -> bool:
        return self._count == self._period

    def update(self, high: float, low: float, close: float) -> None:
        pc = self._prev_close
        self._prev_close = close
        period = self._period
        if self._count == period:
            # TR = max(h, pc) - min(l, pc); Wilder (1978): ATR_t = (ATR_{t-1} * (n - 1) + TR_t) / n
            tr = (high if high > pc else pc) - (low if low < pc else pc)
            self.value = (self.value * self._pm1 + tr) / period
            return
        self._sum += high - low if self._count == 0 else _true_range(high, low, pc)
        self._count += 1
        if self._count == period:
            self.value = self._sum / period


class ADX:
    """Wilder's (1978) Average Directional Index with +DI and -DI.

    From the second bar: up = high - prev_high, down = prev_low - low; +DM = up if up > down and
    up > 0 else 0; -DM = down if down > up and down > 0 else 0; TR as in ATR. TR, +DM and -DM are
    Wilder-smoothed (seed: mean of the first `period` values; the DI ratios equal those of Wilder's
    running sums). +DI = 100 * +DM_s / TR_s, -DI likewise (0 when TR_s = 0); DX = 100 * |+DI - -DI|
    / (+DI + -DI) (0 when both are 0). ADX seeds with the mean of the first `period` DX values, then
    ADX = (ADX * (period - 1) + DX) / period.

    `plus_di`, `minus_di` and `dx` are available from bar `period` (0-based, the first bar has no
    DM); `adx`/`value` and `ready` from bar `2 * period - 1`.
    """

    __slots__ = (
        "_adx_count",
        "_adx_sum",
        "_bars",
        "_mdm",
        "_pdm",
        "_period",
        "_pm1",
        "_prev_close",
        "_prev_high",
        "_prev_low",
        "_tr",
        "adx",
        "dx",
        "minus_di",
        "plus_di",
    )

    def __init__(self, period: int) -> None:
        _check_window(period, "period")
        self._period = period
        self._pm1 = float(period - 1)
        self._bars = -1  # bars with a previous bar (DM/TR values), capped at period
        self._prev_high = _NAN
        self._prev_low = _NAN
        self._prev_close = _NAN
        self._tr = 0.0  # running sums during the seed, Wilder averages after
        self._pdm = 0.0
        self._mdm = 0.0
        self._adx_count = 0  # DX values seen, capped at period
        self._adx_sum = 0.0
        self.plus_di = _NAN
        self.minus_di = _NAN
        self.dx = _NAN
        self.adx = _NAN

    @property
    def value(self) -> float:
        return self.adx

    @property
    def ready(self) -> bool:
        return self._adx_count == self._period

    def update(self, high: float, low: float, close: float) -> None:
        up = high - self._prev_high
        down = self._prev_low - low
        pc = self._prev_close
        self._prev_high = high
        self._prev_low = low
        self._prev_close = close
        pdm = up if up > down and up > 0.0 else 0.0
        mdm = down if down > up and down > 0.0 else 0.0
        tr = (high if high > pc else pc) - (low if low < pc else pc)  # Wilder's TR
        period = self._period
        if self._bars != period:
            self._seed(tr, pdm, mdm)
            return
        # Wilder (1978) smoothing of TR, +DM, -DM: avg_t = (avg_{t-1} * (n - 1) + x_t) / n
        pm1 = self._pm1
        s_tr = self._tr = (self._tr * pm1 + tr) / period
        s_pdm = self._pdm = (self._pdm * pm1 + pdm) / period
        s_mdm = self._mdm = (self._mdm * pm1 + mdm) / period
        self._directional(s_tr, s_pdm, s_mdm)

    def _seed(self, tr: float, pdm: float, mdm: float) -> None:
        """Warm-up: sum the first `period` TR/DM values, then average them."""
        self._bars += 1
        if self._bars == 0:  # first bar: no previous bar, no DM
            return
        self._tr += tr
        self._pdm += pdm
        self._mdm += mdm
        if self._bars == self._period:
            self._tr /= self._period
            self._pdm /= self._period
            self._mdm /= self._period
            self._directional(self._tr, self._pdm, self._mdm)

    def _directional(self, s_tr: float, s_pdm: float, s_mdm: float) -> None:
        """+DI, -DI, DX from the smoothed TR/DM, and the ADX step (Wilder 1978)."""
        if s_tr > 0.0:
            pdi = 100.0 * s_pdm / s_tr
            mdi = 100.0 * s_mdm / s_tr
        else:
            pdi = mdi = 0.0
        di_sum = pdi + mdi
        dx = 100.0 * abs(pdi - mdi) / di_sum if di_sum > 0.0 else 0.0
        self.plus_di = pdi
        self.minus_di = mdi
        self.dx = dx
        period = self._period
        if self._adx_count == period:
            self.adx = (self.adx * self._pm1 + dx) / period
            return
        self._adx_sum += dx  # seed: mean of the first `period` DX values
        self._adx_count += 1
        if self._adx_count == period:
            self.adx = self._adx_sum / period


class Choppiness:
    """Choppiness Index (Dreiss): 100 * log10(sum(TR, n) / (max(high, n) - min(low, n))) / log10(n).

    TR as in ATR (first bar: high - low). Near 100: choppy; near 0: trending. The rolling max/min
    use monotonic deques (amortized O(1)). Ready once `period` bars are in; when the window's range
    is 0 (a flat market) the index is undefined, so `value` is nan and `ready` is False for that bar.
    """

    __slots__ = (
        "_bars",
        "_max_idx",
        "_max_val",
        "_min_idx",
        "_min_val",
        "_ops",
        "_peak",
        "_period",
        "_prev_close",
        "_scale",
        "_sum",
        "_trs",
        "value",
    )

    def __init__(self, period: int) -> None:
        _check_window(period, "period")
        self._period = period
        self._scale = 100.0 / math.log10(period)
        self._prev_close = _NAN
        self._bars = 0
        self._trs: deque[float] = deque(maxlen=period)
        self._sum = 0.0
        self._peak = 0.0
        self._ops = 0
        # Monotonic deques of (bar index, value) as parallel deques: no tuple per update.
        self._max_idx: deque[int] = deque()
        self._max_val: deque[float] = deque()
        self._min_idx: deque[int] = deque()
        self._min_val: deque[float] = deque()
        self.value = _NAN

    @property
    def ready(self) -> bool:
        return not math.isnan(self.value)

    def update(self, high: float, low: float, close: float) -> None:
        t = self._bars
        self._bars = t + 1
        pc = self._prev_close
        self._prev_close = close
        tr = high - low if t == 0 else (high if high > pc else pc) - (low if low < pc else pc)
        trs = self._trs
        total = self._sum = self._sum + (tr - trs[0] if len(trs) == self._period else tr)
        trs.append(tr)
        peak = self._peak
        if total > peak:
            self._peak = peak = total
        self._ops += 1
        if self._ops * peak > _REBUILD_RATIO * total:
            total = self._resum()

        expired = t - self._period  # bars at or before this index have left the window
        max_idx = self._max_idx
        max_val = self._max_val
        while max_val and max_val[-1] <= high:
            max_val.pop()
            max_idx.pop()
        max_val.append(high)
        max_idx.append(t)
        if max_idx[0] <= expired:
            max_idx.popleft()
            max_val.popleft()
        min_idx = self._min_idx
        min_val = self._min_val
        while min_val and min_val[-1] >= low:
            min_val.pop()
            min_idx.pop()
        min_val.append(low)
        min_idx.append(t)
        if min_idx[0] <= expired:
            min_idx.popleft()
            min_val.popleft()

        if expired < -1:  # fewer than `period` bars so far
            return
        rng = max_val[0] - min_val[0]
        self.value = self._scale * math.log10(total / rng) if rng > 0.0 else _NAN

    def _resum(self) -> float:
        """Exact re-sum of the TR window when the running sum's error bound grows (see module doc)."""
        total = self._sum = self._peak = math.fsum(self._trs)
        self._ops = 0
        return total
