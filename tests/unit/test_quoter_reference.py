"""The engine decides exactly what the strategy, written out plainly, decides.

`ReferenceEngine.on_book` is the strategy the straightforward way, independent of the engine's pieces
except the risk rules (`risk.assess`, held to its table in test_risk): the A-S and GLFT closed forms,
Python's round, min and max, the entry anchor as an optional pair, every grid layer with a dict merge
and a sort for the boosts, reduce-only as a filter and the position limit over both sides at once with
orders of any size. Engine and reference run over the same events and must agree on every field,
bit for bit, and on the risk state after each event; reference values pin one decision by hand.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bots.engine.quoter import Inventory, QuoteDecision, QuoteEngine
from bots.engine.quoting import boost, grid, grid_steps
from bots.engine.regime import RegimeTracker, RegimeView
from bots.engine.risk import RiskState, assess
from bots.engine.types import Book, DesiredOrder, OrderKind, Side, Signal, TradingState
from settings.models import BotSettings, StrategySettings

NS = 1_000_000_000
EPS = 1e-9  # the rounding guard: 50000.1/0.1 = 500000.99999999994


def bid_ticks(price: float, tick: float) -> int:
    return math.floor(price / tick + EPS)


def ask_ticks(price: float, tick: float) -> int:
    return math.ceil(price / tick - EPS)


class Anchor(NamedTuple):
    max_bid: int
    min_ask: int


def reference_entry_anchor(
    position_lots: int, entry_price: float, tolerance: float, tick: float
) -> Anchor | None:
    """Long: exits not below entry*(1 - tolerance), no buys above the entry; short mirrored; flat: none."""
    if position_lots == 0 or not entry_price > 0:
        return None
    if position_lots > 0:
        return Anchor(bid_ticks(entry_price, tick), ask_ticks(entry_price * (1 - tolerance), tick))
    return Anchor(bid_ticks(entry_price * (1 + tolerance), tick), ask_ticks(entry_price, tick))


def reference_keep_reducing(orders: list[DesiredOrder], position_lots: int) -> list[DesiredOrder]:
    """Only orders that shrink |position|: sells when long, buys when short, nothing when flat."""
    if position_lots > 0:
        return [o for o in orders if o.side is Side.SELL]
    if position_lots < 0:
        return [o for o in orders if o.side is Side.BUY]
    return []


def reference_clamp_to_limit(
    orders: list[DesiredOrder], position_lots: int, max_lots: int, reducing: bool
) -> list[DesiredOrder]:
    """Trim orders (best first per side) so that even if every one fills |position| stays within
    max_lots; reducing, only back to flat. Sizes may differ; the order that crosses is shrunk."""
    room = {
        Side.BUY: (-position_lots if reducing else max_lots - position_lots),
        Side.SELL: (position_lots if reducing else max_lots + position_lots),
    }
    kept: list[DesiredOrder] = []
    for order in orders:
        left = room[order.side]
        if left <= 0:
            continue
        size = min(order.size_lots, left)
        kept.append(order if size == order.size_lots else dataclasses.replace(order, size_lots=size))
        room[order.side] = left - size
    return kept


def reference_model(
    config: BotSettings, q: float, sigma: float, gamma: float, kappa: float
) -> tuple[float, float]:
    """Reservation price and total spread at s = 1: A-S eq. (29), (30) or GLFT (Gueant 2017, 4.6)."""
    strategy = config.strategy
    if strategy.model == "glft":
        growth = math.exp((1.0 + kappa / gamma) * math.log1p(gamma / kappa))
        omega = sigma * math.sqrt(gamma / (2.0 * kappa * strategy.intensity_a_value) * growth)
        return 1.0 - omega * q, 2.0 * (math.log1p(gamma / kappa) / gamma + 0.5 * omega)
    tau = strategy.horizon_s
    return 1.0 - q * gamma * sigma * sigma * tau, gamma * sigma * sigma * tau + (2.0 / gamma) * math.log1p(
        gamma / kappa
    )


def reference_build_quotes(
    strategy: StrategySettings,
    mid: float,
    center: float,
    half_spread: float,
    tick: float,
    size_lots: int,
    best_bid_ticks: int,
    best_ask_ticks: int,
    signal: Signal,
    anchor: Anchor | None,
) -> list[DesiredOrder]:
    """The grid, boosts and clamps with no shortcut: every layer, min/max, a dict merge and a sort."""
    max_bid = best_ask_ticks - 1
    min_ask = best_bid_ticks + 1
    if anchor is not None:
        max_bid = min(max_bid, anchor.max_bid)
        min_ask = max(min_ask, anchor.min_ask)
    bids: list[DesiredOrder] = []
    asks: list[DesiredOrder] = []
    last_bid = last_ask = -1
    for layer in range(strategy.grid_layers):
        distance = mid * (half_spread + layer * strategy.grid_spacing_pct)
        bid = min(bid_ticks(center - distance, tick), max_bid)
        ask = max(ask_ticks(center + distance, tick), min_ask)
        if bid != last_bid and bid > 0:
            bids.append(DesiredOrder(Side.BUY, bid, size_lots, layer))
            last_bid = bid
        if ask != last_ask:
            asks.append(DesiredOrder(Side.SELL, ask, size_lots, layer))
            last_ask = ask
    if strategy.signal_boost and signal is not Signal.NEUTRAL:
        offsets = strategy.boost_offsets_pct
        if signal is Signal.BUY:
            cap = min(max_bid, asks[0].price_ticks - 1)
            boosts = [
                DesiredOrder(Side.BUY, price, size_lots, layer, OrderKind.BOOST)
                for layer, offset in enumerate(offsets)
                if (price := min(bid_ticks(mid * (1.0 - offset), tick), cap)) > 0
            ]
            bids = _reference_merge(boosts + bids, descending=True)
        else:
            lowest = max(min_ask, bids[0].price_ticks + 1 if bids else 0)
            boosts = [
                DesiredOrder(
                    Side.SELL,
                    max(ask_ticks(mid * (1.0 + offset), tick), lowest),
                    size_lots,
                    layer,
                    OrderKind.BOOST,
                )
                for layer, offset in enumerate(offsets)
            ]
            asks = _reference_merge(boosts + asks, descending=False)
    return bids + asks


def _reference_merge(orders: list[DesiredOrder], *, descending: bool) -> list[DesiredOrder]:
    merged: dict[int, DesiredOrder] = {}
    for order in orders:
        merged.setdefault(order.price_ticks, order)
    return [merged[p] for p in sorted(merged, reverse=descending)]


class ReferenceEngine:
    """The engine's state (clock, volatility, regime, risk) driven through the public pieces."""

    def __init__(self, config: BotSettings) -> None:
        self.settings = config
        self.engine = QuoteEngine(config.engine_config())  # for its indicators only, fed through observe()
        self.risk_state = RiskState()
        self.gamma = config.strategy.gamma
        self.kappa = config.strategy.kappa_value
        self.limits = config.engine_config().risk
        self.last_ts_ns = 0
        self.view = RegimeView(Signal.NEUTRAL, Signal.NEUTRAL, math.nan)

    def on_book(self, book: Book, inventory: Inventory, now_ns: int) -> QuoteDecision:
        strategy, risk, spec = self.settings.strategy, self.settings.risk, self.settings.spec
        tick, lot = float(spec.tick_size), float(spec.lot_size)
        if not book.is_quotable():
            return self._no_quotes("book not quotable (crossed, empty or NaN)")
        if now_ns - book.ts_ns > risk.max_book_age_s * NS:
            return self._no_quotes(f"book older than {risk.max_book_age_s}s: stale")
        mid = book.mid
        position_lots = round(inventory.position_base / lot)
        if book.ts_ns > self.last_ts_ns:  # only a newer book moves the indicators
            self.last_ts_ns = book.ts_ns
            self.view = self.engine.observe(mid, book.ts_ns, position_lots == 0)
        view = self.view
        reasons: list[str] = []
        sigma = self.engine.sigma()
        if math.isnan(sigma):
            reasons.append("volatility warming up: sigma taken as 0")
            sigma = 0.0
        position_usd = inventory.position_base * mid
        q = position_usd / strategy.order_size_usd
        gamma, kappa = self.gamma, self.kappa
        reservation, model_spread = reference_model(self.settings, q, sigma, gamma, kappa)
        spread = max(model_spread, strategy.spread_pct)
        half_spread = 0.5 * spread
        skew = risk.inventory_skew_factor * max(-1.0, min(1.0, position_usd / risk.max_position_usd))
        center = mid * (reservation - skew * half_spread)
        verdict = assess(
            self.limits,
            self.risk_state,
            position_usd,
            inventory.unrealized_pnl_usd,
            inventory.equity_usd,
            inventory.peak_equity_usd,
        )
        self.risk_state = verdict.risk_state
        reasons.extend(verdict.reasons)
        orders: list[DesiredOrder] = []
        max_bid = min_ask = -1  # the price limits: none without orders
        size_lots = math.floor(strategy.order_size_usd / mid / lot + EPS)
        min_lots = math.ceil(spec.effective_min_size / spec.lot_size)
        if size_lots < min_lots:
            reasons.append(f"order_size_usd {strategy.order_size_usd} is below the minimum size")
        elif verdict.state is not TradingState.HALTED:
            tolerance = (
                strategy.loss_tolerance_signal_pct
                if view.latched is not Signal.NEUTRAL
                else strategy.loss_tolerance_neutral_pct
            )
            anchor = (
                reference_entry_anchor(position_lots, inventory.entry_price, tolerance, tick)
                if strategy.entry_anchor_mode
                else None
            )
            max_bid, min_ask = round(book.ask_price / tick) - 1, round(book.bid_price / tick) + 1
            if anchor is not None:
                max_bid, min_ask = min(max_bid, anchor.max_bid), max(min_ask, anchor.min_ask)
            orders = reference_build_quotes(
                strategy,
                mid,
                center,
                half_spread,
                tick,
                size_lots,
                round(book.bid_price / tick),
                round(book.ask_price / tick),
                view.latched,
                anchor,
            )
            reducing = verdict.state is TradingState.REDUCING
            if reducing:
                orders = reference_keep_reducing(orders, position_lots)
            max_lots = math.floor(risk.max_position_usd / mid / lot + EPS)
            orders = reference_clamp_to_limit(orders, position_lots, max_lots, reducing)
        return QuoteDecision(
            orders=tuple(orders),
            state=verdict.state,
            close_position=verdict.close_position,
            reasons=tuple(reasons),
            mid=mid,
            reservation_price=mid * reservation,
            spread_pct=spread,
            sigma=sigma,
            gamma=gamma,
            kappa=kappa,
            signal=view.raw,
            latched=view.latched,
            max_bid_ticks=max_bid,
            min_ask_ticks=min_ask,
            model_spread_pct=model_spread,
        )

    def _no_quotes(self, reason: str) -> QuoteDecision:
        tripped = self.risk_state.breaker_tripped or self.risk_state.drawdown_tripped
        state = TradingState.HALTED if tripped else TradingState.ACTIVE
        return QuoteDecision(orders=(), state=state, close_position=False, reasons=(reason,))


def _same(a: Any, b: Any) -> bool:
    """Equal, bit for bit: NaN equals NaN, 0.0 differs from -0.0, and types must match."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
        )
    if isinstance(a, tuple) and isinstance(b, tuple):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


@st.composite
def configs(draw: st.DrawFn) -> BotSettings:
    order_size = draw(st.floats(60.0, 2_000.0))
    return BotSettings.model_validate(
        {
            "symbol": draw(st.sampled_from(["BTC_USDT_Perp", "ETH_USDT_Perp"])),
            "strategy": {
                "model": draw(st.sampled_from(["avellaneda", "glft"])),
                "gamma": draw(st.floats(0.01, 50.0)),
                "kappa": draw(st.floats(1.0, 1e5)),
                "spread_pct": draw(st.floats(1e-5, 0.05)),
                "grid_layers": draw(st.integers(1, 12)),
                "grid_spacing_pct": draw(st.floats(1e-5, 0.01)),
                "order_size_usd": order_size,
                "trend_strategy": draw(st.sampled_from(["bollinger", "rsi", "adx", "atr", "chop"])),
                "volatility_window_ticks": draw(st.integers(2, 30)),
                "entry_anchor_mode": draw(st.booleans()),
                "signal_boost": draw(st.booleans()),
                "boost_offsets_pct": tuple(draw(st.lists(st.floats(1e-5, 0.02), min_size=1, max_size=3))),
                "loss_tolerance_neutral_pct": draw(st.sampled_from([0.0, 0.002])),
            },
            "risk": {
                "max_position_usd": draw(st.floats(order_size, 50_000.0)),
                "inventory_skew_factor": draw(st.floats(0.0, 5.0)),
                "max_loss_usd": draw(st.sampled_from([1e9, 50.0])),
                "max_drawdown_pct": draw(st.sampled_from([0.05, 0.3])),
            },
        }
    )


@st.composite
def events(draw: st.DrawFn) -> list[tuple[Book, Inventory, int]]:
    """Books on a random walk (some crossed, empty, NaN or stale) with the inventory moving beside."""
    price = draw(st.floats(100.0, 60_000.0))
    position = draw(st.floats(-2.0, 2.0))
    entry = price * (1 + draw(st.floats(-0.05, 0.05)))
    equity = peak = 10_000.0
    ts = 0
    out: list[tuple[Book, Inventory, int]] = []
    for _ in range(draw(st.integers(1, 40))):
        price *= math.exp(draw(st.sampled_from([1e-4, 1e-3, 5e-3])) * draw(st.floats(-3.0, 3.0)))
        bid = round(price, 2)
        ask = bid + 0.1 * draw(st.integers(1, 20))
        kind = draw(st.integers(0, 29))
        if kind == 0:
            bid, ask = ask, bid
        elif kind == 1:
            bid = math.nan
        ts += draw(st.sampled_from([100_000_000, 1_000_000_000, 0, 1]))
        now = ts + (6 * NS if kind == 2 else 0)
        if draw(st.integers(0, 9)) == 0:
            position = draw(st.sampled_from([0.0, -position, position * 3]))
        if draw(st.integers(0, 19)) == 0:
            entry = draw(st.sampled_from([math.nan, 0.0, price * 1.01, price * 0.99, round(price, 1)]))
        if draw(st.integers(0, 19)) == 0:
            equity = draw(st.floats(5_000.0, 11_000.0))
            peak = max(peak, equity)
        unrealized = 0.0 if math.isnan(entry) else position * (price - entry)
        inventory = Inventory(position, entry, unrealized, equity, peak)
        out.append((Book(ts, bid, 1.0, ask, 1.0 if kind != 3 else 0.0), inventory, now))
    return out


@settings(max_examples=300, deadline=None)
@given(config=configs(), path=events(), retune=st.sampled_from([None, (2.5, 700.0)]))
def test_on_book_decides_as_its_pieces_do(
    config: BotSettings, path: list[tuple[Book, Inventory, int]], retune: tuple[float, float] | None
) -> None:
    engine, reference = QuoteEngine(config.engine_config()), ReferenceEngine(config)
    for number, (book, inventory, now_ns) in enumerate(path):
        if retune is not None and number == len(path) // 2:  # a tuner moving gamma and kappa
            engine.gamma, engine.kappa = retune
            reference.gamma, reference.kappa = retune
        got = engine.on_book(book, inventory, now_ns)
        want = reference.on_book(book, inventory, now_ns)
        for field in (f.name for f in dataclasses.fields(QuoteDecision)):
            assert _same(getattr(got, field), getattr(want, field)), (number, field, got, want)
        assert engine.risk_state == reference.risk_state


def test_reconfigured_engine_reads_the_new_settings() -> None:
    old = BotSettings(symbol="BTC_USDT_Perp")
    new = old.model_copy(
        update={"strategy": old.strategy.model_copy(update={"grid_layers": 2, "gamma": 3.0})}
    )
    engine = QuoteEngine(old.engine_config()).reconfigured(new.engine_config())
    reference = ReferenceEngine(new)
    book = Book(0, 50_000.0, 1.0, 50_000.1, 1.0)
    inventory = Inventory(equity_usd=10_000.0, peak_equity_usd=10_000.0)
    assert engine.config == new.engine_config() and engine.gamma == 3.0
    assert engine.on_book(book, inventory, 0) == reference.on_book(book, inventory, 0)
    assert len(engine.on_book(book, inventory, 0).orders) == 4


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["bollinger", "rsi", "adx", "atr", "chop"]),
    steps=st.lists(st.tuples(st.integers(-30, 30), st.booleans()), min_size=1, max_size=120),
)
def test_regime_step_latches_as_written(name: str, steps: list[tuple[int, bool]]) -> None:
    """The latch the engine steps (`next_latch` inside `RegimeTracker.step`) against the rule written
    out: a signal sets or switches it; without one it holds until a flat position, or the RSI crossing
    the release level of its side, lets go."""
    strategy = StrategySettings(trend_strategy=name)
    regime = BotSettings(symbol="BTC_USDT_Perp", strategy=strategy).engine_config().regime
    tracker, plain = RegimeTracker(regime), RegimeTracker(regime)
    latched = Signal.NEUTRAL
    price = 1_000.0
    for move, flat in steps:
        price += move * 0.5
        view = tracker.update(price, flat)
        raw = plain._filter.update(price, price, price)
        plain._rsi.update(price)
        rsi = plain._rsi.value
        if raw is not Signal.NEUTRAL:
            latched = raw
        elif (
            flat
            or (latched is Signal.BUY and rsi > strategy.latch_release_rsi_buy)
            or (latched is Signal.SELL and rsi < strategy.latch_release_rsi_sell)
        ):
            latched = Signal.NEUTRAL
        assert (view.raw, view.latched) == (raw, latched)
        assert _same(view.rsi, rsi)


@settings(max_examples=400, deadline=None)
@given(
    layers=st.integers(1, 10),
    spacing=st.sampled_from([1e-6, 1e-5, 1e-4, 0.0012]),
    boosts=st.lists(st.sampled_from([1e-5, 0.0002, 0.0005, 0.001, 0.003]), min_size=1, max_size=3),
    boost_on=st.booleans(),
    mid=st.floats(100.0, 60_000.0),
    shift=st.floats(-0.01, 0.01),
    half_spread=st.sampled_from([1e-5, 0.0005, 0.0025, 0.01]),
    tick=st.sampled_from([0.1, 0.01, 1.0]),
    book=st.tuples(st.integers(-3, 3), st.integers(1, 20)),
    signal=st.sampled_from(Signal),
    anchor=st.none() | st.tuples(st.floats(-0.01, 0.01), st.floats(-0.01, 0.01)),
)
def test_grid_and_boost_are_the_reference(
    layers: int,
    spacing: float,
    boosts: list[float],
    boost_on: bool,
    mid: float,
    shift: float,
    half_spread: float,
    tick: float,
    book: tuple[int, int],
    signal: Signal,
    anchor: tuple[float, float] | None,
) -> None:
    """Clamps that pile layers onto one price, boosts out of order, on or behind the grid."""
    strategy = StrategySettings(
        grid_layers=layers, grid_spacing_pct=spacing, boost_offsets_pct=tuple(boosts), signal_boost=boost_on
    )
    mid_ticks = round(mid / tick)
    best_bid = mid_ticks + book[0]
    limits = (
        None
        if anchor is None
        else Anchor(max_bid=round(mid * (1 + anchor[0]) / tick), min_ask=round(mid * (1 + anchor[1]) / tick))
    )
    args = (
        strategy,
        mid,
        mid * (1 + shift),
        half_spread,
        tick,
        4,
        best_bid,
        best_bid + book[1],
        signal,
        limits,
    )
    max_bid, min_ask = best_bid + book[1] - 1, best_bid + 1
    if limits is not None:
        max_bid, min_ask = min(max_bid, limits.max_bid), max(min_ask, limits.min_ask)
    center = mid * (1 + shift)
    bids, asks = grid(mid, center, half_spread, tick, 4, max_bid, min_ask, grid_steps(layers, spacing))
    if boost_on:
        bids, asks = boost(bids, asks, mid, tick, 4, max_bid, min_ask, signal, tuple(boosts))
    got = bids + asks
    assert got == reference_build_quotes(*args)
    assert all(type(order) is DesiredOrder for order in got)


@pytest.mark.parametrize("model", ["avellaneda", "glft"])
def test_limit_and_loss_boundaries_decide_as_the_pieces_do(model: str) -> None:
    """Positions a lot either side of where the grid stops fitting, a loss exactly at the limit, and
    entry anchors on the tick."""
    config = BotSettings.model_validate(
        {
            "symbol": "BTC_USDT_Perp",
            "strategy": {
                "model": model,
                "grid_layers": 3,
                "order_size_usd": 200.0,
                "entry_anchor_mode": False,
            },
            "risk": {"max_position_usd": 650.0, "max_loss_usd": 50.0},
        }
    )
    book = Book(0, 50_000.0, 1.0, 50_000.1, 1.0)
    anchored = config.model_copy(
        update={"strategy": config.strategy.model_copy(update={"entry_anchor_mode": True})}
    )
    for position_lots, unrealized, entry, settings_ in itertools.product(
        range(-16, 17), (0.0, -50.0, -49.999999), (50_000.0, 49_999.9, 50_123.4), (config, anchored)
    ):
        inventory = Inventory(position_lots * 0.001, entry, unrealized, 10_000.0, 10_000.0)
        engine, reference = QuoteEngine(settings_.engine_config()), ReferenceEngine(settings_)
        got = engine.on_book(book, inventory, 0)
        want = reference.on_book(book, inventory, 0)
        assert _same(got, want), (position_lots, unrealized, entry, got, want)
        assert engine.risk_state == reference.risk_state


@pytest.mark.parametrize(
    ("symbol", "bid", "ask", "entry"),
    [
        # mid above the entry: the anchor caps the bids; 50000.1/0.1 = 500000.99999999994
        ("BTC_USDT_Perp", 50_200.0, 50_200.5, 50_000.1),
        ("BTC_USDT_Perp", 50_200.0, 50_200.5, 50_000.7),
        # mid below the entry: the anchor lifts the asks; 2.47/0.01 lies just above 247
        ("ETH_USDT_Perp", 2.40, 2.41, 2.47),
        ("ETH_USDT_Perp", 2.20, 2.21, 2.24),
    ],
)
def test_entry_anchors_on_the_tick_decide_as_the_pieces_do(
    symbol: str, bid: float, ask: float, entry: float
) -> None:
    """Where the rounding guard decides the anchor's tick, for long and short positions."""
    config = BotSettings.model_validate(
        {"symbol": symbol, "strategy": {"order_size_usd": 60.0}, "risk": {"max_position_usd": 1e6}}
    )
    book = Book(0, bid, 1.0, ask, 1.0)
    for lots in (-3, 3):
        position = (
            lots * float(config.spec.lot_size) * max(1, round(60.0 / bid / float(config.spec.lot_size)))
        )
        inventory = Inventory(position, entry, 0.0, 10_000.0, 10_000.0)
        got = QuoteEngine(config.engine_config()).on_book(book, inventory, 0)
        want = ReferenceEngine(config).on_book(book, inventory, 0)
        assert got.orders and _same(got, want), (lots, got, want)


@pytest.mark.parametrize(
    ("floor", "bids", "asks"),
    [
        # The default 0.05% floor: the A-S spread 0.2% decides, layer i at mid*(1 -+ (0.09995% + i*0.12%)).
        (
            None,
            [499_500, 498_900, 498_300, 497_700, 497_100, 496_500, 495_900],
            [500_501, 501_101, 501_701, 502_301, 502_901, 503_501, 504_101],
        ),
        # A 0.5% floor binds: layer i at mid*(1 -+ (0.25% + i*0.12%)).
        (
            0.005,
            [498_750, 498_150, 497_550, 496_950, 496_350, 495_750, 495_150],
            [501_251, 501_851, 502_451, 503_051, 503_651, 504_251, 504_851],
        ),
    ],
)
def test_a_first_decision_by_hand(floor: float | None, bids: list[int], asks: list[int]) -> None:
    """Default BTC bot, flat, first book (sigma unknown, so 0): the A-S spread is (2/1)*ln(1.001) =
    0.2%; the quoted spread is the larger of it and the floor; 200 USD is 3 lots."""
    strategy = {} if floor is None else {"spread_pct": floor}
    engine = QuoteEngine(
        BotSettings.model_validate({"symbol": "BTC_USDT_Perp", "strategy": strategy}).engine_config()
    )
    inventory = Inventory(equity_usd=10_000.0, peak_equity_usd=10_000.0)
    decision = engine.on_book(Book(0, 50_000.0, 1.0, 50_000.1, 1.0), inventory, 0)
    assert decision.state is TradingState.ACTIVE and not decision.close_position
    assert decision.reasons == ("volatility warming up: sigma taken as 0",)
    model_spread = 2.0 * math.log1p(0.001)
    assert decision.model_spread_pct == model_spread
    assert decision.floor_binds is (floor is not None)
    spread = model_spread if floor is None else floor
    assert (decision.mid, decision.reservation_price, decision.spread_pct) == (50_000.05, 50_000.05, spread)
    assert (decision.sigma, decision.gamma, decision.kappa) == (0.0, 1.0, 1000.0)
    assert [o.price_ticks for o in decision.orders if o.side is Side.BUY] == bids
    assert [o.price_ticks for o in decision.orders if o.side is Side.SELL] == asks
    assert {(o.size_lots, o.kind) for o in decision.orders} == {(3, OrderKind.GRID)}
    assert [o.layer for o in decision.orders] == [*range(7), *range(7)]
