"""Regime-model features from the recorded market rows; numpy only (the worker imports this module).

One definition serves training and the live bot: `compute_features` maps time-ordered rows (one a
second, as the worker records them) to a matrix with one row per input row, and `LiveFeatures`, fed
the same rows one at a time, returns exactly (bit for bit) the last row of that matrix.

Features (windows in rows, so in seconds at the recording cadence):
- `vol_W`: standard deviation of the log returns of mid over the last W returns, W = 30, 120, 600;
- `efficiency_120`: Kaufman's efficiency ratio |net log move| / sum |log returns| (1 = straight line);
- `autocorr_120`: lag-1 autocorrelation of log returns, sum r_t r_{t-1} / sum r_t^2 (uncentred);
- `choppiness_120`: 1 - (max - min of log mid) / sum |log returns| (0 = straight line, 1 = flat);
- `spread`, `imbalance`, `trade_intensity`: means over the last 30 rows of the recorded columns.

A flat window (no movement) has efficiency 0, autocorrelation 0 and choppiness 1. Missing values of
the optional columns (None/NaN) carry the last finite value forward (0 before the first one); rows
whose mid is not a positive finite number, or whose timestamp does not increase, are not features.

Exactness. Window sums are differences of prefix sums: `np.cumsum` adds in order, as the live
running totals do, so both produce the same floats; maxima and minima are exact. Prefix sums grow
with the history, so a window sum of a series running for N rows keeps about
eps * N / window relative precision (1e-11 after months at one row a second), far below what a
regime posterior can see.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_MAX_GAP_S",
    "FEATURE_NAMES",
    "FLOW_WINDOW",
    "TREND_WINDOW",
    "VOL_WINDOWS",
    "WARMUP_ROWS",
    "FeatureColumns",
    "LiveFeatures",
    "columns_from_rows",
    "compute_features",
    "feature_matrix",
]

FloatArray = npt.NDArray[np.float64]

VOL_WINDOWS: Final = (30, 120, 600)
TREND_WINDOW: Final = 120
FLOW_WINDOW: Final = 30
# Row t has every feature once t >= WARMUP_ROWS (the longest window of returns needs WARMUP_ROWS + 1 mids).
WARMUP_ROWS: Final = max(*VOL_WINDOWS, TREND_WINDOW, FLOW_WINDOW)
FEATURE_NAMES: Final[tuple[str, ...]] = (
    *(f"vol_{w}" for w in VOL_WINDOWS),
    f"efficiency_{TREND_WINDOW}",
    f"autocorr_{TREND_WINDOW}",
    f"choppiness_{TREND_WINDOW}",
    "spread",
    "imbalance",
    "trade_intensity",
)
# A longer pause between rows starts a new series (a restarted or stalled bot).
DEFAULT_MAX_GAP_S: Final = 60.0
_NS_PER_S: Final = 1_000_000_000
_FLOW_COLUMNS: Final = ("spread", "imbalance", "trade_intensity")


class RecordedRow(Protocol):
    """What `bots.store.ledger.FeatureRow` offers: a timestamp and a mapping of recorded values."""

    @property
    def ts_ns(self) -> int: ...
    @property
    def values(self) -> Mapping[str, float | None]: ...


@dataclass(frozen=True, slots=True, eq=False)
class FeatureColumns:
    """Recorded rows as columns; optional columns hold NaN where nothing was recorded."""

    ts_ns: npt.NDArray[np.int64]
    mid: FloatArray
    spread: FloatArray
    imbalance: FloatArray
    trade_intensity: FloatArray

    def __len__(self) -> int:
        return len(self.mid)

    def segments(self, max_gap_s: float = DEFAULT_MAX_GAP_S) -> list[slice]:
        """Slices of rows with no pause longer than `max_gap_s` between consecutive rows."""
        cuts = np.flatnonzero(np.diff(self.ts_ns) > max_gap_s * _NS_PER_S) + 1
        bounds = [0, *cuts.tolist(), len(self)]
        return [slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _optional(value: float | None) -> float:
    return math.nan if value is None else float(value)


def columns_from_rows(rows: Iterable[RecordedRow]) -> FeatureColumns:
    """Ledger rows of one bot, in time order, to columns, dropping the rows `LiveFeatures` ignores."""
    ts: list[int] = []
    cols: list[list[float]] = [[], [], [], []]
    last_ts: int | None = None
    for row in rows:
        mid = _optional(row.values.get("mid"))
        if not (math.isfinite(mid) and mid > 0.0) or (last_ts is not None and row.ts_ns <= last_ts):
            continue
        last_ts = row.ts_ns
        ts.append(row.ts_ns)
        cols[0].append(mid)
        for col, name in zip(cols[1:], _FLOW_COLUMNS, strict=True):
            col.append(_optional(row.values.get(name)))
    arrays = [np.asarray(c, dtype=np.float64) for c in cols]
    return FeatureColumns(np.asarray(ts, dtype=np.int64), *arrays)


def _forward_fill(values: Sequence[float] | FloatArray | None, n: int) -> FloatArray:
    """Carry the last finite value forward; 0 before the first (and everywhere when absent)."""
    if values is None:
        return np.zeros(n)
    x = np.asarray(values, dtype=np.float64)
    if x.shape != (n,):
        raise ValueError(f"an optional column has shape {x.shape}, expected ({n},)")
    finite = np.isfinite(x)
    if finite.all():
        return x
    last = np.where(finite, np.arange(n), -1)
    np.maximum.accumulate(last, out=last)
    return np.where(last >= 0, x[np.maximum(last, 0)], 0.0)


def _prefix(x: FloatArray) -> FloatArray:
    """P[0] = 0, P[i + 1] = P[i] + x[i] (in order, as `LiveFeatures` adds)."""
    out = np.zeros(len(x) + 1)
    np.cumsum(x, out=out[1:])
    return out


def compute_features(
    mid: Sequence[float] | FloatArray,
    spread: Sequence[float] | FloatArray | None = None,
    imbalance: Sequence[float] | FloatArray | None = None,
    trade_intensity: Sequence[float] | FloatArray | None = None,
) -> FloatArray:
    """Feature matrix (n rows x len(FEATURE_NAMES)); rows before `WARMUP_ROWS` are NaN.

    `mid` must be positive and finite, rows one sampling interval apart in time order.
    """
    m = np.ascontiguousarray(mid, dtype=np.float64)
    if m.ndim != 1:
        raise ValueError(f"mid must be one-dimensional, got shape {m.shape}")
    if not (np.isfinite(m).all() and (m > 0.0).all()):
        raise ValueError("mid must be positive and finite")
    n = len(m)
    flows = [_forward_fill(col, n) for col in (spread, imbalance, trade_intensity)]
    out = np.full((n, len(FEATURE_NAMES)), np.nan)
    if n <= WARMUP_ROWS:
        return out
    log_mid = np.log(m)
    r = np.zeros(n)
    r[1:] = log_mid[1:] - log_mid[:-1]
    r_prev = np.zeros(n)
    r_prev[1:] = r[:-1]
    p_sq, p_abs, p_lag = _prefix(r * r), _prefix(np.abs(r)), _prefix(r * r_prev)
    t = np.arange(WARMUP_ROWS, n)
    end = t + 1

    col = 0
    for w in VOL_WINDOWS:
        sq = p_sq[end] - p_sq[end - w]
        mean = (log_mid[t] - log_mid[t - w]) / w
        var = sq / w - mean * mean
        out[WARMUP_ROWS:, col] = np.sqrt(np.maximum(var, 0.0))
        col += 1

    w = TREND_WINDOW
    path = p_abs[end] - p_abs[end - w]
    moving = path > 0.0
    safe_path = np.where(moving, path, 1.0)
    net = np.abs(log_mid[t] - log_mid[t - w])
    out[WARMUP_ROWS:, col] = np.where(moving, np.minimum(net / safe_path, 1.0), 0.0)
    sq = p_sq[end] - p_sq[end - w]
    lag = p_lag[end] - p_lag[end - w]
    has_sq = sq > 0.0
    ratio = lag / np.where(has_sq, sq, 1.0)
    out[WARMUP_ROWS:, col + 1] = np.where(has_sq, np.minimum(np.maximum(ratio, -1.0), 1.0), 0.0)
    windows = np.lib.stride_tricks.sliding_window_view(log_mid, w + 1)[t - w]
    span = windows.max(axis=1) - windows.min(axis=1)
    out[WARMUP_ROWS:, col + 2] = np.where(moving, np.maximum(1.0 - span / safe_path, 0.0), 1.0)
    col += 3

    for flow in flows:
        p = _prefix(flow)
        out[WARMUP_ROWS:, col] = (p[end] - p[end - FLOW_WINDOW]) / FLOW_WINDOW
        col += 1
    return out


def feature_matrix(
    columns: FeatureColumns, max_gap_s: float = DEFAULT_MAX_GAP_S
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Training rows: features of every gap-free segment past its warm-up, and their timestamps."""
    blocks: list[FloatArray] = []
    stamps: list[npt.NDArray[np.int64]] = []
    for part in columns.segments(max_gap_s):
        feats = compute_features(
            columns.mid[part], columns.spread[part], columns.imbalance[part], columns.trade_intensity[part]
        )
        blocks.append(feats[WARMUP_ROWS:])
        stamps.append(columns.ts_ns[part][WARMUP_ROWS:])
    if not blocks:
        return np.empty((0, len(FEATURE_NAMES))), np.empty(0, dtype=np.int64)
    return np.concatenate(blocks), np.concatenate(stamps)


class LiveFeatures:
    """The features of the latest row, fed one row at a time; O(window) memory, O(1) per update.

    `vector()` equals the last row of `compute_features` over the rows fed since the last pause
    longer than `max_gap_s` (a pause restarts the warm-up).
    """

    __slots__ = ("_flow", "_last_r", "_last_ts", "_log_mid", "_max_gap_ns", "_prefix", "_rows")

    def __init__(self, max_gap_s: float = DEFAULT_MAX_GAP_S) -> None:
        self._max_gap_ns = max_gap_s * _NS_PER_S
        self._last_ts: int | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the history (the next row starts a new warm-up)."""
        self._rows = 0
        self._last_r = 0.0
        self._flow = [0.0, 0.0, 0.0]
        self._log_mid: deque[float] = deque(maxlen=WARMUP_ROWS + 1)
        # (sum r^2, sum |r|, sum r*r_prev, sum spread, sum imbalance, sum intensity) up to each row.
        self._prefix: deque[tuple[float, ...]] = deque([(0.0,) * 6], maxlen=WARMUP_ROWS + 1)

    @property
    def ready(self) -> bool:
        """True once the longest window is full."""
        return self._rows > WARMUP_ROWS

    @property
    def rows(self) -> int:
        """Rows fed since the last reset."""
        return self._rows

    def update(
        self,
        ts_ns: int,
        mid: float,
        spread: float | None = None,
        imbalance: float | None = None,
        trade_intensity: float | None = None,
    ) -> bool:
        """Add one recorded row; False (ignored) if mid is not positive finite or time did not advance."""
        if not (math.isfinite(mid) and mid > 0.0):
            return False
        if self._last_ts is not None:
            if ts_ns <= self._last_ts:
                return False
            if ts_ns - self._last_ts > self._max_gap_ns:
                self.reset()
        self._last_ts = ts_ns
        log_mid = float(np.log(np.array([mid], dtype=np.float64))[0])
        r = log_mid - self._log_mid[-1] if self._log_mid else 0.0
        for i, value in enumerate((spread, imbalance, trade_intensity)):
            if value is not None and math.isfinite(value):
                self._flow[i] = float(value)
        p = self._prefix[-1]
        self._prefix.append((
            p[0] + r * r,
            p[1] + abs(r),
            p[2] + r * self._last_r,
            p[3] + self._flow[0],
            p[4] + self._flow[1],
            p[5] + self._flow[2],
        ))  # fmt: skip
        self._log_mid.append(log_mid)
        self._last_r = r
        self._rows += 1
        return True

    def update_row(self, row: RecordedRow) -> bool:
        """`update` from a ledger `FeatureRow` (used to seed from recorded history)."""
        v = row.values
        mid = v.get("mid")
        if mid is None:
            return False
        return self.update(row.ts_ns, mid, v.get("spread"), v.get("imbalance"), v.get("trade_intensity"))

    def vector(self) -> FloatArray:
        """Features of the latest row in `FEATURE_NAMES` order; all NaN until `ready`."""
        out = np.full(len(FEATURE_NAMES), np.nan)
        if not self.ready:
            return out
        log_mid, prefix = self._log_mid, self._prefix
        now = prefix[-1]
        col = 0
        for w in VOL_WINDOWS:
            sq = now[0] - prefix[-1 - w][0]
            mean = (log_mid[-1] - log_mid[-1 - w]) / w
            var = sq / w - mean * mean
            out[col] = math.sqrt(max(var, 0.0))
            col += 1

        w = TREND_WINDOW
        before = prefix[-1 - w]
        path = now[1] - before[1]
        net = abs(log_mid[-1] - log_mid[-1 - w])
        sq = now[0] - before[0]
        lag = now[2] - before[2]
        out[col] = min(net / path, 1.0) if path > 0.0 else 0.0
        out[col + 1] = min(max(lag / sq, -1.0), 1.0) if sq > 0.0 else 0.0
        recent = [log_mid[i] for i in range(-1 - w, 0)]
        span = max(recent) - min(recent)
        out[col + 2] = max(1.0 - span / path, 0.0) if path > 0.0 else 1.0
        col += 3

        flow_before = prefix[-1 - FLOW_WINDOW]
        for i in range(3):
            out[col + i] = (now[3 + i] - flow_before[3 + i]) / FLOW_WINDOW
        return out
