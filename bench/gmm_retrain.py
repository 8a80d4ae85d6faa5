"""Regime-model retrain on 1M feature rows, against a 100k-row fit scaled up, in the same run.

Data: a synthetic mid-price path of 1M + warm-up seconds switching between three regimes (ranging:
mean-reverting returns; trending: drift with momentum; volatile: 5x the noise), with spreads and
trade intensities per regime, turned into features by `ml.features.compute_features`.
Timed: the feature computation, the retrain the daily flow runs by default (k = 3 fixed, every
row), the BIC search (k = 2..6 on a 200k sample, then the chosen k on every row), and the baseline,
k = 3 on 100k rows; the ratio is the 1M fit over ten times the baseline (1.0 = linear scaling).
Also checked: accuracy against the true regimes, and the numpy posterior against sklearn's.
Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import numpy.typing as npt

from ml.features import WARMUP_ROWS, compute_features
from ml.inference import RegimeModel
from ml.regime import fit_regime_model

# regime: (noise sigma, drift, AR(1) coefficient of returns, relative spread, trades per second)
REGIMES = {
    "ranging": (1.0e-4, 0.0, -0.4, 1.0e-4, 2.0),
    "trending": (1.0e-4, 4.0e-5, 0.2, 1.5e-4, 4.0),
    "volatile": (5.0e-4, 0.0, 0.0, 4.0e-4, 8.0),
}


def synthetic_market(rows: int, seed: int) -> tuple[npt.NDArray[np.float64], ...]:
    """mid, spread, imbalance, trade intensity, and per row the true regime index and row-in-segment."""
    rng = np.random.default_rng(seed)
    names = list(REGIMES)
    regime = np.empty(rows, dtype=np.int64)
    offset = np.empty(rows, dtype=np.int64)
    start, previous = 0, -1
    while start < rows:
        choice = int(rng.choice([i for i in range(len(names)) if i != previous]))
        length = min(int(rng.integers(3_000, 20_000)), rows - start)
        regime[start : start + length] = choice
        offset[start : start + length] = np.arange(length)
        start, previous = start + length, choice
    params = np.array([REGIMES[n] for n in names])[regime]
    sigma, drift, phi, spread, intensity = params.T
    eps = rng.normal(0.0, 1.0, rows) * sigma
    sign = np.where(rng.random(rows) < 0.5, -1.0, 1.0)
    sign = sign[np.maximum.accumulate(np.where(offset == 0, np.arange(rows), 0))]  # one per segment
    returns = np.empty(rows)
    prev = 0.0
    for i in range(rows):  # AR(1) in returns, regime by regime
        prev = phi[i] * prev + eps[i]
        returns[i] = prev
    returns += drift * sign
    mid = 50_000.0 * np.exp(np.cumsum(returns))
    return (
        mid,
        spread * rng.lognormal(0.0, 0.2, rows),
        np.clip(rng.normal(0.0, 0.3, rows), -1.0, 1.0),
        rng.poisson(intensity).astype(np.float64),
        regime.astype(np.float64),
        offset.astype(np.float64),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="feature rows to fit")
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--skip-bic", action="store_true", help="time the fixed-k fit only")
    args = parser.parse_args()

    mid, spread, imbalance, intensity, regime, offset = synthetic_market(args.rows + WARMUP_ROWS, args.seed)
    start = time.perf_counter()
    features = compute_features(mid, spread, imbalance, intensity)[WARMUP_ROWS:]
    features_s = time.perf_counter() - start
    truth = regime[WARMUP_ROWS:].astype(np.int64)
    settled = offset[WARMUP_ROWS:] >= WARMUP_ROWS  # the whole window inside one regime

    start = time.perf_counter()
    fit_regime_model(features[: args.baseline_rows], n_components=3)
    baseline_s = time.perf_counter() - start
    start = time.perf_counter()
    fit = fit_regime_model(features, n_components=3)
    fit_s = time.perf_counter() - start
    bic_s, bic_k = float("nan"), 0
    if not args.skip_bic:
        start = time.perf_counter()
        searched = fit_regime_model(features, n_components=None)
        bic_s, bic_k = time.perf_counter() - start, searched.n_components

    model = RegimeModel.from_artifact(fit.artifact())
    start = time.perf_counter()
    proba = model.predict_proba(features)
    numpy_s = time.perf_counter() - start
    max_diff = float(np.abs(proba - fit.pipeline.predict_proba(features)).max())
    names = np.array(list(REGIMES))
    predicted = np.array(fit.labels)[proba.argmax(axis=1)]
    accuracy = float((predicted[settled] == names[truth[settled]]).mean())
    scaled = baseline_s * len(features) / len(features[: args.baseline_rows])
    ratio = fit_s / scaled

    print(f"{'step':<44}{'seconds':>10}{'rows':>12}")
    print(f"{'features (numpy)':<44}{features_s:>10.2f}{len(features):>12}")
    print(f"{'baseline fit k=3':<44}{baseline_s:>10.2f}{args.baseline_rows:>12}")
    print(f"{'retrain fit k=3 (target < 30 s)':<44}{fit_s:>10.2f}{len(features):>12}")
    if not args.skip_bic:
        print(f"{f'BIC search 2..6 on 200k + fit k={bic_k}':<44}{bic_s:>10.2f}{len(features):>12}")
    print(f"{'numpy posterior':<44}{numpy_s:>10.2f}{len(features):>12}")
    print(
        f"1M fit / (10 x 100k fit) = {ratio:.2f}; iterations {fit.pipeline[-1].n_iter_}; "
        f"accuracy {accuracy:.4f}; max |numpy - sklearn| {max_diff:.1e}"
    )
    print(
        json.dumps(
            {
                "bench": "gmm_retrain",
                "rows": len(features),
                "features_s": round(features_s, 3),
                "fit_s": round(fit_s, 3),
                "baseline_rows": args.baseline_rows,
                "baseline_s": round(baseline_s, 3),
                "ratio_vs_scaled_baseline": round(ratio, 3),
                "bic_search_s": None if args.skip_bic else round(bic_s, 3),
                "bic_components": bic_k or None,
                "numpy_posterior_s": round(numpy_s, 3),
                "accuracy": round(accuracy, 4),
                "max_abs_diff_vs_sklearn": max_diff,
                "target_met": fit_s < 30.0,
            }
        )
    )


if __name__ == "__main__":
    main()
