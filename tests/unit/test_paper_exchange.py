"""PaperExchange end to end on the synthetic market and on a replayed recording, and the sim factory
(asyncio.run, no plugin)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from bots.engine.portfolio import Portfolio
from bots.engine.types import Side
from bots.errors import ConfigError, ExchangeError, Rejected
from bots.exchange.base import BookUpdate, Capabilities, Exchange, Fill, OrderRequest, OrderStatus, Trade
from bots.exchange.factory import make_exchange, market_source
from bots.exchange.paper_exchange import PaperExchange
from bots.exchange.sim import SimMarket, paced, read_recording, write_recording
from settings.models import BUILTIN_INSTRUMENTS, BotSettings, PaperSettings

SYMBOL = "BTC_USDT_Perp"
SPEC = BUILTIN_INSTRUMENTS[SYMBOL]
D = Decimal
Step = tuple[BookUpdate, list[Trade]]


def sim_steps(count: int, seed: int = 5) -> Iterable[Step]:
    """A busy market: many trades reach a few basis points from mid."""
    market = SimMarket(SYMBOL, SPEC, seed=seed, s0=50_000.0, trade_intensity_a=20.0, trade_decay_k=2_000.0)
    return market.steps(count)


def exchange(steps: Iterable[Step], settings: PaperSettings | None = None) -> PaperExchange:
    return PaperExchange(SYMBOL, SPEC, paced(steps), settings or PaperSettings(touch_fill_probability=0.5))


async def place_grid(ex: PaperExchange, layers: int = 5, spacing_bp: int = 4) -> list[str]:
    """Bids and asks every `spacing_bp` basis points from the current mid."""
    book = await ex.book(SYMBOL)
    mid = (book.bids[0].price + book.asks[0].price) / 2
    ids = []
    for layer in range(1, layers + 1):
        for side in (Side.BUY, Side.SELL):
            offset = mid * layer * spacing_bp / 10_000
            price = ((mid - side.sign * offset) / SPEC.tick_size).quantize(D(1)) * SPEC.tick_size
            request = OrderRequest(SYMBOL, side, price, D("0.01"), f"{side.value}-{layer}")
            update = await ex.place_order(request)
            assert update.status is OrderStatus.OPEN
            ids.append(request.client_order_id)
    return ids


def test_paper_exchange_is_an_exchange() -> None:
    implementation: Exchange = exchange([])  # mypy checks the protocol statically
    assert isinstance(implementation, Exchange)
    # fills from the local model (paper.* reloads in place); nothing on a venue to reconcile with
    assert implementation.capabilities == Capabilities(reconciles=False, local_fills=True, pushes_market=True)


def test_end_to_end_fills_position_and_cancel_all() -> None:
    async def main() -> tuple[list[Fill], list[Fill], PaperExchange, int]:
        ex = exchange(sim_steps(1_500))
        streamed: list[Fill] = []

        async def consume() -> None:
            async for fill in ex.stream_fills(SYMBOL):
                streamed.append(fill)

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0)  # subscribe before the first step
        await place_grid(ex)
        await ex.run()
        await consumer
        fills, cursor = await ex.fills_since(SYMBOL, None)
        assert cursor == f"{ex.session_id}:{len(fills)}"
        assert await ex.fills_since(SYMBOL, cursor) == ([], cursor)
        left = len(await ex.open_orders(SYMBOL))
        assert await ex.cancel_all(SYMBOL) == left
        await ex.close()
        return fills, streamed, ex, left

    fills, streamed, ex, left = asyncio.run(main())
    assert fills and streamed == fills
    assert left < 10  # some of the grid filled
    assert {f.side for f in fills} == {Side.BUY, Side.SELL}
    signed = sum((f.size * f.side.sign for f in fills), D(0))
    assert ex.portfolio.position == signed
    assert asyncio.run(ex.position(SYMBOL)) == signed
    assert ex.portfolio.fees == sum((f.fee for f in fills), D(0)) < 0  # rebates
    replayed = Portfolio.replay(fills, starting_balance=D(10_000), symbol=SYMBOL)
    assert asyncio.run(ex.balance()) == replayed.cash
    assert asyncio.run(ex.open_orders(SYMBOL)) == []


def test_sim_and_replay_of_its_recording_give_the_same_fills(tmp_path: Path) -> None:
    path = tmp_path / "rec.csv"
    write_recording(path, sim_steps(800, seed=9))

    async def run(steps: Iterable[Step]) -> list[Fill]:
        ex = exchange(steps)
        await place_grid(ex, layers=3)
        await ex.run()
        return (await ex.fills_since(SYMBOL, None))[0]

    from_sim = asyncio.run(run(sim_steps(800, seed=9)))
    from_file = asyncio.run(run(read_recording(path)))
    assert from_sim and from_sim == from_file


def test_rejections_raise_rejected_with_the_reason() -> None:
    async def main() -> None:
        ex = exchange(sim_steps(50))
        book = await ex.book(SYMBOL)
        crossing = OrderRequest(SYMBOL, Side.BUY, book.asks[0].price, D("0.01"), "x1")
        with pytest.raises(Rejected) as caught:
            await ex.place_order(crossing)
        assert caught.value.reason == "post_only_would_cross"
        reduce = OrderRequest(SYMBOL, Side.SELL, book.asks[0].price, D("0.01"), "x2", reduce_only=True)
        with pytest.raises(Rejected, match="reduce_only"):
            await ex.place_order(reduce)  # flat: nothing to reduce
        with pytest.raises(ExchangeError):
            await ex.position("ETH_USDT_Perp")
        await ex.close()

    asyncio.run(main())


def test_crossing_taker_order_fills_at_once() -> None:
    async def main() -> PaperExchange:
        ex = exchange(sim_steps(20))
        book = await ex.book(SYMBOL)
        price = book.asks[0].price
        size = book.asks[0].size
        update = await ex.place_order(OrderRequest(SYMBOL, Side.BUY, price, size, "take", post_only=False))
        assert update.status is OrderStatus.FILLED
        await ex.close()
        return ex

    ex = asyncio.run(main())
    (fill,) = asyncio.run(ex.fills_since(SYMBOL, None))[0]
    assert fill.is_taker and fill.fee > 0 and ex.portfolio.position == fill.size


def test_streams_deliver_books_and_trades_then_end() -> None:
    async def main() -> tuple[int, int, int]:
        ex = exchange(sim_steps(200))
        books = trades = 0

        async def read_books() -> None:
            nonlocal books
            async for _ in ex.stream_books(SYMBOL):
                books += 1

        async def read_trades() -> None:
            nonlocal trades
            async for _ in ex.stream_trades(SYMBOL):
                trades += 1

        await asyncio.gather(read_books(), read_trades(), ex.run())
        await ex.close()
        await ex.close()  # idempotent
        return books, trades, ex.steps

    books, trades, steps = asyncio.run(main())
    assert books == steps == 200 and trades > 0


class Listener:
    """A `MarketListener` that keeps what it was given."""

    def __init__(self) -> None:
        self.books: list[BookUpdate] = []
        self.trades: list[Trade] = []

    def book_arrived(self, book: BookUpdate) -> None:
        self.books.append(book)

    def trades_arrived(self, trades: Sequence[Trade]) -> None:
        assert trades  # a step without trades calls nothing
        self.trades.extend(trades)


def test_a_listener_gets_what_the_streams_get_and_returns_when_the_market_ends() -> None:
    async def main() -> tuple[Listener, list[BookUpdate], list[Trade], int]:
        ex = exchange(sim_steps(300))
        listener = Listener()
        books: list[BookUpdate] = []
        trades: list[Trade] = []

        async def read_books() -> None:
            async for book in ex.stream_books(SYMBOL):
                books.append(book)

        async def read_trades() -> None:
            async for trade in ex.stream_trades(SYMBOL):
                trades.append(trade)

        await asyncio.gather(ex.listen_market(SYMBOL, listener), read_books(), read_trades())
        steps = ex.steps
        after_close = Listener()
        await ex.close()
        await ex.listen_market(SYMBOL, after_close)  # a closed exchange: returns at once, calls nothing
        assert not after_close.books
        return listener, books, trades, steps

    listener, books, trades, steps = asyncio.run(main())
    assert steps == 300 and len(listener.books) == 300
    assert listener.books == books and listener.trades == trades and trades


def test_listening_ends_with_a_failed_source_and_close_ends_it() -> None:
    def broken() -> Iterable[Step]:
        yield from sim_steps(3)
        raise OSError("feed lost")

    async def main() -> tuple[int, int]:
        failed = Listener()
        await exchange(broken()).listen_market(SYMBOL, failed)  # logged by the pump; the market ended
        ex = exchange(sim_steps(10**9))
        endless = Listener()
        listening = asyncio.create_task(ex.listen_market(SYMBOL, endless))
        while len(endless.books) < 5:
            await asyncio.sleep(0)
        await ex.close()
        await asyncio.wait_for(listening, 5)
        return len(failed.books), len(endless.books)

    failed_books, endless_books = asyncio.run(main())
    assert failed_books == 3 and 5 <= endless_books < 10**6


def test_source_errors_surface_in_run() -> None:
    def broken() -> Iterable[Step]:
        yield from sim_steps(3)
        raise OSError("feed lost")

    with pytest.raises(OSError, match="feed lost"):
        asyncio.run(exchange(broken()).run())


def test_close_stops_a_running_source() -> None:
    async def main() -> int:
        ex = exchange(sim_steps(10**9))
        await ex.book(SYMBOL)
        await ex.close()
        return ex.steps

    assert asyncio.run(main()) < 10**6


def test_book_without_data_raises() -> None:
    async def main() -> None:
        with pytest.raises(ExchangeError, match="without a book"):
            await exchange([]).book(SYMBOL)

    asyncio.run(main())


def test_paced_follows_exchange_time_at_the_given_speed() -> None:
    async def main() -> float:
        start = time.perf_counter()
        steps = [step async for step in paced(sim_steps(6), speed=10.0)]  # 0.5 s of exchange time
        assert len(steps) == 6
        return time.perf_counter() - start

    assert 0.04 < asyncio.run(main()) < 1.0


# -- fill cursors across restarts -------------------------------------------------------------------
async def _filled(ex: PaperExchange) -> list[Fill]:
    await place_grid(ex, layers=3)
    await ex.run()
    return (await ex.fills_since(SYMBOL, None))[0]


def test_cursor_of_another_session_reads_from_the_start() -> None:
    """After a restart the ledger hands a NEW exchange the old exchange's cursor: nothing is skipped."""

    async def main() -> None:
        old = exchange(sim_steps(600, seed=3))
        old_fills = await _filled(old)
        _, old_cursor = await old.fills_since(SYMBOL, None)
        await old.close()
        assert old_fills and old_cursor is not None

        new = exchange(sim_steps(600, seed=4))
        new_fills = await _filled(new)
        assert new_fills and new.session_id != old.session_id
        for stale in (old_cursor, str(len(old_fills)), "57", "someone-else:3"):
            assert (await new.fills_since(SYMBOL, stale))[0] == new_fills
        _, cursor = await new.fills_since(SYMBOL, old_cursor)
        assert cursor == f"{new.session_id}:{len(new_fills)}"
        assert await new.fills_since(SYMBOL, cursor) == ([], cursor)
        middle = f"{new.session_id}:1"
        assert (await new.fills_since(SYMBOL, middle))[0] == new_fills[1:]
        for bad in (f"{new.session_id}:x", f"{new.session_id}:-1", f"{new.session_id}:{len(new_fills) + 1}"):
            with pytest.raises(ExchangeError, match="bad fills cursor"):
                await new.fills_since(SYMBOL, bad)
        await new.close()

    asyncio.run(main())


def test_starts_from_the_given_portfolio() -> None:
    held = Portfolio(symbol=SYMBOL, starting_balance=D(5_000))
    held.apply(Fill("old-1", SYMBOL, "c0", Side.BUY, D("50000"), D("0.02"), D(0), 1, is_taker=False))

    async def main() -> PaperExchange:
        ex = PaperExchange(SYMBOL, SPEC, paced(sim_steps(20)), portfolio=held)
        book = await ex.book(SYMBOL)
        assert await ex.position(SYMBOL) == D("0.02")
        assert await ex.balance() == held.cash
        # Long 0.02: a reduce-only sell up to that size is accepted, a bigger one is refused.
        price = book.asks[0].price + 100 * SPEC.tick_size
        await ex.place_order(OrderRequest(SYMBOL, Side.SELL, price, D("0.02"), "r1", reduce_only=True))
        with pytest.raises(Rejected, match="reduce_only"):
            await ex.place_order(OrderRequest(SYMBOL, Side.SELL, price, D("0.03"), "r2", reduce_only=True))
        await ex.close()
        return ex

    assert asyncio.run(main()).portfolio is held
    with pytest.raises(ValueError, match="portfolio is for"):
        PaperExchange("ETH_USDT_Perp", SPEC, paced([]), portfolio=held)


def test_taker_fee_comes_from_the_settings() -> None:
    async def main() -> Fill:
        ex = exchange(sim_steps(20), PaperSettings(taker_fee_bps=2.0))
        book = await ex.book(SYMBOL)
        best = book.asks[0]
        await ex.place_order(OrderRequest(SYMBOL, Side.BUY, best.price, best.size, "t", post_only=False))
        await ex.close()
        return (await ex.fills_since(SYMBOL, None))[0][0]

    fill = asyncio.run(main())
    assert fill.is_taker and fill.fee == fill.price * fill.size * D("0.0002")


# -- the sim factory --------------------------------------------------------------------------------
def _bot(**sim: object) -> BotSettings:
    return BotSettings.model_validate({"symbol": SYMBOL, "sim": {"seed": 11, "speed": 1000.0, **sim}})


def test_factory_sim_replays_a_recording_as_if_live(tmp_path: Path) -> None:
    path = tmp_path / "rec.parquet"
    recorded = list(sim_steps(300, seed=21))
    write_recording(path, recorded)
    held = Portfolio(symbol=SYMBOL, starting_balance=D(10_000))

    async def main() -> tuple[list[Step], PaperExchange]:
        ex = await make_exchange(_bot(replay_file=str(path)), held)
        assert isinstance(ex, PaperExchange) and ex.portfolio is held
        seen: list[Step] = []

        async def read() -> None:
            async for book in ex.stream_books(SYMBOL):
                seen.append((book, []))

        await asyncio.gather(read(), ex.run())
        await ex.close()
        return seen, ex

    started = time.time_ns()
    seen, ex = asyncio.run(main())
    assert ex.steps == len(seen) == 300
    shift = seen[0][0].ts_ns - recorded[0][0].ts_ns
    assert abs(seen[0][0].ts_ns - started) < 60 * 1_000_000_000  # moved to now: not stale to the bot
    for (book, _), (original, _) in zip(seen, recorded, strict=True):
        assert (book.bids, book.asks) == (original.bids, original.asks)
        assert book.ts_ns - original.ts_ns == shift


def test_factory_replay_steps_keep_their_trades(tmp_path: Path) -> None:
    path = tmp_path / "rec.csv"
    recorded = list(sim_steps(200, seed=22))
    write_recording(path, recorded)

    async def main() -> list[Step]:
        return [step async for step in market_source(_bot(replay_file=str(path)))]

    replayed = asyncio.run(main())
    assert [[(t.price, t.size, t.taker_side, t.trade_id) for t in trades] for _, trades in replayed] == [
        [(t.price, t.size, t.taker_side, t.trade_id) for t in trades] for _, trades in recorded
    ]
    assert sum(len(trades) for _, trades in replayed) > 0


def test_factory_rejects_unusable_replay_files(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="a recording ends in"):
        _bot(replay_file="market.txt")
    with pytest.raises(ConfigError, match="no such file"):
        market_source(_bot(replay_file=str(tmp_path / "missing.csv")))
    other = tmp_path / "eth.csv"
    eth = "ETH_USDT_Perp"
    write_recording(other, SimMarket(eth, BUILTIN_INSTRUMENTS[eth], seed=1, s0=3_000.0).steps(5))
    with pytest.raises(ConfigError, match="no market data for BTC_USDT_Perp"):
        market_source(_bot(replay_file=str(other)))
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a readable recording"):
        market_source(_bot(replay_file=str(junk)))


def test_factory_generated_sim_is_seeded() -> None:
    async def first_steps(seed: int) -> list[tuple[object, ...]]:
        source = market_source(_bot(), seed=seed)
        steps = [await anext(source) for _ in range(20)]
        return [(book.bids, book.asks, [(t.price, t.size) for t in trades]) for book, trades in steps]

    assert asyncio.run(first_steps(5)) == asyncio.run(first_steps(5)) != asyncio.run(first_steps(6))


def test_factory_generated_sim_starts_its_clock_at_the_first_step() -> None:
    """A bot slow to start (a fleet starting on two cores) must not get books already old: the quoter
    would call every one of them stale and the bot would never quote."""

    async def first_book_age_s() -> float:
        source = market_source(_bot(), seed=5)
        await asyncio.sleep(1.0)  # the bot's start-up, between building the market and reading it
        book, _ = await anext(source)
        return (time.time_ns() - book.ts_ns) / 1e9

    assert asyncio.run(first_book_age_s()) < 0.5
