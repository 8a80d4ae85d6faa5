"""Regime probabilities for a running bot or a backtest: recorded feature rows in, probabilities out.

numpy only (no scikit-learn in a worker): the registry's artifacts are parameters, not pickles. The
bot core smooths the probabilities over time and blends gamma/kappa from them (`bots.core.blend`);
this side only infers the model's posterior,
the same way in the worker (which also hot-reloads new model versions) and in every backtest.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ml.features import LiveFeatures, RecordedRow
from ml.registry import RegistryWatcher

__all__ = ["LiveRegime"]


class LiveRegime:
    """Features fed once a record interval; the active model's regime probabilities."""

    def __init__(self, model_dir: Path, max_model_age_s: float) -> None:
        self.features = LiveFeatures()
        self.models = RegistryWatcher(model_dir, max_age_s=max_model_age_s)

    def reconfigure(self, model_dir: Path, max_model_age_s: float) -> None:
        if model_dir != self.models.model_dir:
            self.models = RegistryWatcher(model_dir, max_age_s=max_model_age_s)
        self.models.max_age_s = max_model_age_s

    def seed(self, rows: Iterable[RecordedRow]) -> None:
        """Recorded feature rows of this bot (ledger `FeatureRow`s), oldest first."""
        for row in rows:
            self.observe(row)

    def observe(self, row: RecordedRow) -> None:
        """One feature row, as the bot records it."""
        self.features.update_row(row)

    def poll(self, now_s: float) -> int | None:
        """The version of a newly adopted model (a scan of the registry at most every few seconds)."""
        model = self.models.poll(now_s)
        return model.version if model is not None else None

    def loaded(self, now_s: float) -> bool:
        """A usable model is loaded (not too old); its probabilities may still wait for warm features."""
        return self.models.active(now_s) is not None

    def probabilities(self, now_s: float) -> dict[str, float] | None:
        """The active model's regime probabilities for the latest features; None without a usable
        model (none, too old) or before the features are warm."""
        model = self.models.active(now_s)
        if model is None or not self.features.ready:
            return None
        return model.regime_probabilities(self.features.vector())
