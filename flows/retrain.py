"""retrain-regime-model: fit the regime GMM on recent market features of the fleet's bots, compare it
with the registry's current model on a holdout, and publish it only when it is valid and not worse.

1. Features: the rows the fleet's own bots recorded in the ledger (one a second per bot) over the last
   `lookback_hours`, one series per bot, turned into the model's features by `ml.features` (the code
   the bots run), pooled.
2. Holdout: the latest `holdout_fraction` of the rows by time; the candidate is fitted on the rest
   (`ml.regime.fit_regime_model`, k chosen by BIC unless `n_components` is given).
3. Comparison: mean log-likelihood per holdout row, in the features' own units (so models with
   different scalers compare), of the candidate and of the newest valid version in each model
   directory of the fleet (`ml.model_dir` of its bots). Published when the candidate converged, has
   a finite score and enough rows, and scores at least as well as the current model (any score
   beats no model).
4. A markdown artifact: the BIC of every k, each regime's weight, holdout share and feature means,
   both scores and the decision.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import numpy.typing as npt
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Completed

from bots.store import FeatureRow, Ledger
from flows.common import is_transient, load_fleet_config
from ml.features import FEATURE_NAMES, WARMUP_ROWS, columns_from_rows, feature_matrix
from ml.inference import RegimeModel, RegimeParamsArtifact
from ml.progress import progress_bar
from ml.regime import SKLEARN_VERSION, RegimeFit, fit_regime_model, fit_steps
from ml.registry import TrainingInfo, load_latest, publish
from settings import FleetSettings

__all__ = [
    "Dataset",
    "decide",
    "log_likelihood",
    "regime_markdown",
    "retrain_regime_model",
    "skipped_markdown",
    "split_holdout",
]

FloatArray = npt.NDArray[np.float64]
_NS_PER_HOUR = 3_600_000_000_000
_LOG_2PI = math.log(2.0 * math.pi)
_MIN_HOLDOUT_ROWS = 10


@dataclass(frozen=True, slots=True, eq=False)
class Dataset:
    """Feature rows in time order with their timestamps."""

    x: FloatArray
    ts_ns: npt.NDArray[np.int64]


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=is_transient, cache_policy=NO_CACHE)
def load_feature_rows(fleet: FleetSettings, since_ns: int) -> dict[str, list[FeatureRow]]:
    """Rows the fleet's own bots recorded since `since_ns`, one series per (symbol, bot): a store may
    hold rows of bots no longer (or never) in this fleet file, on the same symbols, and those are not
    the market this fleet trades."""
    series: dict[str, list[FeatureRow]] = {}
    with Ledger(fleet.ledger_url()) as ledger:
        for bot in sorted(fleet.bots, key=lambda b: (b.symbol, b.name)):
            rows = ledger.features(bot.symbol, since_ts_ns=since_ns, bot=bot.name)
            if rows:
                series[f"{bot.symbol}/{bot.name}"] = rows
    return series


@task(cache_policy=NO_CACHE)
def build_dataset(series: dict[str, list[FeatureRow]]) -> Dataset:
    """Model features of every series past its warm-up, pooled and ordered by time."""
    blocks = [feature_matrix(columns_from_rows(rows)) for _, rows in sorted(series.items())]
    x = np.concatenate([b[0] for b in blocks]) if blocks else np.empty((0, len(FEATURE_NAMES)))
    ts = np.concatenate([b[1] for b in blocks]) if blocks else np.empty(0, dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    finite = np.isfinite(x[order]).all(axis=1)
    return Dataset(x[order][finite], ts[order][finite])


def split_holdout(data: Dataset, fraction: float) -> tuple[Dataset, Dataset]:
    """(train, holdout): the holdout is the latest `fraction` of the rows."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {fraction}")
    cut = len(data.x) - max(_MIN_HOLDOUT_ROWS, round(len(data.x) * fraction))
    cut = max(cut, 0)
    return Dataset(data.x[:cut], data.ts_ns[:cut]), Dataset(data.x[cut:], data.ts_ns[cut:])


def _log_gaussian(artifact: RegimeParamsArtifact, z: FloatArray) -> FloatArray:
    """log N(z | mu_c, Sigma_c) per row and component (the formula of `ml.inference`)."""
    n, d = z.shape
    chol, kind = artifact.precisions_cholesky, artifact.covariance_type
    out = np.empty((n, artifact.n_components))
    for c in range(artifact.n_components):
        diff = z - artifact.means[c]
        if kind == "full":
            y, log_det = diff @ chol[c], np.log(np.diagonal(chol[c])).sum()
        elif kind == "tied":
            y, log_det = diff @ chol, np.log(np.diagonal(chol)).sum()
        elif kind == "diag":
            y, log_det = diff * chol[c], np.log(chol[c]).sum()
        else:
            y, log_det = diff * chol[c], d * np.log(chol[c])
        out[:, c] = -0.5 * (d * _LOG_2PI + np.einsum("ij,ij->i", y, y)) + log_det
    return out


def log_likelihood(artifact: RegimeParamsArtifact, x: FloatArray) -> float:
    """Mean log-density per row of `x` in the features' own units (the scaler's Jacobian included)."""
    if len(x) == 0:
        return math.nan
    z = (x - artifact.scaler_mean) / artifact.scaler_scale
    weighted = _log_gaussian(artifact, z) + np.log(artifact.weights)
    top = weighted.max(axis=1, keepdims=True)
    per_row = top[:, 0] + np.log(np.exp(weighted - top).sum(axis=1)) - np.log(artifact.scaler_scale).sum()
    return float(per_row.mean())


@task(cache_policy=NO_CACHE)
def fit_candidate(train: Dataset, n_components: int | None, random_state: int) -> RegimeFit:
    """Fit the regime pipeline on the training rows (BIC selection of k unless given), showing its
    progress as a rich bar on the console and a progress artifact in the Prefect UI."""
    total = fit_steps(n_components)
    bar = progress_bar(f"retrain: fitting {len(train.x):,} rows", total)
    artifact_id = create_progress_artifact(0.0, key="retrain-regime-model-progress")
    if not isinstance(artifact_id, UUID):  # the async form: only inside an event loop
        raise TypeError("fit_candidate must run in a synchronous task")

    def step(done: int) -> None:
        bar(done)
        update_progress_artifact(artifact_id, 100.0 * abs(done) / total)

    return fit_regime_model(train.x, n_components, random_state=random_state, progress=step)


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=is_transient, cache_policy=NO_CACHE)
def load_current_model(model_dir: Path) -> RegimeModel | None:
    """The newest version of the registry that validates, whatever its age."""
    return load_latest(model_dir, max_age_s=math.inf, now=time.time())


def decide(
    *, converged: bool, rows: int, min_rows: int, candidate_ll: float, current_ll: float | None
) -> tuple[bool, str]:
    """Publish or not, and why."""
    if not converged:
        return False, "the candidate did not converge"
    if rows < min_rows:
        return False, f"{rows} training rows, fewer than min_rows={min_rows}"
    if not math.isfinite(candidate_ll):
        return False, f"the candidate's holdout log-likelihood is {candidate_ll}"
    if current_ll is None or not math.isfinite(current_ll):
        return True, f"no current model; candidate scores {candidate_ll:.4f}"
    if candidate_ll >= current_ll:
        return True, f"candidate {candidate_ll:.4f} >= current {current_ll:.4f}"
    return False, f"candidate {candidate_ll:.4f} is worse than the current model's {current_ll:.4f}"


def regime_markdown(
    artifact: RegimeParamsArtifact, bic: dict[int, float], holdout: FloatArray, lines: Sequence[str]
) -> str:
    """Regime statistics: weight, holdout share and mean features of every component; BIC per k."""
    shares = np.zeros(artifact.n_components)
    if len(holdout):
        winners = RegimeModel(artifact).predict_proba(holdout).argmax(axis=1)
        shares = np.bincount(winners, minlength=artifact.n_components) / len(holdout)
    means = artifact.scaler_mean + artifact.means * artifact.scaler_scale
    names = artifact.feature_names
    out = ["# retrain-regime-model", "", *lines, "", "## Regimes (candidate)", ""]
    out.append("| component | regime | weight | holdout share | " + " | ".join(names) + " |")
    out.append("|" + "---|" * (4 + len(names)))
    for c in range(artifact.n_components):
        cells = " | ".join(f"{v:.4g}" for v in means[c])
        out.append(f"| {c} | {artifact.labels[c]} | {artifact.weights[c]:.3f} | {shares[c]:.3f} | {cells} |")
    if bic:
        out += ["", "## BIC by number of components", "", "| k | BIC |", "|---|---|"]
        out += [f"| {k} | {value:.1f} |" for k, value in sorted(bic.items())]
    return "\n".join(out) + "\n"


def skipped_markdown(rows: int, min_rows: int, holdout_rows: int) -> str:
    """The artifact of a run that had too little data to train: the counts against their minimums."""
    return "\n".join([
        "# retrain-regime-model: skipped",
        "",
        "No model trained: too few feature rows. Each bot's first "
        f"{WARMUP_ROWS} rows (its features' warm-up) do not count.",
        "",
        "| rows | have | minimum |",
        "|---|---|---|",
        f"| training | {rows} | {min_rows} |",
        f"| holdout | {holdout_rows} | {_MIN_HOLDOUT_ROWS} |",
    ]) + "\n"  # fmt: skip


@flow(name="retrain-regime-model")
def retrain_regime_model(
    lookback_hours: float = 48.0,
    holdout_fraction: float = 0.2,
    n_components: int | None = None,
    min_rows: int = 1_000,
    random_state: int = 0,
    model_dir: str | None = None,
    config: str | None = None,
) -> dict[str, Any] | State[dict[str, Any]]:
    """Fit, compare on the holdout, publish when valid and not worse; returns scores and versions
    (too little data: a `Completed` state named `Skipped` holding them)."""
    logger = get_run_logger()
    fleet = load_fleet_config(config)
    now_ns = time.time_ns()
    series = load_feature_rows(fleet, now_ns - round(lookback_hours * _NS_PER_HOUR))
    data = build_dataset(series)
    train, holdout = split_holdout(data, holdout_fraction)
    logger.info("%d series, %d training rows, %d holdout rows", len(series), len(train.x), len(holdout.x))
    if len(train.x) < min_rows or len(holdout.x) < _MIN_HOLDOUT_ROWS:
        why = f"not enough data: {len(train.x)} training rows (min_rows={min_rows}), {len(holdout.x)} holdout"
        logger.warning("no model trained: %s", why)
        create_markdown_artifact(
            skipped_markdown(len(train.x), min_rows, len(holdout.x)), key="retrain-regime-model"
        )
        skipped: dict[str, Any] = {"candidate_ll": None, "rows": len(train.x), "published": {}, "reason": why}
        # Nothing went wrong (no page), yet the run list must not show it as a retrain that ran.
        return Completed(name="Skipped", message=f"No model trained: {why}", data=skipped)
    fit = fit_candidate(train, n_components, random_state)
    artifact = fit.artifact()
    candidate_ll = log_likelihood(artifact, holdout.x)
    dirs = [Path(model_dir)] if model_dir else sorted({Path(bot.ml.model_dir) for bot in fleet.bots})
    result: dict[str, Any] = {"candidate_ll": candidate_ll, "rows": len(train.x), "published": {}}
    lines = [f"Training rows {len(train.x)}, holdout rows {len(holdout.x)}, k = {fit.n_components}."]
    for directory in dirs:
        current = load_current_model(directory)
        current_ll = None if current is None else log_likelihood(current.artifact, holdout.x)
        ok, why = decide(
            converged=fit.converged,
            rows=len(train.x),
            min_rows=min_rows,
            candidate_ll=candidate_ll,
            current_ll=current_ll,
        )
        version = None
        if ok:
            info = TrainingInfo(
                trained_at=time.time(),
                data_since_ts_ns=int(train.ts_ns[0]),
                data_until_ts_ns=int(train.ts_ns[-1]),
                metrics={**fit.metrics(), "holdout_log_likelihood": candidate_ll},
                sklearn_version=SKLEARN_VERSION,
                extra={"symbols": ",".join(sorted({b.symbol for b in fleet.bots}))},
            )
            version = publish_model(directory, artifact, info)
        current_name = "none" if current is None else f"v{current.version}"
        lines.append(
            f"- `{directory}`: current {current_name}, "
            + ("published v" + str(version) if version else "not published")
            + f" ({why})"
        )
        logger.info("%s: %s", directory, lines[-1])
        result["published"][str(directory)] = version
        result.setdefault("current_ll", {})[str(directory)] = current_ll
    create_markdown_artifact(regime_markdown(artifact, fit.bic, holdout.x, lines), key="retrain-regime-model")
    return result


@task(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=is_transient, cache_policy=NO_CACHE)
def publish_model(model_dir: Path, artifact: RegimeParamsArtifact, info: TrainingInfo) -> int:
    """Write the model as the registry's next version."""
    return publish(model_dir, artifact, info)
