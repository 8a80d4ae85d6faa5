"""PaperExchange end to end on the synthetic market and on a replayed recording (asyncio.run, no plugin)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import pytest

from bots.engine.portfolio import Portfolio
from bots.engine.types import Side
from bots.errors import ExchangeError, Rejected
from bots.exchange.base import BookUpdate, Exchange, Fill, OrderRequest, OrderStatus, Trade
from bots.exchange.paper import PaperExchange
from bots.exchange.sim import SimMarket, paced, read_recording, write_recording
from settings.models import BUILTIN_INSTRUMENTS, PaperSettings

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
        assert cursor == str(len(fills))
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
