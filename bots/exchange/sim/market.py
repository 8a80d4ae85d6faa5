"""An offline synthetic market: a mid-price process, a layered book on the tick, and trade arrivals.

Deterministic for a seed, so a backtest or a test sees the same market every run. The model:

- mid: geometric Brownian motion, `dlog S = (mu - sigma^2/2) dt + sigma dW`, with two Markov regimes
  switched at random: volatility bursts (sigma times `burst_sigma_mult`) and trend episodes (mu set to
  +/- `trend_drift` per second). A switch happens with probability rate * dt per step.
- book: `levels` levels per side, `level_spacing_ticks` apart; best bid `floor(mid/tick - spread/2)`,
  best ask `spread` ticks above it (spread drawn in [1, max_spread_ticks]), so it is never crossed.
  Sizes are random whole lots that stay with a price level (a new level gets a fresh size) and
  `refresh_levels` visible levels get a new size each step, like a real book that mostly persists.
- trades: per side, Poisson arrivals, each reaching depth delta ~ Exponential(k) from mid, so the
  expected number of trades reaching depth delta in a step is A*exp(-k*delta)*dt: the fill intensity
  Avellaneda-Stoikov assume. A trade prints at the deepest price it reached, never inside the spread;
  `taker_side` BUY lifts asks (prints at or above the best ask), SELL hits bids. Its size is a few lots:
  it consumes the visible book from the touch, so a resting order deeper than that size fills only
  when the book itself moves through it (the fill model's queue rule), as on a real venue.
- informed flow (adverse selection, the force a market maker lives against): the mid above is the
  *fair* price; the book is centred on a *quoted* mid that follows it `quote_lag_s` late (the crowd's
  quotes are stale). `informed_intensity_a` more trades per second come from takers who know the
  fair price: they trade toward it (a buy when it is above the quoted mid), so their side predicts the
  next mid change, and each moves the quoted mid `impact_bps` their way for good. Uninformed trades
  move it `noise_impact_bps`, but only for a while (`impact_decay_s`): that overshoot is what a deeper
  quote earns back. Arrivals cluster: every trade raises its side's arrival rate by
  `hawkes_branching / hawkes_decay_s` per second, decaying with `hawkes_decay_s` (a Hawkes process;
  a branching ratio below 1 keeps it stationary), so a burst of one-sided trades walks the mid
  through the book. Sweeps (`sweep_rate_per_s`): a taker on the informed side takes the whole visible
  side and more, to a depth ~ Exponential(`sweep_bps`), in one print, and the mid jumps through the
  book to it, `sweep_permanent` of the way for good and the rest for `impact_decay_s`: what fills a
  quote away from the touch, mostly just before the price goes further. With the informed flow, the
  impacts and the sweeps at 0 and no clustering, the quoted mid is the fair mid and the model is the
  plain one above.

Speed: random numbers are drawn in numpy blocks and consumed as Python floats/ints, and `BookLevel`
objects live in a ladder indexed by tick, so a book snapshot is two list slices; `step()` stays a few
microseconds. `step_raw()` skips the Decimal boundary objects altogether (benchmarks, model fitting);
both consume the same random stream, so mid and trades agree between them for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from statistics import NormalDist
from typing import Final

import numpy as np

from bots.engine.types import Book, Side
from bots.exchange.base import BookLevel, BookUpdate, Trade
from settings.models import InstrumentSpec, SimSettings

__all__ = ["BUILTIN_START_PRICES", "UNINFORMED", "RawStep", "SimMarket", "Step"]

# Where a fresh sim market starts when nothing else says (no configured start price, no recorded mid).
BUILTIN_START_PRICES: Final[dict[str, float]] = {
    "BTC_USDT_Perp": 65_000.0,
    "ETH_USDT_Perp": 3_200.0,
    "SOL_USDT_Perp": 150.0,
}

# The parameters that switch the informed flow off (no informed takers, impact, lag, clustering or
# sweeps): the plain random walk with Poisson A*exp(-k*delta) trades, as SimMarket or SimSettings keywords.
UNINFORMED: Final[dict[str, float]] = {
    "informed_intensity_a": 0.0,
    "impact_bps": 0.0,
    "noise_impact_bps": 0.0,
    "quote_lag_s": 0.0,
    "hawkes_branching": 0.0,
    "sweep_rate_per_s": 0.0,
}

Step = tuple[BookUpdate, list[Trade]]
# ts_ns, best bid ticks, best ask ticks, trades as (taker is buyer, price ticks, size lots)
RawStep = tuple[int, int, int, list[tuple[bool, int, int]]]

_BUY: Final[Side] = Side.BUY
_SELL: Final[Side] = Side.SELL
_NS_PER_S: Final = 1_000_000_000
_DEFAULT_START_NS: Final = 1_704_067_200 * _NS_PER_S  # 2024-01-01T00:00:00Z
_BLOCK: Final = 4096  # steps of random numbers drawn per numpy call
_UNIFORMS: Final = 7  # per step: burst switch, trend switch, trend sign, buys, sells, informed, sweep
_SWEEP_EXTRA_LOTS: Final = 10  # a sweep's size beyond the visible book: this many trade-size draws
_LADDER_MARGIN: Final = 256  # ticks of levels added beyond the view when the price ladder grows
_LADDER_MAX: Final = 8_192  # ticks; a wider ladder is dropped and rebuilt around the price (~1.3 MB of
# levels at most, where 65,536 grew a bot by ~11 MB over hours; BTC at 60k rebuilds about every 40 min)
_BPS: Final = 1e-4  # a basis point as a fraction (and, for small moves, of log price)
_POISSON_INVERSION_MAX: Final = 30.0  # larger means: the normal approximation (inversion would underflow)
_NORMAL: Final = NormalDist()
_SIM: Final = SimSettings()  # the documented defaults of the market's parameters


def _poisson(lam: float, u: float) -> int:
    """A Poisson(lam) count from one uniform `u`, by inversion (a few steps for the small means here)."""
    if lam > _POISSON_INVERSION_MAX:
        z = _NORMAL.inv_cdf(min(max(u, 1e-12), 1.0 - 1e-12))
        return max(0, round(lam + math.sqrt(lam) * z))
    p = math.exp(-lam)
    cumulative = p
    n = 0
    while u > cumulative and p > 0.0:
        n += 1
        p *= lam / n
        cumulative += p
    return n


def _check(
    s0: float, dt_s: float, sigma: float, a: float, k: float, levels: int, spacing: int, spread: int
) -> None:
    if not (s0 > 0 and dt_s > 0 and sigma >= 0 and a >= 0 and k > 0):
        raise ValueError("need s0 > 0, dt_s > 0, sigma >= 0, trade_intensity_a >= 0, trade_decay_k > 0")
    if min(levels, spacing, spread) < 1:
        raise ValueError("levels, level_spacing_ticks, max_spread_ticks >= 1 and refresh_levels >= 0")


def _check_flow(
    informed_a: float,
    lag_s: float,
    impact_bps: float,
    impact_decay_s: float,
    branching: float,
    decay_s: float,
) -> None:
    if not (informed_a >= 0 and lag_s >= 0 and impact_bps >= 0 and impact_decay_s > 0):
        raise ValueError(
            "need informed_intensity_a, quote_lag_s, impact_bps, noise_impact_bps >= 0 and impact_decay_s > 0"
        )
    if not (0 <= branching < 1 and decay_s > 0):
        raise ValueError(
            "need 0 <= hawkes_branching < 1 (a stationary Hawkes process) and hawkes_decay_s > 0"
        )


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
        sigma: float = _SIM.sigma,
        start_ns: int = _DEFAULT_START_NS,
        burst_rate_per_s: float = 1 / 600,
        burst_end_rate_per_s: float = 1 / 60,
        burst_sigma_mult: float = 4.0,
        trend_rate_per_s: float = 1 / 900,
        trend_end_rate_per_s: float = 1 / 120,
        trend_drift: float = 5e-5,
        trade_intensity_a: float = _SIM.trade_intensity_a,
        trade_decay_k: float = _SIM.trade_decay_k,
        informed_intensity_a: float = _SIM.informed_intensity_a,
        quote_lag_s: float = _SIM.quote_lag_s,
        impact_bps: float = _SIM.impact_bps,
        noise_impact_bps: float = _SIM.noise_impact_bps,
        impact_decay_s: float = _SIM.impact_decay_s,
        hawkes_branching: float = _SIM.hawkes_branching,
        hawkes_decay_s: float = _SIM.hawkes_decay_s,
        sweep_rate_per_s: float = _SIM.sweep_rate_per_s,
        sweep_bps: float = _SIM.sweep_bps,
        sweep_permanent: float = _SIM.sweep_permanent,
        levels: int = 10,
        level_spacing_ticks: int = 1,
        max_spread_ticks: int = 3,
        refresh_levels: int = 1,
        level_lots: tuple[int, int] = (1, 50),
        trade_lots: tuple[int, int] = (1, 10),
    ) -> None:
        """`sigma` is the calm volatility of log mid per sqrt(second); `trend_drift` a fraction of mid
        per second; `trade_intensity_a` trades per second per side at zero depth; `trade_decay_k` per
        unit of depth as a fraction of mid (the A-S kappa); the informed flow's parameters are those of
        `SimSettings` (see the module docstring)."""
        _check(
            s0, dt_s, sigma, trade_intensity_a, trade_decay_k, levels, level_spacing_ticks, max_spread_ticks
        )
        if refresh_levels < 0:
            raise ValueError("levels, level_spacing_ticks, max_spread_ticks >= 1 and refresh_levels >= 0")
        if not (1 <= level_lots[0] <= level_lots[1] and 1 <= trade_lots[0] <= trade_lots[1]):
            raise ValueError("lot ranges must be (low, high) with 1 <= low <= high")
        self.symbol = symbol
        self.spec = spec
        self.dt_s = dt_s
        self.sigma = sigma
        self.trade_intensity_a = trade_intensity_a
        self.trade_decay_k = trade_decay_k
        self._set_flow(
            informed_intensity_a,
            quote_lag_s,
            (impact_bps, noise_impact_bps, impact_decay_s),
            hawkes_branching,
            hawkes_decay_s,
            (sweep_rate_per_s, sweep_bps, sweep_permanent),
        )
        self.levels, self.level_spacing_ticks = levels, level_spacing_ticks
        self._tick_d, self._tick = spec.tick_size, float(spec.tick_size)
        self._max_spread, self._refresh = max_spread_ticks, refresh_levels
        self._level_lots, self._trade_lots = level_lots, trade_lots
        self._sweep_visible = levels * level_lots[1]  # at least the visible size of one side, in lots
        largest = self._sweep_visible + _SWEEP_EXTRA_LOTS * trade_lots[1]  # a sweep's size at most
        self._lot_d = [spec.lot_size * n for n in range(largest + 1)]
        # The top of each book as floats, exactly float(Decimal) (an int ratio divides correctly rounded)
        # without that conversion's string round trip: ticks * tick_num / tick_den.
        self._tick_num, self._tick_den = spec.tick_size.as_integer_ratio()
        self._lot_f = [float(size) for size in self._lot_d]
        self._dt_ns = round(dt_s * _NS_PER_S)
        self._p_burst, self._burst_mult = (
            (burst_rate_per_s * dt_s, burst_end_rate_per_s * dt_s),
            burst_sigma_mult,
        )
        self._p_trend = (trend_rate_per_s * dt_s, trend_end_rate_per_s * dt_s)
        self._trend_drift = trend_drift

        self._rng = np.random.default_rng(seed)
        self._rng_sizes = np.random.default_rng([seed, 1])  # sizes of new levels: only step() uses it
        self.ts_ns = start_ns
        self.log_fair = math.log(s0)  # where the price is going: what informed takers know
        self._log_quoted = self.log_fair  # the crowd's lagging quotes, with the informed impact
        self._transient = 0.0  # uninformed impact on the quoted mid, decaying (log units)
        self._excite_buy = self._excite_sell = 0.0  # Hawkes excitation of each side, trades per second
        self.mid = s0  # the mid the book is centred on: exp(quoted + transient)
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
        self._refresh_k: list[int] = []
        self._refresh_lots: list[int] = []
        self._depth: list[float] = []
        self._tlots: list[int] = []

    def _set_flow(
        self,
        informed_a: float,
        lag_s: float,
        impact: tuple[float, float, float],
        branching: float,
        decay_s: float,
        sweep: tuple[float, float, float],
    ) -> None:
        """The informed flow's per-step constants (see the module docstring); `impact` is (informed bps,
        uninformed bps, the latter's time constant in seconds), `sweep` (rate per second, mean bps,
        permanent share)."""
        impact_bps, noise_impact_bps, impact_decay_s = impact
        sweep_rate, sweep_bps, sweep_permanent = sweep
        _check_flow(informed_a, lag_s, min(impact_bps, noise_impact_bps), impact_decay_s, branching, decay_s)
        if not (sweep_rate >= 0 and sweep_bps > 0 and 0 <= sweep_permanent <= 1):
            raise ValueError("need sweep_rate_per_s >= 0, sweep_bps > 0 and 0 <= sweep_permanent <= 1")
        self.informed_intensity_a = informed_a
        self._lag_weight = 1.0 - math.exp(-self.dt_s / lag_s) if lag_s > 0 else 1.0
        self._impact = impact_bps * _BPS
        self._noise_impact = noise_impact_bps * _BPS
        self._impact_keep = math.exp(-self.dt_s / impact_decay_s)  # of a transient impact, left a step on
        self._hawkes_keep = math.exp(-self.dt_s / decay_s)
        self._hawkes_jump = branching / decay_s  # arrivals per second added by one trade
        self._p_sweep = sweep_rate * self.dt_s
        self._sweep_scale = sweep_bps * _BPS * self.trade_decay_k  # turns an Exp(1/k) depth into Exp(bps)
        self._sweep_permanent = sweep_permanent

    @classmethod
    def of(
        cls, symbol: str, spec: InstrumentSpec, sim: SimSettings, *, seed: int, s0: float, start_ns: int
    ) -> SimMarket:
        """The market `sim` describes (sim mode, backtests)."""
        return cls(
            symbol,
            spec,
            seed=seed,
            s0=s0,
            dt_s=sim.book_interval_s,
            sigma=sim.sigma,
            start_ns=start_ns,
            trade_intensity_a=sim.trade_intensity_a,
            trade_decay_k=sim.trade_decay_k,
            informed_intensity_a=sim.informed_intensity_a,
            quote_lag_s=sim.quote_lag_s,
            impact_bps=sim.impact_bps,
            noise_impact_bps=sim.noise_impact_bps,
            impact_decay_s=sim.impact_decay_s,
            hawkes_branching=sim.hawkes_branching,
            hawkes_decay_s=sim.hawkes_decay_s,
            sweep_rate_per_s=sim.sweep_rate_per_s,
            sweep_bps=sim.sweep_bps,
            sweep_permanent=sim.sweep_permanent,
        )

    @property
    def log_mid(self) -> float:
        """Log of the mid the book is centred on."""
        return self._log_quoted + self._transient

    @log_mid.setter
    def log_mid(self, value: float) -> None:
        """Move the whole market there at once (news everyone sees: fair and quoted mid agree)."""
        self.log_fair = self._log_quoted = value
        self._transient = 0.0
        self.mid = math.exp(value)

    @property
    def fair(self) -> float:
        """The fair price the quoted mid follows (what informed takers trade toward)."""
        return math.exp(self.log_fair)

    def _set_increments(self) -> None:
        """Per-step drift and diffusion of log mid under the current regime (changes only on a switch)."""
        sigma = self.sigma * (self._burst_mult if self.in_burst else 1.0)
        mu = self.trend * self._trend_drift
        self._inc_mu = (mu - 0.5 * sigma * sigma) * self.dt_s
        self._inc_sigma = sigma * math.sqrt(self.dt_s)

    def _refill_steps(self) -> None:
        rng, n = self._rng, _BLOCK
        low, high = self._level_lots
        self._z = rng.standard_normal(n).tolist()
        self._u = rng.random(_UNIFORMS * n).tolist()
        self._spread = rng.integers(1, self._max_spread + 1, n).tolist()
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
        j = _UNIFORMS * i
        # Regime switches first, then the fair price's GBM step under the (possibly new) regime; the
        # quoted mid follows it late, plus what is left of the uninformed impact.
        if u[j] < self._p_burst[self.in_burst]:
            self.in_burst = not self.in_burst
            self._set_increments()
        if u[j + 1] < self._p_trend[self.trend != 0]:
            self.trend = 0 if self.trend else (1 if u[j + 2] < 0.5 else -1)
            self._set_increments()
        fair = self.log_fair = self.log_fair + self._inc_mu + self._inc_sigma * self._z[i]
        quoted = self._log_quoted = self._log_quoted + self._lag_weight * (fair - self._log_quoted)
        self._transient *= self._impact_keep
        log_mid = quoted + self._transient
        mid = self.mid = math.exp(log_mid)
        ts = self.ts_ns = self.ts_ns + self._dt_ns

        tick = self._tick
        spread = self._spread[i]
        bid = math.floor(mid / tick - 0.5 * spread)
        ask = bid + spread
        trades: list[tuple[bool, int, int]] = []
        dt = self.dt_s
        n_buy = _poisson((self.trade_intensity_a + self._excite_buy) * dt, u[j + 3])
        n_sell = _poisson((self.trade_intensity_a + self._excite_sell) * dt, u[j + 4])
        n_informed = _poisson(self.informed_intensity_a * dt, u[j + 5]) if self.informed_intensity_a else 0
        informed_buy = fair > log_mid  # informed takers trade toward the fair price
        n = n_buy + n_sell + n_informed
        buys = 0
        if n:
            if self._ti + n > len(self._depth):
                self._refill_trades()
            ti, depth, tlots = self._ti, self._depth, self._tlots
            buys = n_buy + (n_informed if informed_buy else 0)
            for _ in range(buys):
                trades.append((True, max(ask, math.ceil(mid * (1.0 + depth[ti]) / tick)), tlots[ti]))
                ti += 1
            for _ in range(n - buys):
                trades.append((False, min(bid, math.floor(mid * (1.0 - depth[ti]) / tick)), tlots[ti]))
                ti += 1
            self._ti = ti
            # After the prints: the informed move the quotes for good, the others for a while.
            signed_informed = n_informed if informed_buy else -n_informed
            self._log_quoted += self._impact * signed_informed
            self._transient += self._noise_impact * (n_buy - n_sell)
        self._excite_buy = self._excite_buy * self._hawkes_keep + self._hawkes_jump * buys
        self._excite_sell = self._excite_sell * self._hawkes_keep + self._hawkes_jump * (n - buys)
        if u[j + 6] < self._p_sweep:
            self._sweep(trades, informed_buy, mid, bid, ask)
        return ts, bid, ask, trades

    def _sweep(
        self, trades: list[tuple[bool, int, int]], is_buy: bool, mid: float, bid: int, ask: int
    ) -> None:
        """A burst of one-sided (informed-side) trading that takes the whole visible side and more, to a
        depth ~ Exponential(`sweep_bps`); one print at the deepest price, then the mid jumps through the
        book to it: `sweep_permanent` of the jump for good, the rest for `impact_decay_s`."""
        if self._ti + 1 > len(self._depth):
            self._refill_trades()
        ti = self._ti
        self._ti = ti + 1
        jump = self._depth[ti] * self._sweep_scale
        lots = self._sweep_visible + _SWEEP_EXTRA_LOTS * self._tlots[ti]
        tick = self._tick
        if is_buy:
            trades.append((True, max(ask, math.ceil(mid * (1.0 + jump) / tick)), lots))
            self._excite_buy += self._hawkes_jump
        else:
            trades.append((False, min(bid, math.floor(mid * (1.0 - jump) / tick)), lots))
            self._excite_sell += self._hawkes_jump
            jump = -jump
        self._log_quoted += jump * self._sweep_permanent
        self._transient += jump * (1.0 - self._sweep_permanent)

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
