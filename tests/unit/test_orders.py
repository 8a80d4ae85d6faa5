"""Order diff: keep what is within tolerance, replace the rest."""

from __future__ import annotations

from bots.engine.orders import OpenOrder, diff_orders
from bots.engine.types import DesiredOrder, Side


def _want(side: Side, price: int, size: int = 2) -> DesiredOrder:
    return DesiredOrder(side, price, size, 0)


def test_nothing_to_do_when_every_price_is_within_tolerance() -> None:
    open_orders = [OpenOrder("a", Side.BUY, 499_990, 2), OpenOrder("b", Side.SELL, 500_010, 2)]
    desired = [_want(Side.BUY, 500_000), _want(Side.SELL, 500_050)]
    diff = diff_orders(open_orders, desired, tolerance_pct=0.001)
    assert diff.empty


def test_an_order_beyond_the_price_limits_is_never_kept() -> None:
    """Found by the state machine: an order kept within tolerance of its target had crossed the
    entry anchor. Kept orders obey the decision's limits (post-only behind the touch, the anchor)."""
    open_orders = [OpenOrder("a", Side.BUY, 500_010, 2), OpenOrder("b", Side.SELL, 500_040, 2)]
    desired = [_want(Side.BUY, 500_000), _want(Side.SELL, 500_050)]
    assert diff_orders(open_orders, desired, 0.001).empty  # no limits: both within tolerance
    diff = diff_orders(open_orders, desired, 0.001, max_bid_ticks=500_005, min_ask_ticks=500_045)
    assert diff.cancels == ("a", "b")
    assert diff.places == tuple(desired)


def test_an_order_at_a_desired_price_is_never_kept_for_another_one() -> None:
    """Found by the state machine: keeping 650124 for 650117 while placing a new 650124 put two orders
    at one price. The order at a desired price stands for that one; the others are placed."""
    open_orders = [
        OpenOrder("a", Side.SELL, 650_124, 3),
        OpenOrder("b", Side.SELL, 650_138, 3),
        OpenOrder("c", Side.SELL, 650_200, 3),
    ]
    desired = [_want(Side.SELL, p, 3) for p in (650_117, 650_124, 650_131)]
    diff = diff_orders(open_orders, desired, tolerance_pct=0.00002)
    kept = {o.price_ticks for o in open_orders if o.client_order_id not in diff.cancels}
    placed = [w.price_ticks for w in diff.places]
    assert not kept & set(placed) and len(placed) == len(set(placed))
    assert kept == {650_124, 650_138}  # 650138 stands for 650131: 7 ticks, within 13
    assert placed == [650_117]


def test_beyond_tolerance_is_cancelled_and_replaced() -> None:
    open_orders = [OpenOrder("a", Side.BUY, 499_000, 2)]
    desired = [_want(Side.BUY, 500_000)]
    diff = diff_orders(open_orders, desired, tolerance_pct=0.001)  # 1000 ticks apart > 500
    assert diff.cancels == ("a",)
    assert diff.places == (desired[0],)


def test_side_must_match() -> None:
    diff = diff_orders([OpenOrder("a", Side.SELL, 500_000, 2)], [_want(Side.BUY, 500_000)], 0.01)
    assert diff.cancels == ("a",)
    assert len(diff.places) == 1


def test_larger_open_order_is_replaced_but_a_partially_filled_one_is_kept() -> None:
    desired = [_want(Side.BUY, 500_000, size=2)]
    assert diff_orders([OpenOrder("big", Side.BUY, 500_000, 3)], desired, 0.001).cancels == ("big",)
    assert diff_orders([OpenOrder("part", Side.BUY, 500_000, 1)], desired, 0.001).empty


def test_each_open_order_is_claimed_once_by_the_nearest_desired() -> None:
    open_orders = [OpenOrder("far", Side.BUY, 499_700, 2), OpenOrder("near", Side.BUY, 499_990, 2)]
    desired = [_want(Side.BUY, 500_000)]
    diff = diff_orders(open_orders, desired, tolerance_pct=0.001)
    assert diff.cancels == ("far",)
    assert diff.places == ()


def test_zero_tolerance_requires_exact_prices() -> None:
    diff = diff_orders([OpenOrder("a", Side.BUY, 500_001, 2)], [_want(Side.BUY, 500_000)], 0.0)
    assert diff.cancels == ("a",)
    assert diff_orders([OpenOrder("a", Side.BUY, 500_000, 2)], [_want(Side.BUY, 500_000)], 0.0).empty


def test_an_outer_layer_keeps_what_the_inner_one_replaces() -> None:
    """Per-layer tolerance: the whole grid moved 15 ticks (1.5 bp at 100,000): the first layer, with no
    tolerance, follows; the second (1 bp) still does; the third (2 bp) and the fourth (3 bp) keep
    their orders. Without it every layer is replaced."""
    desired = [DesiredOrder(Side.BUY, 100_000 - 500 * layer, 2, layer) for layer in range(4)]
    open_orders = [OpenOrder(f"o{w.layer}", Side.BUY, w.price_ticks - 15, 2) for w in desired]
    diff = diff_orders(open_orders, desired, 0.0, layer_tolerance_pct=0.0001)
    assert diff.cancels == ("o0", "o1")
    assert diff.places == tuple(desired[:2])
    assert len(diff_orders(open_orders, desired, 0.0).cancels) == 4
