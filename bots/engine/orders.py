"""Smart order management: keep a resting order while it is within tolerance of a wanted one.

Replacing an order costs queue position, rate limit and a signature, so an open order is kept when it
is on the same side, within `tolerance_pct` of a desired price, and no larger than the desired size
(a partially filled order still qualifies). Everything else is cancelled or placed.
"""

from __future__ import annotations

from dataclasses import dataclass

from bots.engine.types import DesiredOrder, Side

__all__ = ["OpenOrder", "OrderDiff", "diff_orders"]


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """A resting order as the bot knows it: remaining size in lots, price in ticks."""

    client_order_id: str
    side: Side
    price_ticks: int
    size_lots: int


@dataclass(frozen=True, slots=True)
class OrderDiff:
    cancels: tuple[str, ...]
    places: tuple[DesiredOrder, ...]

    @property
    def empty(self) -> bool:
        return not self.cancels and not self.places


def diff_orders(open_orders: list[OpenOrder], desired: list[DesiredOrder], tolerance_pct: float) -> OrderDiff:
    """Cancels (client order ids) and placements that turn `open_orders` into `desired`.

    Each desired order, best price first, claims the nearest unclaimed open order that matches;
    ties go to the earlier open order, so the result is deterministic.
    """
    unclaimed = list(open_orders)
    places: list[DesiredOrder] = []
    for want in desired:
        limit = tolerance_pct * want.price_ticks
        best_index = -1
        best_gap = 0
        for index, have in enumerate(unclaimed):
            gap = abs(have.price_ticks - want.price_ticks)
            if (
                have.side is want.side
                and gap <= limit
                and 0 < have.size_lots <= want.size_lots
                and (best_index < 0 or gap < best_gap)
            ):
                best_index, best_gap = index, gap
        if best_index < 0:
            places.append(want)
        else:
            del unclaimed[best_index]
    return OrderDiff(cancels=tuple(o.client_order_id for o in unclaimed), places=tuple(places))
