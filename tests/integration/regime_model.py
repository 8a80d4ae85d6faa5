"""A regime model for tests: trained on recorded features (calm, volatile, trending) and published."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bots.store import Ledger
from ml.features import columns_from_rows, feature_matrix
from ml.regime import RegimeFit, fit_regime_model
from ml.registry import TrainingInfo, publish

NS = 1_000_000_000


def record_history(ledger: Ledger, bot: str, symbol: str, now_ns: int, rows: int) -> None:
    """`rows` seconds of recorded features ending now: calm, then a volatile stretch, then a trend."""
    rng = np.random.default_rng(5)
    vol = np.concatenate(
        [np.full(rows // 3, 1e-4), np.full(rows // 3, 8e-4), np.full(rows - 2 * (rows // 3), 2e-4)]
    )
    drift = np.concatenate([np.zeros(2 * (rows // 3)), np.full(rows - 2 * (rows // 3), 3e-4)])
    mids = 65_000.0 * np.exp(np.cumsum(rng.normal(drift, vol)))
    for i, mid in enumerate(mids):
        ts = now_ns - (rows - i) * NS
        ledger.record_features(bot, symbol, ts, {"mid": float(mid), "spread": 2e-5, "imbalance": 0.0})


def train_and_publish(
    ledger: Ledger, bot: str, symbol: str, model_dir: Path
) -> tuple[RegimeFit, TrainingInfo]:
    """Record 1,500 s of features, fit a 3-component model on them, publish it as version 1."""
    now_ns = time.time_ns()
    record_history(ledger, bot, symbol, now_ns, rows=1_500)
    X, _ = feature_matrix(columns_from_rows(ledger.features(symbol, bot=bot)))
    fit = fit_regime_model(X, n_components=3)
    info = TrainingInfo(trained_at=time.time(), data_since_ts_ns=now_ns - 1_500 * NS, data_until_ts_ns=now_ns)
    assert publish(model_dir, fit.artifact(), info) == 1
    return fit, info
