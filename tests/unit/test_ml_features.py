"""Regime features: the live buffer equals the batch function bit for bit; edge cases; no heavy imports."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.features import (
    FEATURE_NAMES,
    WARMUP_ROWS,
    LiveFeatures,
    columns_from_rows,
    compute_features,
    feature_matrix,
)

NS = 1_000_000_000


@dataclass(frozen=True)
class Row:
    ts_ns: int
    values: dict[str, float | None] = field(default_factory=dict)


def market(n: int, seed: int, *, vol: float = 1e-4, missing: float = 0.0) -> list[Row]:
    """Recorded rows one second apart: a random walk with bursts, flat stretches and missing values."""
    rng = np.random.default_rng(seed)
    sigma = np.where(rng.random(n) < 0.1, 5 * vol, vol)
    steps = rng.normal(0.0, sigma)
    steps[rng.random(n) < 0.2] = 0.0  # unchanged mids are common at one row a second
    mid = 50_000.0 * np.exp(np.cumsum(steps))
    rows = []
    for i in range(n):
        values: dict[str, float | None] = {
            "mid": float(mid[i]),
            "spread": float(rng.uniform(1e-5, 5e-4)),
            "imbalance": float(rng.uniform(-1, 1)),
            "trade_intensity": float(rng.poisson(3.0)),
        }
        for name in ("spread", "imbalance", "trade_intensity"):
            if rng.random() < missing:
                values[name] = None if rng.random() < 0.5 else math.nan
        rows.append(Row(ts_ns=1_700_000_000 * NS + i * NS, values=values))
    return rows


def batch_last(rows: list[Row]) -> np.ndarray:
    cols = columns_from_rows(rows)
    last: np.ndarray = compute_features(cols.mid, cols.spread, cols.imbalance, cols.trade_intensity)[-1]
    return last


def test_names_and_shape() -> None:
    rows = market(WARMUP_ROWS + 50, seed=1)
    cols = columns_from_rows(rows)
    out = compute_features(cols.mid, cols.spread, cols.imbalance, cols.trade_intensity)
    assert out.shape == (len(rows), len(FEATURE_NAMES)) == (WARMUP_ROWS + 50, 9)
    assert np.isnan(out[:WARMUP_ROWS]).all()
    assert np.isfinite(out[WARMUP_ROWS:]).all()
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


@pytest.mark.parametrize(("seed", "missing"), [(0, 0.0), (1, 0.05), (2, 0.5), (3, 1.0)])
def test_live_vector_equals_the_last_batch_row_exactly_at_every_step(seed: int, missing: float) -> None:
    rows = market(WARMUP_ROWS + 400, seed=seed, missing=missing)
    cols = columns_from_rows(rows)
    batch = compute_features(cols.mid, cols.spread, cols.imbalance, cols.trade_intensity)
    live = LiveFeatures()
    for i, row in enumerate(rows):
        assert live.update_row(row)
        assert live.ready == (i >= WARMUP_ROWS)
        np.testing.assert_array_equal(live.vector(), batch[i])  # NaN == NaN here; no tolerance


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    vol=st.sampled_from([1e-6, 1e-4, 3e-2]),
    extra=st.integers(0, 300),
    missing=st.sampled_from([0.0, 0.3]),
)
def test_live_equals_batch_for_any_path(seed: int, vol: float, extra: int, missing: float) -> None:
    rows = market(WARMUP_ROWS + 1 + extra, seed=seed, vol=vol, missing=missing)
    live = LiveFeatures()
    for row in rows:
        live.update_row(row)
    np.testing.assert_array_equal(live.vector(), batch_last(rows))


def test_rows_the_live_buffer_ignores_are_dropped_by_columns_from_rows_too() -> None:
    rows = market(WARMUP_ROWS + 60, seed=5)
    noisy: list[Row] = []
    for i, row in enumerate(rows):
        noisy.append(row)
        if i % 50 == 7:
            noisy.append(
                Row(row.ts_ns, {**row.values, "mid": 1.5 * float(row.values["mid"] or 0)})
            )  # same ts
            noisy.append(Row(row.ts_ns + 1, {**row.values, "mid": None}))
            noisy.append(Row(row.ts_ns + 2, {**row.values, "mid": -1.0}))
    live = LiveFeatures()
    accepted = [live.update_row(r) for r in noisy]
    assert sum(accepted) == len(rows) == len(columns_from_rows(noisy))
    np.testing.assert_array_equal(live.vector(), batch_last(noisy))
    np.testing.assert_array_equal(live.vector(), batch_last(rows))


def test_a_pause_restarts_the_warm_up_like_the_batch_segments() -> None:
    first = market(WARMUP_ROWS + 30, seed=6)
    later = [Row(r.ts_ns + 3600 * NS, r.values) for r in market(WARMUP_ROWS + 5, seed=7)]
    live = LiveFeatures(max_gap_s=60.0)
    for row in first:
        live.update_row(row)
    assert live.ready
    for row in later[:WARMUP_ROWS]:
        live.update_row(row)
    assert not live.ready
    for row in later[WARMUP_ROWS:]:
        live.update_row(row)
    np.testing.assert_array_equal(live.vector(), batch_last(later))

    matrix, stamps = feature_matrix(columns_from_rows(first + later), max_gap_s=60.0)
    assert matrix.shape == (30 + 5, len(FEATURE_NAMES)) and np.isfinite(matrix).all()
    assert stamps[0] == first[WARMUP_ROWS].ts_ns and stamps[-1] == later[-1].ts_ns
    np.testing.assert_array_equal(matrix[-1], live.vector())


def test_flat_and_trending_windows() -> None:
    n = WARMUP_ROWS + 1
    flat = compute_features(np.full(n, 100.0))[-1]
    named = dict(zip(FEATURE_NAMES, flat, strict=True))
    assert named["vol_30"] == named["vol_600"] == 0.0
    assert named["efficiency_120"] == 0.0 and named["autocorr_120"] == 0.0
    assert named["choppiness_120"] == 1.0
    assert named["spread"] == named["imbalance"] == named["trade_intensity"] == 0.0

    line = compute_features(100.0 * np.exp(1e-4 * np.arange(n)), spread=np.full(n, 2e-4))[-1]
    named = dict(zip(FEATURE_NAMES, line, strict=True))
    assert named["efficiency_120"] == pytest.approx(1.0)
    assert named["choppiness_120"] == pytest.approx(0.0, abs=1e-9)
    assert named["autocorr_120"] == pytest.approx(1.0)
    assert named["vol_120"] == pytest.approx(0.0, abs=1e-9)
    assert named["spread"] == pytest.approx(2e-4)

    zigzag = compute_features(100.0 * np.exp(1e-4 * (np.arange(n) % 2)))[-1]
    named = dict(zip(FEATURE_NAMES, zigzag, strict=True))
    assert named["autocorr_120"] == pytest.approx(-1.0)
    assert named["efficiency_120"] == 0.0
    assert named["vol_30"] == pytest.approx(1e-4)


def test_missing_optional_values_carry_forward() -> None:
    n = WARMUP_ROWS + 1
    spread = np.full(n, np.nan)
    spread[10] = 3e-4
    out = compute_features(np.full(n, 1.0), spread=spread)
    assert out[-1, FEATURE_NAMES.index("spread")] == pytest.approx(3e-4)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_batch_refuses_bad_mids(bad: float) -> None:
    mid = np.full(10, 100.0)
    mid[3] = bad
    with pytest.raises(ValueError, match="positive and finite"):
        compute_features(mid)


def test_serving_modules_import_no_heavy_library() -> None:
    code = (
        "import sys, ml, ml.features, ml.inference, ml.registry, ml.intensity\n"
        "print(sorted(m for m in ('pandas', 'sklearn', 'prefect', 'scipy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
