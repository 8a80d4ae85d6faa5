"""Markouts (bots.engine.markouts): the sign convention, the mid in force at a horizon, and the streaming
tracker agreeing with the batch form on any series."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.engine.markouts import MarkoutTracker, markout, markouts_at, summarize

NS = 1_000_000_000


def test_a_buy_the_mid_then_falls_below_is_a_negative_markout_and_a_sell_mirrors_it() -> None:
    bought = markout(+1, 100.0, 2.0, 99.0, 1.0)
    assert bought.usd == pytest.approx(-2.0) and bought.bps == pytest.approx(-100.0)
    sold = markout(-1, 100.0, 2.0, 99.0, 1.0)
    assert sold.usd == pytest.approx(2.0) and sold.bps == pytest.approx(100.0)


def test_the_mid_of_a_horizon_is_the_last_one_at_or_before_it_and_nan_past_the_series() -> None:
    mids_ts = [0, NS // 2, NS, 3 * NS]
    mids = [100.0, 101.0, 102.0, 90.0]
    table = markouts_at([0, 0], [1, -1], [100.0, 100.0], [1.0, 1.0], mids_ts, mids, (1.0, 2.5, 10.0))
    assert table.usd[0].tolist() == [2.0, -2.0]  # exactly at 1 s: the mid of 1 s
    assert table.usd[1].tolist() == [2.0, -2.0]  # 2.5 s: still the mid of 1 s
    assert np.isnan(table.usd[2]).all()  # 10 s: after the series ends
    first, _, third = summarize(table)
    assert (first.fills, first.total_usd, first.mean_bps) == (2, 0.0, 0.0)
    assert third.fills == 0 and math.isnan(third.mean_bps)


def test_a_horizon_must_be_positive() -> None:
    with pytest.raises(ValueError, match="horizon"):
        MarkoutTracker((0.0,))
    with pytest.raises(ValueError, match="length"):
        markouts_at([0], [1, 1], [1.0], [1.0], [0], [1.0])


_series = st.lists(st.tuples(st.integers(1, 3 * NS), st.floats(50.0, 150.0)), min_size=1, max_size=40).map(
    lambda steps: ([sum(dt for dt, _ in steps[: i + 1]) for i in range(len(steps))], [m for _, m in steps])
)


@given(
    series=_series,
    fills=st.lists(
        st.tuples(st.integers(0, 39), st.sampled_from([1, -1]), st.floats(50.0, 150.0), st.floats(0.1, 5.0)),
        max_size=20,
    ),
)
def test_the_tracker_agrees_with_the_batch_form(
    series: tuple[list[int], list[float]], fills: list[tuple[int, int, float, float]]
) -> None:
    """Fills land on a mid's time (as a bot's fills come with a book); the tracker learns each markout
    once, when the first mid at or after its due time arrives, and it equals the batch form's."""
    mid_ts, mids = series
    fills = [(min(i, len(mid_ts) - 1), side, price, size) for i, side, price, size in fills]
    tracker = MarkoutTracker()
    learned: dict[tuple[int, float], float] = {}
    for k, (ts, mid) in enumerate(zip(mid_ts, mids, strict=True)):
        for n, (i, side, price, size) in enumerate(fills):
            if i == k:
                tracker.add(str(n), ts, side, price, size)
        for fill_id, result in tracker.on_mid(ts, mid):
            key = (int(fill_id), result.horizon_s)
            assert key not in learned
            learned[key] = result.usd
    table = markouts_at(
        [mid_ts[i] for i, *_ in fills],
        [side for _, side, _, _ in fills],
        [price for *_, price, _ in fills],
        [size for *_, size in fills],
        mid_ts,
        mids,
        tracker.horizons_s,
    )
    for h, horizon in enumerate(tracker.horizons_s):
        for n in range(len(fills)):
            expected = table.usd[h, n]
            if math.isnan(expected):
                assert (n, horizon) not in learned
            else:
                assert learned[(n, horizon)] == pytest.approx(expected)
    assert tracker.pending == sum(math.isnan(v) for v in table.usd.ravel())
