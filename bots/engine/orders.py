"""Smart order management: keep a resting order while it is within tolerance of a wanted one.

Replacing an order costs queue position, rate limit and a signature, so an open order may stand for a
desired one when it is on the same side, no larger (a partially filled order still qualifies), within
`tolerance_pct` of the desired price plus `layer_tolerance_pct` for each layer the desired order sits
behind its side's first (an outer layer fills only on a large move: it need not follow every tick that
the inner one must follow not to be picked off), and inside the decision's price limits (`max_bid_ticks`,
`min_ask_ticks`: post-only behind the touch, the entry anchor), so a kept order obeys every clamp the
desired ones do. An open order at exactly a desired price stands for that one first, and is never
kept for another desired order (which would then be placed beside it, at its price). Everything else
is cancelled or placed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mypy_extensions import mypyc_attr

from bots.engine import pickling
from bots.engine.types import DesiredOrder, Side

__all__ = ["NO_ASK_LIMIT", "NO_BID_LIMIT", "OpenOrder", "OrderDiff", "OrderKeys", "diff_orders", "order_keys"]

NO_BID_LIMIT: Final = 1 << 62  # price limits that admit any price
NO_ASK_LIMIT: Final = -(1 << 62)


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class OpenOrder:
    """A resting order as the bot knows it: remaining size in lots, price in ticks."""

    client_order_id: str
    side: Side
    price_ticks: int
    size_lots: int

    def __init__(self, client_order_id: str, side: Side, price_ticks: int, size_lots: int) -> None:
        self.client_order_id = client_order_id
        self.side = side
        self.price_ticks = price_ticks
        self.size_lots = size_lots


@mypyc_attr(acyclic=True)
@dataclass(slots=True, init=False, unsafe_hash=True)
class OrderDiff:
    """What to cancel (client order ids) and what to place; see `bots.engine.types` on the
    written-out constructor. Treat it as immutable."""

    cancels: tuple[str, ...]
    places: tuple[DesiredOrder, ...]

    def __init__(self, cancels: tuple[str, ...], places: tuple[DesiredOrder, ...]) -> None:
        self.cancels = cancels
        self.places = places

    @property
    def empty(self) -> bool:
        return not self.cancels and not self.places


OrderKeys = tuple[list[int], list[int]]  # open bids and asks, sorted, as `order_keys` makes them


def diff_orders(
    open_orders: list[OpenOrder],
    desired: list[DesiredOrder],
    tolerance_pct: float,
    keys: OrderKeys | None = None,
    max_bid_ticks: int = NO_BID_LIMIT,
    min_ask_ticks: int = NO_ASK_LIMIT,
    layer_tolerance_pct: float = 0.0,
) -> OrderDiff:
    """Cancels (client order ids) and placements that turn `open_orders` into `desired`.

    Each desired order, in turn, claims an unclaimed open order at exactly its price; then each one
    left, in turn, claims the nearest unclaimed open order that may stand for it (see the module
    docstring) and is not at another desired order's price; ties go to the earlier open order, so the
    result is deterministic. Without limits (the defaults) any price qualifies.

    Runs on every book event, and on most of them every open order is kept: `_all_kept` proves that
    case in O(n log n) and the answer is then "no change"; otherwise `_diff_scan` decides. A caller
    whose open orders change less often than books come may pass their `order_keys` (computed when
    they last changed) to save sorting them on every call.
    `tests/unit/test_orders_fast_path.py` holds the paths to the definition (two O(n*m) scans of every
    unclaimed open order for each desired order in turn).
    """
    if len(open_orders) == len(desired) and _all_kept(
        open_orders, desired, tolerance_pct, keys, max_bid_ticks, min_ask_ticks, layer_tolerance_pct
    ):
        return _NO_CHANGE
    return _diff_scan(open_orders, desired, tolerance_pct, max_bid_ticks, min_ask_ticks, layer_tolerance_pct)


def order_keys(open_orders: list[OpenOrder]) -> OrderKeys | None:
    """The open bids and asks as sorted ints `price << 32 | size`, which `_all_kept` walks; None when
    an order cannot be keyed (a side that is neither buy nor sell, a size outside 1 .. 2**32 - 1, a
    price that is not an int): only the scan can decide about those."""
    bids: list[int] = []
    asks: list[int] = []
    try:
        for order in open_orders:
            size = order.size_lots
            if not 0 < size < _SIZE_LIMIT:
                return None
            side = order.side
            if side is _BUY:
                bids.append((order.price_ticks << 32) + size)
            elif side is _SELL:
                asks.append((order.price_ticks << 32) + size)
            else:
                return None
    except TypeError:  # a price that is not an int (only uncompiled code lets one in)
        return None
    bids.sort()
    asks.sort()
    return bids, asks


_BUY: Final[Side] = Side.BUY
_SELL: Final[Side] = Side.SELL
_SIZE_LIMIT: Final = 1 << 32
_SIZE_MASK: Final = _SIZE_LIMIT - 1
_NO_CHANGE: Final = OrderDiff(cancels=(), places=())


def _diff_scan(
    open_orders: list[OpenOrder],
    desired: list[DesiredOrder],
    tolerance_pct: float,
    max_bid_ticks: int = NO_BID_LIMIT,
    min_ask_ticks: int = NO_ASK_LIMIT,
    layer_tolerance_pct: float = 0.0,
) -> OrderDiff:
    """The definition's two scans with the open orders split by side first (each desired order scans
    only its side's, in their original order, so ties still go to the earlier one) and claimed ones
    flagged. Each side is three parallel int lists (index, price, size): compiled, the inner loop is
    C ints. Open orders outside the price limits are left out of both scans."""
    buy_at, buy_price, buy_size, sell_at, sell_price, sell_size = _by_side(
        open_orders, max_bid_ticks, min_ask_ticks
    )
    wanted_bids = {want.price_ticks for want in desired if want.side is _BUY}
    wanted_asks = {want.price_ticks for want in desired if want.side is _SELL}
    taken = [False] * len(open_orders)
    matched = [False] * len(desired)
    for number, want in enumerate(desired):  # exact prices first
        at, prices, sizes = _side_lists(want.side, open_orders, buy_at, buy_price, buy_size,
                                        sell_at, sell_price, sell_size)  # fmt: skip
        target = want.price_ticks
        size = want.size_lots
        for k in range(len(at)):
            index = at[k]
            if not taken[index] and prices[k] == target and 0 < sizes[k] <= size:
                taken[index] = matched[number] = True
                break
    places: list[DesiredOrder] = []
    for number, want in enumerate(desired):  # then the nearest within tolerance
        if matched[number]:
            continue
        side = want.side
        at, prices, sizes = _side_lists(side, open_orders, buy_at, buy_price, buy_size,
                                        sell_at, sell_price, sell_size)  # fmt: skip
        wanted = wanted_bids if side is _BUY else wanted_asks if side is _SELL else set()
        target = want.price_ticks
        size = want.size_lots
        limit = (tolerance_pct + layer_tolerance_pct * want.layer) * target
        best = -1
        best_gap = 0
        for k in range(len(at)):
            index = at[k]
            if not taken[index]:
                price = prices[k]
                gap = price - target if price >= target else target - price  # |price - target|, no call
                if (
                    gap <= limit
                    and 0 < sizes[k] <= size
                    and price not in wanted
                    and (best < 0 or gap < best_gap)
                ):
                    best, best_gap = index, gap
        if best < 0:
            places.append(want)
        else:
            taken[best] = True
    cancels = [open_orders[index].client_order_id for index in range(len(taken)) if not taken[index]]
    return OrderDiff(tuple(cancels), tuple(places))


def _by_side(
    open_orders: list[OpenOrder], max_bid_ticks: int, min_ask_ticks: int
) -> tuple[list[int], list[int], list[int], list[int], list[int], list[int]]:
    """(index, price, size) lists of the open buys, then of the open sells, in their original order;
    orders outside the price limits are left out (they can stand for nothing)."""
    buy_at: list[int] = []
    buy_price: list[int] = []
    buy_size: list[int] = []
    sell_at: list[int] = []
    sell_price: list[int] = []
    sell_size: list[int] = []
    for index, have in enumerate(open_orders):
        side = have.side
        price = have.price_ticks
        if side is _BUY and price <= max_bid_ticks:
            buy_at.append(index)
            buy_price.append(price)
            buy_size.append(have.size_lots)
        elif side is _SELL and price >= min_ask_ticks:
            sell_at.append(index)
            sell_price.append(price)
            sell_size.append(have.size_lots)
    return buy_at, buy_price, buy_size, sell_at, sell_price, sell_size


def _side_lists(
    side: Side,
    open_orders: list[OpenOrder],
    buy_at: list[int],
    buy_price: list[int],
    buy_size: list[int],
    sell_at: list[int],
    sell_price: list[int],
    sell_size: list[int],
) -> tuple[list[int], list[int], list[int]]:
    """The open orders of `side` as (index, price, size) lists; a side that is neither buy nor sell
    (only uncompiled code lets one in) matches by identity."""
    if side is _BUY:
        return buy_at, buy_price, buy_size
    if side is _SELL:
        return sell_at, sell_price, sell_size
    at = [i for i, have in enumerate(open_orders) if have.side is side]
    return at, [open_orders[i].price_ticks for i in at], [open_orders[i].size_lots for i in at]


def _all_kept(
    open_orders: list[OpenOrder],
    desired: list[DesiredOrder],
    tolerance_pct: float,
    keys: OrderKeys | None = None,
    max_bid_ticks: int = NO_BID_LIMIT,
    min_ask_ticks: int = NO_ASK_LIMIT,
    layer_tolerance_pct: float = 0.0,
) -> bool:
    """True only if the scans would keep every open order and place nothing; needs equal counts.

    Sort the open orders of each side by price and guess that the k-th buy in `desired` keeps the k-th
    highest open buy and the k-th sell the k-th lowest open sell. Replay the scans against that guess:
    when no open buy lies at another desired buy's price (checked against both neighbours: the desired
    buys come best first, so a farther one would lie beyond a neighbour), the exact scan pairs only
    partners, and when the k-th buy's turn comes the open buys above its partner are claimed, so its
    partner is the highest unclaimed one; along sorted prices the distance to a price falls, then
    rises, so the partner is the nearest if it beats the next lower one. It must be within tolerance
    and the price limit, of a size that qualifies. Sells mirrored. Any doubt (a tie, an order
    `order_keys` cannot key, a desired order out of that order) answers False: the scans decide.
    `keys` are `order_keys(open_orders)` when the caller has them.
    """
    if keys is None:
        keys = order_keys(open_orders)
        if keys is None:
            return False
    bids, asks = keys
    bid_rank = len(bids)
    ask_rank = 0
    n_asks = len(asks)
    last_bid = last_bid_want = last_ask = last_ask_want = 0  # the previous pair on each side, once seen
    seen_bid = seen_ask = False
    for want in desired:  # |a - b| written out: compiled, a call per distance costs as much as the rest
        side = want.side
        target = want.price_ticks
        if side is _BUY:
            bid_rank -= 1  # the highest unclaimed bid
            if bid_rank < 0:
                return False
            key = bids[bid_rank]
            price = key >> 32
            if price > max_bid_ticks or (seen_bid and not (target < last_bid and price < last_bid_want)):
                return False
            gap = price - target if price >= target else target - price
            if bid_rank:
                below = bids[bid_rank - 1] >> 32
                if not (below - target if below >= target else target - below) > gap:
                    return False
            last_bid, last_bid_want, seen_bid = price, target, True
        elif side is _SELL:
            if ask_rank >= n_asks:
                return False
            key = asks[ask_rank]  # the lowest unclaimed ask
            price = key >> 32
            if price < min_ask_ticks or (seen_ask and not (target > last_ask and price > last_ask_want)):
                return False
            gap = price - target if price >= target else target - price
            ask_rank += 1
            if ask_rank < n_asks:
                above = asks[ask_rank] >> 32
                if not (above - target if above >= target else target - above) > gap:
                    return False
            last_ask, last_ask_want, seen_ask = price, target, True
        else:
            return False
        limit = (tolerance_pct + layer_tolerance_pct * want.layer) * target
        if not gap <= limit or (key & _SIZE_MASK) > want.size_lots:
            return False
    return bid_rank == 0 and ask_rank == n_asks


pickling.register(OpenOrder, OrderDiff)
