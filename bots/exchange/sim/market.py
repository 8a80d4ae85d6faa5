"""An offline synthetic market: a mid-price process, a layered book on the tick, and trade arrivals.

Deterministic for a seed, so a backtest or a test sees the same market every run. The model:

- mid: geometric Brownian motion, `dlog S = (mu - sigma^2/2) dt + sigma dW`, with two Markov regimes
  switched at random: volatility bursts (sigma times `burst_sigma_mult`) and trend episodes (mu set to
  +/- `trend_drift` per second). A switch happens with probability rate * dt per step.
- book: `levels` levels per side, `level_spacing_ticks` apart; best bid `floor(mid/tick - spread/2)`,
  best ask `spread` ticks above it (spread drawn in [1, max_spread_ticks]), so it is never crossed.
  Sizes are random whole lots that stay with a price level (a new level gets a fresh size) and
  `refresh_levels` visible levels get a new size each step, like a real book that mostly persists.
- trades: per side, Poisson(A*dt) trades per step, each reaching depth delta ~ Exponential(k) from mid,
  so the expected number of trades reaching depth delta in a step is A*exp(-k*delta)*dt: the fill
  intensity Avellaneda-Stoikov assume. A trade prints at the deepest price it reached, never inside the
  spread; `taker_side` BUY lifts asks (prints at or above the best ask), SELL hits bids.

Speed: random numbers are drawn in numpy blocks and consumed as Python floats/ints, and `BookLevel`
objects live in a ladder indexed by tick, so a book snapshot is two list slices; `step()` stays a few
microseconds. `step_raw()` skips the Decimal boundary objects altogether (benchmarks, model fitting);
both consume the same random stream, so mid and trades agree between them for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Final

import numpy as np

from bots.engine.types import Book, Side
from bots.exchange.base import BookLevel, BookUpdate, Trade
from settings.models import InstrumentSpec

__all__ = ["BUILTIN_START_PRICES", "RawStep", "SimMarket", "Step"]

# Where a fresh sim market starts when nothing else says (no configured start price, no recorded mid).
BUILTIN_START_PRICES: Final[dict[str, float]] = {
    "BTC_USDT_Perp": 65_000.0,
    "ETH_USDT_Perp": 3_200.0,
    "SOL_USDT_Perp": 150.0,
}

Step = tuple[BookUpdate, list[Trade]]
# ts_ns, best bid ticks, best ask ticks, trades as (taker is buyer, price ticks, size lots)
RawStep = tuple[int, int, int, list[tuple[bool, int, int]]]

_BUY: Final[Side] = Side.BUY
_SELL: Final[Side] = Side.SELL
_NS_PER_S: Final = 1_000_000_000
_DEFAULT_START_NS: Final = 1_704_067_200 * _NS_PER_S  # 2024-01-01T00:00:00Z
_BLOCK: Final = 4096  # steps of random numbers drawn per numpy call
_LADDER_MARGIN: Final = 256  # ticks of levels added beyond the view when the price ladder grows
_LADDER_MAX: Final = 65_536  # ticks; a wider ladder is dropped and rebuilt around the price


class SimMarket:
    """Synthetic market of one instrument; `step()` advances time by `dt_s` and returns the new state."""

    def __init__(
        self,
        symbol: str,
        spec: InstrumentSpec,
        *,
        seed: int,
        s0: float,
        dt_s: float = 0.1,
        sigma: float = 1e-4,
        start_ns: int = _DEFAULT_START_NS,
        burst_rate_per_s: float = 1 / 600,
        burst_end_rate_per_s: float = 1 / 60,
        burst_sigma_mult: float = 4.0,
        trend_rate_per_s: float = 1 / 900,
        trend_end_rate_per_s: float = 1 / 120,
        trend_drift: float = 5e-5,
        trade_intensity_a: float = 2.0,
        trade_decay_k: float = 1000.0,
        levels: int = 10,
        level_spacing_ticks: int = 1,
        max_spread_ticks: int = 3,
        refresh_levels: int = 1,
        level_lots: tuple[int, int] = (1, 50),
        trade_lots: tuple[int, int] = (1, 10),
    ) -> None:
        """`sigma` is the calm volatility of log mid per sqrt(second); `trend_drift` a fraction of mid
        per second; `trade_intensity_a` trades per second per side at zero depth; `trade_decay_k` per
        unit of depth as a fraction of mid (the A-S kappa)."""
        if not (s0 > 0 and dt_s > 0 and sigma >= 0 and trade_intensity_a >= 0 and trade_decay_k > 0):
            raise ValueError("need s0 > 0, dt_s > 0, sigma >= 0, trade_intensity_a >= 0, trade_decay_k > 0")
        if min(levels, level_spacing_ticks, max_spread_ticks) < 1 or refresh_levels < 0:
            raise ValueError("levels, level_spacing_ticks, max_spread_ticks >= 1 and refresh_levels >= 0")
        if not (1 <= level_lots[0] <= level_lots[1] and 1 <= trade_lots[0] <= trade_lots[1]):
            raise ValueError("lot ranges must be (low, high) with 1 <= low <= high")
        self.symbol = symbol
        self.spec = spec
        self.dt_s = dt_s
        self.sigma = sigma
        self.trade_intensity_a = trade_intensity_a
        self.trade_decay_k = trade_decay_k
        self.levels = levels
        self.level_spacing_ticks = level_spacing_ticks
        self._tick_d = spec.tick_size
        self._tick = float(spec.tick_size)
        self._max_spread, self._refresh = max_spread_ticks, refresh_levels
        self._level_lots, self._trade_lots = level_lots, trade_lots
        self._lot_d = [spec.lot_size * n for n in range(max(level_lots[1], trade_lots[1]) + 1)]
        # The top of each book as floats, exactly float(Decimal) (an int ratio divides correctly rounded)
        # without that conversion's string round trip: ticks * tick_num / tick_den.
        self._tick_num, self._tick_den = spec.tick_size.as_integer_ratio()
        self._lot_f = [float(size) for size in self._lot_d]
        self._dt_ns = round(dt_s * _NS_PER_S)
        self._p_burst = (burst_rate_per_s * dt_s, burst_end_rate_per_s * dt_s)
        self._burst_mult = burst_sigma_mult
        self._p_trend = (trend_rate_per_s * dt_s, trend_end_rate_per_s * dt_s)
        self._trend_drift = trend_drift

        self._rng = np.random.default_rng(seed)
        self._rng_sizes = np.random.default_rng([seed, 1])  # sizes of new levels: only step() uses it
        self.ts_ns = start_ns
        self.log_mid = math.log(s0)
        self.mid = s0
        self.in_burst = False
        self.trend = 0  # -1, 0 or +1: direction of the current drift episode
        self._set_increments()
        self._trade_count = 0

        self._ladder: list[BookLevel] = []
        self._ladder_lots: list[int] = []  # each ladder level's size in lots
        self._base = 0  # ticks of _ladder[0]
        self._i = _BLOCK  # forces a refill on the first step
        self._ti = 0
        self._z: list[float] = []
        self._u: list[float] = []
        self._spread: list[int] = []
        self._n_buy: list[int] = []
        self._n_sell: list[int] = []
        self._refresh_k: list[int] = []
        self._refresh_lots: list[int] = []
        self._depth: list[float] = []
        self._tlots: list[int] = []

    def _set_increments(self) -> None:
        """Per-step drift and diffusion of log mid under the current regime (changes only on a switch)."""
        sigma = self.sigma * (self._burst_mult if self.in_burst else 1.0)
        mu = self.trend * self._trend_drift
        self._inc_mu = (mu - 0.5 * sigma * sigma) * self.dt_s
        self._inc_sigma = sigma * math.sqrt(self.dt_s)

    def _refill_steps(self) -> None:
        rng, n = self._rng, _BLOCK
        lam = self.trade_intensity_a * self.dt_s
        low, high = self._level_lots
        self._z = rng.standard_normal(n).tolist()
        self._u = rng.random(3 * n).tolist()
        self._spread = rng.integers(1, self._max_spread + 1, n).tolist()
        self._n_buy = rng.poisson(lam, n).tolist()
        self._n_sell = rng.poisson(lam, n).tolist()
        self._refresh_k = rng.integers(0, 2 * self.levels, self._refresh * n).tolist()
        self._refresh_lots = rng.integers(low, high + 1, self._refresh * n).tolist()
        self._i = 0

    def _refill_trades(self) -> None:
        low, high = self._trade_lots
        self._depth = self._rng.exponential(1.0 / self.trade_decay_k, _BLOCK).tolist()
        self._tlots = self._rng.integers(low, high + 1, _BLOCK).tolist()
        self._ti = 0

    def step_raw(self) -> RawStep:
        """Advance one step and return it in ticks and lots (no Decimal, no boundary objects)."""
        i = self._i
        if i >= _BLOCK:
            self._refill_steps()
            i = 0
        self._i = i + 1
        u = self._u
        # Regime switches first, then the GBM step under the (possibly new) regime.
        if u[3 * i] < self._p_burst[self.in_burst]:
            self.in_burst = not self.in_burst
            self._set_increments()
        if u[3 * i + 1] < self._p_trend[self.trend != 0]:
            self.trend = 0 if self.trend else (1 if u[3 * i + 2] < 0.5 else -1)
            self._set_increments()
        self.log_mid += self._inc_mu + self._inc_sigma * self._z[i]
        mid = self.mid = math.exp(self.log_mid)
        ts = self.ts_ns = self.ts_ns + self._dt_ns

        tick = self._tick
        spread = self._spread[i]
        bid = math.floor(mid / tick - 0.5 * spread)
        ask = bid + spread
        trades: list[tuple[bool, int, int]] = []
        n_buy, n_sell = self._n_buy[i], self._n_sell[i]
        if n_buy or n_sell:
            if self._ti + n_buy + n_sell > len(self._depth):
                self._refill_trades()
            ti, depth, tlots = self._ti, self._depth, self._tlots
            for _ in range(n_buy):
                trades.append((True, max(ask, math.ceil(mid * (1.0 + depth[ti]) / tick)), tlots[ti]))
                ti += 1
            for _ in range(n_sell):
                trades.append((False, min(bid, math.floor(mid * (1.0 - depth[ti]) / tick)), tlots[ti]))
                ti += 1
            self._ti = ti
        return ts, bid, ask, trades

    def step(self) -> Step:
        """Advance one step: the book snapshot after it and the trades that printed during it."""
        ts, bid, ask, raw_trades = self.step_raw()
        book = self._book(ts, bid, ask)
        if not raw_trades:
            return book, []
        trades: list[Trade] = []
        lot_d = self._lot_d
        for is_buy, price_ticks, lots in raw_trades:
            if price_ticks > 0:
                self._trade_count += 1
                trades.append(
                    Trade(
                        self.symbol,
                        ts,
                        self._tick_d * price_ticks,
                        lot_d[lots],
                        _BUY if is_buy else _SELL,
                        f"sim-{self._trade_count}",
                    )
                )
        return book, trades

    def steps(self, count: int | None = None) -> Iterator[Step]:
        """`count` steps (forever when None), e.g. for `paced()` or `write_recording()`."""
        produced = 0
        while count is None or produced < count:
            yield self.step()
            produced += 1

    # -- the book from the price ladder ---------------------------------------------------------------
    def _book(self, ts: int, bid: int, ask: int) -> BookUpdate:
        n, sp = self.levels, self.level_spacing_ticks
        lo, hi = bid - (n - 1) * sp, ask + (n - 1) * sp
        if lo < self._base or hi >= self._base + len(self._ladder):
            self._grow(lo, hi)
        ladder, lots, base = self._ladder, self._ladder_lots, self._base
        j = (self._i - 1) * self._refresh
        for q in range(j, j + self._refresh):  # new sizes for a few visible levels
            k = self._refresh_k[q]
            index = (bid - k * sp if k < n else ask + (k - n) * sp) - base
            if index >= 0:
                size = lots[index] = self._refresh_lots[q]
                ladder[index] = BookLevel(ladder[index].price, self._lot_d[size])
        b, a = bid - base, ask - base
        # One level per tick (the default) slices without a step: compiled, a stepped slice is a generic call.
        asks = tuple(ladder[a : a + n]) if sp == 1 else tuple(ladder[a : a + n * sp : sp])
        if b < 0:  # price near zero: no bid levels
            return BookUpdate(self.symbol, ts, (), asks)
        if sp == 1:
            side = ladder[b - n + 1 if b >= n - 1 else 0 : b + 1]  # price near zero: fewer bid levels
            side.reverse()
            bids = tuple(side)
        else:
            bids = tuple(ladder[b : b - n * sp : -sp]) if b - n * sp >= 0 else tuple(ladder[b::-sp])
        num, den, lot_f = self._tick_num, self._tick_den, self._lot_f
        top = Book(ts, bid * num / den, lot_f[lots[b]], ask * num / den, lot_f[lots[a]])
        return BookUpdate(self.symbol, ts, bids, asks, top)

    def _grow(self, lo: int, hi: int) -> None:
        """Extend the ladder to cover ticks [lo, hi] (never below 1 tick), or start over around them
        when it would get too long; every tick inside the ladder holds a level."""
        lo = max(lo, 1)
        base, end = self._base, self._base + len(self._ladder)
        if not self._ladder or max(hi, end) - min(lo, base) > _LADDER_MAX:
            self._base = max(1, lo - _LADDER_MARGIN)
            self._ladder, self._ladder_lots = self._new_levels(self._base, hi + _LADDER_MARGIN + 1)
            return
        if lo < base:
            self._base = max(1, lo - _LADDER_MARGIN)
            levels, lots = self._new_levels(self._base, base)
            self._ladder[0:0] = levels
            self._ladder_lots[0:0] = lots
        if hi >= end:
            levels, lots = self._new_levels(end, hi + _LADDER_MARGIN + 1)
            self._ladder.extend(levels)
            self._ladder_lots.extend(lots)

    def _new_levels(self, start: int, stop: int) -> tuple[list[BookLevel], list[int]]:
        """Levels for ticks [start, stop), each with a fresh random size, and those sizes in lots."""
        low, high = self._level_lots
        lots: list[int] = self._rng_sizes.integers(low, high + 1, max(stop - start, 0)).tolist()
        tick, lot_d = self._tick_d, self._lot_d
        ticks = range(start, stop)
        return [BookLevel(tick * price, lot_d[n]) for price, n in zip(ticks, lots, strict=True)], lots
