"""The synthetic market (determinism, book shape, trade intensity, regimes) and recorded-file replay."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bots.engine.types import Side
from bots.exchange.base import BookLevel, BookUpdate, Trade
from bots.exchange.sim import UNINFORMED, SimMarket, read_recording, write_recording
from bots.exchange.sim.replay import columns
from settings.models import BUILTIN_INSTRUMENTS

SYMBOL = "BTC_USDT_Perp"
S0 = {"BTC_USDT_Perp": 50_000.0, "ETH_USDT_Perp": 3_000.0, "SOL_USDT_Perp": 150.0}


def market(symbol: str = SYMBOL, seed: int = 7, *, plain: bool = False, **kwargs: float) -> SimMarket:
    """The sim market of `symbol`; `plain`: without informed flow, impact, lag or clustering."""
    params = {**UNINFORMED, **kwargs} if plain else kwargs
    return SimMarket(symbol, BUILTIN_INSTRUMENTS[symbol], seed=seed, s0=S0[symbol], **params)  # type: ignore[arg-type]


def test_same_seed_same_market() -> None:
    a, b = market(seed=11), market(seed=11)
    assert list(a.steps(3_000)) == list(b.steps(3_000))
    assert list(market(seed=12).steps(50)) != list(market(seed=11).steps(50))


def test_raw_path_matches_the_full_path() -> None:
    full, raw = market(seed=3), market(seed=3)
    tick = full.spec.tick_size
    for _ in range(3_000):
        book, trades = full.step()
        ts, bid, ask, raw_trades = raw.step_raw()
        assert (book.ts_ns, book.bids[0].price, book.asks[0].price) == (ts, bid * tick, ask * tick)
        assert [(t.taker_side is Side.BUY, t.price) for t in trades] == [
            (b, p * tick) for b, p, _ in raw_trades
        ]
        assert full.mid == raw.mid


@pytest.mark.parametrize("spacing", [1, 2])
@pytest.mark.parametrize("symbol", sorted(BUILTIN_INSTRUMENTS))
def test_book_on_the_tick_and_lot_and_never_crossed(symbol: str, spacing: int) -> None:
    m = market(symbol, level_spacing_ticks=spacing, max_spread_ticks=4)
    spec = BUILTIN_INSTRUMENTS[symbol]
    previous = None
    for _ in range(5_000):
        book, trades = m.step()
        assert book.symbol == symbol and len(book.bids) == len(book.asks) == 10
        assert book.bids[0].price < book.asks[0].price
        assert 1 <= (book.asks[0].price - book.bids[0].price) / spec.tick_size <= 4
        for levels, direction in ((book.bids, -1), (book.asks, 1)):
            for level in levels:
                assert (
                    level.price % spec.tick_size == 0 and level.size % spec.lot_size == 0 and level.size > 0
                )
            steps = {(b.price - a.price) * direction for a, b in itertools.pairwise(levels)}
            assert steps == {spacing * spec.tick_size}
        for trade in trades:
            assert trade.price % spec.tick_size == 0 and trade.size % spec.lot_size == 0
            if trade.taker_side is Side.BUY:
                assert trade.price >= book.asks[0].price
            else:
                assert trade.price <= book.bids[0].price
        if previous is not None:
            assert book.ts_ns - previous == 100_000_000
        previous = book.ts_ns


@pytest.mark.parametrize("spacing", [1, 2, 3])
def test_near_zero_the_book_shows_the_bid_levels_there_are(spacing: int) -> None:
    spec = BUILTIN_INSTRUMENTS[SYMBOL]
    sim = SimMarket(
        SYMBOL, spec, seed=2, s0=0.55, sigma=0.0, trade_intensity_a=0.0, level_spacing_ticks=spacing
    )
    for _ in range(50):
        book, _ = sim.step()
        best = round(book.bids[0].price / spec.tick_size)
        want = [best - k * spacing for k in range(10) if best - k * spacing >= 1]
        assert [round(level.price / spec.tick_size) for level in book.bids] == want
        assert len(book.asks) == 10


@pytest.mark.parametrize(
    ("tick", "lot"), [("0.1", "0.001"), ("0.01", "0.01"), ("0.5", "0.25"), ("0.001", "1")]
)
def test_the_top_of_book_floats_are_exactly_those_of_the_decimals(tick: str, lot: str) -> None:
    spec = BUILTIN_INSTRUMENTS[SYMBOL].model_copy(
        update={"tick_size": Decimal(tick), "lot_size": Decimal(lot), "min_size": Decimal(lot)}
    )
    sim = SimMarket(SYMBOL, spec, seed=5, s0=123.456, sigma=1e-3)
    for _ in range(3_000):
        book, _ = sim.step()
        assert book.top_book is not None
        converted = BookUpdate(book.symbol, book.ts_ns, book.bids, book.asks).top()
        assert book.top() == converted  # float(Decimal), field for field


def test_trade_intensity_decays_exponentially_with_depth() -> None:
    """Counts of trades per depth bucket follow A*exp(-k*delta)*dt: fit the log-counts."""
    k, a, dt = 1_000.0, 40.0, 0.1
    m = market(trade_intensity_a=a, trade_decay_k=k, dt_s=dt, sigma=1e-5, plain=True)
    tick = float(m.spec.tick_size)
    depths: list[float] = []
    steps = 40_000
    for _ in range(steps):
        _, _, _, trades = m.step_raw()
        mid = m.mid
        depths += [abs(price * tick / mid - 1.0) for _, price, _ in trades]
    width = 0.25 / k
    edges = np.arange(0.5 / k, 4.0 / k + width / 2, width)  # skip the spread: prints never go inside it
    counts, _ = np.histogram(depths, bins=edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    slope, intercept = np.polyfit(centres, np.log(counts), 1)
    assert abs(-slope - k) < 0.1 * k
    # Expected count in [c - w/2, c + w/2]: 2 sides * A*dt*steps * (exp(-k(c-w/2)) - exp(-k(c+w/2)))
    # = 4*A*dt*steps*sinh(k*w/2) * exp(-k*c): the intercept gives A back.
    fitted_a = math.exp(intercept) / (4 * dt * steps * math.sinh(k * width / 2))
    assert abs(fitted_a - a) < 0.1 * a


def test_calm_volatility_matches_sigma_and_bursts_raise_it() -> None:
    calm = market(sigma=2e-4, burst_rate_per_s=0.0, trend_rate_per_s=0.0, trade_intensity_a=0.0, plain=True)
    logs = [math.log(calm.mid)]
    for _ in range(20_000):
        calm.step_raw()
        logs.append(math.log(calm.mid))
    realised = float(np.std(np.diff(logs))) / math.sqrt(calm.dt_s)
    assert abs(realised - 2e-4) < 0.05 * 2e-4

    bursty = market(
        sigma=2e-4, burst_rate_per_s=0.5, burst_end_rate_per_s=0.5, burst_sigma_mult=5.0, plain=True
    )
    moves: dict[bool, list[float]] = {False: [], True: []}
    last = math.log(bursty.mid)
    for _ in range(20_000):
        bursty.step_raw()
        now = math.log(bursty.mid)
        moves[bursty.in_burst].append(now - last)
        last = now
    assert moves[True] and moves[False]
    ratio = float(np.std(moves[True]) / np.std(moves[False]))
    assert 4.0 < ratio < 6.0


def test_trend_episodes_drift_the_mid() -> None:
    m = market(sigma=1e-6, trend_rate_per_s=0.5, trend_end_rate_per_s=0.1, trend_drift=1e-3, plain=True)
    signs = set()
    for _ in range(5_000):
        before = m.mid
        m.step_raw()
        if m.trend:
            assert (m.mid > before) == (m.trend > 0)
            signs.add(m.trend)
    assert signs == {-1, 1}


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="s0"):
        market(sigma=-1.0)
    with pytest.raises(ValueError, match="levels"):
        market(levels=0)
    with pytest.raises(ValueError, match="stationary"):
        market(hawkes_branching=1.0)
    with pytest.raises(ValueError, match="impact"):
        market(impact_decay_s=0.0)


# -- informed flow ---------------------------------------------------------------------------------
def flow_and_next_move(m: SimMarket, steps: int, ahead: int) -> tuple[list[float], list[float]]:
    """Per step: signed trade count (buys - sells) and the mid's log change over the next `ahead` steps."""
    flow: list[float] = []
    logs: list[float] = []
    for _ in range(steps):
        _, _, _, trades = m.step_raw()
        flow.append(sum(1.0 if is_buy else -1.0 for is_buy, _, _ in trades))
        logs.append(math.log(m.mid))
    moves = [logs[i + ahead] - logs[i] for i in range(steps - ahead)]
    return flow[: steps - ahead], moves


def correlation(x: list[float], y: list[float]) -> float:
    a, b = np.asarray(x), np.asarray(y)
    return float(((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std()))


def test_trade_sides_predict_the_next_mid_change_only_with_informed_flow() -> None:
    """With the default informed flow, a step's buys minus sells predict the mid's move over the next
    10 s (the side of an informed trade is where the mid goes); in the plain model they do not."""
    informed = correlation(*flow_and_next_move(market(seed=3), 30_000, 100))
    plain = correlation(*flow_and_next_move(market(seed=3, plain=True), 30_000, 100))
    assert informed > 0.05, informed
    assert abs(plain) < 0.03, plain


def test_arrivals_cluster_with_hawkes_branching_and_not_without() -> None:
    """Trades per 10 s: Poisson (variance = mean) without clustering, overdispersed with it (about
    1/(1-n)^2 = 4 times for branching n = 0.5), and n multiplies the mean rate by about 1/(1-n)."""

    def per_second(m: SimMarket) -> npt.NDArray[np.float64]:
        counts = [len(m.step_raw()[3]) for _ in range(60_000)]
        return np.add.reduceat(np.array(counts, dtype=np.float64), np.arange(0, 60_000, 100))

    independent = per_second(market(seed=4, plain=True, trade_intensity_a=2.0))
    clustered = per_second(
        market(seed=4, plain=True, trade_intensity_a=2.0, hawkes_branching=0.5, hawkes_decay_s=1.0)
    )
    assert 0.8 < independent.var() / independent.mean() < 1.2
    assert clustered.var() / clustered.mean() > 2.5
    assert abs(clustered.mean() / independent.mean() - 2.0) < 0.2


def test_setting_the_mid_moves_the_whole_market_there() -> None:
    m = market()
    for _ in range(100):
        m.step_raw()
    m.log_mid = math.log(40_000.0)
    assert m.mid == pytest.approx(40_000.0) and m.fair == pytest.approx(40_000.0)
    _, bid, ask, _ = m.step_raw()
    assert abs((bid + ask) / 2 * float(m.spec.tick_size) / 40_000.0 - 1) < 1e-3


# -- replay ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_recording_round_trip(tmp_path: Path, suffix: str) -> None:
    steps = list(market(trade_intensity_a=20.0).steps(500))
    path = tmp_path / f"rec{suffix}"
    rows = write_recording(path, steps)
    assert rows == len(steps) + sum(len(trades) for _, trades in steps)
    assert list(read_recording(path)) == steps


def test_recording_keeps_short_books_and_drops_deep_levels(tmp_path: Path) -> None:
    level = BookLevel(Decimal("100.0"), Decimal("0.5"))
    deep = tuple(BookLevel(Decimal(100 + i), Decimal("1")) for i in range(5))
    trade = Trade(SYMBOL, 3, Decimal("0.00000001"), Decimal("2"), Side.SELL, "x-1")
    steps = [
        (BookUpdate(SYMBOL, 1, (level,), ()), [trade]),
        (BookUpdate(SYMBOL, 2, (), deep), []),
    ]
    path = tmp_path / "short.csv"
    write_recording(path, steps, levels=3)
    header = path.read_text().splitlines()[0].split(",")
    assert header == columns(3)
    back = list(read_recording(path))
    assert back[0] == steps[0]
    assert back[1][0].asks == deep[:3]
    assert "0.00000001" in path.read_text()  # plain decimals, no exponent


def test_replay_filters_by_symbol_and_skips_trades_before_the_first_book(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    head = ",".join(columns(1))
    path.write_text(
        f"{head}\n"
        "1,trade,BTC_USDT_Perp,,,,,100.0,1,buy,t0\n"
        "2,book,BTC_USDT_Perp,99.9,1,100.1,2,,,,\n"
        "3,book,ETH_USDT_Perp,9.9,1,10.1,2,,,,\n"
        "4,trade,BTC_USDT_Perp,,,,,100.1,0.5,buy,t1\n"
    )
    (book, trades), *rest = list(read_recording(path, symbol=SYMBOL))
    assert rest == [] and book.ts_ns == 2 and [t.trade_id for t in trades] == ["t1"]
    assert len(list(read_recording(path))) == 2


def test_replay_refuses_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        write_recording(tmp_path / "x.json", [])
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        list(read_recording(bad))
    odd = tmp_path / "odd.csv"
    odd.write_text(",".join(columns(1)) + "\n1,quote,BTC_USDT_Perp,,,,,,,,\n")
    with pytest.raises(ValueError, match="kind"):
        list(read_recording(odd))
