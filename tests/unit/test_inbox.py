"""The worker's inbox: FIFO, a waiting consumer is woken, and a cancelled wait loses nothing."""

from __future__ import annotations

import asyncio

from bots.inbox import Inbox


def test_items_come_out_in_order_and_a_waiting_get_is_woken() -> None:
    async def main() -> list[int]:
        inbox: Inbox[int] = Inbox()
        inbox.put_nowait(1)
        inbox.put_nowait(2)
        got = [await inbox.get(), await inbox.get()]
        assert inbox.empty()
        waiting = asyncio.create_task(inbox.get())
        await asyncio.sleep(0)
        assert not waiting.done()
        inbox.put_nowait(3)
        got.append(await asyncio.wait_for(waiting, 1))
        return got

    assert asyncio.run(main()) == [1, 2, 3]


def test_a_cancelled_get_leaves_the_next_item_for_the_next_get() -> None:
    async def main() -> int:
        inbox: Inbox[int] = Inbox()
        waiting = asyncio.create_task(inbox.get())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        inbox.put_nowait(7)
        return await asyncio.wait_for(inbox.get(), 1)

    assert asyncio.run(main()) == 7
