"""`diff_orders`' fast paths give exactly the answer of the definition, `_diff_reference` here."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bots import native
from bots.engine.orders import (
    NO_ASK_LIMIT,
    NO_BID_LIMIT,
    OpenOrder,
    OrderDiff,
    _all_kept,
    _diff_scan,
    diff_orders,
    order_keys,
)
from bots.engine.types import DesiredOrder, OrderKind, Side


def _may_stand_for(
    have: OpenOrder,
    want: DesiredOrder,
    tolerance_pct: float,
    max_bid: int,
    min_ask: int,
    layer_tolerance_pct: float = 0.0,
) -> bool:
    """Same side, no larger, within tolerance (wider by `layer_tolerance_pct` for each layer out),
    inside the price limits."""
    inside = have.price_ticks <= max_bid if want.side is Side.BUY else have.price_ticks >= min_ask
    tolerance = tolerance_pct + layer_tolerance_pct * want.layer
    return (
        have.side is want.side
        and 0 < have.size_lots <= want.size_lots
        and abs(have.price_ticks - want.price_ticks) <= tolerance * want.price_ticks
        and inside
    )


def _diff_reference(
    open_orders: list[OpenOrder],
    desired: list[DesiredOrder],
    tolerance_pct: float,
    max_bid: int = NO_BID_LIMIT,
    min_ask: int = NO_ASK_LIMIT,
    layer_tolerance_pct: float = 0.0,
) -> OrderDiff:
    """The definition: each desired order in turn claims an unclaimed open order at exactly its price
    (inside the limits); then each one left, in turn, the nearest unclaimed open order that may stand
    for it and is not at another desired order's price (ties: the earlier open order). O(n*m)."""
    unclaimed = list(open_orders)
    wanted = {(want.side, want.price_ticks) for want in desired}
    left: list[DesiredOrder] = []
    for want in desired:
        exact = [
            have for have in unclaimed
            if have.price_ticks == want.price_ticks and _may_stand_for(have, want, 0.0, max_bid, min_ask)
        ]  # fmt: skip
        if exact:
            unclaimed.remove(exact[0])
        else:
            left.append(want)
    places: list[DesiredOrder] = []
    for want in desired:
        if not any(want is w for w in left):
            continue
        candidates = [
            have for have in unclaimed
            if _may_stand_for(have, want, tolerance_pct, max_bid, min_ask, layer_tolerance_pct)
            and (have.side, have.price_ticks) not in wanted
        ]  # fmt: skip
        if candidates:
            unclaimed.remove(min(candidates, key=lambda have: abs(have.price_ticks - want.price_ticks)))
        else:
            places.append(want)
    return OrderDiff(cancels=tuple(o.client_order_id for o in unclaimed), places=tuple(places))


@st.composite
def market_states(draw: st.DrawFn) -> tuple[list[OpenOrder], list[DesiredOrder], float, float]:
    """Desired orders as the engine makes them (bids best first, then asks best first) and open orders
    placed for an earlier grid: moved by part of a layer or more, some filled, some gone."""
    mid = draw(st.integers(1_000, 1_000_000))
    spacing = draw(st.integers(1, 2_000))
    half = draw(st.integers(1, 5_000))
    size = draw(st.integers(1, 5))
    bids = [
        DesiredOrder(Side.BUY, price, size, layer)
        for layer in range(draw(st.integers(0, 8)))
        if (price := mid - half - layer * spacing) > 0
    ]
    asks = [
        DesiredOrder(Side.SELL, mid + half + layer * spacing, size, layer)
        for layer in range(draw(st.integers(0, 8)))
    ]
    desired = bids + asks
    if draw(st.integers(0, 3)) == 0 and desired:
        desired.insert(0, dataclasses.replace(desired[-1], kind=OrderKind.BOOST))
    if draw(st.integers(0, 4)) == 0:
        desired = draw(st.permutations(desired))
    # moves and tolerances of about a layer's spacing are where the nearest open order changes
    shift = round(spacing * draw(st.sampled_from([0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5]))) * draw(
        st.sampled_from([1, -1])
    ) + draw(st.integers(-2, 2))
    tolerance = draw(
        st.sampled_from([0.0, 1e-4, 0.001])
        | st.sampled_from([0.3, 0.5, 0.7, 1.0, 1.3, 2.0, 3.0]).map(lambda k: k * spacing / mid)
    )
    # a tolerance that widens layer by layer: outer layers keep what inner ones replace
    per_layer = draw(st.just(0.0) | st.sampled_from([0.1, 0.25, 0.5, 1.0]).map(lambda k: k * spacing / mid))
    # the grid's spacing changed too (it is a fraction of mid): each layer out moved this much more
    drift = round(spacing * draw(st.sampled_from([0.0, 0.0, 0.1, 0.25, 0.5])))
    drift *= draw(st.sampled_from([1, -1]))
    calm = draw(st.booleans())  # nothing filled or moved by hand: the fast path's case
    opens: list[OpenOrder] = []
    for number, want in enumerate(desired):
        roll = 99 if calm else draw(st.integers(0, 19))
        if roll == 0:
            continue  # filled and gone
        outward = -1 if want.side is Side.BUY else 1
        price = want.price_ticks + shift + outward * want.layer * drift
        price += draw(st.integers(-spacing, spacing)) if roll == 1 else 0
        size = want.size_lots - 1 if roll == 2 else want.size_lots + 1 if roll == 3 else want.size_lots
        side = (Side.SELL if want.side is Side.BUY else Side.BUY) if roll == 4 else want.side
        opens.append(OpenOrder(f"o{number}", side, price, size))
    if not calm and draw(st.integers(0, 9)) == 0:
        opens.append(OpenOrder("stray", draw(st.sampled_from(Side)), draw(st.integers(1, 2_000_000)), 1))
    return draw(st.permutations(opens)), desired, tolerance, per_layer


@settings(max_examples=1000, deadline=None)
@given(state=market_states(), limits=st.data())
def test_diff_orders_is_the_reference_scan(
    state: tuple[list[OpenOrder], list[DesiredOrder], float, float], limits: st.DataObject
) -> None:
    opens, desired, tolerance, per_layer = state
    # no limits, or limits near the desired prices (the engine's post-only and anchor clamps)
    bids = [w.price_ticks for w in desired if w.side is Side.BUY] or [0]
    asks = [w.price_ticks for w in desired if w.side is Side.SELL] or [0]
    max_bid, min_ask = limits.draw(
        st.just((NO_BID_LIMIT, NO_ASK_LIMIT))
        | st.tuples(st.integers(max(bids) - 3, max(bids) + 600), st.integers(min(asks) - 600, min(asks) + 3))
    )
    expected = _diff_reference(opens, desired, tolerance, max_bid, min_ask, per_layer)
    assert diff_orders(opens, desired, tolerance, None, max_bid, min_ask, per_layer) == expected
    assert diff_orders(opens, desired, tolerance, order_keys(opens), max_bid, min_ask, per_layer) == expected
    assert _diff_scan(opens, desired, tolerance, max_bid, min_ask, per_layer) == expected
    if len(opens) == len(desired) and _all_kept(opens, desired, tolerance, None, max_bid, min_ask, per_layer):
        event("all kept: fast path")
        assert expected.empty
    if per_layer and not expected.empty:
        event("layer tolerance: a change")


@settings(max_examples=300, deadline=None)
@given(
    opens=st.lists(
        st.builds(
            OpenOrder,
            st.text("abc", min_size=1, max_size=3),
            st.sampled_from(Side),
            st.integers(-5, 60),
            st.integers(-1, 4),
        ),
        max_size=8,
    ),
    desired=st.lists(
        st.builds(
            DesiredOrder, st.sampled_from(Side), st.integers(-5, 60), st.integers(0, 4), st.integers(0, 3)
        ),
        max_size=8,
    ),
    tolerance=st.sampled_from([-0.1, 0.0, 0.05, 0.2, 1.0, math.nan]),
    per_layer=st.sampled_from([0.0, 0.02, 0.1]),
)
def test_small_crowded_books_agree_with_the_reference(
    opens: list[OpenOrder], desired: list[DesiredOrder], tolerance: float, per_layer: float
) -> None:
    """Ties, duplicates, zero and negative sizes and prices, odd tolerances: the cases the fast paths
    must hand over rather than decide."""
    expected = _diff_reference(opens, desired, tolerance, layer_tolerance_pct=per_layer)
    assert diff_orders(opens, desired, tolerance, layer_tolerance_pct=per_layer) == expected
    assert _diff_scan(opens, desired, tolerance, layer_tolerance_pct=per_layer) == expected


def test_a_grid_that_only_widened_is_kept_by_the_fast_path() -> None:
    desired = [DesiredOrder(Side.BUY, 499_000 - 600 * i, 4, i) for i in range(7)]
    desired += [DesiredOrder(Side.SELL, 501_000 + 600 * i, 4, i) for i in range(7)]
    # every open order 350 ticks further from mid: from the second layer on, the nearest open order
    # (250 ticks, the previous layer's) is already claimed, and the scan takes the one 350 away
    opens = [
        OpenOrder(f"o{i}", w.side, w.price_ticks + (350 if w.side is Side.SELL else -350), 4)
        for i, w in enumerate(reversed(desired))
    ]
    assert _all_kept(opens, desired, 0.001)
    assert diff_orders(opens, desired, 0.001).empty
    assert _diff_reference(opens, desired, 0.001).empty


def test_a_grid_that_narrowed_is_left_to_the_scan() -> None:
    desired = [DesiredOrder(Side.BUY, 499_000 - 600 * i, 4, i) for i in range(3)]
    # 350 ticks nearer mid: the top desired bid's nearest open bid is the second one (250 ticks)
    opens = [OpenOrder(f"o{i}", Side.BUY, w.price_ticks + 350, 4) for i, w in enumerate(desired)]
    assert not _all_kept(opens, desired, 0.001)
    diff = diff_orders(opens, desired, 0.001)
    assert diff == _diff_reference(opens, desired, 0.001)
    assert diff.cancels == ("o0",)
    assert diff.places == (desired[-1],)


def test_nan_prices_are_left_to_the_scan() -> None:
    desired = [DesiredOrder(Side.BUY, 100, 1, 0), DesiredOrder(Side.BUY, 90, 1, 1)]
    if "bots.engine.orders" in native.compiled():  # compiled: an int field refuses a float outright
        with pytest.raises(TypeError):
            OpenOrder("b", Side.BUY, math.nan, 1)  # type: ignore[arg-type]
        return
    opens = [OpenOrder("a", Side.BUY, 100, 1), OpenOrder("b", Side.BUY, math.nan, 1)]  # type: ignore[arg-type]
    assert not _all_kept(opens, desired, 0.5)
    assert diff_orders(opens, desired, 0.5) == _diff_reference(opens, desired, 0.5)


def test_sides_are_matched_by_identity_as_in_the_definition() -> None:
    desired = [DesiredOrder(Side.BUY, 100, 1, 0)]
    if "bots.engine.orders" in native.compiled():  # compiled: a Side field refuses a plain str
        with pytest.raises(TypeError):
            OpenOrder("a", "buy", 100, 1)  # type: ignore[arg-type]
        return
    opens = [OpenOrder("a", "buy", 100, 1)]  # type: ignore[arg-type]  # equal to Side.BUY, not it
    assert diff_orders(opens, desired, 0.01) == _diff_reference(opens, desired, 0.01)
    assert diff_orders(opens, desired, 0.01).cancels == ("a",)
